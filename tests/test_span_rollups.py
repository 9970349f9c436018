"""``spanStats`` from the span rollups (tracing/rollups.py, tracing/read/span_rollups.py)
over runs written by the real pipeline: after a refresh the rollups answer, and every
count, error, token sum, group and bucket equals what the stored rows give, the duration
percentiles within the documented error; filters the rollups cannot answer read the spans;
late and re-sent spans are counted exactly once, before and after the next refresh."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests.graphql_support import (
    T0,
    Built,
    committed_dataset,
    execute,
    ns,
    percentile_cont,
)
from tracing import histogram, rollups
from tracing.conventions import semconv
from tracing.export import PostgresSpanExporter, conninfo_for
from tracing.models import (
    OTelSpan,
    SpanRollup,
    SpanRollupDirty,
    SpanRollupRolled,
    SpanRollupSlot,
    SpanRollupSlotted,
)
from tracing.read.spans import SpanRecord, span_records

pytestmark = pytest.mark.django_db

# The refresh's clock: long after the dataset, so every hour of it is closed.
LATER = T0 + timedelta(days=10)
DAY0 = T0.replace(hour=0)
TOLERANCE = histogram.MAX_RELATIVE_ERROR * (1 + 1e-9)


def refresh() -> rollups.RefreshReport:
    with psycopg.connect(conninfo_for(), autocommit=True) as conn:
        return rollups.refresh(conn, LATER)


def forget_rollups() -> None:
    """Every rollup row and mark (a module's committed data is removed after it)."""
    for model in (SpanRollup, SpanRollupRolled, SpanRollupDirty, SpanRollupSlot):
        model.objects.all().delete()
    SpanRollupSlotted.objects.all().delete()


@pytest.fixture(scope="module")
def data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Built]:
    with committed_dataset(django_db_blocker) as built:
        with django_db_blocker.unblock():
            refresh()
        yield built
        with django_db_blocker.unblock():
            forget_rollups()


def stored() -> list[SpanRecord]:
    return span_records(OTelSpan.objects.all())


STATS = """
query($f: SpanFilter, $bucket: TimeBucketSize!, $from: DateTime, $to: DateTime) {
  spanStats(filters: $f) {
    count errors inputTokens outputTokens
    durationMs { p50 p95 p99 }
    byModel { key count errors inputTokens outputTokens p50DurationMs p95DurationMs }
    byTool { key count errors p95DurationMs }
    byName { key count errors inputTokens p95DurationMs }
    timeSeries(bucket: $bucket, from: $from, to: $to) { start count errors p95DurationMs
                                                        inputTokens outputTokens }
  }
}
"""


def stats(
    filters: dict[str, Any] | None,
    bucket: str = "HOUR",
    window: tuple[datetime, datetime] | None = (DAY0, DAY0 + timedelta(days=1)),
    query: str = STATS,
) -> tuple[dict[str, Any], bool]:
    """The spanStats of ``filters`` (time series over ``window``; None: the filter's own),
    and whether the rollups were read."""
    with CaptureQueriesContext(connection) as queries:
        result = execute(
            query,
            {
                "f": filters,
                "bucket": bucket,
                "from": None if window is None else window[0].isoformat(),
                "to": None if window is None else window[1].isoformat(),
            },
        )
    assert result.errors is None, result.errors
    read_rollups = any(
        table + " " in q["sql"]
        for q in queries.captured_queries
        for table in (rollups.ROLLUP_TABLE, rollups.SLOT_TABLE)
    )
    if read_rollups:
        # The clean periods, then one statement for every part over the filter's window
        # (the headline, the groups, a series without its own from/to), one for a series
        # over another window.
        bounds = (filters or {}).get("startedAfter"), (filters or {}).get("startedBefore")
        shared = None not in bounds and (
            window is None or bounds == (window[0].isoformat(), window[1].isoformat())
        )
        assert len(queries) == (2 if shared else 3), "\n\n".join(
            q["sql"] for q in queries.captured_queries
        )
    return result.data["spanStats"], read_rollups


def close(got: float | None, values: list[float], fraction: float) -> bool:
    exact = percentile_cont(values, fraction)
    assert got is not None
    return abs(got - exact) <= TOLERANCE * abs(exact) + histogram.FLOOR_MS


