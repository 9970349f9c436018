"""The span rollups' 5-minute slots (tracing/rollups.py, tracing/read/span_rollups.py) over
runs written by the real pipeline, spread over the minutes of five hours: a refresh writes
the slots of every hour it rolls, and a window whose edges fall inside hours or inside
slots reads at most its two partial slots from the spans, every figure equal to what the
stored rows give; a late span in a closed slot counts at once and after the refresh, a
re-sent one never twice; an hour rolled before the slots existed reads its edge from the
spans until the refresh gives it slots."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.graphql_support import T0, SpanWriter, committed, genai_run, ns
from tests.test_span_rollups import check, forget_rollups, refresh, stats, stored
from tracing import rollups
from tracing.export import PostgresSpanExporter, conninfo_for
from tracing.models import (
    OTelSpan,
    SpanRollup,
    SpanRollupDirty,
    SpanRollupSlot,
    SpanRollupSlotted,
)
from tracing.read.span_rollups import RollupFilter, SpanSelection, _cover, _gaps

pytestmark = pytest.mark.django_db

DAY = T0.replace(hour=0) + timedelta(days=2)  # closed at the refresh's clock
FIRST = DAY + timedelta(hours=10)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
RUNS = 45  # 6 min 37 s apart: 10:00 to 14:51


def spread(exporter: PostgresSpanExporter) -> None:
    rng = random.Random(5)
    w = SpanWriter(exporter)
    try:
        for i in range(RUNS):
            genai_run(
                w,
                started=FIRST + timedelta(seconds=397 * i),
                query=f"question {i}",
                model=rng.choice(["gpt-4o", "claude-3-5-sonnet", "llama-3"]),
                duration_ms=rng.lognormvariate(7, 1),
                tools=rng.sample(["search_documents", "get_hours", "book_room"], rng.randint(0, 2)),
                status="error" if i % 7 == 3 else "completed",
                input_tokens=rng.randint(10, 900),
                output_tokens=rng.randint(1, 200),
            )
    finally:
        w.shutdown()


@pytest.fixture(scope="module")
def data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    with committed(django_db_blocker, spread):
        with django_db_blocker.unblock():
            refresh()
        yield
        with django_db_blocker.unblock():
            forget_rollups()


def span_ranges(after: datetime, before: datetime) -> list[tuple[Any, Any]]:
    """The parts of [after, before) a spanStats reads from the spans (widest periods)."""
    selection = SpanSelection(OTelSpan.objects.all(), RollupFilter(after=after, before=before))
    return _gaps(_cover(selection.clean_periods(), after, before, 168), after, before)


def test_every_slot_and_hour_holds_its_spans(data: None) -> None:
    spans = stored()
    hours = {rollups.hour_of(s.started_at) for s in spans}
    assert len(hours) == 5
    assert hours <= set(SpanRollupSlotted.objects.values_list("hour", flat=True))
    columns = ("start", "name", "status_code", "span_count")
    for width, rows in (
        (rollups.SLOT, SpanRollupSlot.objects.values_list(*columns)),
        (HOUR, SpanRollup.objects.filter(width=1).values_list(*columns)),
    ):
        expected = Counter(
            (FIRST + width * ((s.started_at - FIRST) // width), s.name, s.status_code)
            for s in spans
        )
        got: Counter[tuple[datetime, str, str]] = Counter()
        for start, name, status, count in rows:
            got[start, name, status] += count
        assert got == expected
    # more than one slot per hour holds spans
    assert SpanRollupSlot.objects.values("start").distinct().count() > 2 * len(hours)


WINDOWS = [
    # both edges inside a slot, inside an hour
    (FIRST + timedelta(minutes=7, seconds=13), FIRST + timedelta(hours=3, minutes=52, seconds=41)),
    # edges on slot bounds inside hours: no span read at all
    (FIRST + 10 * MINUTE, FIRST + timedelta(hours=4, minutes=35)),
    # inside one hour
    (FIRST + timedelta(hours=1, minutes=3, seconds=20), FIRST + timedelta(hours=1, minutes=58)),
    # an hour bound, then the last slots of a partial hour
    (FIRST, FIRST + timedelta(hours=2, minutes=31, seconds=9)),
]


@pytest.mark.parametrize(("after", "before"), WINDOWS)
@pytest.mark.parametrize("bucket", ["HOUR", "DAY"])
def test_edges_read_at_most_a_slot_of_spans_each(
    data: None, after: datetime, before: datetime, bucket: str
) -> None:
    # Given a window whose edges fall inside hours, every hour of it rolled with its slots,
    # then at most the two partial slots at its edges are read from the spans...
    ranges = span_ranges(after, before)
    assert len(ranges) <= 2
    assert all(hi - lo < rollups.SLOT for lo, hi in ranges), ranges
    spans = [s for s in stored() if after <= s.started_at < before]
    assert spans
    # ...in the one statement for every part, and each figure equals the rows'.
    filters = {"startedAfter": after.isoformat(), "startedBefore": before.isoformat()}
    got, read_rollups = stats(filters, bucket, window=None)
    assert read_rollups
    check(got, spans, HOUR if bucket == "HOUR" else timedelta(days=1), (after, before))


def test_a_window_inside_one_slot_reads_the_spans(data: None) -> None:
    after, before = FIRST + timedelta(minutes=26), FIRST + timedelta(minutes=29)
    spans = [s for s in stored() if after <= s.started_at < before]
    assert spans
    filters = {"startedAfter": after.isoformat(), "startedBefore": before.isoformat()}
    got, read_rollups = stats(filters, "HOUR", window=None)
    assert not read_rollups  # no clean period inside: exact, from the spans
    check(got, spans, HOUR, (after, before))


def test_a_late_span_in_a_closed_slot_counts_at_once_and_a_resent_one_never_twice(
    data: None,
) -> None:
    # Given a span arriving late in a slot of an hour already rolled with its slots,
    # through the real exporter (kept in memory too, to send it again).
    memory = InMemorySpanExporter()
    exporter = PostgresSpanExporter(keep_untagged=True)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    late_at = FIRST + timedelta(hours=2, minutes=22, seconds=30)
    after, before = FIRST + timedelta(hours=2, minutes=21), FIRST + timedelta(hours=3, minutes=40)
    filters = {"startedAfter": after.isoformat(), "startedBefore": before.isoformat()}
    span = provider.get_tracer("tests").start_span("late arrival", start_time=ns(late_at))
    span.end(end_time=ns(late_at + timedelta(milliseconds=321)))
    try:
        assert exporter.force_flush()
        # Then its hour, slots included, is read from the spans until refreshed...
        assert span_ranges(after, before)[0] == (after, rollups.hour_of(late_at) + HOUR)
        got, _ = stats(filters, "HOUR", window=None)
        spans = [s for s in stored() if after <= s.started_at < before]
        check(got, spans, HOUR, (after, before))
        assert [g["count"] for g in got["byName"] if g["key"] == "late arrival"] == [1]
        # ...and after the refresh its slot holds it, the edge a partial slot again.
        report = refresh()
        assert (report.hours, report.slotted) == (1, 0)
        slot = SpanRollupSlot.objects.get(
            start=late_at.replace(minute=20, second=0), name="late arrival"
        )
        assert slot.span_count == 1
        assert all(hi - lo < rollups.SLOT for lo, hi in span_ranges(after, before))
        got, read_rollups = stats(filters, "HOUR", window=None)
        assert read_rollups
        check(got, spans, HOUR, (after, before))

        # When it is sent again, nothing is stored, nothing marked, nothing counted twice.
        exporter.export(memory.get_finished_spans())
        assert exporter.force_flush()
        assert not SpanRollupDirty.objects.exists()
        again, _ = stats(filters, "HOUR", window=None)
        assert again == got
    finally:
        provider.shutdown()


def test_an_hour_rolled_without_slots_reads_its_edge_from_the_spans_until_refreshed(
    data: None,
) -> None:
    # Given an hour rolled before the slots existed (as after the migration that adds them)
    # (committed, as the refresh's connection sees it)
    hour = FIRST + 3 * HOUR
    with psycopg.connect(conninfo_for(), autocommit=True) as conn:
        conn.execute(
            f"DELETE FROM {rollups.SLOT_TABLE} WHERE start >= %s AND start < %s",
            (hour, hour + HOUR),
        )
        conn.execute(f"DELETE FROM {rollups.SLOTTED_TABLE} WHERE hour = %s", (hour,))
    after, before = FIRST + timedelta(minutes=50), hour + timedelta(minutes=12, seconds=5)
    filters = {"startedAfter": after.isoformat(), "startedBefore": before.isoformat()}
    spans = [s for s in stored() if after <= s.started_at < before]
    # Then its partial hour is read from the spans, the figures those of the rows...
    assert span_ranges(after, before)[-1] == (hour, before)
    got, read_rollups = stats(filters, "DAY", window=None)
    assert read_rollups
    check(got, spans, timedelta(days=1), (after, before))
    # ...until the refresh, with no dirty hour left, gives it its slots.
    report = refresh()
    assert (report.hours, report.slotted) == (0, 1)
    assert SpanRollupSlotted.objects.filter(hour=hour).exists()
    assert all(hi - lo < rollups.SLOT for lo, hi in span_ranges(after, before))
    again, _ = stats(filters, "DAY", window=None)
    assert again == got
    assert refresh().slotted == 0
