"""Aggregates over spans, computed by PostgreSQL on the promoted span columns: count,
errors (OTel status ERROR), duration percentiles, token sums, groups by model, tool and
name, and a time series. Each function is one query; the percentile aggregate, buckets and
bucket limit are those of the trace aggregates (``tracing.read.stats``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from opentelemetry.trace import StatusCode

from tracing.models import OTelSpan
from tracing.read.stats import PERCENTILES, Bucket, PercentilesCont, bucketed_series, summary_row

_ERROR = StatusCode.ERROR.name  # how the exporter stores the status code


def _measures(fractions: tuple[float, ...]) -> dict[str, Any]:
    return {
        "count": Count("id"),
        "errors": Count("id", filter=Q(status_code=_ERROR)),
        "durations": PercentilesCont("duration_ms", fractions),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
    }


def span_summary(spans: QuerySet[OTelSpan]) -> dict[str, Any]:
    """Count, errors, duration percentiles and token sums of ``spans``: one query."""
    return summary_row(spans.order_by().aggregate(**_measures(PERCENTILES)))


GROUP_COLUMNS = ("model", "tool_name", "name")


def span_groups(spans: QuerySet[OTelSpan], column: str) -> list[dict[str, Any]]:
    """Per value of ``column`` (spans without one left out), most frequent first: one query."""
    assert column in GROUP_COLUMNS  # identifiers, never user input
    rows = (
        spans.filter(**{f"{column}__isnull": False})
        .order_by()
        .values(column)
        .annotate(**_measures((0.5, 0.95)))
        .order_by("-count", column)
    )
    out = []
    for row in rows:
        durations = row["durations"] or [None, None]
        out.append(
            {
                "key": row[column],
                "count": row["count"],
                "errors": row["errors"],
                "p50": durations[0],
                "p95": durations[1],
                "input_tokens": row["input_tokens"] or 0,
                "output_tokens": row["output_tokens"] or 0,
            }
        )
    return out


def span_time_series(
    spans: QuerySet[OTelSpan], bucket: Bucket, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Count, errors, p95 duration and tokens per bucket over [start, end), every bucket
    present (empty ones as zeros). One query; the caller bounds the number of buckets."""
    return bucketed_series(
        spans,
        bucket,
        start,
        end,
        status=("status_code", _ERROR),
        duration="duration_ms",
        tokens=("input_tokens", "output_tokens"),
    )