def check(
    got: dict[str, Any],
    spans: list[SpanRecord],
    bucket: timedelta,
    window: tuple[datetime, datetime] = (DAY0, DAY0 + timedelta(days=1)),
) -> None:
    """Every figure of ``got`` against ``spans`` (the rows the filters select), the time
    series over ``window`` (its first bucket where ``window`` begins, truncated)."""
    facts = {id(s): semconv.span_facts(s.name, s.attributes, s.span_kind) for s in spans}

    def summary(members: list[SpanRecord]) -> tuple[int, int, int, int]:
        return (
            len(members),
            sum(s.status_code == StatusCode.ERROR.name for s in members),
            sum(facts[id(s)].input_tokens for s in members),
            sum(facts[id(s)].output_tokens for s in members),
        )

    assert (got["count"], got["errors"], got["inputTokens"], got["outputTokens"]) == summary(spans)
    for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert close(got["durationMs"][name], [s.duration_ms for s in spans], fraction)

    def groups(field: str, key: Callable[[SpanRecord], str | None]) -> None:
        expected: dict[str, list[SpanRecord]] = {}
        for s in spans:
            k = key(s)
            if k is not None:
                expected.setdefault(k, []).append(s)
        assert {g["key"] for g in got[field]} == set(expected)
        counts = [(-g["count"], g["key"]) for g in got[field]]
        assert counts == sorted(counts)
        for g in got[field]:
            members = expected[g["key"]]
            assert (g["count"], g["errors"]) == summary(members)[:2]
            if "inputTokens" in g:
                assert g["inputTokens"] == summary(members)[2]
            if "outputTokens" in g:
                assert g["outputTokens"] == summary(members)[3]
            assert close(g["p95DurationMs"], [s.duration_ms for s in members], 0.95)

    groups("byModel", lambda s: facts[id(s)].model)
    groups("byTool", lambda s: facts[id(s)].tool_name)
    groups("byName", lambda s: s.name)
    series = got["timeSeries"]
    first = window[0].replace(minute=0, second=0, microsecond=0)
    if bucket == timedelta(days=1):
        first = first.replace(hour=0)
    assert len(series) == -((first - window[1]) // bucket)
    for i, point in enumerate(series):
        start = first + bucket * i
        assert datetime.fromisoformat(point["start"]) == start
        members = [s for s in spans if start <= s.started_at < start + bucket]
        assert (
            point["count"],
            point["errors"],
            point["inputTokens"],
            point["outputTokens"],
        ) == summary(members)
        if members:
            assert close(point["p95DurationMs"], [s.duration_ms for s in members], 0.95)
        else:
            assert point["p95DurationMs"] is None


def test_refresh_rolls_every_closed_hour_and_the_day(data: Built) -> None:
    hours = {rollups.hour_of(s.started_at) for s in stored()}
    rolled = set(SpanRollupRolled.objects.values_list("start", "width"))
    assert {(h, 1) for h in hours} <= rolled
    # A whole day, closed, all its hours rolled; its 6-hour blocks and its week too.
    assert {(DAY0, 24), (DAY0 + 6 * HOUR, 6), (rollups.period_start(DAY0, 168), 168)} <= rolled
    assert not SpanRollupDirty.objects.exists()
    assert sum(SpanRollup.objects.filter(width=1).values_list("span_count", flat=True)) == len(
        stored()
    )
    assert refresh().hours == 0  # nothing dirty: nothing to do


IN_WINDOW = {
    "startedAfter": (T0 + timedelta(minutes=30)).isoformat(),
    "startedBefore": (T0 + timedelta(hours=4, minutes=20)).isoformat(),
}


@pytest.mark.parametrize(
    ("filters", "selected"),
    [
        (None, lambda s: True),
        (
            {"kind": ["LLM"]},
            lambda s: semconv.classify(s.name, s.attributes, s.span_kind).value == "llm",
        ),
        (
            {"model": ["gpt-4o"]},
            lambda s: semconv.span_facts(s.name, s.attributes, s.span_kind).model == "gpt-4o",
        ),
        ({"status": ["ERROR"]}, lambda s: s.status_code == "ERROR"),
        (
            {"name": ["chat gpt-4o", "execute_tool search_documents"]},
            lambda s: s.name in ("chat gpt-4o", "execute_tool search_documents"),
        ),
        # Partial hours at both ends: rollups for the whole hours, spans for the edges.
        (
            IN_WINDOW,
            lambda s: (
                T0 + timedelta(minutes=30) <= s.started_at < T0 + timedelta(hours=4, minutes=20)
            ),
        ),
        (
            {
                "startedAfter": DAY0.isoformat(),
                "startedBefore": (DAY0 + timedelta(days=1)).isoformat(),
            },
            lambda s: True,
        ),
    ],
)
@pytest.mark.parametrize("bucket", ["HOUR", "DAY"])
def test_rollups_give_the_rows_figures(
    data: Built, filters: dict[str, Any] | None, selected: Callable[..., bool], bucket: str
) -> None:
    spans = [s for s in stored() if selected(s)]
    assert spans
    got, read_rollups = stats(filters, bucket)
    assert read_rollups
    check(got, spans, timedelta(hours=1) if bucket == "HOUR" else timedelta(days=1))


@pytest.mark.parametrize(
    ("after", "before"),
    [
        # partial hours at both ends, inside one day
        (T0 + timedelta(minutes=30), T0 + timedelta(hours=4, minutes=20)),
        # whole hours, days and a partial hour
        (DAY0 - timedelta(days=1), DAY0 + timedelta(days=1, minutes=45)),
    ],
)
@pytest.mark.parametrize("bucket", ["HOUR", "DAY"])
@pytest.mark.parametrize("kind", [None, ["LLM"]])
def test_every_part_over_the_filters_window_from_one_statement(
    data: Built, after: datetime, before: datetime, bucket: str, kind: list[str] | None
) -> None:
    # Given a window that is not hour-aligned, and a time series without from/to (so over
    # the filter's window, as a dashboard asks it)
    filters: dict[str, Any] = {
        "startedAfter": after.isoformat(),
        "startedBefore": before.isoformat(),
    }
    if kind is not None:
        filters["kind"] = kind
    spans = [
        s
        for s in stored()
        if after <= s.started_at < before
        and (kind is None or semconv.classify(s.name, s.attributes, s.span_kind).value == "llm")
    ]
    assert spans
    # When every part is asked, then one statement reads them all (after the clean
    # periods' look-up), and each equals what the rows give.
    got, read_rollups = stats(filters, bucket, window=None)
    assert read_rollups
    check(got, spans, HOUR if bucket == "HOUR" else timedelta(days=1), (after, before))


BOTH_SERIES = """
query($f: SpanFilter) {
  spanStats(filters: $f) {
    count
    ... on SpanStats { byName { key count } }
    hours: timeSeries(bucket: HOUR) { start count errors p95DurationMs inputTokens }
    days: timeSeries(bucket: DAY) { start count errors p95DurationMs inputTokens }
  }
}
"""


def test_an_hour_and_a_day_series_share_the_statement(data: Built) -> None:
    after, before = T0 + timedelta(minutes=10), T0 + timedelta(hours=3, minutes=5)
    filters = {"startedAfter": after.isoformat(), "startedBefore": before.isoformat()}
    with CaptureQueriesContext(connection) as queries:
        result = execute(BOTH_SERIES, {"f": filters})
    assert result.errors is None, result.errors
    assert len(queries) == 2, "\n\n".join(q["sql"] for q in queries.captured_queries)
    got = result.data["spanStats"]
    spans = [s for s in stored() if after <= s.started_at < before]
    assert got["count"] == len(spans) == sum(p["count"] for p in got["hours"])
    assert [p["start"] for p in got["hours"]] == [(T0 + HOUR * i).isoformat() for i in range(4)]
    assert len(got["days"]) == 1 and got["days"][0]["count"] == len(spans)
    assert got["days"][0]["inputTokens"] == sum(p["inputTokens"] for p in got["hours"])
    assert sum(g["count"] for g in got["byName"]) == len(spans)


def test_an_empty_list_filter_matches_nothing(data: Built) -> None:
    got, read_rollups = stats({"kind": []})
    assert read_rollups
    assert (got["count"], got["byName"], got["durationMs"]["p95"]) == (0, [], None)


@pytest.mark.parametrize(
    "filters",
    [
        {"minDurationMs": 0},
        {"attributes": [{"key": "gen_ai.request.model", "exists": True}]},
        {"OR": {"kind": ["LLM"]}, "kind": ["TOOL"]},
    ],
)
def test_filters_the_rollups_cannot_answer_read_the_spans(
    data: Built, filters: dict[str, Any]
) -> None:
    got, read_rollups = stats(filters)
    assert not read_rollups
    unfiltered, _ = stats(None)
    if "minDurationMs" in filters:  # every span: exact percentiles from the spans
        durations = [s.duration_ms for s in stored()]
        assert got["count"] == unfiltered["count"] == len(durations)
        assert got["durationMs"]["p95"] == pytest.approx(percentile_cont(durations, 0.95))


def test_a_late_span_counts_at_once_and_a_resent_one_never_twice(data: Built) -> None:
    # Given a span arriving late for an hour already rolled up, through the real exporter
    # (kept in memory too, to send it again).
    memory = InMemorySpanExporter()
    exporter = PostgresSpanExporter(keep_untagged=True)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    late_at = T0 + timedelta(hours=1, minutes=10)
    span = provider.get_tracer("tests").start_span("late arrival", start_time=ns(late_at))
    span.end(end_time=ns(late_at + timedelta(milliseconds=321)))
    try:
        assert exporter.force_flush()
        assert SpanRollupDirty.objects.filter(hour=rollups.hour_of(late_at)).exists()
        # Then it is counted at once (its hour is read from the spans until refreshed)...
        got, _ = stats(None)
        check(got, stored(), timedelta(hours=1))
        assert [g["count"] for g in got["byName"] if g["key"] == "late arrival"] == [1]
        # ...and after the refresh, from the rollups.
        assert refresh().hours == 1
        got, read_rollups = stats(None)
        assert read_rollups
        check(got, stored(), timedelta(hours=1))

        # When it is sent again, nothing is stored, nothing marked, nothing counted twice.
        exporter.export(memory.get_finished_spans())
        assert exporter.force_flush()
        assert not SpanRollupDirty.objects.exists()
        again, _ = stats(None)
        assert again == got
    finally:
        provider.shutdown()


def test_merged_histograms_give_the_definitions_percentiles_exactly() -> None:
    # Groups of histograms split into entries in any order (some groups empty) give, merged
    # at once, exactly what ``histogram_percentiles`` gives for each group's sum.
    rng = random.Random(11)
    fractions = (0.0, 0.01, 0.5, 0.95, 0.99, 1.0)
    for _ in range(50):
        entries: list[tuple[int, int, int]] = []
        expected = []
        lows, highs = [], []
        for g in range(rng.randint(1, 8)):
            values = [rng.lognormvariate(3, 2) for _ in range(rng.choice([0, 1, 2, 3, 40, 400]))]
            summed: dict[int, int] = {}
            for v in values:
                b = histogram.bucket_of(v)
                summed[b] = summed.get(b, 0) + 1
            for b, c in summed.items():
                while c:  # a bucket's count split over several entries
                    part = rng.randint(1, c)
                    entries.append((g, b, part))
                    c -= part
            lows.append(min(values, default=0.0))
            highs.append(max(values, default=0.0))
            order = sorted(summed)
            expected.append(
                histogram.histogram_percentiles(
                    order, [summed[b] for b in order], lows[-1], highs[-1], fractions
                )
            )
        rng.shuffle(entries)
        groups, buckets, counts = (
            (np.array(c, dtype=np.int64) for c in zip(*entries, strict=True))
            if entries
            else (np.zeros(0, dtype=np.int64),) * 3
        )
        got = histogram.merged_percentiles(
            groups, buckets, counts, np.array(lows), np.array(highs), fractions
        )
        assert got == expected


def test_histogram_percentiles_within_the_documented_error() -> None:
    rng = random.Random(7)
    for size in (1, 2, 3, 10, 200, 5000):
        values = [rng.lognormvariate(3, 2) for _ in range(size)] + [0.0]
        buckets: dict[int, int] = {}
        for v in values:
            b = histogram.bucket_of(v)
            buckets[b] = buckets.get(b, 0) + 1
        order = sorted(buckets)
        fractions = (0.0, 0.01, 0.5, 0.95, 0.99, 1.0)
        got = histogram.histogram_percentiles(
            order, [buckets[b] for b in order], min(values), max(values), fractions
        )
        for fraction, estimate in zip(fractions, got, strict=True):
            assert close(estimate, values, fraction), (size, fraction)
    assert histogram.histogram_percentiles([], [], 0.0, 0.0, (0.5,)) == [None]
    assert histogram.MAX_RELATIVE_ERROR < 0.02


def test_a_batch_marks_every_hour_it_touches() -> None:
    at = T0 + timedelta(minutes=59)
    assert rollups.dirty_params([at, at + timedelta(minutes=2), at]) == ([T0, T0 + HOUR],)
    old = datetime(2001, 1, 1, 5, 30, tzinfo=T0.tzinfo)
    assert rollups.dirty_params([at, old]) == ([old.replace(minute=0), T0],)
    assert rollups.dirty_params([]) == ([],)


HOUR = timedelta(hours=1)
