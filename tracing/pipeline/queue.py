"""The queue between the agent and the exporter: the SDK's BatchSpanProcessor, holding only
agent-run spans, with every span it cannot take counted in ``tracing.export.drops``.

Only spans the tagger marked enter the queue: the exporter would ignore the others, and
under a burst they would take the room of spans that matter. The SDK's own "queue full"
check races with its worker thread (it counts a drop, then the worker makes room, and
nothing is dropped), so the decision is taken here instead, under a lock that serializes
the producers: a span is refused only when the queue is really full, and each refusal is
recorded once. Spans ended after shutdown are reported by the SDK through its processor
metrics, which this class wraps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from tracing.conventions.attributes import IN_AGENT_RUN
from tracing.export.drops import DropRecorder, drops

QUEUE_FULL = "queue_full"


class _CountingMetrics:
    """The SDK's processor-metrics object, wrapped to count what it reports dropped."""

    def __init__(self, inner: Any, recorder: DropRecorder) -> None:
        self._inner = inner
        self._recorder = recorder
        self.queue_size: Callable[[], int] = lambda: 0

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        self._inner.register_queue_size(get_queue_size)

    def drop_items(self, count: int, error_type: str = QUEUE_FULL) -> None:
        self._inner.drop_items(count, error_type)
        if error_type != QUEUE_FULL:  # queue_full is decided (and counted) in on_end
            self._recorder.record(count, error_type)

    def finish_items(self, count: int) -> None:
        self._inner.finish_items(count)


class CountingBatchSpanProcessor(BatchSpanProcessor):
    def __init__(
        self,
        span_exporter: SpanExporter,
        *,
        max_queue_size: int,
        recorder: DropRecorder = drops,
        **options: Any,
    ) -> None:
        self._recorder = recorder
        self._max_queue_size = max_queue_size
        self._producers = threading.Lock()
        self._metrics: _CountingMetrics | None = None
        super().__init__(span_exporter, max_queue_size=max_queue_size, **options)
        # SDK internals (opentelemetry-sdk 1.3x+: the lock pins the version range in use;
        # tests/test_dropped_spans.py fails loudly if they change).
        batch = self._batch_processor
        self._metrics = _CountingMetrics(batch._metrics, recorder)
        self._metrics.queue_size = lambda: len(batch._queue)
        batch._metrics = self._metrics

    def on_end(self, span: ReadableSpan) -> None:
        if not (span.attributes or {}).get(IN_AGENT_RUN):
            return
        assert self._metrics is not None
        with self._producers:
            # Only the worker takes from the queue meanwhile: room seen here stays room.
            if self._metrics.queue_size() >= self._max_queue_size:
                full = True
            else:
                full = False
                super().on_end(span)
        if full:
            self._recorder.record(1, QUEUE_FULL)

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        flushed = super().force_flush(timeout_millis)
        self._recorder.report()
        return flushed

    def shutdown(self) -> None:
        super().shutdown()
        self._recorder.report()
