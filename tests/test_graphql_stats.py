"""traceStats and filterOptions over runs written by the real exporter: numbers computed
by PostgreSQL, one query per requested part."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.graphql_support import T0, Built, committed_dataset, execute
from tests.graphql_support import percentile_cont as _cont

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Built]:
    with committed_dataset(django_db_blocker) as built:
        yield built


STATS = """
query($filters: TraceFilter, $bucket: TimeBucketSize!, $from: DateTime, $to: DateTime) {
  traceStats(filters: $filters) {
    count errors errorRate inputTokens outputTokens
    durationMs { p50 p95 p99 }
    byModel { key count errors errorRate p50DurationMs p95DurationMs inputTokens outputTokens }
    byStatus { key count }
    byTool { key count errors inputTokens }
    timeSeries(bucket: $bucket, from: $from, to: $to) {
      start count errors p95DurationMs inputTokens outputTokens
    }
  }
}
"""


def _stats(**variables: Any) -> dict[str, Any]:
    variables.setdefault("bucket", "HOUR")
    variables.setdefault("from", T0.isoformat())
    variables.setdefault("to", (T0 + timedelta(hours=6)).isoformat())
    result = execute(STATS, variables)
    assert result.errors is None, result.errors
    return result.data["traceStats"]


# whole-run durations of the dataset: library, failed, loop, earlier, legacy, orphan
DURATIONS = [1200.0, 5000.0, 300.0, 800.0, 600.0, 100.0]


def test_headline_numbers(data: Built) -> None:
    stats = _stats()
    assert (stats["count"], stats["errors"]) == (6, 1)
    assert stats["errorRate"] == pytest.approx(1 / 6)
    assert stats["durationMs"] == {
        "p50": pytest.approx(_cont(DURATIONS, 0.5)),
        "p95": pytest.approx(_cont(DURATIONS, 0.95)),
        "p99": pytest.approx(_cont(DURATIONS, 0.99)),
    }
    assert stats["durationMs"]["p50"] == pytest.approx(700)
    assert (stats["inputTokens"], stats["outputTokens"]) == (120 + 400 + 50 + 120 + 77, 166)


def test_breakdowns(data: Built) -> None:
    stats = _stats()
    by_model = {row["key"]: row for row in stats["byModel"]}
    assert {k: v["count"] for k, v in by_model.items()} == {
        "gpt-4o": 2,
        "claude-3-5-sonnet": 1,
        "gpt-4o-mini": 1,
        "legacy-model-1": 1,
        "ghost-model": 1,
    }
    assert stats["byModel"][0]["key"] == "gpt-4o"  # most frequent first
    assert by_model["gpt-4o"]["p50DurationMs"] == pytest.approx(1000)
    assert by_model["claude-3-5-sonnet"]["errorRate"] == 1.0
    assert by_model["legacy-model-1"]["inputTokens"] == 77  # legacy names, summed all the same
    assert {r["key"]: r["count"] for r in stats["byStatus"]} == {
        "completed": 3,
        "error": 1,
        "max_iterations": 1,
        "running": 1,
    }
    assert {r["key"]: (r["count"], r["errors"]) for r in stats["byTool"]} == {
        "search_documents": (2, 1),
        "get_hours": (1, 1),
        "campus_map": (1, 0),
        "lookup_course": (1, 0),
    }


def test_filters_narrow_every_part(data: Built) -> None:
    stats = _stats(filters={"model": ["gpt-4o"]})
    assert stats["count"] == 2
    assert [r["key"] for r in stats["byModel"]] == ["gpt-4o"]
    assert {r["key"] for r in stats["byTool"]} == {"search_documents", "campus_map"}
    assert sum(b["count"] for b in stats["timeSeries"]) == 2


def test_time_series_has_every_bucket(data: Built) -> None:
    hourly = _stats()["timeSeries"]
    assert [b["start"] for b in hourly] == [(T0 + timedelta(hours=h)).isoformat() for h in range(6)]
    assert [b["count"] for b in hourly] == [1, 1, 1, 1, 1, 1]
    assert [b["errors"] for b in hourly] == [0, 1, 0, 0, 0, 0]
    assert hourly[1]["p95DurationMs"] == pytest.approx(5000)
    assert hourly[1]["inputTokens"] == 400

    errors_only = _stats(filters={"status": ["error"]})["timeSeries"]
    assert [b["count"] for b in errors_only] == [0, 1, 0, 0, 0, 0]
    assert errors_only[0]["p95DurationMs"] is None  # an empty bucket has no percentile

    minutes = _stats(bucket="MINUTE", to=(T0 + timedelta(minutes=10)).isoformat())["timeSeries"]
    assert len(minutes) == 10 and [b["count"] for b in minutes] == [1] + [0] * 9

    days = _stats(bucket="DAY", to=(T0 + timedelta(days=2)).isoformat())["timeSeries"]
    # [T0, T0 + 2 days) touches three calendar days
    assert [b["count"] for b in days] == [6, 0, 0]


def test_time_series_range_defaults_to_the_filters(data: Built) -> None:
    result = execute(
        """query($f: TraceFilter) { traceStats(filters: $f) {
             timeSeries(bucket: HOUR) { start count } } }""",
        {
            "f": {
                "startedAfter": (T0 + timedelta(hours=1)).isoformat(),
                "startedBefore": (T0 + timedelta(hours=4)).isoformat(),
            }
        },
    )
    assert result.errors is None, result.errors
    assert [b["count"] for b in result.data["traceStats"]["timeSeries"]] == [1, 1, 1]


@pytest.mark.parametrize(
    ("variables", "words"),
    [
        (
            {
                "bucket": "MINUTE",
                "from": T0.isoformat(),
                "to": (T0 + timedelta(days=30)).isoformat(),
            },
            "more than 2000",
        ),
        ({"from": T0.isoformat(), "to": T0.isoformat()}, "must be before"),
    ],
)
def test_time_series_bad_ranges(data: Built, variables: dict[str, Any], words: str) -> None:
    result = execute(STATS, {"bucket": "HOUR", **variables})
    assert result.errors and words in result.errors[0].message


def test_each_part_is_one_query(data: Built) -> None:
    with CaptureQueriesContext(connection) as captured:
        _stats()
    # headline numbers (shared), byModel, byStatus, byTool, timeSeries
    assert len(captured.captured_queries) == 5, [q["sql"][:200] for q in captured]


def test_filter_options(data: Built) -> None:
    result = execute("{ filterOptions { statuses models tools } }")
    assert result.errors is None, result.errors
    assert result.data["filterOptions"] == {
        "statuses": ["completed", "error", "max_iterations", "running"],
        "models": ["claude-3-5-sonnet", "ghost-model", "gpt-4o", "gpt-4o-mini", "legacy-model-1"],
        "tools": ["campus_map", "get_hours", "lookup_course", "search_documents"],
    }
