"""Reading OTel metrics in tests: the points an ``InMemoryMetricReader`` holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)


@dataclass
class Point:
    kind: str  # "counter" or "histogram"
    value: float  # counter total, or histogram sum
    count: int  # histogram observations (1 for counters)


def read(reader: InMemoryMetricReader) -> dict[str, Point]:
    data = reader.get_metrics_data()
    points: dict[str, Point] = {}
    if data is None:
        return points
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    if isinstance(point, HistogramDataPoint):
                        points[metric.name] = Point("histogram", point.sum, point.count)
                    elif isinstance(point, NumberDataPoint):
                        points[metric.name] = Point("counter", point.value, 1)
    return points


def counter_by(reader: InMemoryMetricReader, name: str, attribute: str) -> dict[Any, float]:
    """A counter's totals, by the value of one of its attributes."""
    totals: dict[Any, float] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    key = (point.attributes or {}).get(attribute)
                    totals[key] = totals.get(key, 0) + point.value  # type: ignore[union-attr]
    return totals
