"""``span(traceId, spanId)``, and how a span fetched without its trace is served.

A span read on its own (``span``, a list's ``rootSpan``) is placed in a tree of itself, so
its scalars cost nothing more. Only when the query asks for a field that depends on the
rest of the trace (depth, offset, self time, orphan, parent, children) is the trace's
whole tree loaded, through the request's loader: one query for every trace asked.
"""

from __future__ import annotations

from collections.abc import Sequence

import strawberry
from asgiref.sync import sync_to_async
from strawberry import Info
from strawberry.types.nodes import SelectedField, Selection

from graphql_api.context import loaders
from graphql_api.permissions import staff_only
from graphql_api.spans.types import SpanType
from tracing.read.spans import SpanRecord, TraceExtent, find_span
from tracing.read.tree import SpanTree

# The Span fields whose values depend on the other spans of the trace.
TREE_FIELDS = frozenset({"depth", "offsetMs", "selfDurationMs", "isOrphan", "parent", "children"})


def asks_tree(selections: Sequence[Selection]) -> bool:
    for selection in selections:
        if isinstance(selection, SelectedField) and selection.name in TREE_FIELDS:
            return True
        # A field's own selections belong to another object; a fragment's to this one.
        if not isinstance(selection, SelectedField) and asks_tree(selection.selections):
            return True
    return False


async def placed_span(span: SpanRecord, info: Info, trace: TraceExtent | None = None) -> SpanType:
    """The ``Span`` of a record fetched without its trace's other spans, for the field
    ``info`` resolves (``trace``: its trace row's extent, when the caller has read it)."""
    if any(asks_tree(field.selections) for field in info.selected_fields):
        spans = await loaders(info).trace_spans.load(trace or span.trace_id)
        placed = spans.get(span.span_id)
        if placed is not None:
            return placed
        # Gone from the trace since it was read: it is all of its trace we know.
    return SpanType.of(SpanTree([span]).nodes[0], span.trace_id.hex)


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
        span = await sync_to_async(find_span)(str(trace_id), str(span_id))
        return await placed_span(span, info) if span is not None else None
