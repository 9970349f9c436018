"""The ``Trace`` type and ``TraceConnection`` (a page of traces).

Nested ``conversation`` / ``userMessage`` / ``aiMessage`` become joins through the
optimizer; spans and root spans come from the per-request loaders, so a page costs the
same number of queries whatever its size.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import Info, Parent
from strawberry_django.relay import DjangoCursorConnection

from graphql_api.column_fields import reads_no_database
from graphql_api.context import loaders
from graphql_api.pagination import BoundedPageMixin
from graphql_api.spans.schema import placed_span
from graphql_api.spans.types import SpanColumnsType, SpanType
from graphql_api.traces.filters import TraceFilter
from graphql_api.traces.ordering import TraceOrder, ordered_traces
from tracing.models import AgentStatus, OTelTrace
from tracing.read.spans import TraceExtent

if TYPE_CHECKING:
    from graphql_api.conversations import ConversationType, MessageType


@strawberry_django.type(
    OTelTrace,
    name="Trace",
    description="One agent run, recorded as one OpenTelemetry trace.",
    filters=TraceFilter,
    ordering=TraceOrder,
)
class TraceType:
    @strawberry_django.field(description="OTel trace id, 32 hex characters.")
    @reads_no_database
    def id(self, root: Parent[OTelTrace]) -> strawberry.ID:
        return strawberry.ID(root.id.hex)

    agent_name: str
    query: str = strawberry_django.field(description="The user's question.")
    status: str = strawberry_django.field(
        description=(
            f"{AgentStatus.COMPLETED.value} | {AgentStatus.ERROR.value} | "
            f"{AgentStatus.MAX_ITERATIONS.value}, or {AgentStatus.RUNNING.value} until the "
            f"agent span arrives; {AgentStatus.NO_AGENT.value} while no span of the trace is "
            "agent work (agent, iteration, LLM or tool span): such traces are left out of "
            "the trace list unless asked for (TraceFilter.agentRunsOnly)."
        )
    )
    service_name: str = strawberry_django.field(
        description=(
            "service.name of the agent span's process (until it arrives: of the earliest "
            "span); this product's own runs carry OTEL_SERVICE_NAME."
        )
    )
    session_id: str = strawberry_django.field(
        description=(
            "The run's conversation/session id as sent (gen_ai.conversation.id, session.id, "
            "conversation.id), '' when none. Kept as text whether or not it is one of this "
            "product's conversations (conversation links those)."
        )
    )
    model: str = strawberry_django.field(description="The model of the run ('' when none).")
    started_at: datetime | None
    ended_at: datetime | None
    total_duration_ms: float | None = strawberry_django.field(
        description="Duration of the whole agent run (the agent span), in milliseconds."
    )
    total_input_tokens: int
    total_output_tokens: int
    iteration_count: int
    tool_call_count: int
    tools_used: list[str] = strawberry_django.field(
        description="Distinct names of the tools any span of the run called."
    )
    span_count: int
    conversation: Annotated[ConversationType, strawberry.lazy("graphql_api.conversations")] | None
    user_message: Annotated[MessageType, strawberry.lazy("graphql_api.conversations")] | None
    ai_message: Annotated[MessageType, strawberry.lazy("graphql_api.conversations")] | None

    @strawberry_django.field(
        description=(
            "The agent span (invoke_agent / agent_run); when it is missing, the first span "
            "whose parent never arrived."
        ),
    )
    async def root_span(self, root: Parent[OTelTrace], info: Info) -> SpanType | None:
        span = await loaders(info).root_span.load(
            (root.id, root.root_span_id, root.started_at, root.ended_at)
        )
        return await placed_span(span, info, TraceExtent.of(root)) if span is not None else None

    @classmethod
    def get_queryset(
        cls, queryset: QuerySet[OTelTrace], info: Info, **kwargs: Any
    ) -> QuerySet[OTelTrace]:
        return ordered_traces(queryset)

    @classmethod
    def resolve_id_attr(cls) -> str:
        # strawberry-django's root connection resolver asks the type for its id column
        # (a relay.Node method). Trace ids are OTel ids, not relay global ids, so the
        # type answers that one question without becoming a Node.
        return "id"

    @strawberry_django.field(
        description="Every span of the run, flat, ordered by start (with depth and offsetMs).",
    )
    async def spans(self, root: Parent[OTelTrace], info: Info) -> list[SpanType]:
        return list((await loaders(info).trace_spans.load(TraceExtent.of(root))).values())

    @strawberry_django.field(
        description=(
            "The same spans column by column (see SpanColumns): the fast way to draw a "
            "waterfall of thousands of spans."
        ),
    )
    async def span_columns(self, root: Parent[OTelTrace], info: Info) -> SpanColumnsType:
        spans = await loaders(info).trace_spans.load(TraceExtent.of(root))
        return SpanColumnsType.of(list(spans.values()))


@strawberry.type(name="TraceConnection", description="A page of traces.")
class TraceConnection(BoundedPageMixin, DjangoCursorConnection[TraceType]):  # type: ignore[type-var]
    pass
