"""The ``Span``, ``GenAi`` and ``SpanColumns`` types, built from a trace's span tree.

Every scalar of a ``Span`` is computed once, in Python, when the span's ``SpanType`` is
built from its ``tracing.read.tree.SpanNode``, and its fields have no resolvers: serving a
trace of 1,000 spans is attribute reads rather than a resolver call per field. Only
``genAi``, ``attributes`` and ``attribute`` run a resolver, and only when asked.

Classification and attribute resolution across the three naming generations come from
``tracing.conventions.semconv`` only; span statuses are OpenTelemetry's own ``StatusCode``.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any

import strawberry
from opentelemetry.trace import StatusCode
from strawberry import Parent
from strawberry.scalars import JSON

from tracing.conventions import attributes as A
from tracing.conventions import semconv
from tracing.conventions.semconv import Concept, Generation, SpanCategory
from tracing.read.spans import SpanRecord
from tracing.read.tree import SpanNode, SpanTree

SpanKind = strawberry.enum(
    semconv.SpanCategory,
    name="SpanKind",
    description="What a span is in an agent run (from tracing.conventions.semconv.classify).",
)


@strawberry.enum(
    name="AttributeNaming",
    description=(
        "How span attribute keys are presented: RAW as stored, GENAI renamed to current "
        "OpenTelemetry GenAI keys, LEGACY renamed to this product's legacy keys, "
        "OPENINFERENCE renamed to OpenInference keys (llm.model_name, input.value, ...)."
    ),
)
class AttributeNaming(StrEnum):
    RAW = "raw"
    GENAI = "genai"
    LEGACY = "legacy"
    OPENINFERENCE = "openinference"

    @property
    def generation(self) -> Generation | None:
        """The naming generation keys are renamed into; None: as stored."""
        return _GENERATION_OF[self]


_GENERATION_OF = {
    AttributeNaming.RAW: None,
    AttributeNaming.GENAI: Generation.CURRENT,
    AttributeNaming.LEGACY: Generation.LEGACY,
    AttributeNaming.OPENINFERENCE: Generation.OPENINFERENCE,
}

SpanStatus = strawberry.enum(
    StatusCode, name="SpanStatus", description="OpenTelemetry span status code."
)

# The exporter stores a status code by its name; anything else reads as UNSET.
_STATUS_BY_NAME = {code.name: code for code in StatusCode}

# The operation a span of each kind performs, when it does not say so itself.
_OPERATION_OF = {
    SpanCategory.AGENT: A.OP_INVOKE_AGENT,
    SpanCategory.LLM: A.OP_CHAT,
    SpanCategory.TOOL: A.OP_EXECUTE_TOOL,
}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _optional_int(value: Any) -> int | None:
    return semconv.as_int(value) if value is not None else None


@strawberry.type(
    name="GenAi",
    description=(
        "GenAI facts of a span, resolved across naming generations (current GenAI, earlier "
        "GenAI, legacy, OpenInference): a legacy llm_call or an OpenInference LLM span "
        "answers like a current chat span."
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

    @classmethod
    def of(cls, span: SpanRecord, category: SpanCategory) -> GenAiType:
        attrs = span.attributes
        operation = attrs.get(A.GEN_AI_OPERATION_NAME)
        reasons = semconv.get(attrs, Concept.FINISH_REASONS)
        if category is SpanCategory.TOOL:
            tool = semconv.tool_name(span.name, attrs)
        else:
            tool = _text(semconv.get(attrs, Concept.TOOL_NAME))
        prompt = semconv.get(attrs, Concept.PROMPT)
        return cls(
            operation=operation
            if isinstance(operation, str) and operation
            else _OPERATION_OF.get(category),
            model=semconv.model(span.name, attrs, category),
            provider=_text(semconv.get(attrs, Concept.PROVIDER)),
            input_tokens=_optional_int(semconv.get(attrs, Concept.INPUT_TOKENS)),
            output_tokens=_optional_int(semconv.get(attrs, Concept.OUTPUT_TOKENS)),
            finish_reasons=None
            if reasons is None
            else [str(r) for r in (reasons if isinstance(reasons, list | tuple) else [reasons])],
            tool_name=tool,
            tool_input=_text(semconv.get(attrs, Concept.TOOL_INPUT)),
            tool_output=_text(semconv.get(attrs, Concept.TOOL_OUTPUT)),
            tool_success=semconv.as_bool(semconv.get(attrs, Concept.TOOL_SUCCESS)),
            prompt=semconv.prompt_text(prompt) if prompt is not None else None,
        )


def _gen_ai(root: Parent[SpanType]) -> GenAiType:
    return GenAiType.of(root.record, root.kind)


@strawberry.type(name="Span", description="One OpenTelemetry span of an agent run.")
class SpanType:
    # Ids and events are held as the plain values they are (graphql_type says what the
    # schema shows): no per-span conversion when a trace of 1,000 spans is built.
    id: str = strawberry.field(
        graphql_type=strawberry.ID, description="OTel span id, 16 hex characters."
    )
    trace_id: str = strawberry.field(
        graphql_type=strawberry.ID, description="OTel trace id, 32 hex characters."
    )
    parent_id: str | None = strawberry.field(
        graphql_type=strawberry.ID | None,
        description="Parent span id; null for a root. May name a span never stored.",
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
    events: list[Any] = strawberry.field(
        graphql_type=JSON, description="Span events: name, timestamp, attributes."
    )
    gen_ai: GenAiType = strawberry.field(
        resolver=_gen_ai, description="GenAI facts resolved across naming generations."
    )
    parent: SpanType | None
    children: list[SpanType] = strawberry.field(description="Direct children, ordered by start.")
    record: strawberry.Private[SpanRecord]

    @classmethod
    def of(cls, node: SpanNode, trace_id: str) -> SpanType:
        """The span of ``node`` (in the trace ``trace_id``, as hex), without parent and
        children (``of_tree`` links them)."""
        span = node.span
        return cls(
            id=span.span_id,
            trace_id=trace_id,
            parent_id=span.parent_span_id or None,
            name=span.name,
            kind=node.category,
            span_kind=span.span_kind,
            op=semconv.sentry_op(node.category, span.attributes),
            started_at=span.started_at,
            ended_at=span.ended_at,
            duration_ms=span.duration_ms,
            offset_ms=node.offset_ms,
            self_duration_ms=node.self_duration_ms,
            depth=node.depth,
            is_orphan=node.is_orphan,
            status=_STATUS_BY_NAME.get(span.status_code, StatusCode.UNSET),
            status_message=span.status_message,
            scope=span.scope,
            events=span.events,
            parent=None,
            children=[],
            record=span,
        )

    @classmethod
    def of_tree(cls, tree: SpanTree) -> dict[str, SpanType]:
        """Every span of a trace by span id, in the tree's order (by start), linked to
        its parent and children."""
        if not tree.nodes:
            return {}
        trace_id = tree.nodes[0].span.trace_id.hex
        spans = {node.span.span_id: cls.of(node, trace_id) for node in tree.nodes}
        # Nodes come by start, so each parent's children do too (as in the tree).
        for node in tree.nodes:
            if node.parent is not None:
                span, parent = spans[node.span.span_id], spans[node.parent.span.span_id]
                span.parent = parent
                parent.children.append(span)
        return spans

    @strawberry.field(
        description=(
            "The attribute map as raw JSON; with naming GENAI or LEGACY, aliased keys are "
            "renamed into that generation (a dashboard on legacy keys reads new spans)."
        )
    )
    def attributes(
        self,
        naming: AttributeNaming = AttributeNaming.RAW,
    ) -> JSON:
        return semconv.translate(self.record.attributes, naming.generation)  # type: ignore[return-value]

    @strawberry.field(
        description=(
            "One attribute, looked up across naming generations: attribute(key: "
            '"llm.model") on a GenAI span returns its gen_ai.request.model, and the reverse.'
        )
    )
    def attribute(self, key: str) -> JSON | None:
        return semconv.resolve(self.record.attributes, key)

    @strawberry.field(
        description="service.name of the process that sent the span ('' when unknown)."
    )
    def service_name(self) -> str:
        return self.record.service_name


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
    ids: list[str] = strawberry.field(graphql_type=list[strawberry.ID])
    parent_ids: list[str | None] = strawberry.field(
        graphql_type=list[strawberry.ID | None],
        description="Parent span ids; null for a root (the id may name a span never stored).",
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
    def of(cls, spans: list[SpanType]) -> SpanColumnsType:
        return cls(
            ids=[s.id for s in spans],
            parent_ids=[s.parent_id for s in spans],
            names=[s.name for s in spans],
            kinds=[s.kind for s in spans],
            ops=[s.op for s in spans],
            offsets_ms=[s.offset_ms for s in spans],
            durations_ms=[s.duration_ms for s in spans],
            self_durations_ms=[s.self_duration_ms for s in spans],
            depths=[s.depth for s in spans],
            child_counts=[len(s.children) for s in spans],
            statuses=[s.status for s in spans],
            status_messages=[s.status_message for s in spans],
        )
