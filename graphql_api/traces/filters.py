"""``TraceFilter``: the filters on agent runs, checked before any SQL runs.

Shared by ``traces`` and ``traceStats`` (the same filters select the runs aggregated),
with the one default both apply: ``agent_runs_by_default`` (traces with no agent work
are left out unless the filters ask for them).
"""

from __future__ import annotations

from datetime import datetime

import strawberry
import strawberry_django
from django.db.models import Q, QuerySet
from strawberry import Info

from campus_core.text import unstorable_text
from graphql_api.errors import BadArgument, given, parse_int_id
from graphql_api.spans.attributes import AttributeFilter, conditions
from tracing.models import AgentStatus, OTelTrace
from tracing.read.span_search import spans_having


@strawberry_django.filter_type(
    OTelTrace,
    name="TraceFilter",
    description="Filters on agent runs; every filter given must hold (they combine with AND).",
)
class TraceFilter:
    @strawberry_django.filter_field(
        description=f"Any of these agent-run statuses ({', '.join(sorted(AgentStatus.values))})."
    )
    def status(self, value: list[str], prefix: str) -> Q:
        return Q(**{f"{prefix}status__in": value})

    @strawberry_django.filter_field(description="Any of these models (the run's first LLM model).")
    def model(self, value: list[str], prefix: str) -> Q:
        return Q(**{f"{prefix}model__in": value})

    @strawberry_django.filter_field(
        description="Whole agent run (trace) lasted at least this many milliseconds."
    )
    def min_duration_ms(self, value: float, prefix: str) -> Q:
        return Q(**{f"{prefix}total_duration_ms__gte": value})

    @strawberry_django.filter_field(
        description="Whole agent run (trace) lasted at most this many milliseconds."
    )
    def max_duration_ms(self, value: float, prefix: str) -> Q:
        return Q(**{f"{prefix}total_duration_ms__lte": value})

    @strawberry_django.filter_field(
        description=(
            "Runs in which any span called this tool (exact tool name; matched against "
            "the trace's toolsUsed array)."
        )
    )
    def tool_used(self, value: str, prefix: str) -> Q:
        return Q(**{f"{prefix}tools_used__contains": [value]})

    @strawberry_django.filter_field(description="Runs started at or after this instant.")
    def started_after(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}started_at__gte": value})

    @strawberry_django.filter_field(description="Runs started strictly before this instant.")
    def started_before(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}started_at__lt": value})

    @strawberry_django.filter_field(description="Runs of this conversation.")
    def conversation_id(self, value: strawberry.ID, prefix: str) -> Q:
        return Q(**{f"{prefix}conversation_id": parse_int_id(value, "conversation")})

    @strawberry_django.filter_field(
        description="Any of these services (service.name of the run's agent span)."
    )
    def service_name(self, value: list[str], prefix: str) -> Q:
        return Q(**{f"{prefix}service_name__in": value})

    @strawberry_django.filter_field(
        description=(
            "Runs of this conversation/session id, as sent (exact text): one of this "
            "product's conversation ids or another service's session.id."
        )
    )
    def session_id(self, value: str, prefix: str) -> Q:
        return Q(**{f"{prefix}session_id": value})

    @strawberry_django.filter_field(
        description=(
            f"true: agent runs only (status not {AgentStatus.NO_AGENT.value}); false: every "
            "trace, including those without agent work (e.g. a service that sent only HTTP "
            "spans). When neither this nor status is given, agent runs only."
        )
    )
    def agent_runs_only(self, value: bool, prefix: str) -> Q:
        return ~Q(**{f"{prefix}status": AgentStatus.NO_AGENT}) if value else Q()

    @strawberry_django.filter_field(
        description="Case-insensitive substring of the user's query text."
    )
    def search(self, value: str, prefix: str) -> Q:
        return Q(**{f"{prefix}query__icontains": value})

    @strawberry_django.filter_field(
        description=(
            "Runs having, for each condition, a span matching it (keys resolve across "
            "naming generations, as in SpanFilter.attributes)."
        )
    )
    def attributes(self, value: list[AttributeFilter], prefix: str) -> Q:
        return spans_having(conditions(value), f"{prefix}id")

    @strawberry_django.filter_field
    def filter(self, info: Info, queryset: QuerySet, prefix: str) -> tuple[QuerySet, Q]:
        self.validate()
        return strawberry_django.process_filters(
            self,  # type: ignore[arg-type]
            queryset,
            info,
            prefix,
            skip_object_filter_method=True,
        )

    def validate(self) -> None:
        """Arguments that cannot describe any trace are errors, not empty pages."""
        lo, hi = given(self, "min_duration_ms"), given(self, "max_duration_ms")
        for name, value in (("minDurationMs", lo), ("maxDurationMs", hi)):
            if value is not None and (value < 0 or value != value):
                raise BadArgument(f"{name} must be a non-negative number, got {value}.")
        if lo is not None and hi is not None and lo > hi:
            raise BadArgument(f"minDurationMs ({lo}) is greater than maxDurationMs ({hi}).")
        after, before = given(self, "started_after"), given(self, "started_before")
        if after is not None and before is not None and after >= before:
            raise BadArgument(
                f"startedAfter ({after.isoformat()}) must be before "
                f"startedBefore ({before.isoformat()})."
            )
        search = given(self, "search")
        if search is not None and not search.strip():
            raise BadArgument("search must not be empty.")
        for name, value in (
            ("search", search),
            ("toolUsed", given(self, "tool_used")),
            ("status", given(self, "status")),
            ("model", given(self, "model")),
            ("serviceName", given(self, "service_name")),
            ("sessionId", given(self, "session_id")),
        ):
            texts = value if isinstance(value, list) else [value]
            for text in texts:
                # Say so instead of failing in the database driver.
                problem = unstorable_text(text) if text is not None else None
                if problem is not None:
                    raise BadArgument(f"{name} must not contain {problem}.")


def agent_runs_by_default(
    traces: QuerySet[OTelTrace], filters: TraceFilter | None
) -> QuerySet[OTelTrace]:
    """``traces`` without the traces that have no agent work, unless the filters say which
    traces they want (``agentRunsOnly`` or ``status``): a dashboard's run list does not fill
    up with a service's plain HTTP traces, and ``trace(id)`` still finds them."""
    if given(filters, "agent_runs_only") is None and given(filters, "status") is None:
        return traces.exclude(status=AgentStatus.NO_AGENT)
    return traces
