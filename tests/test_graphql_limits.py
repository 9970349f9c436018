"""Request limits (depth, aliases, tokens) and bad arguments: a clear GraphQL error, and
not one SQL statement run."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from graphql import GraphQLError, get_introspection_query, parse

from graphql_api.errors import BadArgument
from graphql_api.limits import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_QUERY_CHARS,
    MAX_SELECTIONS,
    MAX_TOKENS,
    Cost,
    document_cost,
)
from graphql_api.schema import is_internal
from tests.graphql_support import execute, unsaved_user

pytestmark = pytest.mark.django_db


def _refused(query: str, variables: dict[str, Any] | None = None) -> str:
    with CaptureQueriesContext(connection) as captured:
        result = execute(query, variables)
    assert result.errors, result.data
    assert result.data is None or all(v is None for v in result.data.values())
    assert captured.captured_queries == [], "a refused request must not reach the database"
    return result.errors[0].message


def _nested_children(levels: int) -> str:
    inner = "id"
    for _ in range(levels):
        inner = f"children {{ {inner} }}"
    return f'{{ trace(id: "0123456789abcdef0123456789abcdef") {{ spans {{ {inner} }} }} }}'


def test_depth_limit() -> None:
    assert "exceeds maximum operation depth" in _refused(_nested_children(MAX_DEPTH))


def test_depth_just_under_the_limit_runs() -> None:
    result = execute(_nested_children(MAX_DEPTH - 3))
    assert result.errors is None, result.errors


def test_alias_limit() -> None:
    aliases = " ".join(f"a{i}: filterOptions {{ statuses }}" for i in range(MAX_ALIASES + 1))
    assert "aliases" in _refused(f"{{ {aliases} }}").lower()


def test_token_limit() -> None:
    fields = " ".join("statuses" for _ in range(MAX_TOKENS))
    assert "token" in _refused(f"{{ filterOptions {{ {fields} }} }}").lower()


def test_query_length_limit() -> None:
    padding = " " * MAX_QUERY_CHARS
    assert "Source contains more than" in _refused(f"{{ filterOptions {{ statuses }} }}{padding}")


def test_cost_counts_each_fragment_once_and_multiplies_its_spreads() -> None:
    document = parse(
        'query Q { trace(id: "x") { a: id ...T ...T } }'
        " fragment T on Trace { b: id spans { ...S } }"
        " fragment S on Span { id children { id } }"
    )
    # Q: trace, a, two spreads = 4, plus T twice; T: b, spans, a spread = 3, plus S; S = 3.
    # Depth: the last id sits under trace → spans → children.
    assert document_cost(document) == {"Q": Cost(selections=16, aliases=3, depth=3)}


def test_cost_stops_depth_at_introspection_fields_and_survives_cycles() -> None:
    introspection = parse("{ __schema { types { fields { type { ofType { name } } } } } }")
    assert document_cost(introspection)["anonymous"].depth == 0
    cycle = parse(
        "{ ...A } fragment A on Query { __typename ...B } fragment B on Query { ...A ...A }"
    )
    assert document_cost(cycle)["anonymous"].selections > 0  # terminates
    assert "Cannot spread fragment" in _refused(
        "{ ...A } fragment A on Query { __typename ...B } fragment B on Query { ...A ...A }"
    )


def _fan_out(k: int) -> str:
    fragments = " ".join(
        f"fragment L{i} on Query {{ ...L{i - 1} ...L{i - 1} }}" for i in range(1, k + 1)
    )
    return f"{{ ...L{k} }} fragment L0 on Query {{ __typename }} {fragments}"


def test_fragment_fan_out_is_refused_for_its_expanded_size() -> None:
    # Spreads are selections too: L_k holds 3 * 2^k - 2, the operation one more.
    assert "3,221,225,471 selections" in _refused(_fan_out(30))
    assert f"6,143 selections once its fragments are expanded (allowed: {MAX_SELECTIONS:,})" in (
        _refused(_fan_out(11))
    )
    assert execute(_fan_out(10)).data == {"__typename": "Query"}


def test_aliases_and_depth_count_through_fragments() -> None:
    aliased = "fragment F on Query { a: __typename b: __typename c: __typename d: __typename }"
    spreads = " ".join("...F" for _ in range(8))
    assert "32 aliases found. Allowed: 30" in _refused(f"{{ {spreads} }} {aliased}")

    def in_fragment(levels: int) -> str:
        inner = "id"
        for _ in range(levels):
            inner = f"children {{ {inner} }}"
        return f'{{ trace(id: "x") {{ spans {{ ...Deep }} }} }} fragment Deep on Span {{ {inner} }}'

    # as deep as _nested_children(levels): the fragment adds no level of its own
    assert "exceeds maximum operation depth" in _refused(in_fragment(MAX_DEPTH - 1))
    assert "depth" not in str(execute(in_fragment(MAX_DEPTH - 2)).errors)


def test_many_copies_of_one_nested_field_exhaust_the_overlap_budget() -> None:
    # Within every size limit, but ~1 s of pairwise comparisons with graphql-core's budget.
    copies = " ".join("traces { edges { node { id } } }" for _ in range(180))
    assert "too costly to check" in _refused(f"{{ {copies} }}")
    few = " ".join("traces { edges { node { id } } }" for _ in range(5))
    assert execute(f"{{ {few} }}").errors is None


def test_graphiql_introspection_fits_the_limits() -> None:
    result = execute(get_introspection_query(descriptions=True))
    assert result.errors is None, result.errors
    assert result.data["__schema"]["queryType"]["name"] == "Query"


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("{ traces(first: 201) { totalCount } }", "cannot be higher than 200"),
        ("{ traces(first: -5) { totalCount } }", "non-negative"),
        ("{ traces(last: 500) { totalCount } }", "cannot be higher than 200"),
        ('{ traces(after: "bm9wZQ==") { totalCount } }', "Invalid cursor"),
        ("{ traces(ordering: [{startedAt: UPWARDS}]) { totalCount } }", "UPWARDS"),
        ("{ traceStats { timeSeries(bucket: WEEK) { count } } }", "WEEK"),
        (
            '{ traces(filters: {startedAfter: "2026-01-02T00:00:00Z",'
            ' startedBefore: "2026-01-01T00:00:00Z"}) { totalCount } }',
            "must be before",
        ),
        (
            "{ traceStats(filters: {minDurationMs: 9, maxDurationMs: 1}) { count } }",
            "greater than maxDurationMs",
        ),
        ('{ trace(id: "1234") { id } }', "Invalid trace id"),
        ('{ conversations(after: "x") { totalCount } }', "Invalid cursor"),
        ('{ traces(filters: {search: "a\\u0000b"}) { totalCount } }', "NUL"),
        ('{ traces(filters: {model: ["x", "\\u0000"]}) { totalCount } }', "NUL"),
        (
            '{ traces(filters: {conversationId: "99999999999999999999"}) { totalCount } }',
            "64-bit",
        ),
    ],
)
def test_bad_arguments_touch_nothing(query: str, words: str) -> None:
    assert words in _refused(query)


@pytest.mark.parametrize("field", ["search", "status", "model", "toolUsed"])
@pytest.mark.parametrize(
    ("text", "words"), [("x\ud800y", "lone surrogates"), ("a\x00b", "NUL characters")]
)
def test_text_the_database_cannot_take_is_refused_from_variables(
    field: str, text: str, words: str
) -> None:
    # Variables arrive as JSON, where "\ud800" decodes to a lone surrogate the driver
    # cannot encode (a GraphQL string literal with it is refused by the lexer already).
    value: str | list[str] = [text] if field in ("status", "model") else text
    message = _refused(
        "query($f: TraceFilter) { traces(filters: $f) { totalCount } }", {"f": {field: value}}
    )
    assert message == f"{field} must not contain {words}."


def test_non_staff_get_a_permission_error_not_empty_data() -> None:
    for query in (
        "{ traces { totalCount } }",
        '{ trace(id: "0123456789abcdef0123456789abcdef") { id } }',
        "{ traceStats { count } }",
        "{ filterOptions { statuses } }",
        "{ conversations { totalCount } }",
    ):
        result = execute(query, user=unsaved_user(is_staff=False))
        assert result.errors and "staff users only" in result.errors[0].message, query
        # A nullable root field is null *with* the error beside it; nothing else is returned.
        assert result.data is None or all(v is None for v in result.data.values())


def test_server_errors_are_masked_and_client_errors_are_not() -> None:
    def error(original: Exception | None) -> GraphQLError:
        return GraphQLError("details", original_error=original)

    assert is_internal(error(DatabaseError('relation "x" does not exist')))
    assert is_internal(error(KeyError("bug")))
    assert not is_internal(error(BadArgument("first must be non-negative")))
    assert not is_internal(error(ValueError("Invalid cursor")))  # strawberry-django's
    assert not is_internal(error(PermissionDenied("staff only")))
    assert not is_internal(error(None))  # syntax, validation and limit errors
