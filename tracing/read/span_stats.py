"""Aggregates over spans, computed by PostgreSQL on the promoted span columns: count,
errors (OTel status ERROR), duration percentiles, token sums, groups by model, tool and
name, and a time series. Each function is one query over the spans, or two when rollups
answer for whole hours and days (``tracing.read.span_rollups``: exact counts, errors and
tokens; percentiles within its documented error); the percentile aggregate, buckets and
bucket limit are those of the trace aggregates (``tracing.read.stats``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, Q, Sum
from opentelemetry.trace import StatusCode

from tracing.read import span_rollups
from tracing.read.span_rollups import SpanSelection
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


def span_summary(selection: SpanSelection) -> dict[str, Any]:
    """Count, errors, duration percentiles and token sums of the selected spans."""
    rolled = span_rollups.aggregate(selection, span_rollups.SUMMARY, PERCENTILES)
    if rolled is None:
        return summary_row(selection.rows.order_by().aggregate(**_measures(PERCENTILES)))
    if not rolled:
        return summary_row(
            {"count": 0, "errors": 0, "durations": None, "input_tokens": 0, "output_tokens": 0}
        )
    row = rolled[0]
    return summary_row({**row, "durations": row["percentiles"]})


GROUP_COLUMNS = ("model", "tool_name", "name")


def span_groups(selection: SpanSelection, column: str) -> list[dict[str, Any]]:
    """Per value of ``column`` (spans without one left out), most frequent first."""
    assert column in GROUP_COLUMNS  # identifiers, never user input
    rolled = span_rollups.aggregate(selection, span_rollups.by_column(column), (0.5, 0.95))
    if rolled is not None:
        rolled.sort(key=lambda g: (-g["count"], g["key"]))
        return [{**g, "p50": g["percentiles"][0], "p95": g["percentiles"][1]} for g in rolled]
    spans = selection.rows
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
    selection: SpanSelection, bucket: Bucket, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Count, errors, p95 duration and tokens per bucket over [start, end), every bucket
    present (empty ones as zeros). The caller bounds the number of buckets."""
    group = span_rollups.by_time(bucket.value)
    rolled = (
        None
        if group is None
        else span_rollups.aggregate(selection, group, (0.95,), window=(start, end))
    )
    if rolled is not None:
        found = {g["key"]: g for g in rolled}
        out = []
        at = _truncate(start, bucket)
        while at < end:
            g = found.get(at)
            out.append(
                {
                    "start": at,
                    "count": g["count"] if g else 0,
                    "errors": g["errors"] if g else 0,
                    "p95": g["percentiles"][0] if g else None,
                    "input_tokens": g["input_tokens"] if g else 0,
                    "output_tokens": g["output_tokens"] if g else 0,
                }
            )
            at += bucket.width
        return out
    return bucketed_series(
        selection.rows,
        bucket,
        start,
        end,
        status=("status_code", _ERROR),
        duration="duration_ms",
        tokens=("input_tokens", "output_tokens"),
    )


def _truncate(instant: datetime, bucket: Bucket) -> datetime:
    """``date_trunc(bucket, instant)`` in UTC, as the series' first bucket."""
    utc = instant.astimezone(UTC)
    if bucket is Bucket.DAY:
        return utc.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket is Bucket.HOUR:
        return utc.replace(minute=0, second=0, microsecond=0)
    return utc.replace(second=0, microsecond=0)
