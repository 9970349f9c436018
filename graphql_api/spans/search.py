"""``spans(filters, ordering, first, after)``: span search, keyset-paginated.

A page is ONE query whatever its size (``tracing.read.span_search.span_page``); totalCount
one more, only when asked; fields that need the rest of a span's trace (depth, parent,
children, ...) one more for every trace on the page, through the request's loader. The
cursors are strawberry-django's format (``graphql_api.pagination``), carrying the ordering
values and the span's id.
"""

from __future__ import annotations

from collections.abc import Sequence

import strawberry
from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from strawberry import Info
from strawberry.relay import PageInfo
from strawberry.types.nodes import SelectedField, Selection
from strawberry_django.filters import apply as apply_filters

from graphql_api.context import loaders
from graphql_api.errors import BadArgument, given, parse_trace_id
from graphql_api.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    cursor_values,
    make_cursor,
    page_window,
)
from graphql_api.permissions import staff_only
from graphql_api.spans.filters import SpanFilter, SpanOrder, rollup_filter, sort_orders
from graphql_api.spans.schema import asks_tree
from graphql_api.spans.types import SpanType
from tracing.models import OTelSpan
from tracing.read.span_search import BadCursor, check_cursor_values, span_page
from tracing.read.spans import SpanRecord
from tracing.read.tree import SpanTree


@strawberry.type(name="SpanEdge", description="One span of a page, with its cursor.")
class SpanEdge:
    cursor: str
    node: SpanType


@strawberry.type(name="SpanConnection", description="A page of spans.")
class SpanConnection:
    edges: list[SpanEdge]
    page_info: PageInfo
    spans: strawberry.Private[QuerySet[OTelSpan]]

    @strawberry.field(description="Spans matching the filters (all pages).")
    async def total_count(self) -> int:
        return await sync_to_async(self.spans.order_by().count)()


def _under(selections: Sequence[Selection], path: tuple[str, ...]) -> list[Selection]:
    """The selections reached from ``selections`` through the fields named by ``path``
    (fragments are looked through)."""
    if not path:
        return list(selections)
    out: list[Selection] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name == path[0]:
                out.extend(_under(selection.selections, path[1:]))
        else:
            out.extend(_under(selection.selections, path))
    return out


def _asks_tree(info: Info) -> bool:
    return asks_tree(_under(info.selected_fields, (info.field_name, "edges", "node")))


async def _nodes(records: list[SpanRecord], info: Info) -> list[SpanType]:
    """The ``Span`` of each record: placed in its whole trace only when the query asks a
    field that needs it (one query for all the page's traces)."""
    if records and _asks_tree(info):
        trace_ids = list(dict.fromkeys(r.trace_id for r in records))
        loaded = await loaders(info).trace_spans.load_many(trace_ids)
        trees = dict(zip(trace_ids, loaded, strict=True))
        placed = [trees[r.trace_id].get(r.span_id) for r in records]
        return [
            p if p is not None else SpanType.of(SpanTree([r]).nodes[0], r.trace_id.hex)
            for p, r in zip(placed, records, strict=True)
        ]
    return [SpanType.of(SpanTree([r]).nodes[0], r.trace_id.hex) for r in records]


@strawberry.type
class Query:
    @strawberry.field(
        description=(
            "Spans of every run, newest first unless ordered otherwise; keyset-paginated "
            f"({DEFAULT_PAGE_SIZE} by default, at most {MAX_PAGE_SIZE} per page)."
        ),
        extensions=staff_only(),
    )
    async def spans(
        self,
        info: Info,
        filters: SpanFilter | None = strawberry.UNSET,
        ordering: list[SpanOrder] = [],  # noqa: B006 -- the schema's default; never mutated
        first: int | None = strawberry.UNSET,
        after: str | None = strawberry.UNSET,
    ) -> SpanConnection:
        # UNSET defaults: the schema shows no "= null" (as the traces connection).
        filters = None if filters is strawberry.UNSET else filters
        first = None if first is strawberry.UNSET else first
        after = None if after is strawberry.UNSET else after
        size, _ = page_window(first, None)
        assert size is not None
        order = sort_orders(ordering)
        after_values = cursor_values("after", after) if after is not None else None
        if after_values is not None:
            try:
                check_cursor_values(order, after_values)
            except BadCursor as exc:
                raise BadArgument(f"Invalid cursor in 'after': {exc}.") from None
        # Building the queryset checks the filters; it runs no query.
        spans = apply_filters(filters, OTelSpan.objects.all(), info)
        keys = rollup_filter(filters)
        trace_id = given(filters, "trace_id")
        trace = parse_trace_id(str(trace_id)) if trace_id is not None else None
        # Other filters get a wide window; a trace's spans are bounded by its row instead.
        page = await sync_to_async(span_page)(
            spans, order, after_values, size, keys, keys is None and trace is None, trace
        )
        records = [record for _, record in page.spans]
        nodes = await _nodes(records, info)
        edges = [
            SpanEdge(cursor=make_cursor(values), node=node)
            for (values, _), node in zip(page.spans, nodes, strict=True)
        ]
        return SpanConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            spans=spans,
        )
