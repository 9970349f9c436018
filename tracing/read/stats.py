"""Dashboard aggregates over stored traces, computed by PostgreSQL: the summary (count,
errors, duration percentiles, tokens), breakdowns by model, status and tool, time series,
and the distinct values of the filter dropdowns. Each function is one query.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import connections, router
from django.db.models import Aggregate, Count, FloatField, Q, QuerySet, Sum

from tracing.models import AgentStatus, OTelTrace


class PercentilesCont(Aggregate):
    """``percentile_cont(ARRAY[...]) WITHIN GROUP (ORDER BY expr)``: several continuous
    percentiles of one expression in one pass."""

    function = "percentile_cont"
    template = "%(function)s(%(fractions)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = ArrayField(FloatField())

    def __init__(self, expression: Any, fractions: Sequence[float], **extra: Any) -> None:
        array = "ARRAY[" + ",".join(f"{float(f)!r}::float8" for f in fractions) + "]"
        super().__init__(expression, fractions=array, **extra)


PERCENTILES = (0.5, 0.95, 0.99)


def _error_count() -> Count:
    return Count("id", filter=Q(status=AgentStatus.ERROR))


def trace_summary(traces: QuerySet[OTelTrace]) -> dict[str, Any]:
    """Count, errors, duration percentiles and token sums of ``traces``: one query."""
    row = traces.order_by().aggregate(
        count=Count("id"),
        errors=_error_count(),
        durations=PercentilesCont("total_duration_ms", PERCENTILES),
        input_tokens=Sum("total_input_tokens"),
        output_tokens=Sum("total_output_tokens"),
    )
    return summary_row(row)


def summary_row(row: dict[str, Any]) -> dict[str, Any]:
    """A summary aggregate (count, errors, ``PERCENTILES`` durations, token sums; runs'
    or spans') as the API reads it: zeros, not NULLs, over no rows."""
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


def _group_rows(traces: QuerySet[OTelTrace], key: str) -> list[dict[str, Any]]:
    rows = (
        traces.order_by()
        .values(key)
        .annotate(
            count=Count("id"),
            errors=_error_count(),
            durations=PercentilesCont("total_duration_ms", (0.5, 0.95)),
            input_tokens=Sum("total_input_tokens"),
            output_tokens=Sum("total_output_tokens"),
        )
        .order_by("-count", key)
    )
    return [_breakdown(row[key], row) for row in rows]


def _breakdown(key: Any, row: dict[str, Any]) -> dict[str, Any]:
    durations = row["durations"] or [None, None]
    return {
        "key": key,
        "count": row["count"] or 0,
        "errors": row["errors"] or 0,
        "p50": durations[0],
        "p95": durations[1],
        "input_tokens": row["input_tokens"] or 0,
        "output_tokens": row["output_tokens"] or 0,
    }


def breakdown_by_model(traces: QuerySet[OTelTrace]) -> list[dict[str, Any]]:
    return _group_rows(traces, "model")


def breakdown_by_status(traces: QuerySet[OTelTrace]) -> list[dict[str, Any]]:
    return _group_rows(traces, "status")


def _sql_of(rows: QuerySet[Any], *columns: str) -> tuple[str, tuple[Any, ...]]:
    sql, params = rows.order_by().values(*columns).query.sql_with_params()
    return sql, tuple(params)


def breakdown_by_tool(traces: QuerySet[OTelTrace]) -> list[dict[str, Any]]:
    """Per tool (unnest of ``tools_used``): the traces that called it. One query."""
    inner, params = _sql_of(
        traces,
        "id",
        "status",
        "total_duration_ms",
        "total_input_tokens",
        "total_output_tokens",
        "tools_used",
    )
    sql = f"""
        SELECT u.tool, count(*), count(*) FILTER (WHERE t.status = %s),
               percentile_cont(ARRAY[0.5, 0.95]::float8[])
                   WITHIN GROUP (ORDER BY t.total_duration_ms),
               sum(t.total_input_tokens), sum(t.total_output_tokens)
        FROM ({inner}) AS t CROSS JOIN LATERAL unnest(t.tools_used) AS u(tool)
        GROUP BY u.tool ORDER BY count(*) DESC, u.tool
    """
    with connections[router.db_for_read(OTelTrace)].cursor() as cursor:
        cursor.execute(sql, (AgentStatus.ERROR.value, *params))
        rows = cursor.fetchall()
    return [
        _breakdown(
            tool,
            {
                "count": count,
                "errors": errors,
                "durations": durations,
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
            },
        )
        for tool, count, errors, durations, tokens_in, tokens_out in rows
    ]


class Bucket(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def width(self) -> timedelta:
        return {
            "minute": timedelta(minutes=1),
            "hour": timedelta(hours=1),
            "day": timedelta(days=1),
        }[self.value]


MAX_BUCKETS = 2000


def time_series(
    traces: QuerySet[OTelTrace], bucket: Bucket, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Count, errors, p95 duration and tokens per bucket over [start, end), every bucket
    present (empty ones as zeros). One query. The caller bounds the number of buckets."""
    return bucketed_series(
        traces,
        bucket,
        start,
        end,
        status=("status", AgentStatus.ERROR.value),
        duration="total_duration_ms",
        tokens=("total_input_tokens", "total_output_tokens"),
    )


def bucketed_series(
    rows: QuerySet[Any],
    bucket: Bucket,
    start: datetime,
    end: datetime,
    *,
    status: tuple[str, str],
    duration: str,
    tokens: tuple[str, str],
) -> list[dict[str, Any]]:
    """Count, errors, p95 duration and tokens per bucket of ``started_at`` over [start,
    end) of ``rows`` (runs or spans), every bucket present (empty ones as zeros):
    aggregated by ``date_trunc``, joined to ``generate_series``. One query. ``status`` is
    the status column and its error value; the column names are identifiers of our own
    models, never user input."""
    status_column, error_value = status
    tokens_in, tokens_out = tokens
    inner, params = _sql_of(
        rows.filter(started_at__gte=start, started_at__lt=end),
        "started_at",
        status_column,
        duration,
        tokens_in,
        tokens_out,
    )
    sql = f"""
        WITH agg AS (
            SELECT date_trunc(%s, r.started_at) AS bucket, count(*) AS n,
                   count(*) FILTER (WHERE r.{status_column} = %s) AS errors,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY r.{duration}) AS p95,
                   sum(r.{tokens_in}) AS tokens_in, sum(r.{tokens_out}) AS tokens_out
            FROM ({inner}) AS r GROUP BY 1
        )
        SELECT b.bucket, coalesce(agg.n, 0), coalesce(agg.errors, 0), agg.p95,
               coalesce(agg.tokens_in, 0), coalesce(agg.tokens_out, 0)
        FROM generate_series(date_trunc(%s, %s::timestamptz),
                             %s::timestamptz - interval '1 microsecond', %s::interval) AS b(bucket)
        LEFT JOIN agg ON agg.bucket = b.bucket
        ORDER BY b.bucket
    """
    unit = bucket.value
    with connections[router.db_for_read(rows.model)].cursor() as cursor:
        params_all = [unit, error_value, *params, unit, start, end, bucket.width]
        cursor.execute(sql, params_all)
        fetched = cursor.fetchall()
    return [
        {
            "start": start_at,
            "count": count,
            "errors": errors,
            "p95": p95,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
        }
        for start_at, count, errors, p95, tokens_in, tokens_out in fetched
    ]


# A loose index scan: each step seeks the next distinct value in the btree index that
# leads with the column (trace_status_idx, trace_model_idx, trace_service_idx), so a
# handful of distinct values costs a handful of index probes instead of a pass over every
# trace.
_DISTINCT_BY_INDEX = """
WITH RECURSIVE v(value) AS (
    (SELECT {col} FROM tracing_oteltrace WHERE {col} > '' ORDER BY {col} LIMIT 1)
    UNION ALL
    SELECT (SELECT t.{col} FROM tracing_oteltrace t WHERE t.{col} > v.value
            ORDER BY t.{col} LIMIT 1)
    FROM v WHERE v.value IS NOT NULL
)
SELECT value FROM v WHERE value IS NOT NULL
"""


def _distinct_by_index(column: str) -> list[str]:
    assert column in ("status", "model", "service_name")  # identifiers, never user input
    with connections[router.db_for_read(OTelTrace)].cursor() as cursor:
        cursor.execute(_DISTINCT_BY_INDEX.format(col=column))
        return [row[0] for row in cursor.fetchall()]


def distinct_statuses() -> list[str]:
    return _distinct_by_index("status")


def distinct_models() -> list[str]:
    """Non-empty models, sorted."""
    return _distinct_by_index("model")


def distinct_services() -> list[str]:
    """Non-empty service names, sorted."""
    return _distinct_by_index("service_name")


def distinct_tools() -> list[str]:
    with connections[router.db_for_read(OTelTrace)].cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT u.tool FROM tracing_oteltrace t "
            "CROSS JOIN LATERAL unnest(t.tools_used) AS u(tool) ORDER BY 1"
        )
        return [row[0] for row in cursor.fetchall()]
