"""Finished spans moved in time: the same ids, attributes and tree, every instant shifted,
so that runs built once can be dated on chosen days (tests of partitions and retention,
benchmarks that must write into today's partition)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan


def moved_to(spans: Sequence[ReadableSpan], start_ns: int) -> list[ReadableSpan]:
    """``spans`` shifted so that the earliest starts at ``start_ns`` (ns since the epoch)."""
    shift = start_ns - min(s.start_time or 0 for s in spans)
    return [
        ReadableSpan(
            name=s.name,
            context=s.context,
            parent=s.parent,
            resource=s.resource,
            attributes=s.attributes,
            events=[Event(e.name, e.attributes, e.timestamp + shift) for e in s.events],
            links=s.links,
            kind=s.kind,
            status=s.status,
            start_time=(s.start_time or 0) + shift,
            end_time=(s.end_time or 0) + shift,
            instrumentation_scope=s.instrumentation_scope,
        )
        for s in spans
    ]
