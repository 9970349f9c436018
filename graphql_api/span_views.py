"""What the ``Span`` GraphQL type reads: one ``SpanView`` per stored span.

Every scalar of a span is computed once, in Python, when its view is built, so serving a
trace of 1,000 spans is attribute reads rather than a resolver call per field. Views built
from a trace's whole tree know their depth, offset, self time, parent and children at
once; a span fetched on its own (a list's ``rootSpan``, ``span(traceId, spanId)``) loads
its trace's tree only if one of those fields is asked for, through the request's loader.

Classification and attribute resolution come from ``tracing.conventions.semconv``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tracing import selectors
from tracing.conventions import attributes as A
from tracing.conventions import semconv
from tracing.conventions.semconv import Concept, SpanCategory
from tracing.selectors import SpanRecord


class SpanStatusCode(enum.Enum):
    UNSET = "UNSET"
    OK = "OK"
    ERROR = "ERROR"


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


@dataclass(frozen=True, slots=True)
class GenAiFacts:
    """GenAI facts of one span, each resolved across the three naming generations."""

    operation: str | None
    model: str | None
    provider: str | None
    input_tokens: int | None
    output_tokens: int | None
    finish_reasons: list[str] | None
    tool_name: str | None
    tool_input: str | None
    tool_output: str | None
    tool_success: bool | None
    prompt: str | None

    @classmethod
    def of(cls, span: SpanRecord, category: SpanCategory) -> GenAiFacts:
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


# Loads the views of a whole trace, by trace id (the request's DataLoader).
TraceLoader = Callable[[Any], Awaitable["TraceSpans"]]


class SpanView:
    """A span as the GraphQL ``Span`` type reads it (attribute names = field names)."""

    __slots__ = (
        "_gen_ai",
        "_load",
        "_node",
        "_views",
        "category",
        "duration_ms",
        "ended_at",
        "events",
        "id",
        "kind",
        "name",
        "op",
        "parent_id",
        "scope",
        "span",
        "span_kind",
        "started_at",
        "status",
        "status_message",
        "trace_id",
    )

    def __init__(
        self,
        span: SpanRecord,
        category: SpanCategory,
        *,
        node: selectors.SpanNode | None = None,
        views: TraceSpans | None = None,
        load: TraceLoader | None = None,
    ) -> None:
        self.span = span
        self.category = self.kind = category
        self.id: str = span.span_id
        self.trace_id: str = span.trace_id.hex
        self.parent_id: str | None = span.parent_span_id or None
        self.name: str = span.name
        self.span_kind: str = span.span_kind
        self.op: str | None = semconv.sentry_op(category, span.attributes)
        self.started_at: datetime = span.started_at
        self.ended_at: datetime = span.ended_at
        self.duration_ms: float = span.duration_ms
        try:
            self.status = SpanStatusCode(span.status_code)
        except ValueError:
            self.status = SpanStatusCode.UNSET
        self.status_message: str = span.status_message
        self.scope: str = span.scope
        self.events: Any = span.events
        self._node = node
        self._views = views
        self._load = load
        self._gen_ai: GenAiFacts | None = None

    @property
    def gen_ai(self) -> GenAiFacts:
        if self._gen_ai is None:
            self._gen_ai = GenAiFacts.of(self.span, self.category)
        return self._gen_ai

    # Tree fields: direct from the tree when the view was built from one; otherwise an
    # awaitable (graphql-core awaits what a field returns) that loads the trace's tree.

    def _in_tree(self, pick: Callable[[SpanView], Any]) -> Any:
        load = self._load
        assert load is not None, "a view outside a tree carries its trace loader"

        async def later() -> Any:
            view = (await load(self.span.trace_id)).get(self.id)
            return pick(view) if view is not None else None

        return later()

    @property
    def depth(self) -> Any:
        return self._node.depth if self._node is not None else self._in_tree(lambda v: v.depth)

    @property
    def offset_ms(self) -> Any:
        return (
            self._node.offset_ms if self._node is not None else self._in_tree(lambda v: v.offset_ms)
        )

    @property
    def self_duration_ms(self) -> Any:
        if self._node is not None:
            return self._node.self_duration_ms
        return self._in_tree(lambda v: v.self_duration_ms)

    @property
    def is_orphan(self) -> Any:
        return (
            self._node.is_orphan if self._node is not None else self._in_tree(lambda v: v.is_orphan)
        )

    @property
    def parent(self) -> Any:
        if self._node is None or self._views is None:
            return self._in_tree(lambda v: v.parent)
        parent = self._node.parent
        return self._views.get(parent.span_id) if parent is not None else None

    @property
    def children(self) -> Any:
        if self._node is None or self._views is None:
            return self._in_tree(lambda v: v.children)
        views = self._views
        return [views.by_id[child.span_id] for child in self._node.children]


class TraceSpans:
    """Views of every span of one trace, built once per request from its ``SpanTree``."""

    def __init__(self, tree: selectors.SpanTree) -> None:
        self.tree = tree
        self.by_id: dict[str, SpanView] = {}
        self.ordered: list[SpanView] = []
        for span in tree.spans:
            node = tree.node(span.span_id)
            assert node is not None
            view = SpanView(span, node.category, node=node, views=self)
            self.by_id[span.span_id] = view
            self.ordered.append(view)

    def get(self, span_id: str) -> SpanView | None:
        return self.by_id.get(span_id)

    def root(self, root_span_id: str) -> SpanView | None:
        span = self.tree.root(root_span_id)
        return self.by_id[span.span_id] if span is not None else None


def lone_view(span: SpanRecord, load: TraceLoader) -> SpanView:
    """A view of a span fetched without its trace."""
    category = semconv.classify(span.name, span.attributes, span.span_kind)
    return SpanView(span, category, load=load)
