"""Span queries: the one record of a stored span and the ways the API reads spans.

``SpanRecord`` follows the one span column list (``tracing.models.SPAN_COLUMNS``) field
for field (checked at import),
and ``span_records`` reads it the cheap way. Every function here runs a fixed number of
queries whatever the number of traces or spans asked for.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from django.db import connections, router
from django.db.models import Exists, F, OuterRef, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from tracing.conventions import attributes as A
from tracing.conventions import semconv
from tracing.conventions.semconv import SpanCategory
from tracing.models import SPAN_COLUMNS, OTelSpan, OTelTrace


class SpanRecord(NamedTuple):
    """One stored span: ``tracing.models.SPAN_COLUMNS``, in order."""

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
    events: list[Any]
    scope: str
    service_name: str
    resource_id: int | None
    kind: str
    model: str | None
    tool_name: str | None
    input_tokens: int
    output_tokens: int


assert SpanRecord._fields == SPAN_COLUMNS, "SpanRecord must follow SPAN_COLUMNS"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What each column is read as (in SPAN_COLUMNS order, after the primary key): timestamps
# as epoch microseconds, JSON as text; positions are those of the selected row.
_READ_AS = {
    "started_at": "_started_us",
    "ended_at": "_ended_us",
    "attributes": "_attributes",
    "events": "_events",
}
_SELECTED = tuple(_READ_AS.get(c, c) for c in SPAN_COLUMNS)
_STARTED, _ENDED, _ATTRIBUTES, _EVENTS = (1 + SPAN_COLUMNS.index(c) for c in _READ_AS)


def parse_trace_id(value: str) -> uuid.UUID | None:
    """An OTel trace id (32 hex characters, dashes tolerated) as the stored UUID, else None."""
    text = value.strip().lower().replace("-", "")
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        return None
    return uuid.UUID(hex=text)


def is_span_id(value: str) -> bool:
    text = value.strip().lower()
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # e.g. an integer beyond 64 bits: the stdlib takes it
        return json.loads(text)


def _epoch_us(column: str) -> RawSQL:
    # EXTRACT returns an exact numeric (PostgreSQL 14+), so microseconds survive the cast.
    return RawSQL(f'(EXTRACT(EPOCH FROM "tracing_otelspan"."{column}") * 1000000)::bigint', ())


def span_records(spans: QuerySet[OTelSpan]) -> list[SpanRecord]:
    """``spans`` as records instead of model instances, read the cheap way: timestamps as
    epoch microseconds and JSON as text parsed by orjson. Django's timestamptz loader and
    its stdlib JSON decoding were most of the cost of reading a 1,000-span trace."""
    return [record for _, record in keyed_span_records(spans)]


def keyed_span_records(spans: QuerySet[OTelSpan]) -> list[tuple[int, SpanRecord]]:
    """``span_records`` with each span's primary key (the last key of span search's keyset)."""
    rows = spans.annotate(
        _started_us=_epoch_us("started_at"),
        _ended_us=_epoch_us("ended_at"),
        _attributes=Cast("attributes", TextField()),
        _events=Cast("events", TextField()),
    ).values_list("pk", *_SELECTED)
    return _keyed_records(rows)


# The same row in raw SQL over a span table aliased ``s`` (for _keyed_records).
_RAW_SELECTED = ", ".join(
    ["s.id"]
    + [
        {
            "started_at": "(EXTRACT(EPOCH FROM s.started_at) * 1000000)::bigint",
            "ended_at": "(EXTRACT(EPOCH FROM s.ended_at) * 1000000)::bigint",
            "attributes": "s.attributes::text",
            "events": "s.events::text",
        }.get(c, f"s.{c}")
        for c in SPAN_COLUMNS
    ]
)


def _keyed_records(rows: Any) -> list[tuple[int, SpanRecord]]:
    out: list[tuple[int, SpanRecord]] = []
    for row in rows:
        values = list(row)
        values[_STARTED] = _EPOCH + timedelta(microseconds=values[_STARTED])
        values[_ENDED] = _EPOCH + timedelta(microseconds=values[_ENDED])
        values[_ATTRIBUTES] = _loads(values[_ATTRIBUTES])
        values[_EVENTS] = _loads(values[_EVENTS])
        out.append((values[0], SpanRecord._make(values[1:])))
    return out


def find_span(trace_id: str, span_id: str) -> SpanRecord | None:
    """One span by its OTel ids as text; None when unknown or malformed. One query."""
    uid = parse_trace_id(trace_id)
    if uid is None or not is_span_id(span_id):
        return None
    rows = span_records(
        OTelSpan.objects.filter(within_traces([uid]), trace_id=uid, span_id=span_id.strip().lower())
    )
    return rows[0] if rows else None


class TraceExtent(NamedTuple):
    """What a trace row says about where its spans are: every stored span of the trace
    starts within ``[started_at, ended_at]`` (``tracing.export.summary``: the min start and
    the max of every end and start, written in the same transaction as the spans), and
    there are ``span_count`` of them."""

    trace_id: uuid.UUID
    started_at: datetime | None
    ended_at: datetime | None
    span_count: int

    @classmethod
    def of(cls, trace: OTelTrace) -> TraceExtent:
        return cls(trace.id, trace.started_at, trace.ended_at, trace.span_count)


def trace_extents(trace_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, TraceExtent]:
    """The extent of each stored trace of ``trace_ids`` (one query; unknown ids are left
    out)."""
    rows = OTelTrace.objects.filter(id__in=list(trace_ids)).values_list(
        "id", "started_at", "ended_at", "span_count"
    )
    return {row[0]: TraceExtent._make(row) for row in rows}


def extent_bounds(extents: Collection[TraceExtent]) -> tuple[datetime, datetime] | None:
    """The earliest start and latest end of the traces' extents; None when a summary to
    bound by is missing (read without bounds)."""
    starts = [e.started_at for e in extents if e.started_at is not None]
    ends = [e.ended_at for e in extents if e.ended_at is not None]
    return (min(starts), max(ends)) if starts and ends else None


def within(extents: Collection[TraceExtent]) -> Q:
    """Bounds ``started_at`` to the traces' extent, so PostgreSQL plans and reads only the
    day partitions those traces span instead of every day's index (literal bounds let the
    planner prune, which also keeps planning time flat as days accumulate)."""
    bounds = extent_bounds(extents)
    return Q(started_at__gte=bounds[0], started_at__lte=bounds[1]) if bounds else Q()


def within_traces(trace_ids: Sequence[uuid.UUID]) -> Q:
    """``within`` the stored extents of ``trace_ids`` (one small query on the trace table
    first)."""
    return within(trace_extents(trace_ids).values())


def _ordered_spans(
    trace_ids: list[uuid.UUID], bounds: tuple[datetime, datetime] | None
) -> list[SpanRecord]:
    """The traces' spans by trace, then start, within ``bounds`` (literal, as ``within``
    gives them). Written in SQL: the ORM took longer to compile this query (~1.9 ms) than
    PostgreSQL to plan and run it for a trace of 16 spans."""
    where = "s.trace_id = ANY(%s::uuid[])"
    params: list[Any] = [trace_ids]
    if bounds is not None:
        where += " AND s.started_at >= %s AND s.started_at <= %s"
        params += bounds
    with connections[router.db_for_read(OTelSpan)].cursor() as cursor:
        cursor.execute(
            f"SELECT {_RAW_SELECTED} FROM tracing_otelspan s WHERE {where} "
            "ORDER BY s.trace_id, s.started_at, s.span_id",
            params,
        )
        return [record for _, record in _keyed_records(cursor.fetchall())]


def spans_by_trace(
    trace_ids: Sequence[uuid.UUID], known: Mapping[uuid.UUID, TraceExtent] | None = None
) -> dict[uuid.UUID, list[SpanRecord]]:
    """Every span of each trace, ordered by start: ONE query for all the traces, bounded
    by their extents (``known`` ones as given, e.g. from the trace rows a request already
    read; the others read first, one more query).

    The bounds are checked, not trusted: a trace that comes back with fewer spans than its
    row counts (a summary written before the bounds rule covered every span, or one that
    drifted) is read again without them, so a wrong extent costs a query, never a span."""
    out: dict[uuid.UUID, list[SpanRecord]] = {trace_id: [] for trace_id in trace_ids}
    if not trace_ids:
        return out
    extents = {t: known[t] for t in out if known and t in known}
    missing = [t for t in out if t not in extents]
    if missing:
        extents.update(trace_extents(missing))
    for span in _ordered_spans(list(out), extent_bounds(extents.values())):
        out[span.trace_id].append(span)
    short = [t for t, e in extents.items() if t in out and len(out[t]) < e.span_count]
    if short:
        for trace_id in short:
            out[trace_id] = []
        for span in _ordered_spans(short, None):
            out[span.trace_id].append(span)
    return out


def pick_root(spans: Sequence[SpanRecord], root_span_id: str) -> SpanRecord | None:
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
        if semconv.classify(span.name, span.attributes, span.span_kind) is SpanCategory.AGENT:
            return span
    present = {s.span_id for s in spans}
    for span in spans:
        if span.parent_span_id not in present:
            return span
    return spans[0]


def root_spans(
    traces: Sequence[tuple[uuid.UUID, str, datetime | None, datetime | None]],
) -> dict[uuid.UUID, SpanRecord | None]:
    """The root span of each ``(trace_id, root_span_id, started_at, ended_at)``, in at most
    two queries, without reading whole traces: the recorded agent span first; for traces
    without one, only the candidates (parentless or orphan spans, and spans named like an
    agent run) are read and ``pick_root`` decides among them. The traces' extent bounds the
    day partitions read: literally for the planner, and per trace at run time."""
    extents = [TraceExtent(t[0], t[2], t[3], 0) for t in traces]
    bounds = extent_bounds(extents)
    window = within(extents)
    found: dict[uuid.UUID, SpanRecord | None] = {t[0]: None for t in traces}
    keys = [t for t in traces if t[1]]
    if keys:
        # One primary-key probe per trace, in the one day partition its start and end
        # allow (pruned per row at run time; the page's overall window prunes at plan
        # time). A join to the trace rows instead let the planner hash-join every
        # partition of the window: 10x slower for a page spread over 90 days.
        never, ever = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
        lo, hi = bounds or (never, ever)
        with connections[router.db_for_read(OTelSpan)].cursor() as cursor:
            cursor.execute(
                f"SELECT {_RAW_SELECTED} FROM unnest(%s::uuid[], %s::varchar[], "
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
            for _, span in _keyed_records(cursor.fetchall()):
                found[span.trace_id] = span
    missing = [trace_id for trace_id, span in found.items() if span is None]
    if missing:
        parent_present = OTelSpan.objects.filter(
            trace_id=OuterRef("trace_id"), span_id=OuterRef("parent_span_id")
        )
        candidates = OTelSpan.objects.filter(
            window,
            trace_id__in=missing,
            started_at__gte=F("trace__started_at"),
            started_at__lte=F("trace__ended_at"),
        ).filter(
            Q(parent_span_id="")
            | ~Exists(parent_present)
            | Q(name=A.LEGACY_SPAN_AGENT_RUN)
            | Q(name__startswith=A.SPAN_INVOKE_AGENT_PREFIX)
            | Q(attributes__contains={A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT})
        )
        grouped: dict[uuid.UUID, list[SpanRecord]] = {trace_id: [] for trace_id in missing}
        for span in span_records(candidates.order_by("trace_id", "started_at", "span_id")):
            grouped[span.trace_id].append(span)
        for trace_id, spans in grouped.items():
            # Candidates only: a span whose parent is among them is not an orphan here.
            found[trace_id] = pick_root(spans, "") if spans else None
    return found
