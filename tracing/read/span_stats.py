"""Aggregates over spans, computed by PostgreSQL on the promoted span columns: count,
errors (OTel status ERROR), duration percentiles, token sums, groups by model, tool and
name, and a time series; or, when every filter is one the rollups are keyed by
(``tracing.read.span_rollups``: exact counts, errors and tokens; percentiles within
``tracing.histogram``'s error), all of them from one fetch of rollup rows and span buckets
(``rolled_stats``, once per selection), a time series over its own window from one more.
The percentile aggregate, buckets and bucket limit are those of the trace aggregates
(``tracing.read.stats``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from django.db.models import Count, Q, Sum
from opentelemetry.trace import StatusCode

from tracing.read import span_rollups
from tracing.read.span_rollups import SERIES_WIDTH, WIDEST, Fetched, SpanSelection, factorize
from tracing.read.stats import PERCENTILES, Bucket, PercentilesCont, bucketed_series, summary_row

_ERROR = StatusCode.ERROR.name  # how the exporter stores the status code

GROUP_COLUMNS = ("model", "tool_name", "name")


def _measures(fractions: tuple[float, ...]) -> dict[str, Any]:
    return {
        "count": Count("id"),
        "errors": Count("id", filter=Q(status_code=_ERROR)),
        "durations": PercentilesCont("duration_ms", fractions),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
    }


@dataclass(frozen=True)
class RolledStats:
    """Every part of one ``spanStats`` from the rollups: the summary row, the groups of
    each of ``GROUP_COLUMNS`` and the time series of each unit of ``selection.series``
    over the filter's window (``window``)."""

    summary: dict[str, Any]
    groups: dict[str, list[dict[str, Any]]]
    series: dict[str, list[dict[str, Any]]]
    window: tuple[datetime | None, datetime | None]

    def time_series(self, bucket: Bucket, start: datetime, end: datetime) -> list[Any] | None:
        """The series of ``bucket`` over [start, end), if it is one of these."""
        if (start, end) != self.window:
            return None
        return self.series.get(bucket.value)


def rolled_stats(selection: SpanSelection) -> RolledStats | None:
    """All the parts of the selection's ``spanStats`` from one fetch (at the width its
    series allow: hours for an hour series, at most days for a day series, else weeks), or
    None when the rollups cannot answer (then each part reads the spans). Computed once per
    selection."""
    if "stats" not in selection.found:
        selection.found["stats"] = _rolled_stats(selection)
    stats: RolledStats | None = selection.found["stats"]
    return stats


def _rolled_stats(selection: SpanSelection) -> RolledStats | None:
    f = selection.rollup
    if f is None:
        return None
    units = selection.series if f.after is not None and f.before is not None else frozenset()
    fetched = span_rollups.fetch(selection, min((SERIES_WIDTH[u] for u in units), default=WIDEST))
    if fetched is None:
        return None
    series = {}
    if f.after is not None and f.before is not None:
        series = {u: _series(fetched, Bucket(u), f.after, f.before) for u in units}
    # The other parts need no time: their rows merged per (name, model, tool) first, so
    # each part merges a few dozen histograms, not every period's.
    combos, distinct = factorize(
        list(zip(fetched.names, fetched.models, fetched.tools, strict=True))
    )
    merged = fetched.collapsed(combos, len(distinct))
    summary = merged.figures(np.zeros(len(distinct), dtype=np.int64), 1, PERCENTILES)[0]
    return RolledStats(
        summary=summary_row({**summary, "durations": summary["percentiles"]}),
        groups={
            column: _groups(merged, getattr(merged, _FETCHED[column])) for column in GROUP_COLUMNS
        },
        series=series,
        window=(f.after, f.before),
    )


_FETCHED = {"model": "models", "tool_name": "tools", "name": "names"}


def _groups(fetched: Fetched, values: list[str | None]) -> list[dict[str, Any]]:
    keys, distinct = factorize(values)
    groups = [
        {**g, "key": key, "p50": g["percentiles"][0], "p95": g["percentiles"][1]}
        for key, g in zip(distinct, fetched.figures(keys, len(distinct), (0.5, 0.95)), strict=True)
    ]
    groups.sort(key=lambda g: (-g["count"], g["key"]))
    return groups


def _series(
    fetched: Fetched, bucket: Bucket, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Per bucket of [start, end), every one present (empty ones as zeros)."""
    first = _truncate(start, bucket)
    count = 0
    while first + bucket.width * count < end:
        count += 1
    hours_per_bucket = SERIES_WIDTH[bucket.value]
    origin = int(first.timestamp()) // 3600 // hours_per_bucket
    keys = fetched.hours // hours_per_bucket - origin
    keys[(keys < 0) | (keys >= count)] = -1  # outside the window: never, as fetched
    return [
        {
            "start": first + bucket.width * i,
            "count": g["count"],
            "errors": g["errors"],
            "p95": g["percentiles"][0],
            "input_tokens": g["input_tokens"],
            "output_tokens": g["output_tokens"],
        }
        for i, g in enumerate(fetched.figures(keys, count, (0.95,)))
    ]


def span_summary(selection: SpanSelection) -> dict[str, Any]:
    """Count, errors, duration percentiles and token sums of the selected spans."""
    rolled = rolled_stats(selection)
    if rolled is not None:
        return rolled.summary
    return summary_row(selection.rows.order_by().aggregate(**_measures(PERCENTILES)))


def span_groups(selection: SpanSelection, column: str) -> list[dict[str, Any]]:
    """Per value of ``column`` (spans without one left out), most frequent first."""
    assert column in GROUP_COLUMNS  # identifiers, never user input
    rolled = rolled_stats(selection)
    if rolled is not None:
        return rolled.groups[column]
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
    if bucket.value in selection.series:
        rolled = rolled_stats(selection)
        shared = None if rolled is None else rolled.time_series(bucket, start, end)
        if shared is not None:
            return shared
    width = SERIES_WIDTH.get(bucket.value)
    fetched = None if width is None else span_rollups.fetch(selection, width, (start, end))
    if fetched is not None:
        return _series(fetched, bucket, start, end)
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
