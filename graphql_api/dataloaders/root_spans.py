"""Loads the root span of a trace (not the whole trace), for lists of traces: at most two
queries for all the traces a request asks for."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from asgiref.sync import sync_to_async

from tracing.read.spans import SpanRecord, root_spans

# A trace, the span id the exporter recorded as its root ("" when none yet), and the
# trace's start and end (they bound the day partitions its spans are in).
Key = tuple[uuid.UUID, str, datetime | None, datetime | None]
Result = SpanRecord | None


async def load(keys: Sequence[Key]) -> list[Result]:
    roots = await sync_to_async(root_spans)(list(dict.fromkeys(keys)))
    return [roots[key[0]] for key in keys]
