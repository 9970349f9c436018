"""PostgreSQL storage for agent traces: one OTelTrace per agent run, one OTelSpan per span.

Owns the stored shapes and the names written into them: ``AgentStatus`` (a run's terminal
status, compared everywhere as this enum), ``SPAN_COLUMNS`` (the span columns every writer
and reader uses, in order), ``SUMMARY_COLUMNS`` (the trace columns the exporter's
summary maintains) and ``OTelResource`` (the resource attributes spans were sent with,
stored once per distinct resource).
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import F, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now, Upper

from campus_core.chat.models import Conversation, Message


class AgentStatus(models.TextChoices):
    """A trace's status: ``NO_AGENT`` while none of its spans is agent work (e.g. a service
    that sent only HTTP spans), ``RUNNING`` once one is (or once the in-process tagger marked
    a span as inside an agent run) until its agent span is stored, then the run's outcome."""

    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"
    MAX_ITERATIONS = "max_iterations"
    NO_AGENT = "no_agent"


# The stored span columns, in the order every writer (COPY) and reader uses them.
SPAN_COLUMNS: tuple[str, ...] = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "span_kind",
    "started_at",
    "ended_at",
    "duration_ms",
    "status_code",
    "status_message",
    "attributes",
    "events",
    "scope",
    "service_name",
    "resource_id",
    # Promoted from the attributes by the row builder (tracing.export.rows), so span
    # search filters and aggregates on typed, indexed columns instead of JSON.
    "kind",
    "model",
    "tool_name",
    "input_tokens",
    "output_tokens",
)
# The trace columns derived from its spans (tracing.export.summary maintains them).
SUMMARY_COLUMNS: tuple[str, ...] = (
    "conversation_id",
    "user_message_id",
    "ai_message_id",
    "agent_name",
    "query",
    "status",
    "model",
    "started_at",
    "ended_at",
    "total_duration_ms",
    "total_input_tokens",
    "total_output_tokens",
    "iteration_count",
    "tool_call_count",
    "tools_used",
    "span_count",
    "root_span_id",
    "service_name",
    "session_id",
)


class OTelTrace(models.Model):
    """One agent run. The summary columns are maintained by the exporter, never by hand.

    ``id`` is the OTel trace id (128 bits, shown as 32 hex characters).
    """

    id = models.UUIDField(primary_key=True)
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="traces"
    )
    user_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ai_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    agent_name = models.CharField(max_length=200, blank=True, db_default="")
    query = models.TextField(blank=True, db_default="")
    status = models.CharField(max_length=32, db_default=AgentStatus.NO_AGENT.value)
    model = models.CharField(max_length=200, blank=True, db_default="")
    started_at = models.DateTimeField(null=True)
    ended_at = models.DateTimeField(null=True)
    total_duration_ms = models.FloatField(null=True)
    total_input_tokens = models.BigIntegerField(db_default=0)
    total_output_tokens = models.BigIntegerField(db_default=0)
    iteration_count = models.IntegerField(db_default=0)
    tool_call_count = models.IntegerField(db_default=0)
    tools_used = ArrayField(
        models.CharField(max_length=200), db_default=RawSQL("'{}'::varchar[]", ()), blank=True
    )
    span_count = models.IntegerField(db_default=0)
    # The agent span (invoke_agent / agent_run) once stored; '' until then.
    root_span_id = models.CharField(max_length=16, blank=True, db_default="")
    # The service of the agent span (until it arrives: of the earliest span stored).
    service_name = models.CharField(max_length=200, blank=True, db_default="")
    # The run's conversation/session id as sent (gen_ai.conversation.id, session.id, ...),
    # whether or not it names one of our Conversation rows (``conversation`` links those).
    session_id = models.CharField(max_length=255, blank=True, db_default="")
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())

    class Meta:
        verbose_name = "agent trace"
        indexes = (
            models.Index(fields=["-started_at", "-id"], name="trace_started_idx"),
            models.Index(fields=["status", "-started_at", "-id"], name="trace_status_idx"),
            models.Index(fields=["model", "-started_at", "-id"], name="trace_model_idx"),
            models.Index(fields=["total_duration_ms", "id"], name="trace_duration_idx"),
            # Ordering by tokens: without these a page sorts the whole table (~240 ms at 1M
            # traces, see benchmarks/RESULTS.md); ties on id are left to an incremental sort.
            models.Index(fields=["total_input_tokens", "id"], name="trace_input_tokens_idx"),
            models.Index(fields=["total_output_tokens", "id"], name="trace_output_tokens_idx"),
            models.Index(
                F("total_input_tokens") + F("total_output_tokens"),
                F("id"),
                name="trace_total_tokens_idx",
            ),
            models.Index(fields=["conversation", "-started_at"], name="trace_conversation_idx"),
            models.Index(fields=["service_name", "-started_at", "-id"], name="trace_service_idx"),
            models.Index(fields=["session_id", "-started_at", "-id"], name="trace_session_idx"),
            GinIndex(fields=["tools_used"], name="trace_tools_gin"),
            GinIndex(OpClass(Upper("query"), name="gin_trgm_ops"), name="trace_query_trgm"),
        )

    def __str__(self) -> str:
        return f"{self.id.hex} {self.status}"


