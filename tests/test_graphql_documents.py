"""Parsed and checked documents are kept by their text (``graphql_api.documents``): a
document sent again is neither parsed nor validated again, and is refused or accepted
exactly as the first time — including the result-cost check, which depends on the
variables of each request."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse

from graphql_api.documents import MAX_TEXT_CHARS, CheckedDocument, CheckedDocuments, documents
from graphql_api.limits import MAX_DEPTH
from graphql_api.result_cost import MAX_RESULT_COST, result_cost
from graphql_api.schema import schema
from tests.graphql_support import execute

pytestmark = pytest.mark.django_db

TYPENAME = "{ __typename }"
# Within every limit; its cost reads no variable.
SMALL = "query Small { traces(first: 2) { edges { node { id status } } } }"
# Its cost is the page size the request asks for, times the spans of each trace.
BY_PAGE = """
query ByPage($n: Int) {
  traces(first: $n) { edges { node { id spans { id children { id } } } } }
}"""
TOO_DEEP = (
    '{ trace(id: "0123456789abcdef0123456789abcdef") { spans { '
    + "children { " * MAX_DEPTH
    + "id"
    + " }" * MAX_DEPTH
    + " } } }"
)
UNKNOWN_FIELD = "{ traces { edges { node { noSuchField } } } }"


def cost(query: str, variables: dict[str, Any] | None = None) -> int:
    return result_cost(schema._schema, parse(query), variables)


def messages(result: Any) -> list[str]:
    return [error.message for error in result.errors or ()]


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    documents.clear()


def test_a_document_sent_again_is_neither_parsed_nor_validated_again() -> None:
    first = execute(SMALL)
    assert first.errors is None
    kept = documents.get(SMALL)
    assert kept is not None and kept.validated is not None
    parsed, validated = kept.document, kept.validated

    again = execute(SMALL)

    assert again.errors is None and again.data == first.data
    assert again.extensions == first.extensions  # the same cost, reported the same way
    kept_again = documents.get(SMALL)
    assert kept_again is kept
    assert kept.document is parsed  # not parsed again
    assert kept.validated is validated  # not validated again


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (TOO_DEEP, f"exceeds maximum operation depth of {MAX_DEPTH}"),
        (UNKNOWN_FIELD, "Cannot query field 'noSuchField' on type 'Trace'."),
        ("{ a: __typename " + " ".join(f"a{i}: __typename" for i in range(40)) + " }", "aliases"),
    ],
)
def test_a_refused_document_is_refused_again_with_the_same_errors(
    query: str, expected: str
) -> None:
    first = execute(query)
    assert first.data is None and any(expected in m for m in messages(first)), messages(first)
    assert documents.get(query) is not None

    again = execute(query)

    assert again.data is None
    assert messages(again) == messages(first)


def test_the_cost_of_a_kept_document_is_checked_with_each_requests_variables() -> None:
    # given a page size the budget allows and one it does not
    assert cost(BY_PAGE, {"n": 2}) <= MAX_RESULT_COST < cost(BY_PAGE, {"n": 200})

    # when the same document is sent with each, in turn
    results = [execute(BY_PAGE, {"n": n}) for n in (2, 200, 2, 200)]

    # then each request is judged on its own variables
    allowed, refused, allowed_again, refused_again = results
    assert allowed.errors is None and allowed_again.errors is None
    assert allowed.extensions["cost"]["estimated"] == cost(BY_PAGE, {"n": 2})
    for result in (refused, refused_again):
        assert result.data is None
        assert messages(result) == [messages(refused)[0]]
        assert "too costly" in messages(result)[0]
        assert f"{cost(BY_PAGE, {'n': 200}):,}" in messages(result)[0]
    kept = documents.get(BY_PAGE)
    assert kept is not None and kept.fixed_cost is None  # never taken as fixed


def test_a_cost_that_reads_no_variable_is_kept() -> None:
    execute(SMALL)
    kept = documents.get(SMALL)
    assert kept is not None and kept.fixed_cost == cost(SMALL)


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = CheckedDocuments(max_entries=2)

    def add(text: str) -> None:
        cache.add(text, CheckedDocument(parse(text), []))

    add("{ a: __typename }")
    add("{ b: __typename }")
    assert cache.get("{ a: __typename }") is not None  # now the most recently used
    add("{ c: __typename }")

    assert len(cache) == 2
    assert cache.get("{ b: __typename }") is None
    assert cache.get("{ a: __typename }") is not None
    assert cache.get("{ c: __typename }") is not None


def test_a_long_text_is_not_kept() -> None:
    long_text = "{ __typename }" + " " * MAX_TEXT_CHARS

    result = execute(long_text)

    assert result.errors is None
    assert documents.get(long_text) is None
    assert execute(TYPENAME).errors is None and documents.get(TYPENAME) is not None
