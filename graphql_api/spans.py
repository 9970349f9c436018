"""The ``Span`` type and ``span(traceId, spanId)``.

Spans are read through the per-request span-tree loader: one query serves every span of
every trace a request touches, and depth, offset, self time, parent and children come from
that tree in Python. Classification and attribute names across the three naming
generations come from ``tracing.semconv`` only.
"""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import Any

import strawberry
from asgiref.sync import sync_to_async
from strawberry import Info, Parent
from strawberry.scalars import JSON

from graphql_api.context import loaders
from graphql_api.permissions import staff_only
from tracing import attributes as A
from tracing import selectors, semconv
from tracing.models import OTelSpan
from tracing.semconv import Concept

SpanKind = strawberry.enum(
    semconv.SpanCategory,
    name="SpanKind",
    description="What a span is in an agent run (from tracing.semconv.classify).",
)
AttributeNaming = strawberry.enum(
    semconv.NamingGeneration,
    name="AttributeNaming",
    description=(
        "How span attribute keys are presented: RAW as stored, GENAI renamed to current "
        "OpenTelemetry GenAI keys, LEGACY renamed to this product's legacy keys."
    ),
)


@strawberry.enum(name="SpanStatus", description="OpenTelemetry span status code.")
class SpanStatusCode(enum.Enum):
    UNSET = "UNSET"
    OK = "OK"
    ERROR = "ERROR"


async def _node(span: OTelSpan, info: Info) -> selectors.SpanNode:
    tree = await loaders(info).span_tree.load(span.trace_id)
    node = tree.node(span.span_id)
    assert node is not None, "a span is always in its own trace's tree"
    return node


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


@strawberry.type(
    name="GenAi",
    description=(
        "GenAI facts of a span, resolved across naming generations (current GenAI, earlier "
        "GenAI, legacy): a legacy llm_call answers like a current chat span."
    ),
)
class GenAiType:
    span: strawberry.Private[OTelSpan]

    @property
    def _attrs(self) -> dict[str, Any]:
        return self.span.attributes

    @strawberry.field(description="gen_ai.operation.name, or inferred from the span kind.")
    def operation(self) -> str | None:
        value = self._attrs.get(A.GEN_AI_OPERATION_NAME)
        if isinstance(value, str) and value:
            return value
        category = semconv.classify(self.span.name, self._attrs, self.span.span_kind)
        return {
            semconv.SpanCategory.AGENT: A.OP_INVOKE_AGENT,
            semconv.SpanCategory.LLM: A.OP_CHAT,
            semconv.SpanCategory.TOOL: A.OP_EXECUTE_TOOL,
        }.get(category)

    @strawberry.field
    def model(self) -> str | None:
        category = semconv.classify(self.span.name, self._attrs, self.span.span_kind)
        return semconv.model(self.span.name, self._attrs, category)

    @strawberry.field
    def provider(self) -> str | None:
        value = semconv.get(self._attrs, Concept.PROVIDER)
        return str(value) if value is not None else None

    @strawberry.field
    def input_tokens(self) -> int | None:
        value = semconv.get(self._attrs, Concept.INPUT_TOKENS)
        return semconv.as_int(value) if value is not None else None

    @strawberry.field
    def output_tokens(self) -> int | None:
        value = semconv.get(self._attrs, Concept.OUTPUT_TOKENS)
        return semconv.as_int(value) if value is not None else None

    @strawberry.field
    def finish_reasons(self) -> list[str] | None:
        value = semconv.get(self._attrs, Concept.FINISH_REASONS)
        if value is None:
            return None
        if isinstance(value, list | tuple):
            return [str(v) for v in value]
        return [str(value)]

    @strawberry.field
    def tool_name(self) -> str | None:
        category = semconv.classify(self.span.name, self._attrs, self.span.span_kind)
        if category is not semconv.SpanCategory.TOOL:
            value = semconv.get(self._attrs, Concept.TOOL_NAME)
            return str(value) if value is not None else None
        return semconv.tool_name(self.span.name, self._attrs)

    @strawberry.field(description="Tool arguments as recorded (JSON text or plain text).")
    def tool_input(self) -> str | None:
        return _json_text(semconv.get(self._attrs, Concept.TOOL_INPUT))

    @strawberry.field(description="Tool result as recorded (JSON text or plain text).")
    def tool_output(self) -> str | None:
        return _json_text(semconv.get(self._attrs, Concept.TOOL_OUTPUT))

    @strawberry.field
    def tool_success(self) -> bool | None:
        return semconv.as_bool(semconv.get(self._attrs, Concept.TOOL_SUCCESS))

    @strawberry.field(description="The user's question, from the prompt of any generation.")
    def prompt(self) -> str | None:
        value = semconv.get(self._attrs, Concept.PROMPT)
        return semconv.prompt_text(value) if value is not None else None


