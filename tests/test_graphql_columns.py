"""Column fields read the loaded row directly (``graphql_api.column_fields``): only plain
columns and functions of the row alone are touched, a row without the column still gets
its value, and the values are those strawberry-django's own resolvers give."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import strawberry
import strawberry_django
from graphql import GraphQLObjectType

from graphql_api.column_fields import read_columns_directly, reads_no_database
from graphql_api.schema import COLUMN_FIELDS, schema
from tests.graphql_support import execute
from tracing.models import OTelTrace

pytestmark = pytest.mark.django_db

ID = uuid.UUID("0123456789abcdef0123456789abcdef")
STARTED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TRACE = """
query T($id: ID!) {
  trace(id: $id) {
    id status model query startedAt endedAt totalDurationMs totalInputTokens
    iterationCount toolsUsed spanCount sessionId
  }
}"""


def _trace_field(name: str) -> GraphQLObjectType:
    trace_type = schema._schema.type_map["Trace"]
    assert isinstance(trace_type, GraphQLObjectType)
    return trace_type.fields[name]  # type: ignore[return-value]


def test_only_plain_columns_are_read_directly() -> None:
    assert {"Trace.status", "Trace.totalDurationMs", "Trace.toolsUsed"} <= set(COLUMN_FIELDS)
    assert "Trace.id" in COLUMN_FIELDS  # a function of the row alone (reads_no_database)
    assert {"Span.name", "Span.durationMs", "GenAi.model", "SpanEdge.cursor"} <= set(COLUMN_FIELDS)
    # own resolvers, relations, arguments and permission-checked root fields keep theirs
    for kept in (
        "Trace.spans",
        "Trace.rootSpan",
        "Trace.conversation",
        "Span.genAi",
        "Span.attributes",
        "Span.serviceName",
        "SpanConnection.totalCount",
    ):
        assert kept not in COLUMN_FIELDS
    assert not [name for name in COLUMN_FIELDS if name.startswith("Query.")]


def test_the_values_are_the_rows_as_graphql_shows_them() -> None:
    OTelTrace.objects.create(
        id=ID,
        status="error",
        model="gpt-4o",
        query="wifi?",
        started_at=STARTED,
        total_duration_ms=1234.5,
        total_input_tokens=5158,
        iteration_count=3,
        tools_used=["search", "calculate"],
        span_count=7,
    )

    result = execute(TRACE, {"id": ID.hex})

    assert result.errors is None
    assert result.data["trace"] == {
        "id": ID.hex,
        "status": "error",
        "model": "gpt-4o",
        "query": "wifi?",
        "startedAt": "2026-03-02T09:00:00+00:00",
        "endedAt": None,
        "totalDurationMs": 1234.5,
        "totalInputTokens": 5158,
        "iterationCount": 3,
        "toolsUsed": ["search", "calculate"],
        "spanCount": 7,
        "sessionId": "",
    }


def test_a_value_the_scalar_refuses_is_the_same_error_as_before() -> None:
    # Trace.totalInputTokens is an Int (32 bits) over a 64-bit column
    OTelTrace.objects.create(id=ID, started_at=STARTED, total_input_tokens=2**40)

    result = execute("query T($id: ID!) { trace(id: $id) { totalInputTokens } }", {"id": ID.hex})

    assert result.data == {"trace": None}
    assert [(e.message, e.path) for e in result.errors] == [
        (
            "Int cannot represent non 32-bit signed integer value: 1099511627776",
            ["trace", "totalInputTokens"],
        )
    ]


def test_a_row_without_the_column_gets_it_from_the_fields_own_resolver() -> None:
    OTelTrace.objects.create(id=ID, status="completed", started_at=STARTED)
    deferred = OTelTrace.objects.only("id").get(pk=ID)
    assert "status" not in deferred.__dict__

    value = _trace_field("status").resolve(deferred, None)  # type: ignore[attr-defined]

    assert value == "completed"


@strawberry_django.type(OTelTrace, name="BadTrace")
class BadTrace:
    @strawberry_django.field
    @reads_no_database
    def short_id(self, root: strawberry.Parent[OTelTrace], info: strawberry.Info) -> str:
        return root.id.hex[:8]


@strawberry.type(name="BadQuery")
class BadQuery:
    @strawberry.field
    def bad(self) -> BadTrace | None:
        return None


def test_a_row_function_must_take_self_and_root() -> None:
    # A marked resolver the fast path could not call as (row, row): refused when the
    # schema is built, not at request time.
    with pytest.raises(TypeError, match=r"reads_no_database resolvers take \(self, root\)"):
        read_columns_directly(strawberry.Schema(query=BadQuery))
