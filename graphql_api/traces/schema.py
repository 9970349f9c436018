"""The trace root fields: ``traces`` (keyset-paginated) and ``trace(id)``."""

from __future__ import annotations

import strawberry
import strawberry_django

from graphql_api.errors import parse_trace_id
from graphql_api.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from graphql_api.permissions import staff_only
from graphql_api.traces.types import TraceConnection, TraceType
from tracing.models import OTelTrace


@strawberry.type
class Query:
    traces: TraceConnection = strawberry_django.connection(
        description=(
            "Agent runs, newest first unless ordered otherwise; keyset-paginated "
            f"({DEFAULT_PAGE_SIZE} by default, at most {MAX_PAGE_SIZE} per page)."
        ),
        extensions=staff_only(),
    )

    @strawberry_django.field(
        description=(
            "One agent run by OTel trace id (32 hex characters); null when unknown, an "
            "error when malformed."
        ),
        extensions=staff_only(),
    )
    def trace(self, id: strawberry.ID) -> TraceType | None:
        return OTelTrace.objects.filter(pk=parse_trace_id(str(id)))  # type: ignore[return-value]