@strawberry.type(name="Span", description="One OpenTelemetry span of an agent run.")
class SpanType:
    @strawberry.field(description="OTel span id, 16 hex characters.")
    def id(self, root: Parent[OTelSpan]) -> strawberry.ID:
        return strawberry.ID(root.span_id)

    @strawberry.field(description="OTel trace id, 32 hex characters.")
    def trace_id(self, root: Parent[OTelSpan]) -> strawberry.ID:
        return strawberry.ID(root.trace_id.hex)

    @strawberry.field(description="Parent span id; null for a root. May name a span never stored.")
    def parent_id(self, root: Parent[OTelSpan]) -> strawberry.ID | None:
        return strawberry.ID(root.parent_span_id) if root.parent_span_id else None

    @strawberry.field
    def name(self, root: Parent[OTelSpan]) -> str:
        return root.name

    @strawberry.field(description="What the span is (agent, iteration, llm, tool, ...).")
    def kind(self, root: Parent[OTelSpan]) -> SpanKind:  # type: ignore[valid-type]
        return semconv.classify(root.name, root.attributes, root.span_kind)

    @strawberry.field(description="OTel SpanKind as recorded (INTERNAL, SERVER, CLIENT, ...).")
    def span_kind(self, root: Parent[OTelSpan]) -> str:
        return root.span_kind

    @strawberry.field(description="Sentry operation (sentry.op), e.g. gen_ai.chat.")
    def op(self, root: Parent[OTelSpan]) -> str | None:
        category = semconv.classify(root.name, root.attributes, root.span_kind)
        return semconv.sentry_op(category, root.attributes)

    @strawberry.field
    def started_at(self, root: Parent[OTelSpan]) -> datetime:
        return root.started_at

    @strawberry.field
    def ended_at(self, root: Parent[OTelSpan]) -> datetime:
        return root.ended_at

    @strawberry.field
    def duration_ms(self, root: Parent[OTelSpan]) -> float:
        return root.duration_ms

    @strawberry.field(description="Milliseconds from the start of the trace to this span.")
    async def offset_ms(self, root: Parent[OTelSpan], info: Info) -> float:
        return (await _node(root, info)).offset_ms

    @strawberry.field(
        description="Duration minus the time covered by its children (overlaps counted once)."
    )
    async def self_duration_ms(self, root: Parent[OTelSpan], info: Info) -> float:
        return (await _node(root, info)).self_duration_ms

    @strawberry.field(description="0 for a root (or an orphan whose parent never arrived).")
    async def depth(self, root: Parent[OTelSpan], info: Info) -> int:
        return (await _node(root, info)).depth

    @strawberry.field(description="True when the span names a parent that was never stored.")
    async def is_orphan(self, root: Parent[OTelSpan], info: Info) -> bool:
        return (await _node(root, info)).is_orphan

    @strawberry.field
    def status(self, root: Parent[OTelSpan]) -> SpanStatusCode:
        try:
            return SpanStatusCode(root.status_code)
        except ValueError:
            return SpanStatusCode.UNSET

    @strawberry.field
    def status_message(self, root: Parent[OTelSpan]) -> str:
        return root.status_message

    @strawberry.field(description="Instrumentation scope that produced the span.")
    def scope(self, root: Parent[OTelSpan]) -> str:
        return root.scope

    @strawberry.field(
        description=(
            "The attribute map as raw JSON; with naming GENAI or LEGACY, aliased keys are "
            "renamed into that generation (a dashboard on legacy keys reads new spans)."
        )
    )
    def attributes(
        self,
        root: Parent[OTelSpan],
        naming: AttributeNaming = semconv.NamingGeneration.RAW,  # type: ignore[valid-type]
    ) -> JSON:
        return semconv.translate(root.attributes, naming)  # type: ignore[return-value]

    @strawberry.field(
        description=(
            "One attribute, looked up across naming generations: attribute(key: "
            '"llm.model") on a GenAI span returns its gen_ai.request.model, and the reverse.'
        )
    )
    def attribute(self, root: Parent[OTelSpan], key: str) -> JSON | None:
        return semconv.resolve(root.attributes, key)

    @strawberry.field(description="GenAI facts resolved across naming generations.")
    def gen_ai(self, root: Parent[OTelSpan]) -> GenAiType:
        return GenAiType(span=root)

    @strawberry.field(description="Span events: name, timestamp, attributes.")
    def events(self, root: Parent[OTelSpan]) -> JSON:
        return root.events

    @strawberry.field
    async def parent(self, root: Parent[OTelSpan], info: Info) -> SpanType | None:
        return (await _node(root, info)).parent  # type: ignore[return-value]

    @strawberry.field(description="Direct children, ordered by start.")
    async def children(self, root: Parent[OTelSpan], info: Info) -> list[SpanType]:
        return (await _node(root, info)).children  # type: ignore[return-value]


def _find_span(trace_id: str, span_id: str) -> OTelSpan | None:
    uid = selectors.parse_trace_id(trace_id)
    if uid is None or not selectors.is_span_id(span_id):
        return None
    return OTelSpan.objects.filter(trace_id=uid, span_id=span_id.strip().lower()).first()


@strawberry.type
class Query:
    @strawberry.field(
        description=(
            "One span by OTel trace id (32 hex) and span id (16 hex); null when unknown "
            "or malformed."
        ),
        extensions=staff_only(),
    )
    async def span(self, trace_id: strawberry.ID, span_id: strawberry.ID) -> SpanType | None:
        return await sync_to_async(_find_span)(str(trace_id), str(span_id))  # type: ignore[return-value]
