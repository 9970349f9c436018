"""The span table's day partitions: spans land whatever their start, re-sent spans are not
duplicated (direct COPY and the staged ON CONFLICT path), a day created after its spans
arrived takes them out of the DEFAULT partition, and trace reads touch only the partitions
of the trace's days (plans)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.db.models import F
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.graphql_support import execute
from tests.spans import agent_run_spans, started_at
from tracing import partitions
from tracing.export import PostgresSpanExporter, conninfo_for
from tracing.models import OTelSpan, OTelTrace
from tracing.read import spans as read_spans

pytestmark = pytest.mark.django_db(transaction=True)

# Far from today, so these days have no partition unless a test creates one.
DAY = date(2031, 3, 14)


def where_stored(trace_id: uuid.UUID) -> dict[str, int]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT tableoid::regclass::text, count(*) FROM tracing_otelspan "
            "WHERE trace_id = %s GROUP BY 1",
            [trace_id],
        )
        return dict(cur.fetchall())


def tid(spans: list) -> uuid.UUID:
    return uuid.UUID(int=spans[0].context.trace_id)


def test_the_span_table_is_partitioned_by_day_with_a_default() -> None:
    with connection.cursor() as cur:
        assert partitions.is_partitioned(cur)
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [partitions.DEFAULT_PARTITION])
        assert cur.fetchone()[0]


@pytest.mark.parametrize(
    "start",
    [datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2101, 1, 1, tzinfo=UTC)],
    ids=["long-ago", "far-future"],
)
def test_a_span_outside_every_day_partition_still_lands(
    db_exporter: PostgresSpanExporter, start: datetime
) -> None:
    spans = started_at(agent_run_spans(), start)
    assert db_exporter.export(spans) is SpanExportResult.SUCCESS
    assert where_stored(tid(spans)) == {partitions.DEFAULT_PARTITION: len(spans)}
    assert OTelTrace.objects.get(pk=tid(spans)).span_count == len(spans)
    assert db_exporter.stats.spans_lost == 0


def test_a_resent_span_is_not_duplicated_in_a_day_partition_or_the_default(
    db_exporter: PostgresSpanExporter,
) -> None:
    with psycopg.connect(conninfo_for(), autocommit=True) as conn:
        partitions.ensure_partitions(conn, DAY, days_ahead=0)
    in_day = started_at(agent_run_spans(), partitions.day_start(DAY) + timedelta(hours=3))
    in_default = started_at(agent_run_spans(), datetime(2001, 1, 1, tzinfo=UTC))
    for spans in (in_day, in_default):
        db_exporter.export(spans)
        before = OTelTrace.objects.values().get(pk=tid(spans))
        db_exporter.export(spans)  # whole batch again: the direct COPY fails, staging skips
        db_exporter.export(spans[:2] + spans[:2])  # part of it, twice in one batch
        assert OTelSpan.objects.filter(trace_id=tid(spans)).count() == len(spans)
        after = OTelTrace.objects.values().get(pk=tid(spans))
        assert {**after, "updated_at": None} == {**before, "updated_at": None}
    assert where_stored(tid(in_day)) == {partitions.partition_name(DAY): len(in_day)}


def test_creating_a_day_moves_its_spans_out_of_the_default_partition(
    db_exporter: PostgresSpanExporter,
) -> None:
    day = DAY + timedelta(days=40)
    spans = started_at(agent_run_spans(), partitions.day_start(day) + timedelta(hours=23))
    db_exporter.export(spans)
    assert where_stored(tid(spans)) == {partitions.DEFAULT_PARTITION: len(spans)}
    with psycopg.connect(conninfo_for(), autocommit=True) as conn:
        created = partitions.ensure_partitions(conn, day, days_ahead=1)
    assert created == [partitions.partition_name(day + timedelta(days=n)) for n in (-1, 0, 1)]
    assert where_stored(tid(spans)) == {partitions.partition_name(day): len(spans)}
    # And it keeps deduplicating there.
    db_exporter.export(spans)
    assert OTelSpan.objects.filter(trace_id=tid(spans)).count() == len(spans)
    with psycopg.connect(conninfo_for(), autocommit=True) as conn:
        assert partitions.ensure_partitions(conn, day, days_ahead=1) == []


def test_trace_reads_touch_only_the_trace_days_partitions(
    db_exporter: PostgresSpanExporter,
) -> None:
    with psycopg.connect(conninfo_for(), autocommit=True) as conn:
        partitions.ensure_partitions(conn, DAY, days_ahead=3)
    spans = started_at(agent_run_spans(), partitions.day_start(DAY) + timedelta(hours=5))
    db_exporter.export(spans)
    reads = OTelSpan.objects.filter(read_spans.within_traces([tid(spans)]), trace_id=tid(spans))
    plan = reads.explain(analyze=True)
    scanned = {
        name
        for name in [p.name for p in _all_partitions()]
        if f"on {name} " in plan and f"on {name} " in _executed(plan)
    }
    assert scanned == {partitions.partition_name(DAY)}
    assert len(read_spans.spans_by_trace([tid(spans)])[tid(spans)]) == len(spans)


def _all_partitions() -> list[partitions.DayPartition]:
    with connection.cursor() as cur:
        default = partitions.DayPartition(partitions.DEFAULT_PARTITION, DAY)
        return [*partitions.day_partitions(cur), default]


def _executed(plan: str) -> str:
    """The plan lines of nodes that ran (run-time pruning marks the others "never
    executed")."""
    return "\n".join(line for line in plan.splitlines() if "never executed" not in line)


def _retimed(span: ReadableSpan, start: datetime, end: datetime) -> ReadableSpan:
    """``span`` with another start and end (end may lie before start: a clock set back)."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        kind=span.kind,
        status=span.status,
        start_time=int(start.timestamp() * 1_000_000_000),
        end_time=int(end.timestamp() * 1_000_000_000),
        instrumentation_scope=span.instrumentation_scope,
    )


def _outside_extent(trace_id: uuid.UUID) -> int:
    """Spans of the trace whose start lies outside its row's [started_at, ended_at]."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM tracing_otelspan s JOIN tracing_oteltrace t "
            "ON t.id = s.trace_id WHERE t.id = %s "
            "AND NOT (s.started_at BETWEEN t.started_at AND t.ended_at)",
            [trace_id],
        )
        return int(cur.fetchone()[0])


