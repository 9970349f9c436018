"""The queue between the agent and the exporter: the SDK's BatchSpanProcessor, holding only
agent-run spans, with every span it drops counted in ``tracing.export.drops``.

Only spans the tagger marked enter the queue: the exporter would ignore the others, and
under a burst they would take the room of spans that matter. The SDK drops a span when
its queue is full (and after shutdown) and logs "Queue full" only once; it reports each
drop to its internal processor-metrics object, so this subclass puts a counting one in
its place (delegating to the SDK's own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from tracing.conventions.attributes import IN_AGENT_RUN
from tracing.export.drops import DropRecorder, drops


class _CountingMetrics:
    def __init__(self, inner: Any, recorder: DropRecorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        self._inner.register_queue_size(get_queue_size)

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        self._inner.drop_items(count, error_type)
        self._recorder.record(count, error_type)

    def finish_items(self, count: int) -> None:
        self._inner.finish_items(count)


class CountingBatchSpanProcessor(BatchSpanProcessor):
    def __init__(
        self, span_exporter: SpanExporter, *, recorder: DropRecorder = drops, **options: Any
    ) -> None:
        super().__init__(span_exporter, **options)
        self._recorder = recorder
        batch = self._batch_processor
        if not hasattr(batch, "_metrics"):  # pragma: no cover - an SDK without the hook
            raise RuntimeError("this opentelemetry-sdk has no processor metrics to count drops")
        batch._metrics = _CountingMetrics(batch._metrics, recorder)

    def on_end(self, span: ReadableSpan) -> None:
        if (span.attributes or {}).get(IN_AGENT_RUN):
            super().on_end(span)

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        flushed = super().force_flush(timeout_millis)
        self._recorder.report()
        return flushed

    def shutdown(self) -> None:
        super().shutdown()
        self._recorder.report()
