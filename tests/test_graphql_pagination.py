"""Keyset pagination through ties and NULLs: every row exactly once, forwards and
backwards, in every ordering."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from tests.graphql_support import T0, SpanWriter, execute, genai_run
from tracing.export import PostgresSpanExporter
from tracing.models import OTelTrace

pytestmark = pytest.mark.django_db

RUNS = 12

PAGE = """
query($ordering: [TraceOrder!]! = [], $first: Int, $after: String, $last: Int, $before: String) {
  traces(ordering: $ordering, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { id } }
  }
}
"""


@pytest.fixture(scope="module")
def ids(django_db_setup: Any, django_db_blocker: Any) -> Iterator[list[str]]:
    """Twelve runs in four groups that share a start instant (ties on the leading key),
    durations and tokens repeating too."""
    with django_db_blocker.unblock():
        exporter = PostgresSpanExporter(keep_untagged=True)
        writer = SpanWriter(exporter)
        built = [
            genai_run(
                writer,
                started=T0 + timedelta(minutes=i // 3),
                query=f"q{i}",
                model="m",
                duration_ms=100 * (i % 4 + 1),
                tools=[],
                input_tokens=10 * (i % 2),
            )
            for i in range(RUNS)
        ]
        writer.shutdown()
        exporter.shutdown()
    yield built
    with django_db_blocker.unblock():
        OTelTrace.objects.all().delete()
        get_user_model().objects.all().delete()


def _page(**variables: Any) -> dict[str, Any]:
    result = execute(PAGE, variables)
    assert result.errors is None, result.errors
    return result.data["traces"]


def _ids(page: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in page["edges"]]


ORDERINGS = [
    [],
    [{"startedAt": "ASC"}],
    [{"startedAt": "DESC"}],
    [{"totalDurationMs": "ASC"}],
    [{"totalDurationMs": "DESC"}],
    [{"totalDurationMs": "DESC_NULLS_LAST"}],
    [{"totalTokens": "ASC"}],
    [{"totalDurationMs": "ASC"}, {"startedAt": "DESC"}],
]


@pytest.fixture(params=[False, True], ids=["no-nulls", "with-null-durations"])
def nulls(request: pytest.FixtureRequest, ids: list[str]) -> bool:
    if request.param:
        # Rows from before the exporter kept durations (rolled back with the test).
        OTelTrace.objects.filter(id__in=ids[:3]).update(total_duration_ms=None)
    return bool(request.param)


@pytest.mark.parametrize("ordering", ORDERINGS, ids=str)
@pytest.mark.parametrize("size", [1, 2, 5])
def test_forwards_every_row_once(
    ids: list[str], nulls: bool, ordering: list[dict[str, str]], size: int
) -> None:
    full = _ids(_page(ordering=ordering, first=50))
    assert sorted(full) == sorted(ids)
    seen: list[str] = []
    after = None
    while True:
        page = _page(ordering=ordering, first=size, after=after)
        assert page["totalCount"] == RUNS
        seen += _ids(page)
        assert len(seen) <= RUNS, "a row came twice"
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == full


@pytest.mark.parametrize("ordering", ORDERINGS, ids=str)
def test_backwards_every_row_once(
    ids: list[str], nulls: bool, ordering: list[dict[str, str]]
) -> None:
    full = _ids(_page(ordering=ordering, first=50))
    seen: list[str] = []
    before = None
    while True:
        page = _page(ordering=ordering, last=5, before=before)
        seen = _ids(page) + seen
        assert len(seen) <= RUNS, "a row came twice"
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert seen == full
