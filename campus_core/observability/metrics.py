"""Golden-signal metrics on the OpenTelemetry metrics API.

``metrics`` is the process's MetricsService. Instruments are created on first use by name
(``increment`` makes counters, ``record`` makes histograms) from the service's
MeterProvider. Unless a test or caller hands one over with ``use_meter_provider``, the
service builds that provider itself on first use from ``settings.METRICS_EXPORTER``:
``none`` (the no-op API provider), ``console`` or ``otlp`` (OTLP/HTTP to a collector).
The metric names are those of the design document's golden-signal table, listed in
``GOLDEN_SIGNALS`` with their descriptions.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import metrics as otel_metrics

METER_NAME = "campuscore"
EXPORTERS = ("none", "console", "otlp")

# The design document's table; ``tool.<name>.*`` is expanded per tool by TOOL_SIGNALS.
GOLDEN_SIGNALS: dict[str, str] = {
    "chat.request.count": "Chat requests received (chat_service.generate_response)",
    "chat.request.error_count": "Chat requests that ended without a final answer",
    "chat.request.duration_ms": "Wall time of a chat request, streaming included",
    "chat.steps_per_response": "LLM calls plus tool calls of a successful response",
    "chat.tools_used_per_response": "Distinct tools used by a successful response",
    "agent.run.count": "Agent runs, counted on every terminal path",
    "agent.run.error_count": "Agent runs that ended in an error",
    "agent.run.status.completed": "Agent runs that produced an answer",
    "agent.run.status.error": "Agent runs that failed",
    "agent.run.status.max_iterations": "Agent runs stopped by the iteration limit",
    "agent.iteration_count": "Iterations of one agent run",
    "agent.tool_call_count": "Tool calls of one agent run",
    "agent.tokens.input": "Input tokens of one agent run",
    "agent.tokens.output": "Output tokens of one agent run",
    "agent.no_tool_calls_count": "Completed runs that never called a tool (routing regressions)",
    "retrieval.duration_ms": "Wall time of one knowledge retrieval",
    "retrieval.request_count": "Knowledge retrievals",
    "retrieval.result_count": "Passages returned by one retrieval",
    "retrieval.empty_result_count": "Retrievals that found nothing",
    "retrieval.error_count": "Retrievals that raised",
}
# The tracing pipeline's own health, beside the table.
PIPELINE_SIGNALS: dict[str, str] = {
    "tracing.spans.dropped": "Spans lost on the write path, by reason (tracing.export.drops)",
}
TOOL_SIGNALS: dict[str, str] = {
    "tool.{name}.success_count": "Calls of the tool that succeeded",
    "tool.{name}.failure_count": "Calls rejected as bad input (reported back to the LLM)",
    "tool.{name}.exception_count": "Calls in which the tool raised",
    "tool.{name}.duration_ms": "Wall time of one call of the tool",
}


def describe(name: str) -> str:
    if name in GOLDEN_SIGNALS or name in PIPELINE_SIGNALS:
        return GOLDEN_SIGNALS.get(name) or PIPELINE_SIGNALS[name]
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "tool":
        return TOOL_SIGNALS.get(f"tool.{{name}}.{parts[2]}", "")
    return ""


def build_meter_provider(
    exporter: str,
    *,
    endpoint: str = "",
    interval_ms: int = 60_000,
    service_name: str = "campus-core",
) -> otel_metrics.MeterProvider | None:
    """The SDK MeterProvider for an exporter name, or None for ``none``.

    Raises ``ValueError`` naming the accepted values for anything else, so a typo in
    ``METRICS_EXPORTER`` stops start-up instead of silently dropping every metric.
    """
    kind = exporter.strip().lower()
    if kind not in EXPORTERS:
        raise ValueError(
            f"METRICS_EXPORTER must be one of {', '.join(EXPORTERS)}, not {exporter!r}"
        )
    if kind == "none":
        return None
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        MetricExporter,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    metric_exporter: MetricExporter
    if kind == "console":
        metric_exporter = ConsoleMetricExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        # An empty endpoint lets the exporter read OTEL_EXPORTER_OTLP_* itself.
        metric_exporter = OTLPMetricExporter(endpoint=endpoint or None)
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=interval_ms)
    return MeterProvider(
        metric_readers=[reader], resource=Resource.create({SERVICE_NAME: service_name})
    )


def provider_from_settings() -> otel_metrics.MeterProvider | None:
    from django.conf import settings

    return build_meter_provider(
        settings.METRICS_EXPORTER,
        endpoint=settings.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
        interval_ms=settings.METRICS_EXPORT_INTERVAL_MS,
        service_name=settings.OTEL_SERVICE_NAME,
    )


class MetricsService:
    def __init__(self, meter_provider: otel_metrics.MeterProvider | None = None) -> None:
        self._provider = meter_provider
        self._configured = meter_provider is not None
        self._meter: otel_metrics.Meter | None = None
        self._instruments: dict[str, Any] = {}
        self._lock = threading.Lock()

    def use_meter_provider(self, provider: otel_metrics.MeterProvider | None) -> None:
        """Point the service at another provider (tests, or reconfiguration).

        ``None`` goes back to the global provider of the OTel API.
        """
        with self._lock:
            self._provider = provider
            self._configured = True
            self._meter = None
            self._instruments.clear()

    def configure_from_settings(self) -> otel_metrics.MeterProvider | None:
        """Build the provider ``settings.METRICS_EXPORTER`` asks for and use it."""
        provider = provider_from_settings()
        self.use_meter_provider(provider)
        return provider

    @property
    def configured(self) -> bool:
        """Whether a provider was chosen (by settings or handed over) for this process."""
        return self._configured

    @property
    def meter_provider(self) -> otel_metrics.MeterProvider | None:
        return self._provider

    def _get_meter(self) -> otel_metrics.Meter:
        if self._meter is None:
            if not self._configured:
                # First metric of the process: settings decide where metrics go.
                self.configure_from_settings()
            provider = self._provider or otel_metrics.get_meter_provider()
            self._meter = provider.get_meter(METER_NAME)
        return self._meter

    def _instrument(self, name: str, kind: str, unit: str = "") -> Any:
        instrument = self._instruments.get(name)
        if instrument is None:
            meter = self._get_meter()
            with self._lock:
                instrument = self._instruments.get(name)
                if instrument is None:
                    if kind == "counter":
                        instrument = meter.create_counter(name, description=describe(name))
                    else:
                        instrument = meter.create_histogram(
                            name, unit=unit, description=describe(name)
                        )
                    self._instruments[name] = instrument
        return instrument

    def increment(
        self, name: str, value: int = 1, attributes: dict[str, Any] | None = None
    ) -> None:
        self._instrument(name, "counter").add(value, attributes or {})

    def record(self, name: str, value: float, attributes: dict[str, Any] | None = None) -> None:
        unit = "ms" if name.endswith("_ms") else ""
        self._instrument(name, "histogram", unit).record(value, attributes or {})

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        flush = getattr(self._provider, "force_flush", None)
        return bool(flush(timeout_millis)) if flush is not None else True


metrics = MetricsService()
