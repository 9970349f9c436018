"""The estimated result cost (``limits.result_cost``): an upper bound of what a result
holds when traces are within ``SPANS_PER_TRACE``, refused above ``MAX_RESULT_COST`` with
the cost and the budget before any SQL runs, reported in ``extensions`` otherwise; the
queries the admin viewer and GraphiQL send stay far below the budget."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from graphql import get_introspection_query, parse

from graphql_api.result_cost import (
    CHILDREN_PER_SPAN,
    MAX_RESULT_COST,
    SPANS_PER_TRACE,
    result_cost,
)
from graphql_api.schema import schema
from tests.graphql_support import Built, committed_dataset, execute

API_JS = (
    Path(__file__).resolve().parent.parent / "trace_viewer" / "static" / "trace_viewer" / "api.js"
)
INTROSPECTION = get_introspection_query(descriptions=True)


def viewer_queries() -> dict[str, str]:
    """Every query string of the admin viewer, as it sends them."""
    source = API_JS.read_text()
    constants = dict(re.findall(r"const (\w+) = `([^`]*)`;", source))
    queries = {
        name: re.sub(r"\$\{(\w+)\}", lambda m: constants[m.group(1)], text)
        for name, text in constants.items()
        if name.endswith("_QUERY")
    }
    assert len(queries) >= 6, queries.keys()
    return queries


def cost(query: str, variables: dict[str, Any] | None = None) -> int:
    return result_cost(schema._schema, parse(query), variables)


def held(value: Any) -> int:
    """What a result holds, counted the way the estimate counts: objects and lists of values."""
    if isinstance(value, dict):
        return 1 + sum(held(v) for v in value.values())
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return sum(held(v) for v in value)
        return 1
    return 0


@pytest.fixture(scope="module")
def data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Built]:
    with committed_dataset(django_db_blocker) as built:
        yield built


def test_the_viewer_and_graphiql_cost_a_fraction_of_the_budget() -> None:
    for name, query in viewer_queries().items():
        # the largest page the viewer asks for
        assert cost(query, {"first": 200, "last": None}) < MAX_RESULT_COST / 20, name
    assert cost(INTROSPECTION) < MAX_RESULT_COST / 5


SHAPES = [
    INTROSPECTION,
    "{ traces(first: 20) { totalCount pageInfo { endCursor } edges { node { id toolsUsed "
    "conversation { id messages { id } } rootSpan { name children { name } } } } } }",
    "{ traces(first: 10) { edges { node { spans { id parent { id } "
    "children { id children { id genAi { model } } } } } } } }",
    "query Q($n: Int) { conversations(first: $n) { edges { node { id "
    "traces(first: 2) { edges { node { spanColumns { ids names } } } } } } } }",
    "{ traceStats { byModel { key } byTool { key } durationMs { p50 } } filterOptions { tools } }",
]


@pytest.mark.django_db
@pytest.mark.parametrize("query", SHAPES)
def test_the_estimate_bounds_what_the_result_holds(data: Built, query: str) -> None:
    result = execute(query, {"n": 5})
    assert result.errors is None, result.errors
    estimate = result.extensions["cost"]["estimated"]
    assert estimate == cost(query, {"n": 5})
    assert held(result.data) <= estimate


ALIASED = (
    "{ "
    + " ".join(
        f"a{i}: traces(first: 10) {{ edges {{ node {{ spans {{ id }} }} }} }}" for i in range(30)
    )
    + " }"
)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        # page sizes multiply down the selection ...
        ("{ traces(first: 200) { edges { node { spans { children { id } } } } } }", {}),
        # ... and add up over aliases ...
        (ALIASED, {}),
        # ... with the page size given in a variable
        (
            "query Q($n: Int) { traces(first: $n) { edges { node { spans { parent { id } } } } } }",
            {"n": 200},
        ),
        # introspection nested through types costs what it would return
        ("{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }", {}),
    ],
)
@pytest.mark.django_db
def test_a_costly_query_is_refused_before_any_sql_with_its_cost_and_the_budget(
    query: str, variables: dict[str, Any]
) -> None:
    estimate = cost(query, variables)
    assert estimate > MAX_RESULT_COST
    with CaptureQueriesContext(connection) as captured:
        result = execute(query, variables)
    assert captured.captured_queries == []
    assert result.data is None
    message = result.errors[0].message
    assert f"could hold {estimate:,} objects" in message
    assert f"allowed: {MAX_RESULT_COST:,}" in message
    assert result.extensions == {"cost": {"estimated": estimate, "budget": MAX_RESULT_COST}}


def test_children_of_distinct_spans_count_once_per_level_and_a_parents_children_do_not() -> None:
    per_level = cost('{ trace(id: "x") { spans { children { children { id } } } } }')
    assert per_level == 1 + 3 * SPANS_PER_TRACE
    # every span's parent with all of its children: not one level, and counted so
    repeated = cost('{ trace(id: "x") { spans { parent { children { id } } } } }')
    assert repeated == 1 + 2 * SPANS_PER_TRACE + SPANS_PER_TRACE * CHILDREN_PER_SPAN
