"""Loads every span of a trace, placed in its tree, by trace id: one query for all the
traces a request asks for, plus one for their time bounds unless the keys carry them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from asgiref.sync import sync_to_async

from graphql_api.spans.types import SpanType
from tracing.read.spans import TraceExtent, spans_by_trace
from tracing.read.tree import SpanTree

# A trace id, or the trace row's extent when the request already read it (its bounds
# spare the query that would look them up for partition pruning).
Key = uuid.UUID | TraceExtent
# The trace's spans by span id, in start order.
Result = dict[str, SpanType]


def trace_id_of(key: Key) -> uuid.UUID:
    """The cache key: one load per trace, whether asked for by id or with its extent."""
    return key.trace_id if isinstance(key, TraceExtent) else key


def _trees(keys: list[Key]) -> dict[uuid.UUID, Result]:
    known = {k.trace_id: k for k in keys if isinstance(k, TraceExtent)}
    trace_ids = list(dict.fromkeys(trace_id_of(k) for k in keys))
    spans = spans_by_trace(trace_ids, known)
    return {trace_id: SpanType.of_tree(SpanTree(spans[trace_id])) for trace_id in trace_ids}


async def load(keys: Sequence[Key]) -> list[Result]:
    # Trees are built in the worker thread too: Python work off the event loop.
    trees = await sync_to_async(_trees)(list(keys))
    return [trees[trace_id_of(key)] for key in keys]
