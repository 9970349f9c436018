"""The process's telemetry start-up: ``init_telemetry()``, called once by each entry point.

The entry points are the ASGI application (``campus_core/asgi.py``), the management
commands that run the agent, and the test session. ``init_telemetry`` is idempotent and
wires, in order: the TracerProvider (the agent-run tagger first, then the counting
BatchSpanProcessor → ``PostgresSpanExporter``), auto-instrumentation, the Sentry bridge
(a second consumer of the same spans, when ``SENTRY_DSN`` is set) and the metrics
provider. With ``OTEL_SDK_DISABLED`` only Sentry's error capture and metrics start.
``shutdown_telemetry()`` flushes what is pending (also registered with ``atexit``).
"""

from __future__ import annotations

import atexit
import logging
import threading

from django.conf import settings
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider

from campus_core.observability import sentry_setup
from campus_core.observability.metrics import metrics
from tracing.export import PostgresSpanExporter
from tracing.export.drops import drops
from tracing.pipeline.instrumentation import enable_auto_instrumentation
from tracing.pipeline.queue import CountingBatchSpanProcessor
from tracing.pipeline.tagger import AgentRunTaggerProcessor

logger = logging.getLogger(__name__)

TRACER_NAME = "campuscore.agent"
_lock = threading.Lock()
_started = False
_provider: TracerProvider | None = None


def service_resource() -> Resource:
    """This process's resource: its spans are stored under ``OTEL_SERVICE_NAME``."""
    return Resource.create({SERVICE_NAME: settings.OTEL_SERVICE_NAME})


def build_provider(exporter: PostgresSpanExporter | None = None) -> TracerProvider:
    """A provider wired as in production; used by ``init_telemetry`` and by tests/benchmarks."""
    provider = TracerProvider(resource=service_resource())
    provider.add_span_processor(AgentRunTaggerProcessor())
    provider.add_span_processor(
        CountingBatchSpanProcessor(
            exporter or PostgresSpanExporter(),
            schedule_delay_millis=settings.TRACING_SCHEDULE_DELAY_MS,
            max_export_batch_size=settings.TRACING_MAX_EXPORT_BATCH_SIZE,
            max_queue_size=settings.TRACING_MAX_QUEUE_SIZE,
        )
    )
    return provider


def init_telemetry() -> TracerProvider | None:
    """Start telemetry once per process; later calls return the same provider."""
    global _started, _provider
    with _lock:
        if _started:
            return _provider
        _started = True
        if not metrics.configured:
            metrics.configure_from_settings()
        if settings.OTEL_SDK_DISABLED:
            # Error capture does not depend on tracing.
            sentry_setup.ensure_started()
            return None
        _provider = build_provider()
        trace.set_tracer_provider(_provider)
        enable_auto_instrumentation()
        atexit.register(shutdown_telemetry)
        sentry_setup.attach_to_tracer_provider(_provider)
        return _provider


def get_provider() -> TracerProvider | None:
    return _provider


def get_tracer(name: str = TRACER_NAME) -> trace.Tracer:
    """The tracer of the global provider (a no-op one until ``init_telemetry`` ran)."""
    return trace.get_tracer(name)


def force_flush(timeout_millis: int = 30_000) -> bool:
    flushed = _provider.force_flush(timeout_millis) if _provider is not None else True
    drops.report()
    return flushed


def shutdown_telemetry() -> None:
    """Flush every pending span to PostgreSQL and stop the pipeline's threads."""
    global _provider
    with _lock:
        provider, _provider = _provider, None
    if provider is None:
        return
    try:
        provider.shutdown()
    except Exception:  # never let shutdown raise into the caller
        logger.exception("tracing shutdown failed")
