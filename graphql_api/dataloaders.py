"""Per-request DataLoaders: each batches every key asked for during one GraphQL request
into one query, so nested fields cost a constant number of queries whatever the page size.

One loader per concept, keys de-duplicated by strawberry's DataLoader, results returned in
key order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from asgiref.sync import sync_to_async
from strawberry.dataloader import DataLoader

from graphql_api.span_views import TraceSpans
from tracing import selectors
from tracing.selectors import SpanRecord

# A trace, the span id the exporter recorded as its root ("" when none yet), and the
# trace's start and end (they bound where its spans are: partition pruning).
TraceKey = tuple[uuid.UUID, str, datetime | None, datetime | None]


def _trees(trace_ids: list[uuid.UUID]) -> list[TraceSpans]:
    spans = selectors.spans_by_trace(trace_ids)
    return [TraceSpans(selectors.SpanTree(spans[trace_id])) for trace_id in trace_ids]


async def _load_trees(keys: Sequence[uuid.UUID]) -> list[TraceSpans]:
    # Trees are built in the worker thread too: Python work off the event loop.
    return await sync_to_async(_trees)(list(keys))


async def _load_roots(keys: Sequence[TraceKey]) -> list[SpanRecord | None]:
    roots = await sync_to_async(selectors.root_spans)(list(keys))
    return [roots[key[0]] for key in keys]


@dataclass
class Loaders:
    """Built fresh for each request: nothing is cached across requests."""

    # Every span of a trace as views with their tree facts (one query for all the
    # traces asked in the request).
    trace_spans: DataLoader[uuid.UUID, TraceSpans] = field(
        default_factory=lambda: DataLoader(load_fn=_load_trees)
    )
    # Only the root span, for lists of traces (does not read whole traces).
    root_span: DataLoader[TraceKey, SpanRecord | None] = field(
        default_factory=lambda: DataLoader(load_fn=_load_roots)
    )
