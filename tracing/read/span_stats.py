"""Aggregates over spans, computed by PostgreSQL on the promoted span columns: count,
errors (OTel status ERROR), duration percentiles, token sums, groups by model, tool and
name, and a time series. Each function is one query; the percentile aggregate, buckets and
bucket limit are those of the trace aggregates (``tracing.read.stats``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connections, router
from django.db.models import Count, Q, QuerySet, Sum
from opentelemetry.trace import StatusCode

from tracing.models import OTelSpan
from tracing.read.stats import PERCENTILES, Bucket, PercentilesCont

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
    row = spans.order_by().aggregate(**_measures(PERCENTILES))
    durations = row["durations"] or [None] * len(PERCENTILES)
    return {
        "count": row["count"] or 0,
        "errors": row["errors"] or 0,
        "p50": durations[0],
        "p95": durations[1],
        "p99": durations[2],
        "input_tokens": row["input_tokens"] or 0,
        "output_tokens": row["output_tokens"] or 0,
    }


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
    inner, params = (
        spans.filter(started_at__gte=start, started_at__lt=end)
        .order_by()
        .values("started_at", "status_code", "duration_ms", "input_tokens", "output_tokens")
        .query.sql_with_params()
    )
    sql = f"""
        WITH agg AS (
            SELECT date_trunc(%s, s.started_at) AS bucket, count(*) AS n,
                   count(*) FILTER (WHERE s.status_code = %s) AS errors,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY s.duration_ms) AS p95,
                   sum(s.input_tokens) AS tokens_in, sum(s.output_tokens) AS tokens_out
            FROM ({inner}) AS s GROUP BY 1
        )
        SELECT b.bucket, coalesce(agg.n, 0), coalesce(agg.errors, 0), agg.p95,
               coalesce(agg.tokens_in, 0), coalesce(agg.tokens_out, 0)
        FROM generate_series(date_trunc(%s, %s::timestamptz),
                             %s::timestamptz - interval '1 microsecond', %s::interval) AS b(bucket)
        LEFT JOIN agg ON agg.bucket = b.bucket
        ORDER BY b.bucket
    """
    unit = bucket.value
    with connections[router.db_for_read(OTelSpan)].cursor() as cursor:
        params_all: list[Any] = [unit, _ERROR, *params, unit, start, end, bucket.width]
        cursor.execute(sql, params_all)
        rows = cursor.fetchall()
    return [
        {
            "start": start_at,
            "count": count,
            "errors": errors,
            "p95": p95,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
        }
        for start_at, count, errors, p95, tokens_in, tokens_out in rows
    ]
