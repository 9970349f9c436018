"""A newest-first ``spans`` page read from the newest window the rollups say holds it
(tracing/read/span_window.py): over runs written by the real pipeline across five hours
and rolled up, every page (first and after cursors, each rollup-key filter) is the page
the unbounded read gives, the bounded read is the one used when the window holds the
page, and a window that falls short (rollup counts larger than the rows) is read again
without the bound; spans newer than the rolled hours are on the first page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.graphql_support import SpanWriter, committed, execute, genai_run
from tests.test_span_rollup_slots import FIRST, spread
from tests.test_span_rollups import forget_rollups, refresh
from tracing.export import PostgresSpanExporter
from tracing.models import (
    OTelSpan,
    SpanRollup,
)
from tracing.read.span_rollups import RollupFilter
from tracing.read.span_search import span_page
from tracing.read.span_window import newest_window, window_for

pytestmark = pytest.mark.django_db

PAGE = """
query($f: SpanFilter, $first: Int, $after: String) {
  spans(filters: $f, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id traceId } }
  }
}
"""
FILTERS: list[tuple[dict[str, Any], RollupFilter, int]] = [  # filters, as keys, page size
    ({}, RollupFilter(), 7),
    ({"kind": ["LLM"]}, RollupFilter(kinds=["llm"]), 7),
    ({"model": ["gpt-4o"]}, RollupFilter(models=["gpt-4o"]), 7),
    ({"status": ["ERROR"]}, RollupFilter(statuses=["ERROR"]), 2),
]


LATE = FIRST + timedelta(hours=7)  # a run in an hour no refresh has rolled


def spread_then_late(exporter: Any) -> None:
    spread(exporter)  # shuts its exporter down at the end
    refresh()
    w = SpanWriter(PostgresSpanExporter(keep_untagged=True))
    try:
        genai_run(w, started=LATE, query="late", model="gpt-4o", duration_ms=50.0, tools=[])
    finally:
        w.shutdown()


@pytest.fixture(scope="module")
def data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    with committed(django_db_blocker, spread_then_late):
        yield
        with django_db_blocker.unblock():
            forget_rollups()


def pages(filters: dict[str, Any], first: int) -> list[list[str]]:
    """Every page of ``filters`` through GraphQL, following the cursors."""
    out, after = [], None
    while True:
        result = execute(PAGE, {"f": filters, "first": first, "after": after})
        assert result.errors is None, result.errors
        data = result.data["spans"]
        out.append([f"{e['node']['traceId']}:{e['node']['id']}" for e in data["edges"]])
        if not data["pageInfo"]["hasNextPage"]:
            return out
        after = data["pageInfo"]["endCursor"]


def bounded_reads(queries: list[dict[str, str]]) -> list[bool]:
    """For each span read of a page, whether it is bounded below by a start time."""
    return [
        '"tracing_otelspan"."started_at" >=' in q["sql"]
        for q in queries
        if 'FROM "tracing_otelspan"' in q["sql"] and "LIMIT" in q["sql"]
    ]


@pytest.mark.parametrize(("filters", "keys", "size"), FILTERS)
def test_every_page_equals_the_unbounded_page_and_the_window_is_used(
    data: None, filters: dict[str, Any], keys: RollupFilter, size: int
) -> None:
    spans = OTelSpan.objects.all()
    got = pages(filters, size)
    unbounded = []
    cursor = None
    while True:
        page = span_page(_filtered(spans, keys), [], cursor, size)
        unbounded.append([f"{r.trace_id.hex}:{r.span_id}" for _, r in page.spans])
        if not page.has_next:
            break
        cursor = page.spans[-1][0]
    assert got == unbounded
    assert len(got) > 2  # several pages, the last ones past any window
    with CaptureQueriesContext(connection) as ctx:
        first = span_page(_filtered(spans, keys), [], None, size, keys)
    assert [f"{r.trace_id.hex}:{r.span_id}" for _, r in first.spans] == unbounded[0]
    assert bounded_reads(ctx.captured_queries) == [True]


def test_a_window_that_falls_short_is_read_again_without_the_bound(data: None) -> None:
    expected = span_page(OTelSpan.objects.all(), [], None, 40)
    # the counts overstate (undone with the test's transaction)
    SpanRollup.objects.filter(width=1).update(span_count=10_000)
    with CaptureQueriesContext(connection) as ctx:
        got = span_page(OTelSpan.objects.all(), [], None, 40, RollupFilter())
    assert [r.span_id for _, r in got.spans] == [r.span_id for _, r in expected.spans]
    assert got.has_next == expected.has_next
    assert bounded_reads(ctx.captured_queries) == [True, False]


def test_spans_newer_than_the_rolled_hours_come_first(data: None) -> None:
    with CaptureQueriesContext(connection) as ctx:
        page = span_page(OTelSpan.objects.all(), [], None, 5, RollupFilter())
    newest = OTelSpan.objects.order_by("-started_at", "-id")[:5]
    assert [r.span_id for _, r in page.spans] == [s.span_id for s in newest]
    assert page.spans[0][1].started_at >= LATE
    assert bounded_reads(ctx.captured_queries) == [True]


def _filtered(spans: Any, keys: RollupFilter) -> Any:
    if keys.kinds:
        spans = spans.filter(kind__in=keys.kinds)
    if keys.models:
        spans = spans.filter(model__in=keys.models)
    if keys.statuses:
        spans = spans.filter(status_code__in=keys.statuses)
    return spans


def test_the_window_is_kept_and_a_kept_window_that_falls_short_changes_nothing(
    data: None,
) -> None:
    expected = span_page(OTelSpan.objects.all(), [], None, 40)
    with CaptureQueriesContext(connection) as first:
        span_page(OTelSpan.objects.all(), [], None, 40, RollupFilter())
    with CaptureQueriesContext(connection) as again:
        got = span_page(OTelSpan.objects.all(), [], None, 40, RollupFilter())
    assert len(again.captured_queries) == len(first.captured_queries) - 1  # no lookup
    assert [r.span_id for _, r in got.spans] == [r.span_id for _, r in expected.spans]
    # A kept window that no longer holds the page (every span inside it gone, in the
    # test's transaction): the bounded read finds nothing, the page is read again.
    since = window_for(RollupFilter(), None, 41)
    assert since is not None
    OTelSpan.objects.filter(started_at__gte=since).delete()
    with CaptureQueriesContext(connection) as ctx:
        after = span_page(OTelSpan.objects.all(), [], None, 40, RollupFilter())
    assert [r.span_id for _, r in after.spans] == [
        r.span_id for _, r in span_page(OTelSpan.objects.all(), [], None, 40).spans
    ]
    assert len(after.spans) == 40
    assert bounded_reads(ctx.captured_queries) == [True, False]


def test_an_hour_of_many_groups_counts_whole() -> None:
    # Three hours of 300 group rows (kind x name x ...) of one span each: the window for
    # 700 spans starts at the third hour back. Read row by row under a cap of a few hundred
    # rows, the lookup found no window and the page fell back to the unbounded read.
    newest = FIRST.replace(minute=0) + timedelta(days=30)
    SpanRollup.objects.bulk_create(
        SpanRollup(
            width=1,
            start=newest - timedelta(hours=h),
            kind="tool",
            name=f"execute_tool t{g}",
            model=None,
            tool_name=f"t{g}",
            status_code="UNSET",
            span_count=1,
            input_tokens=0,
            output_tokens=0,
            duration_min=1.0,
            duration_max=1.0,
            duration_buckets=[1],
            duration_counts=[1],
        )
        for h in range(3)
        for g in range(300)
    )
    assert newest_window(RollupFilter(), None, 700) == newest - timedelta(hours=2)
    assert newest_window(RollupFilter(), None, 901) is None
