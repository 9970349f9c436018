"""PostgreSQL storage for agent traces: one OTelTrace per agent run, one OTelSpan per span.

Owns the stored shapes and the names written into them: ``AgentStatus`` (a run's terminal
status, compared everywhere as this enum), ``SPAN_COLUMNS`` (the span columns every writer
and reader uses, in order) and ``SUMMARY_COLUMNS`` (the trace columns the exporter's
summary maintains).
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import F
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now, Upper

from campus_core.chat.models import Conversation, Message


class AgentStatus(models.TextChoices):
    """An agent run's status: ``RUNNING`` until its agent span is stored."""

    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"
    MAX_ITERATIONS = "max_iterations"


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
    status = models.CharField(max_length=32, db_default=AgentStatus.RUNNING.value)
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
            GinIndex(fields=["tools_used"], name="trace_tools_gin"),
            GinIndex(OpClass(Upper("query"), name="gin_trgm_ops"), name="trace_query_trgm"),
        )

    def __str__(self) -> str:
        return f"{self.id.hex} {self.status}"


class OTelSpan(models.Model):
    """One span, in the standard OTel shape. ``span_id`` is unique within its trace.

    The table is partitioned by day of ``started_at`` (tracing/partitions.py): its primary
    key in PostgreSQL is ``span_unique_in_trace`` (the partition column has to be part of
    every unique key; a re-sent span has the same start, so it still conflicts), and ``id``
    is a sequence value without an index. Readers that know a trace's time range pass it
    (``trace_window``) so PostgreSQL reads one day's partition instead of probing them all.
    """

    # No index of its own: the unique (trace, span_id) index serves every lookup by trace,
    # and one B-tree fewer is one insert fewer per span on the write path.
    # No foreign key in the database (tracing/migrations/0005): on the partitioned table
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

    class Meta:
        verbose_name = "agent trace span"
        constraints = (
            models.UniqueConstraint(
                fields=["trace", "span_id", "started_at"], name="span_unique_in_trace"
            ),
        )
        indexes = (models.Index(fields=["trace", "started_at"], name="span_trace_start_idx"),)

    def __str__(self) -> str:
        return f"{self.name} ({self.span_id})"
