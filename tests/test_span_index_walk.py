"""A span page read from a wide window (filters that are not rollup keys) walks the
start-time index (tracing/read/span_search.py, ``walking_the_index``): the bounded read
runs in a transaction of its own with sequential and bitmap scans off, the settings end
with it, the fallback read without the bound is the planner's own, a page under rollup
keys is left to the planner, and inside a caller's transaction nothing is changed (the
settings would outlive the read). The windows' sizes are the module's thresholds, made
small here: a dozen runs stand for the 20,000 and 400,000 spans."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.graphql_support import SpanWriter, genai_run
from tests.test_span_rollup_slots import FIRST
from tests.test_span_rollups import refresh
from tests.test_span_window import bounded_reads
from tracing.export import PostgresSpanExporter
from tracing.models import OTelSpan, SpanRollup
from tracing.read import span_search
from tracing.read.span_rollups import RollupFilter
from tracing.read.span_search import span_page, walking_the_index

pytestmark = pytest.mark.django_db(transaction=True)

HINT = "set_config('enable_seqscan', 'off', true)"


@pytest.fixture(autouse=True)
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(span_search, "WIDE_NEEDS", (20, 40))


@pytest.fixture
def read_with(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The two settings in force as each page read of ``span_page`` runs."""
    seen: list[tuple[str, ...]] = []
    page = span_search._page

    def recorded(*args: Any) -> Any:
        seen.append(_settings())
        return page(*args)

    monkeypatch.setattr(span_search, "_page", recorded)
    return seen


SETTINGS = ("enable_seqscan", "enable_bitmapscan")


def _settings() -> tuple[str, ...]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"current_setting('{s}')" for s in SETTINGS))
        return tuple(cursor.fetchone())


def _runs(n: int) -> None:
    w = SpanWriter(PostgresSpanExporter(keep_untagged=True))
    try:
        for i in range(n):
            genai_run(
                w,
                started=FIRST + timedelta(minutes=7 * i),
                query=f"q{i}",
                model="gpt-4o",
                duration_ms=40.0,
                tools=[],
            )
    finally:
        w.shutdown()
    refresh()


def _position(queries: list[dict[str, str]], text: str) -> list[int]:
    return [i for i, q in enumerate(queries) if text in q["sql"]]


def test_the_window_read_walks_the_index_in_a_transaction_of_its_own(
    read_with: list[tuple[str, ...]],
) -> None:
    _runs(12)
    expected = span_page(OTelSpan.objects.all(), [], None, 5)
    with CaptureQueriesContext(connection) as ctx:
        got = span_page(OTelSpan.objects.all(), [], None, 5, widen=True)
    assert [r.span_id for _, r in got.spans] == [r.span_id for _, r in expected.spans]
    queries = ctx.captured_queries
    assert bounded_reads(queries) == [True]
    (hint,) = _position(queries, HINT)
    (read,) = _position(queries, 'FROM "tracing_otelspan"')
    assert hint < read
    assert read_with[-1] == ("off", "off")  # the read itself ran with them
    assert _settings() == ("on", "on")  # ended with the read's transaction


def test_the_read_again_without_the_bound_is_left_to_the_planner(
    read_with: list[tuple[str, ...]],
) -> None:
    _runs(6)
    SpanRollup.objects.filter(width=1).update(span_count=10_000)  # the windows fall short
    with CaptureQueriesContext(connection) as ctx:
        page = span_page(OTelSpan.objects.all(), [], None, 40, widen=True)
    assert not page.has_next
    queries = ctx.captured_queries
    assert bounded_reads(queries) == [True, True, False]  # both windows, then no bound
    first_hint, second_hint = _position(queries, HINT)
    first, second, unbounded = _position(queries, 'FROM "tracing_otelspan"')
    assert first_hint < first < second_hint < second < unbounded
    assert read_with == [("off", "off"), ("off", "off"), ("on", "on")]


def test_a_page_under_rollup_keys_is_left_to_the_planner(
    read_with: list[tuple[str, ...]],
) -> None:
    _runs(12)
    with CaptureQueriesContext(connection) as ctx:
        span_page(OTelSpan.objects.all(), [], None, 5, RollupFilter())
    assert bounded_reads(ctx.captured_queries) == [True]
    assert _position(ctx.captured_queries, HINT) == []
    assert read_with == [("on", "on")]


def test_inside_a_callers_transaction_nothing_is_changed() -> None:
    with transaction.atomic():
        with walking_the_index("default"):
            assert _settings() == ("on", "on")
        assert _settings() == ("on", "on")


def test_on_its_own_the_settings_hold_only_within() -> None:
    with walking_the_index("default"):
        assert _settings() == ("off", "off")
    assert _settings() == ("on", "on")
