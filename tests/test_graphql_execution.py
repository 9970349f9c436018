"""``graphql_api.execution``: an operation cut into slices (a turn of the event loop
between them) gives exactly the result of one that runs in one go, and one whose result
outgrows ``MAX_RESULT_OBJECTS`` fails (over HTTP it is stopped with one error: see
test_graphql_cost.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from graphql import get_introspection_query

from graphql_api import execution
from tests.graphql_support import Built, committed_dataset, execute

EVERYTHING = """
{ traces(first: 20) { totalCount edges { cursor node {
    id query status model totalDurationMs toolsUsed conversation { id title }
    rootSpan { id name children { id } }
    spans { id name kind op depth offsetMs durationMs selfDurationMs status attributes events
            parent { id } children { id name children { id name } }
            genAi { operation model provider inputTokens outputTokens toolName } } } } }
  conversations { edges { node {
    id messages { id role content } traces { edges { node { id } } } } } }
  traceStats { count byModel { key count } }
  filterOptions { statuses models tools } }
"""


@pytest.fixture(scope="module")
def data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Built]:
    with committed_dataset(django_db_blocker) as built:
        yield built


@pytest.mark.django_db
def test_a_result_completed_in_slices_is_the_result_completed_at_once(
    data: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = [EVERYTHING, get_introspection_query(descriptions=True)]
    at_once = [execute(query) for query in queries]
    assert all(result.errors is None for result in at_once), [r.errors for r in at_once]

    # every object and list after the first now waits for its own turn of the loop
    monkeypatch.setattr(execution, "SLICE_OBJECTS", 1)
    in_slices = [execute(query) for query in queries]

    assert [r.errors for r in in_slices] == [None, None]
    assert [r.data for r in in_slices] == [r.data for r in at_once]


@pytest.mark.django_db
def test_outside_the_view_each_object_past_the_cap_is_an_error(
    data: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execution, "MAX_RESULT_OBJECTS", 3)
    result = execute("{ traces { edges { node { id } } } }")
    assert result.errors and "The result is too large" in result.errors[0].message
