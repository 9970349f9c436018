"""Per-request DataLoaders: each batches every key asked for during one GraphQL request
into one query, so nested fields cost a constant number of queries whatever the page size.

One loader per concept, keys de-duplicated by strawberry's DataLoader, results returned in
key order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from strawberry.dataloader import DataLoader

from tracing import selectors
from tracing.models import OTelSpan

# A trace, and the span id the exporter recorded as its root ("" when none yet).
TraceKey = tuple[uuid.UUID, str]


async def _load_trees(keys: Sequence[uuid.UUID]) -> list[selectors.SpanTree]:
    spans = await sync_to_async(selectors.spans_by_trace)(list(keys))
    return [selectors.SpanTree(spans[trace_id]) for trace_id in keys]


async def _load_roots(keys: Sequence[TraceKey]) -> list[OTelSpan | None]:
    roots = await sync_to_async(selectors.root_spans)(list(keys))
    return [roots[trace_id] for trace_id, _ in keys]


@dataclass
class Loaders:
    """Built fresh for each request: nothing is cached across requests."""

    # The whole span tree of a trace (one query for all traces asked in the request).
    span_tree: DataLoader[uuid.UUID, selectors.SpanTree] = field(
        default_factory=lambda: DataLoader(load_fn=_load_trees)
    )
    # Only the root span, for lists of traces (does not read whole traces).
    root_span: DataLoader[TraceKey, OTelSpan | None] = field(
        default_factory=lambda: DataLoader(load_fn=_load_roots)
    )
