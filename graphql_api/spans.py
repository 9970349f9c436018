"""The ``Span`` type and ``span(traceId, spanId)``.

Spans are read through the per-request loader: one query serves every span of every trace
a request touches; depth, offset, self time, parent and children come from that trace's
tree, computed in Python (``tracing.selectors.SpanTree``, ``graphql_api.span_views``).
Classification and attribute names across the three naming generations come from
``tracing.conventions.semconv`` only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import strawberry
from asgiref.sync import sync_to_async
from strawberry import Info, Parent
from strawberry.scalars import JSON

from graphql_api.context import loaders
from graphql_api.permissions import staff_only
from graphql_api.span_views import SpanStatusCode, SpanView, TraceLoader, TraceSpans, lone_view
from tracing import selectors
from tracing.conventions import semconv
from tracing.models import OTelSpan

SpanKind = strawberry.enum(
    semconv.SpanCategory,
    name="SpanKind",
    description="What a span is in an agent run (from tracing.semconv.classify).",
)


class AttributeNamingValue(StrEnum):
    """How attribute keys are presented: as stored, or renamed into one ``Generation``."""

    RAW = "raw"
    GENAI = "genai"
    LEGACY = "legacy"

    @property
    def generation(self) -> semconv.Generation | None:
        return _NAMING_GENERATION[self]


_NAMING_GENERATION = {
    AttributeNamingValue.RAW: None,
    AttributeNamingValue.GENAI: semconv.Generation.CURRENT,
    AttributeNamingValue.LEGACY: semconv.Generation.LEGACY,
}

AttributeNaming = strawberry.enum(
    AttributeNamingValue,
    name="AttributeNaming",
    description=(
        "How span attribute keys are presented: RAW as stored, GENAI renamed to current "
        "OpenTelemetry GenAI keys, LEGACY renamed to this product's legacy keys."
    ),
)


SpanStatus = strawberry.enum(
    SpanStatusCode, name="SpanStatus", description="OpenTelemetry span status code."
)


def trace_loader(info: Info) -> TraceLoader:
    return loaders(info).trace_spans.load


@strawberry.type(
    name="GenAi",
    description=(
        "GenAI facts of a span, resolved across naming generations (current GenAI, earlier "
        "GenAI, legacy): a legacy llm_call answers like a current chat span."
    ),
)
class GenAiType:
    operation: str | None = strawberry.field(
        description="gen_ai.operation.name, or inferred from the span kind."
    )
    model: str | None
    provider: str | None
    input_tokens: int | None
    output_tokens: int | None
    finish_reasons: list[str] | None
    tool_name: str | None
    tool_input: str | None = strawberry.field(
        description="Tool arguments as recorded (JSON text or plain text)."
    )
    tool_output: str | None = strawberry.field(
        description="Tool result as recorded (JSON text or plain text)."
    )
    tool_success: bool | None
    prompt: str | None = strawberry.field(
        description="The user's question, from the prompt of any generation."
    )


# Fields without resolvers read the SpanView attribute of the same name (span_views.py):
# serving 1,000 spans is attribute reads, not 1,000 x fields resolver calls.
@strawberry.type(name="Span", description="One OpenTelemetry span of an agent run.")
class SpanType:
    id: strawberry.ID = strawberry.field(description="OTel span id, 16 hex characters.")
    trace_id: strawberry.ID = strawberry.field(description="OTel trace id, 32 hex characters.")
    parent_id: strawberry.ID | None = strawberry.field(
        description="Parent span id; null for a root. May name a span never stored."
    )
    name: str
    kind: SpanKind = strawberry.field(  # type: ignore[valid-type]
        description="What the span is (agent, iteration, llm, tool, ...)."
    )
    span_kind: str = strawberry.field(
        description="OTel SpanKind as recorded (INTERNAL, SERVER, CLIENT, ...)."
    )
    op: str | None = strawberry.field(description="Sentry operation (sentry.op), e.g. gen_ai.chat.")
    started_at: datetime
    ended_at: datetime
    duration_ms: float
    offset_ms: float = strawberry.field(
        description="Milliseconds from the start of the trace to this span."
    )
    self_duration_ms: float = strawberry.field(
        description="Duration minus the time covered by its children (overlaps counted once)."
    )
    depth: int = strawberry.field(
        description="0 for a root (or an orphan whose parent never arrived)."
    )
    is_orphan: bool = strawberry.field(
        description="True when the span names a parent that was never stored."
    )
    status: SpanStatus  # type: ignore[valid-type]
    status_message: str
    scope: str = strawberry.field(description="Instrumentation scope that produced the span.")
    events: JSON = strawberry.field(description="Span events: name, timestamp, attributes.")
    gen_ai: GenAiType = strawberry.field(
        description="GenAI facts resolved across naming generations."
    )
    parent: SpanType | None
    children: list[SpanType] = strawberry.field(description="Direct children, ordered by start.")

    @strawberry.field(
        description=(
            "The attribute map as raw JSON; with naming GENAI or LEGACY, aliased keys are "
            "renamed into that generation (a dashboard on legacy keys reads new spans)."
        )
    )
    def attributes(
        self,
        root: Parent[SpanView],
        naming: AttributeNaming = AttributeNamingValue.RAW,  # type: ignore[valid-type]
    ) -> JSON:
        return semconv.translate(root.span.attributes, naming.generation)  # type: ignore[return-value,attr-defined]

    @strawberry.field(
        description=(
            "One attribute, looked up across naming generations: attribute(key: "
            '"llm.model") on a GenAI span returns its gen_ai.request.model, and the reverse.'
        )
    )
    def attribute(self, root: Parent[SpanView], key: str) -> JSON | None:
        return semconv.resolve(root.span.attributes, key)


def _find_span(trace_id: str, span_id: str) -> selectors.SpanRecord | None:
    uid = selectors.parse_trace_id(trace_id)
    if uid is None or not selectors.is_span_id(span_id):
        return None
    rows = selectors.span_rows(
        OTelSpan.objects.filter(
            selectors.within_traces([uid]), trace_id=uid, span_id=span_id.strip().lower()
        )
    )
    return rows[0] if rows else None


@strawberry.type
class Query:
    @strawberry.field(
        description=(
            "One span by OTel trace id (32 hex) and span id (16 hex); null when unknown "
            "or malformed."
        ),
        extensions=staff_only(),
    )
    async def span(
        self, info: Info, trace_id: strawberry.ID, span_id: strawberry.ID
    ) -> SpanType | None:
        span = await sync_to_async(_find_span)(str(trace_id), str(span_id))
        return lone_view(span, trace_loader(info)) if span is not None else None  # type: ignore[return-value]


@strawberry.type(
    name="SpanColumns",
    description=(
        "A trace's spans column by column, in the order of Trace.spans (by start): item i "
        "of every list describes the same span. The same facts as Trace.spans, shaped for "
        "waterfalls of thousands of spans: one list per field instead of one object per "
        "span, so a 1,000-span trace is served without completing ~10,000 object fields."
    ),
)
class SpanColumnsType:
    ids: list[strawberry.ID]
    parent_ids: list[strawberry.ID | None] = strawberry.field(
        description="Parent span ids; null for a root (the id may name a span never stored)."
    )
    names: list[str]
    kinds: list[SpanKind]  # type: ignore[valid-type]
    ops: list[str | None]
    offsets_ms: list[float] = strawberry.field(
        description="Milliseconds from the start of the trace."
    )
    durations_ms: list[float]
    self_durations_ms: list[float]
    depths: list[int]
    child_counts: list[int] = strawberry.field(description="Number of direct children.")
    statuses: list[SpanStatus]  # type: ignore[valid-type]
    status_messages: list[str]

    @classmethod
    def of(cls, spans: TraceSpans) -> SpanColumnsType:
        views = spans.ordered
        nodes = [spans.tree.node(v.id) for v in views]
        return cls(
            ids=[v.id for v in views],  # type: ignore[misc]
            parent_ids=[v.parent_id for v in views],  # type: ignore[misc]
            names=[v.name for v in views],
            kinds=[v.kind for v in views],
            ops=[v.op for v in views],
            offsets_ms=[n.offset_ms if n else 0.0 for n in nodes],
            durations_ms=[v.duration_ms for v in views],
            self_durations_ms=[n.self_duration_ms if n else 0.0 for n in nodes],
            depths=[n.depth if n else 0 for n in nodes],
            child_counts=[len(n.children) if n else 0 for n in nodes],
            statuses=[v.status for v in views],
            status_messages=[v.status_message for v in views],
        )