# The span columns the span aggregates read, carried by the start-time index.
STATS_INCLUDE = (
    "duration_ms",
    "status_code",
    "input_tokens",
    "output_tokens",
    "kind",
    "model",
    "tool_name",
    "name",
)


class OTelSpan(models.Model):
    """One span, in the standard OTel shape. ``span_id`` is unique within its trace.

    The table is partitioned by day of ``started_at`` (tracing/partitions.py): its primary
    key in PostgreSQL is ``span_unique_in_trace`` (the partition column has to be part of
    every unique key; a re-sent span has the same start, so it still conflicts), and ``id``
    is a sequence value without an index. Readers that know a trace's time range pass it
    (``trace_window``) so PostgreSQL reads one day's partition instead of probing them all.
    """

    # No index of its own: the unique (trace, span_id) index serves every lookup by trace
    # (a trace's spans are sorted by start in memory: under 1 ms for 1,000 spans), and one
    # B-tree fewer is one insert fewer per span on the write path.
    # No foreign key in the database (tracing/migrations/0007): on the partitioned table
    # it made every deleted trace probe every day partition, and every span lock its trace.
    trace = models.ForeignKey(
        OTelTrace,
        on_delete=models.CASCADE,
        related_name="spans",
        db_index=False,
        db_constraint=False,
    )
    span_id = models.CharField(max_length=16)
    parent_span_id = models.CharField(max_length=16, blank=True, default="")
    name = models.CharField(max_length=500)
    span_kind = models.CharField(max_length=16, default="INTERNAL")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    duration_ms = models.FloatField()
    status_code = models.CharField(max_length=8, default="UNSET")
    status_message = models.TextField(blank=True, default="")
    attributes = models.JSONField(default=dict)
    events = models.JSONField(default=list)
    scope = models.CharField(max_length=200, blank=True, default="")
    service_name = models.CharField(max_length=200, blank=True, default="")
    # The span's resource (OTelResource.id); null for spans stored before resources were.
    # No foreign-key constraint: the writer stores the resource in the span's own
    # transaction, and a constraint would cost one index probe per span written.
    resource = models.ForeignKey(
        "OTelResource",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    # What the classifier (tracing.conventions.semconv.span_facts) found, written by the
    # row builder: a SpanCategory value, the model and tool resolved across naming
    # generations (NULL when the span has none), and the LLM token counts (0 otherwise).
    kind = models.CharField(max_length=32, db_default="other")
    # NULL, not '': the partial indexes below then hold only the spans that have one.
    model = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    tool_name = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    input_tokens = models.BigIntegerField(db_default=0)
    output_tokens = models.BigIntegerField(db_default=0)

    class Meta:
        verbose_name = "agent trace span"
        constraints = (
            models.UniqueConstraint(
                fields=["trace", "span_id", "started_at"], name="span_unique_in_trace"
            ),
        )
        indexes = (
            # Span search (tracing.read.span_search): newest first under one filter each;
            # ties end on id, the keyset's last key. Indexes that insert all over the tree
            # (duration, kind first) cost the exporter 15-40% and are left out: a kind
            # filter walks the start-time index (every stored kind is >= 6% of spans), and
            # ordering by duration sorts the filtered spans (benchmarks/RESULTS.md).
            # Covering: span aggregates over a time window (spanStats) read the index
            # alone, never the wide rows (one day at 1M spans: ~100 ms -> ~20-40 ms).
            models.Index(
                fields=["-started_at", "-id"],
                name="span_started_idx",
                include=STATS_INCLUDE,
            ),
            models.Index(
                fields=["model", "-started_at", "-id"],
                name="span_model_started_idx",
                condition=Q(model__isnull=False),
            ),
            models.Index(
                fields=["tool_name", "-started_at", "-id"],
                name="span_tool_started_idx",
                condition=Q(tool_name__isnull=False),
            ),
            models.Index(
                fields=["-started_at", "-id"],
                name="span_error_started_idx",
                condition=Q(status_code="ERROR"),
            ),
        )

    def __str__(self) -> str:
        return f"{self.name} ({self.span_id})"


class OTelResource(models.Model):
    """One distinct OTel resource (the attributes of the process that sent spans).

    ``id`` is a 63-bit digest of the attributes (``tracing.export.rows.resource_ref``), so
    the thousands of spans of one process share one row, and writing it again is a no-op.
    """

    id = models.BigIntegerField(primary_key=True)
    service_name = models.CharField(max_length=200, blank=True, default="")
    attributes = models.JSONField(default=dict)

    class Meta:
        verbose_name = "span resource"

    def __str__(self) -> str:
        return self.service_name or str(self.id)


class _SpanAggregate(models.Model):
    """The group key and aggregates of a rollup row (``tracing.rollups``):
    ``duration_buckets``/``duration_counts`` are a sparse histogram (bucket numbers
    ascending, and their span counts)."""

    start = models.DateTimeField()
    kind = models.CharField(max_length=32)
    name = models.CharField(max_length=500)
    model = models.CharField(max_length=200, null=True)  # noqa: DJ001 -- as on OTelSpan
    tool_name = models.CharField(max_length=200, null=True)  # noqa: DJ001
    status_code = models.CharField(max_length=8)
    span_count = models.BigIntegerField()
    input_tokens = models.BigIntegerField()
    output_tokens = models.BigIntegerField()
    duration_min = models.FloatField()
    duration_max = models.FloatField()
    duration_buckets = ArrayField(models.SmallIntegerField())
    duration_counts = ArrayField(models.IntegerField())

    class Meta:
        abstract = True


class SpanRollup(_SpanAggregate):
    """Spans of one period (``width`` hours from ``start``: 1, 6, 24 or 168) sharing one
    group key, aggregated: maintained by ``tracing.rollups`` only (raw SQL), read by
    ``tracing.read.span_rollups``."""

    width = models.SmallIntegerField()

    class Meta:
        verbose_name = "span rollup"
        indexes = (models.Index(fields=["width", "start"], name="spanrollup_start_idx"),)

    def __str__(self) -> str:
        return f"{self.start.isoformat()} +{self.width}h {self.name}: {self.span_count}"


class SpanRollupSlot(_SpanAggregate):
    """Spans of one 5-minute slot (from ``start``) sharing one group key, aggregated: the
    slots of an hour are written with it (``tracing.rollups``) and read only for the
    partial hours at a window's edges (``tracing.read.span_rollups``)."""

    class Meta:
        verbose_name = "span rollup slot"
        indexes = (models.Index(fields=["start"], name="spanrollupslot_start_idx"),)

    def __str__(self) -> str:
        return f"{self.start.isoformat()} +5min {self.name}: {self.span_count}"


class SpanRollupSlotted(models.Model):
    """An hour whose ``SpanRollupSlot`` rows are complete (none: it had no spans); usable
    while the hour is clean (``tracing.rollups``)."""

    hour = models.DateTimeField(primary_key=True)

    class Meta:
        verbose_name = "span hour rolled in 5-minute slots"

    def __str__(self) -> str:
        return self.hour.isoformat()


class SpanRollupRolled(models.Model):
    """A period whose ``SpanRollup`` rows are complete (none: it had no spans)."""

    pk = models.CompositePrimaryKey("width", "start")
    start = models.DateTimeField()
    width = models.SmallIntegerField()

    class Meta:
        verbose_name = "rolled-up span period"

    def __str__(self) -> str:
        return f"{self.start.isoformat()} +{self.width}h"


class SpanRollupDirty(models.Model):
    """An hour a write transaction added spans to (or removed them from), until a rollup
    refresh that saw them; one row per write, never unique (``tracing.rollups``)."""

    hour = models.DateTimeField()

    class Meta:
        verbose_name = "dirty span hour"
        indexes = (models.Index(fields=["hour"], name="spanrollup_dirty_hour_idx"),)

    def __str__(self) -> str:
        return self.hour.isoformat()
