"""Loads every span of a trace, placed in its tree, by trace id: one query for all the
traces a request asks for."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from asgiref.sync import sync_to_async

from graphql_api.spans.types import SpanType
from tracing.read.spans import spans_by_trace
from tracing.read.tree import SpanTree

Key = uuid.UUID
# The trace's spans by span id, in start order.
Result = dict[str, SpanType]


def _trees(keys: list[Key]) -> dict[Key, Result]:
    spans = spans_by_trace(keys)
    return {trace_id: SpanType.of_tree(SpanTree(spans[trace_id])) for trace_id in keys}


async def load(keys: Sequence[Key]) -> list[Result]:
    # Trees are built in the worker thread too: Python work off the event loop.
    trees = await sync_to_async(_trees)(list(dict.fromkeys(keys)))
    return [trees[key] for key in keys]