DETAIL = "query($id: ID!) { trace(id: $id) { spanCount spans { id } rootSpan { id depth } } }"


def test_a_trace_row_bounds_every_span_even_one_that_ends_before_it_starts(
    db_exporter: PostgresSpanExporter, django_assert_num_queries: Any
) -> None:
    """The trace row's start and end bound where its spans are (the reads prune day
    partitions by them without looking them up): a span whose end lies before its start,
    on a later day than every other end, and a span in the DEFAULT partition."""
    with psycopg.connect(conninfo_for(), autocommit=True) as conn:
        partitions.ensure_partitions(conn, DAY, days_ahead=3)
    spans = started_at(agent_run_spans(), partitions.day_start(DAY) + timedelta(hours=5))
    late = partitions.day_start(DAY + timedelta(days=2)) + timedelta(hours=1)
    back = _retimed(spans[0], late, partitions.day_start(DAY) + timedelta(hours=6))
    lost = datetime(2001, 1, 1, tzinfo=UTC)  # no day partition: DEFAULT
    astray = _retimed(spans[1], lost, lost + timedelta(seconds=1))
    db_exporter.export([back, astray, *spans[2:]])
    trace = OTelTrace.objects.get(pk=tid(spans))
    assert set(where_stored(trace.id)) == {
        partitions.partition_name(DAY),
        partitions.partition_name(DAY + timedelta(days=2)),
        partitions.DEFAULT_PARTITION,
    }
    assert _outside_extent(trace.id) == 0
    extent = read_spans.TraceExtent.of(trace)
    with django_assert_num_queries(1):  # the spans, bounded: no bounds query, no re-read
        found = read_spans.spans_by_trace([trace.id], {trace.id: extent})[trace.id]
    assert len(found) == trace.span_count == len(spans)
    # GraphQL: the trace, its spans (bounded by the row just read), the root span.
    with django_assert_num_queries(3):
        result = execute(DETAIL, {"id": trace.id.hex})
    assert result.errors is None, result.errors
    assert len(result.data["trace"]["spans"]) == len(spans)


def test_spans_outside_a_stale_trace_row_extent_are_still_read(
    db_exporter: PostgresSpanExporter, django_assert_num_queries: Any
) -> None:
    """Bounds are checked against the row's span count, not trusted: a row whose extent
    misses spans (written by an older summary rule, or drifted) costs one more query, not
    the spans."""
    with psycopg.connect(conninfo_for(), autocommit=True) as conn:
        partitions.ensure_partitions(conn, DAY, days_ahead=3)
    spans = started_at(agent_run_spans(), partitions.day_start(DAY) + timedelta(hours=5))
    db_exporter.export(spans)
    first = min(s.started_at for s in OTelSpan.objects.filter(trace_id=tid(spans)))
    # Only the first span within the extent; the others a day later than it says.
    OTelTrace.objects.filter(pk=tid(spans)).update(
        started_at=first, ended_at=first, root_span_id=""
    )
    OTelSpan.objects.filter(trace_id=tid(spans)).exclude(started_at=first).update(
        started_at=F("started_at") + timedelta(days=1)
    )
    trace = OTelTrace.objects.get(pk=tid(spans))
    assert _outside_extent(trace.id) == len(spans) - 1
    with django_assert_num_queries(2):  # bounded, then the whole trace again
        found = read_spans.spans_by_trace([trace.id], {trace.id: read_spans.TraceExtent.of(trace)})
    assert len(found[trace.id]) == len(spans)
    result = execute(DETAIL, {"id": trace.id.hex})
    assert result.errors is None, result.errors
    assert len(result.data["trace"]["spans"]) == len(spans)
