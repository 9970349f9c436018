"""The trace root fields: ``traces`` (keyset-paginated) and ``trace(id)``."""

from __future__ import annotations

from typing import Any

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import Info
from strawberry_django.fields.field import StrawberryDjangoField

from graphql_api.errors import parse_trace_id
from graphql_api.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from graphql_api.permissions import staff_only
from graphql_api.traces.filters import agent_runs_by_default
from graphql_api.traces.types import TraceConnection, TraceType
from tracing.models import OTelTrace


class TraceListField(StrawberryDjangoField):
    """The ``traces`` field: strawberry-django's, plus the list's default (agent runs)."""

    # Its bases each name their own keyword arguments; all of them pass through **kwargs.
    def get_queryset(  # type: ignore[override]
        self, queryset: QuerySet[Any], info: Info, **kwargs: Any
    ) -> QuerySet[Any]:
        queryset = agent_runs_by_default(queryset, kwargs.get("filters"))
        return super().get_queryset(queryset, info, **kwargs)


@strawberry.type
class Query:
    traces: TraceConnection = strawberry_django.connection(
        description=(
            "Agent runs, newest first unless ordered otherwise; keyset-paginated "
            f"({DEFAULT_PAGE_SIZE} by default, at most {MAX_PAGE_SIZE} per page). Traces "
            "without agent work are left out unless the filters ask for them "
            "(agentRunsOnly: false, or a status filter)."
        ),
        extensions=staff_only(),
        field_cls=TraceListField,
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
