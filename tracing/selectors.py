"""Read-side queries over stored traces, shared by the GraphQL API and the admin viewer.

Everything here reads; nothing writes. Each function runs a fixed number of SQL statements
whatever the number of traces or spans involved: span trees are assembled in Python from
one query, statistics are aggregated by PostgreSQL.

What a span *is* (agent, llm, tool, ...) is decided by ``tracing.conventions.semconv`` only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

import orjson
from django.contrib.postgres.fields import ArrayField
from django.db import connections, router
from django.db.models import (
    Aggregate,
    Count,
    Exists,
    F,
    FloatField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    TextField,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from tracing.conventions import attributes as A
from tracing.conventions import semconv
from tracing.conventions.semconv import SpanCategory
from tracing.models import SPAN_COLUMNS, OTelSpan, OTelTrace

# The agent-run statuses the exporter writes (tracing.conventions.semconv.agent_status).
STATUS_ERROR = "error"


# --- trace ids -------------------------------------------------------------------------------


def parse_trace_id(value: str) -> uuid.UUID | None:
    """An OTel trace id (32 hex characters, dashes tolerated) as the stored UUID, else None."""
    text = value.strip().lower().replace("-", "")
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        return None
    return uuid.UUID(hex=text)


def is_span_id(value: str) -> bool:
    text = value.strip().lower()
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)


# --- span trees ------------------------------------------------------------------------------


class SpanRecord(Protocol):
    """A stored span as read-side code uses it (``span_rows`` yields light named rows
    with these columns; an ``OTelSpan`` instance fits as well)."""

    @property
    def trace_id(self) -> uuid.UUID: ...
    @property
    def span_id(self) -> str: ...
    @property
    def parent_span_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def span_kind(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def ended_at(self) -> datetime: ...
    @property
    def duration_ms(self) -> float: ...
    @property
    def status_code(self) -> str: ...
    @property
    def status_message(self) -> str: ...
    @property
    def attributes(self) -> dict[str, Any]: ...
    @property
    def events(self) -> Any: ...
    @property
    def scope(self) -> str: ...


class StoredSpan(NamedTuple):
    """One stored span as the read side sees it (the exporter's columns, in order)."""

    trace_id: uuid.UUID
    span_id: str
    parent_span_id: str
    name: str
    span_kind: str
    started_at: datetime
    ended_at: datetime
    duration_ms: float
    status_code: str
    status_message: str
    attributes: dict[str, Any]
    events: Any
    scope: str


assert StoredSpan._fields == SPAN_COLUMNS, "StoredSpan must follow the exporter's columns"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_COLUMNS = ("started_at", "ended_at")
_JSON_COLUMNS = ("attributes", "events")
_PLAIN_COLUMNS = tuple(c for c in SPAN_COLUMNS if c not in _TIME_COLUMNS + _JSON_COLUMNS)


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # e.g. an integer beyond 64 bits: the stdlib takes it
        return json.loads(text)


def _epoch_us(column: str) -> RawSQL:
    # EXTRACT returns an exact numeric (PostgreSQL 14+), so microseconds survive the cast.
    return RawSQL(f'(EXTRACT(EPOCH FROM "tracing_otelspan"."{column}") * 1000000)::bigint', ())


def span_rows(spans: QuerySet[OTelSpan]) -> list[SpanRecord]:
    """Named rows instead of model instances, read the cheap way: timestamps as epoch
    microseconds and JSON as text parsed by orjson. Django's timestamptz loader and its
    stdlib JSON decoding were most of the cost of reading a 1,000-span trace."""
    rows = spans.annotate(
        _started_us=_epoch_us("started_at"),
        _ended_us=_epoch_us("ended_at"),
        _attributes=Cast("attributes", TextField()),
        _events=Cast("events", TextField()),
    ).values_list(*_PLAIN_COLUMNS, "_started_us", "_ended_us", "_attributes", "_events")
    return _records(rows)


# The same columns in raw SQL over a span table aliased ``s`` (for _records).
_RAW_SPAN_COLUMNS = ", ".join(
    [f"s.{c}" for c in _PLAIN_COLUMNS]
    + [
        "(EXTRACT(EPOCH FROM s.started_at) * 1000000)::bigint",
        "(EXTRACT(EPOCH FROM s.ended_at) * 1000000)::bigint",
        "s.attributes::text",
        "s.events::text",
    ]
)


def _records(rows: Iterable[Sequence[Any]]) -> list[SpanRecord]:
    out: list[SpanRecord] = []
    for (
        trace_id,
        span_id,
        parent_span_id,
        name,
        span_kind,
        duration_ms,
        status_code,
        status_message,
        scope,
        started_us,
        ended_us,
        attributes,
        events,
    ) in rows:
        out.append(
            StoredSpan(
                trace_id,
                span_id,
                parent_span_id,
                name,
                span_kind,
                _EPOCH + timedelta(microseconds=started_us),
                _EPOCH + timedelta(microseconds=ended_us),
                duration_ms,
                status_code,
                status_message,
                _loads(attributes),
                _loads(events),
                scope,
            )
        )
    return out


@dataclass(slots=True)
class SpanNode:
    """One span placed in its trace: what the waterfall needs beside the stored row."""

    span: SpanRecord
    category: SpanCategory
    depth: int = 0
    offset_ms: float = 0.0
    self_duration_ms: float = 0.0
    parent: SpanRecord | None = None
    children: list[SpanRecord] = field(default_factory=list)

    @property
    def is_orphan(self) -> bool:
        """The span names a parent that was never stored."""
        return bool(self.span.parent_span_id) and self.parent is None


def _covered_ms(
    start: datetime, end: datetime, intervals: Iterable[tuple[datetime, datetime]]
) -> float:
    """Milliseconds of [start, end] covered by the union of ``intervals`` (clipped)."""
    clipped = sorted((max(s, start), min(e, end)) for s, e in intervals if e > start and s < end)
    total = timedelta(0)
    cur_start: datetime | None = None
    cur_end: datetime | None = None
    for s, e in clipped:
        if cur_end is None or s > cur_end:
            if cur_start is not None and cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = s, e
        elif e > cur_end:
            cur_end = e
    if cur_start is not None and cur_end is not None:
        total += cur_end - cur_start
    return total.total_seconds() * 1000.0


class SpanTree:
    """A trace's spans as a tree: depth, offset from trace start, parent, children and
    self time (duration minus the union of the children's intervals, so overlapping
    concurrent children are not subtracted twice).

    Spans whose parent never arrived (orphans) and spans caught in a parent cycle are
    treated as roots, so every span appears exactly once.
    """

    def __init__(self, spans: Sequence[SpanRecord]) -> None:
        self.spans: list[SpanRecord] = sorted(spans, key=lambda s: (s.started_at, s.span_id))
        self._nodes: dict[str, SpanNode] = {
            s.span_id: SpanNode(s, semconv.classify(s.name, s.attributes, s.span_kind))
            for s in self.spans
        }
        self.started_at: datetime | None = self.spans[0].started_at if self.spans else None
        for node in self._nodes.values():
            parent = self._nodes.get(node.span.parent_span_id)
            if parent is not None and parent is not node:
                node.parent = parent.span
                parent.children.append(node.span)
        self._place()

    def _place(self) -> None:
        placed: set[str] = set()

        def walk(start: SpanRecord) -> None:
            stack = [(start, 0)]
            while stack:
                span, depth = stack.pop()
                if span.span_id in placed:
                    continue
                placed.add(span.span_id)
                node = self._nodes[span.span_id]
                node.depth = depth
                stack.extend((child, depth + 1) for child in reversed(node.children))

        for span in self.spans:
            if self._nodes[span.span_id].parent is None:
                walk(span)
        # Whatever the walk from the roots could not reach sits in a parent cycle: cut it
        # at its earliest span.
        for span in self.spans:
            if span.span_id not in placed:
                node = self._nodes[span.span_id]
                if node.parent is not None:
                    self._nodes[node.parent.span_id].children.remove(span)
                    node.parent = None
                walk(span)
        for node in self._nodes.values():
            span = node.span
            node.offset_ms = (
                (span.started_at - self.started_at).total_seconds() * 1000.0
                if self.started_at is not None
                else 0.0
            )
            covered = _covered_ms(
                span.started_at, span.ended_at, ((c.started_at, c.ended_at) for c in node.children)
            )
            node.self_duration_ms = max(span.duration_ms - covered, 0.0)

    def root(self, root_span_id: str = "") -> SpanRecord | None:
        return pick_root(self.spans, root_span_id, self._nodes)

    def node(self, span_id: str) -> SpanNode | None:
        return self._nodes.get(span_id)

    def get(self, span_id: str) -> SpanRecord | None:
        node = self._nodes.get(span_id)
        return node.span if node is not None else None


def pick_root(
    spans: Sequence[SpanRecord], root_span_id: str, nodes: dict[str, SpanNode] | None = None
) -> SpanRecord | None:
    """The span a trace hangs from: the agent span the exporter recorded, else the first
    agent-category span, else the first span whose parent is missing (an orphan or a true
    root), else the first span. ``spans`` must be ordered by start."""
    if not spans:
        return None
    if root_span_id:
        for span in spans:
            if span.span_id == root_span_id:
                return span
    for span in spans:
        category = (
            nodes[span.span_id].category
            if nodes is not None
            else semconv.classify(span.name, span.attributes, span.span_kind)
        )
        if category is SpanCategory.AGENT:
            return span
    present = {s.span_id for s in spans}
    for span in spans:
        if span.parent_span_id not in present:
            return span
    return spans[0]


# The same bounds row by row, for reads joined to the trace: PostgreSQL prunes partitions
# per trace at run time (a page of traces spread over many days probes one day each).
WITHIN_ITS_TRACE = {
    "started_at__gte": F("trace__started_at"),
    "started_at__lte": F("trace__ended_at"),
}


def within_traces(trace_ids: Sequence[uuid.UUID]) -> Q:
    """Bounds ``started_at`` to the traces' own extent, so PostgreSQL plans and reads only
    the day partitions those traces span instead of every day's index (one small query on
    the trace table first: literal bounds let the planner prune, which also keeps planning
    time flat as days accumulate). Exact, not a heuristic: a trace's started_at / ended_at
    are the min start / max end of its stored spans, written in the same transaction as the
    spans (tracing.export.summary)."""
    bounds = OTelTrace.objects.filter(id__in=list(trace_ids)).aggregate(
        lo=Min("started_at"), hi=Max("ended_at")
    )
    if bounds["lo"] is None or bounds["hi"] is None:
        return Q()  # no stored summary to bound by: read without bounds
    return Q(started_at__gte=bounds["lo"], started_at__lte=bounds["hi"])


def spans_by_trace(trace_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[SpanRecord]]:
    """Every span of each trace, ordered by start: ONE query for all the traces."""
    out: dict[uuid.UUID, list[SpanRecord]] = {trace_id: [] for trace_id in trace_ids}
    if not trace_ids:
        return out
    for span in span_rows(
        OTelSpan.objects.filter(within_traces(list(out)), trace_id__in=list(out)).order_by(
            "trace_id", "started_at", "span_id"
        )
    ):
        out[span.trace_id].append(span)
    return out


def root_spans(
    traces: Sequence[tuple[uuid.UUID, str, datetime | None, datetime | None]],
) -> dict[uuid.UUID, SpanRecord | None]:
    """The root span of each ``(trace_id, root_span_id, started_at, ended_at)``, in at most
    two queries, without reading whole traces: the recorded agent span first; for traces
    without one, only the candidates (parentless or orphan spans, and spans named like an
    agent run) are read and ``pick_root`` decides among them. The traces' extent bounds the
    partitions read: literally for the planner, and per trace at run time."""
    starts = [t[2] for t in traces if t[2] is not None]
    ends = [t[3] for t in traces if t[3] is not None]
    window = Q(started_at__gte=min(starts), started_at__lte=max(ends)) if starts and ends else Q()
    found: dict[uuid.UUID, SpanRecord | None] = {t[0]: None for t in traces}
    keys = [t for t in traces if t[1]]
    if keys:
        # One primary-key probe per trace, in the one day partition its start and end
        # allow (pruned per row at run time; the page's overall window prunes at plan
        # time). A join to the trace rows instead let the planner hash-join every
        # partition of the window: 10x slower for a page spread over 90 days.
        never, ever = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
        lo, hi = (min(starts), max(ends)) if starts and ends else (never, ever)
        with connections[router.db_for_read(OTelSpan)].cursor() as cursor:
            cursor.execute(
                f"SELECT {_RAW_SPAN_COLUMNS} FROM unnest(%s::uuid[], %s::varchar[], "
                "%s::timestamptz[], %s::timestamptz[]) AS k(trace_id, span_id, lo, hi) "
                "CROSS JOIN LATERAL (SELECT * FROM tracing_otelspan s "
                "WHERE s.trace_id = k.trace_id AND s.span_id = k.span_id "
                "AND s.started_at >= k.lo AND s.started_at <= k.hi "
                "AND s.started_at >= %s AND s.started_at <= %s) AS s",
                [
                    [t[0] for t in keys],
                    [t[1] for t in keys],
                    [t[2] or never for t in keys],
                    [t[3] or ever for t in keys],
                    lo,
                    hi,
                ],
            )
            for span in _records(cursor.fetchall()):
                found[span.trace_id] = span
    missing = [trace_id for trace_id, span in found.items() if span is None]
    if missing:
        parent_present = OTelSpan.objects.filter(
            trace_id=OuterRef("trace_id"), span_id=OuterRef("parent_span_id")
        )
        candidates = OTelSpan.objects.filter(window, trace_id__in=missing, **WITHIN_ITS_TRACE)
        candidates = candidates.filter(
            Q(parent_span_id="")
            | ~Exists(parent_present)
            | Q(name=A.LEGACY_SPAN_AGENT_RUN)
            | Q(name__startswith=A.SPAN_INVOKE_AGENT_PREFIX)
            | Q(attributes__contains={A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT})
        )
        grouped: dict[uuid.UUID, list[SpanRecord]] = {trace_id: [] for trace_id in missing}
        for span in span_rows(candidates.order_by("trace_id", "started_at", "span_id")):
            grouped[span.trace_id].append(span)
        for trace_id, spans in grouped.items():
            # Candidates only: a span whose parent is among them is not an orphan here.
            found[trace_id] = pick_root(spans, "") if spans else None
    return found


# --- statistics ----------------------------------------------------------------------------


class PercentilesCont(Aggregate):
    """``percentile_cont(ARRAY[...]) WITHIN GROUP (ORDER BY expr)``: several continuous
    percentiles of one expression in one pass."""

    function = "percentile_cont"
    template = "%(function)s(%(fractions)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = ArrayField(FloatField())

    def __init__(self, expression: Any, fractions: Sequence[float], **extra: Any) -> None:
        array = "ARRAY[" + ",".join(f"{float(f)!r}::float8" for f in fractions) + "]"
        super().__init__(expression, fractions=array, **extra)


PERCENTILES = (0.5, 0.95, 0.99)


def _error_count() -> Count:
    return Count("id", filter=Q(status=STATUS_ERROR))


def trace_summary(traces: QuerySet[OTelTrace]) -> dict[str, Any]:
    """Count, errors, duration percentiles and token sums of ``traces``: one query."""
    row = traces.order_by().aggregate(
        count=Count("id"),
        errors=_error_count(),
        durations=PercentilesCont("total_duration_ms", PERCENTILES),
        input_tokens=Sum("total_input_tokens"),
        output_tokens=Sum("total_output_tokens"),
    )
    durations = row["durations"] or [None] * len(PERCENTILES)
    return {
        "count": row["count"] or 0,
        "errors": row["errors"] or 0,
        "p50": durations[0],
        "p95": durations[1],
        "p99": durations[2],
        "input_tokens": row["input_tokens"] or 0,
        "output_tokens": row["output_tokens"] or 0,
    }


def _group_rows(traces: QuerySet[OTelTrace], key: str) -> list[dict[str, Any]]:
    rows = (
        traces.order_by()
        .values(key)
        .annotate(
            count=Count("id"),
            errors=_error_count(),
            durations=PercentilesCont("total_duration_ms", (0.5, 0.95)),
            input_tokens=Sum("total_input_tokens"),
            output_tokens=Sum("total_output_tokens"),
        )
        .order_by("-count", key)
    )
    return [_breakdown(row[key], row) for row in rows]


def _breakdown(key: Any, row: dict[str, Any]) -> dict[str, Any]:
    durations = row["durations"] or [None, None]
    return {
        "key": key,
        "count": row["count"] or 0,
        "errors": row["errors"] or 0,
        "p50": durations[0],
        "p95": durations[1],
        "input_tokens": row["input_tokens"] or 0,
        "output_tokens": row["output_tokens"] or 0,
    }


def breakdown_by_model(traces: QuerySet[OTelTrace]) -> list[dict[str, Any]]:
    return _group_rows(traces, "model")


def breakdown_by_status(traces: QuerySet[OTelTrace]) -> list[dict[str, Any]]:
    return _group_rows(traces, "status")


def _sql_of(traces: QuerySet[OTelTrace], *columns: str) -> tuple[str, tuple[Any, ...]]:
    sql, params = traces.order_by().values(*columns).query.sql_with_params()
    return sql, tuple(params)


def breakdown_by_tool(traces: QuerySet[OTelTrace]) -> list[dict[str, Any]]:
    """Per tool (unnest of ``tools_used``): the traces that called it. One query."""
    inner, params = _sql_of(
        traces,
        "id",
        "status",
        "total_duration_ms",
        "total_input_tokens",
        "total_output_tokens",
        "tools_used",
    )
    sql = f"""
        SELECT u.tool, count(*), count(*) FILTER (WHERE t.status = %s),
               percentile_cont(ARRAY[0.5, 0.95]::float8[])
                   WITHIN GROUP (ORDER BY t.total_duration_ms),
               sum(t.total_input_tokens), sum(t.total_output_tokens)
        FROM ({inner}) AS t CROSS JOIN LATERAL unnest(t.tools_used) AS u(tool)
        GROUP BY u.tool ORDER BY count(*) DESC, u.tool
    """
    with connections[router.db_for_read(OTelTrace)].cursor() as cursor:
        cursor.execute(sql, (STATUS_ERROR, *params))
        rows = cursor.fetchall()
    return [
        _breakdown(
            tool,
            {
                "count": count,
                "errors": errors,
                "durations": durations,
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
            },
        )
        for tool, count, errors, durations, tokens_in, tokens_out in rows
    ]


class Bucket(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def width(self) -> timedelta:
        return {
            "minute": timedelta(minutes=1),
            "hour": timedelta(hours=1),
            "day": timedelta(days=1),
        }[self.value]


MAX_BUCKETS = 2000


def time_series(
    traces: QuerySet[OTelTrace], bucket: Bucket, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Count, errors, p95 duration and tokens per bucket over [start, end), every bucket
    present (empty ones as zeros): aggregated by ``date_trunc``, joined to
    ``generate_series``. One query. The caller bounds the number of buckets."""
    inner, params = _sql_of(
        traces.filter(started_at__gte=start, started_at__lt=end),
        "started_at",
        "status",
        "total_duration_ms",
        "total_input_tokens",
        "total_output_tokens",
    )
    sql = f"""
        WITH agg AS (
            SELECT date_trunc(%s, t.started_at) AS bucket, count(*) AS n,
                   count(*) FILTER (WHERE t.status = %s) AS errors,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY t.total_duration_ms) AS p95,
                   sum(t.total_input_tokens) AS tokens_in, sum(t.total_output_tokens) AS tokens_out
            FROM ({inner}) AS t GROUP BY 1
        )
        SELECT b.bucket, coalesce(agg.n, 0), coalesce(agg.errors, 0), agg.p95,
               coalesce(agg.tokens_in, 0), coalesce(agg.tokens_out, 0)
        FROM generate_series(date_trunc(%s, %s::timestamptz),
                             %s::timestamptz - interval '1 microsecond', %s::interval) AS b(bucket)
        LEFT JOIN agg ON agg.bucket = b.bucket
        ORDER BY b.bucket
    """
    unit = bucket.value
    with connections[router.db_for_read(OTelTrace)].cursor() as cursor:
        params_all: list[Any] = [unit, STATUS_ERROR, *params, unit, start, end, bucket.width]
        cursor.execute(sql, params_all)
        rows = cursor.fetchall()
    return [
        {
            "start": start_at,
            "count": count,
            "errors": errors,
            "p95": p95,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
        }
        for start_at, count, errors, p95, tokens_in, tokens_out in rows
    ]


# A loose index scan: each step seeks the next distinct value in the btree index that
# leads with the column (trace_status_idx, trace_model_idx), so a handful of distinct values
# costs a handful of index probes instead of a pass over every trace.
_DISTINCT_BY_INDEX = """
WITH RECURSIVE v(value) AS (
    (SELECT {col} FROM tracing_oteltrace WHERE {col} > '' ORDER BY {col} LIMIT 1)
    UNION ALL
    SELECT (SELECT t.{col} FROM tracing_oteltrace t WHERE t.{col} > v.value
            ORDER BY t.{col} LIMIT 1)
    FROM v WHERE v.value IS NOT NULL
)
SELECT value FROM v WHERE value IS NOT NULL
"""


def _distinct_by_index(column: str) -> list[str]:
    assert column in ("status", "model")  # identifiers, never user input
    with connections[router.db_for_read(OTelTrace)].cursor() as cursor:
        cursor.execute(_DISTINCT_BY_INDEX.format(col=column))
        return [row[0] for row in cursor.fetchall()]


def distinct_statuses() -> list[str]:
    return _distinct_by_index("status")


def distinct_models() -> list[str]:
    """Non-empty models, sorted."""
    return _distinct_by_index("model")


def distinct_tools() -> list[str]:
    with connections[router.db_for_read(OTelTrace)].cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT u.tool FROM tracing_oteltrace t "
            "CROSS JOIN LATERAL unnest(t.tools_used) AS u(tool) ORDER BY 1"
        )
        return [row[0] for row in cursor.fetchall()]
