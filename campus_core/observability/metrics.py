"""Golden-signal metrics on the OpenTelemetry metrics API.

``metrics`` is the process's MetricsService. Instruments are created on first use by name
(counters for ``*count*`` names, histograms for the rest) from the global MeterProvider,
so whatever reader/exporter is installed (none, console, OTLP, in-memory in tests) sees
them. Metric names are the ones of the design document's table.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import metrics as otel_metrics

METER_NAME = "campuscore"


class MetricsService:
    def __init__(self, meter_provider: otel_metrics.MeterProvider | None = None) -> None:
        self._provider = meter_provider
        self._meter: otel_metrics.Meter | None = None
        self._instruments: dict[str, Any] = {}
        self._lock = threading.Lock()

    def use_meter_provider(self, provider: otel_metrics.MeterProvider | None) -> None:
        """Point the service at another provider (tests, or reconfiguration)."""
        with self._lock:
            self._provider = provider
            self._meter = None
            self._instruments.clear()

    def _get_meter(self) -> otel_metrics.Meter:
        if self._meter is None:
            provider = self._provider or otel_metrics.get_meter_provider()
            self._meter = provider.get_meter(METER_NAME)
        return self._meter

    def _counter(self, name: str) -> Any:
        instrument = self._instruments.get(name)
        if instrument is None:
            with self._lock:
                instrument = self._instruments.get(name)
                if instrument is None:
                    instrument = self._get_meter().create_counter(name)
                    self._instruments[name] = instrument
        return instrument

    def _histogram(self, name: str, unit: str = "") -> Any:
        instrument = self._instruments.get(name)
        if instrument is None:
            with self._lock:
                instrument = self._instruments.get(name)
                if instrument is None:
                    instrument = self._get_meter().create_histogram(name, unit=unit)
                    self._instruments[name] = instrument
        return instrument

    def increment(self, name: str, value: int = 1, attributes: dict[str, Any] | None = None) -> None:
        self._counter(name).add(value, attributes or {})

    def record(self, name: str, value: float, attributes: dict[str, Any] | None = None) -> None:
        unit = "ms" if name.endswith("_ms") else ""
        self._histogram(name, unit).record(value, attributes or {})


metrics = MetricsService()
