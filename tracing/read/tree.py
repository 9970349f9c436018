"""A trace's spans placed as a tree: what a waterfall needs beside the stored records.

Depth, offset from the trace's start, parent, children and self time (duration minus the
union of the children's intervals, so overlapping concurrent children are not subtracted
twice), computed in Python from the one span query of ``tracing.read.spans``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tracing.conventions import semconv
from tracing.conventions.semconv import SpanCategory
from tracing.read.spans import SpanRecord


@dataclass(slots=True, eq=False)
class SpanNode:
    """One span placed in its trace."""

    span: SpanRecord
    category: SpanCategory
    depth: int = 0
    offset_ms: float = 0.0
    self_duration_ms: float = 0.0
    parent: SpanNode | None = None
    children: list[SpanNode] = field(default_factory=list)

    @property
    def is_orphan(self) -> bool:
        """The span names a parent that was never stored."""
        return bool(self.span.parent_span_id) and self.parent is None


def _covered_ms(
    start: datetime, end: datetime, intervals: Iterable[tuple[datetime, datetime]]
) -> float:
    """Milliseconds of [start, end] covered by the union of ``intervals`` (clipped)."""
    clipped = sorted((max(s, start), min(e, end)) for s, e in intervals if e > start and s < end)
    total = timedelta(0)
    cur_start: datetime | None = None
    cur_end: datetime | None = None
    for s, e in clipped:
        if cur_end is None or s > cur_end:
            if cur_start is not None and cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = s, e
        elif e > cur_end:
            cur_end = e
    if cur_start is not None and cur_end is not None:
        total += cur_end - cur_start
    return total.total_seconds() * 1000.0


class SpanTree:
    """Every span of one trace as a ``SpanNode``, ordered by start (then span id).

    Spans whose parent never arrived (orphans) and spans caught in a parent cycle are
    treated as roots, so every span appears exactly once.
    """

    def __init__(self, spans: Sequence[SpanRecord]) -> None:
        ordered = sorted(spans, key=lambda s: (s.started_at, s.span_id))
        self.nodes: list[SpanNode] = [
            SpanNode(s, semconv.classify(s.name, s.attributes, s.span_kind)) for s in ordered
        ]
        self._by_id: dict[str, SpanNode] = {node.span.span_id: node for node in self.nodes}
        for node in self.nodes:
            parent = self._by_id.get(node.span.parent_span_id)
            if parent is not None and parent is not node:
                node.parent = parent
                parent.children.append(node)
        self._place()

    def get(self, span_id: str) -> SpanNode | None:
        return self._by_id.get(span_id)

    def _place(self) -> None:
        placed: set[str] = set()

        def walk(start: SpanNode) -> None:
            stack = [(start, 0)]
            while stack:
                node, depth = stack.pop()
                if node.span.span_id in placed:
                    continue
                placed.add(node.span.span_id)
                node.depth = depth
                stack.extend((child, depth + 1) for child in reversed(node.children))

        for node in self.nodes:
            if node.parent is None:
                walk(node)
        # Whatever the walk from the roots could not reach sits in a parent cycle: cut it
        # at its earliest span.
        for node in self.nodes:
            if node.span.span_id not in placed:
                if node.parent is not None:
                    node.parent.children.remove(node)
                    node.parent = None
                walk(node)
        started_at = self.nodes[0].span.started_at if self.nodes else None
        for node in self.nodes:
            span = node.span
            node.offset_ms = (
                (span.started_at - started_at).total_seconds() * 1000.0
                if started_at is not None
                else 0.0
            )
            covered = _covered_ms(
                span.started_at,
                span.ended_at,
                ((c.span.started_at, c.span.ended_at) for c in node.children),
            )
            node.self_duration_ms = max(span.duration_ms - covered, 0.0)
