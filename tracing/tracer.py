"""The process's TracerProvider: tagger first, then BatchSpanProcessor → PostgreSQL.

``init_tracing()`` runs once per process (from ``TracingConfig.ready``) and is idempotent;
``shutdown_tracing()`` flushes what is pending (also registered with ``atexit``).
Other span consumers (the Sentry bridge) register through ``add_span_processor``.
"""

from __future__ import annotations

import atexit
import logging
import threading

from django.conf import settings
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tracing.agent_run_tagger import AgentRunTaggerProcessor
from tracing.exporter import PostgresSpanExporter

logger = logging.getLogger(__name__)

TRACER_NAME = "campuscore.agent"
_lock = threading.Lock()
_provider: TracerProvider | None = None
_exporter: PostgresSpanExporter | None = None


def build_provider(exporter: PostgresSpanExporter | None = None) -> TracerProvider:
    """A provider wired as in production; used by ``init_tracing`` and by tests/benchmarks."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.OTEL_SERVICE_NAME}))
    provider.add_span_processor(AgentRunTaggerProcessor())
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter or PostgresSpanExporter(),
            schedule_delay_millis=settings.TRACING_SCHEDULE_DELAY_MS,
            max_export_batch_size=settings.TRACING_MAX_EXPORT_BATCH_SIZE,
            max_queue_size=settings.TRACING_MAX_QUEUE_SIZE,
        )
    )
    return provider


def init_tracing() -> TracerProvider | None:
    """Install the global TracerProvider once; later calls return the same one."""
    global _provider, _exporter
    with _lock:
        if _provider is not None:
            return _provider
        if settings.OTEL_SDK_DISABLED:
            return None
        _exporter = PostgresSpanExporter()
        _provider = build_provider(_exporter)
        trace.set_tracer_provider(_provider)
        from tracing.instrumentation import enable_auto_instrumentation

        enable_auto_instrumentation()
        atexit.register(shutdown_tracing)
        _install_extra_consumers(_provider)
        return _provider


def _install_extra_consumers(provider: TracerProvider) -> None:
    """Other consumers of the same spans (Sentry), when configured."""
    import importlib

    try:
        sentry_setup = importlib.import_module("campus_core.observability.sentry_setup")
    except ImportError:  # pragma: no cover - the module ships with the project
        return
    setup = getattr(sentry_setup, "attach_to_tracer_provider", None)
    if setup is not None:
        setup(provider)


def add_span_processor(processor: SpanProcessor) -> None:
    provider = init_tracing()
    if provider is not None:
        provider.add_span_processor(processor)


def get_provider() -> TracerProvider | None:
    return _provider


def get_exporter() -> PostgresSpanExporter | None:
    return _exporter


def get_tracer(name: str = TRACER_NAME) -> trace.Tracer:
    init_tracing()
    return trace.get_tracer(name)


def force_flush(timeout_millis: int = 30_000) -> bool:
    return _provider.force_flush(timeout_millis) if _provider is not None else True


def shutdown_tracing() -> None:
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
