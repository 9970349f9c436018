"""Span aggregates answered from the rollups (``tracing.rollups``) where they can be.

A ``SpanSelection`` is the filtered spans plus, when every filter given is one the rollups
are keyed by (kind, name, model, tool, status, and the time window), that filter as a
``RollupFilter``. ``aggregate`` then covers the window with clean rollup periods (a day
where all of it is clean, else its clean hours) and reads the spans only for the rest (the
partial hours at the edges, the open hour, dirty hours): one statement to find the clean
periods (shared by the parts of one ``spanStats``), one per part to aggregate rollup rows
and span rows together. Counts, errors, tokens and
groups are those of the spans exactly; duration percentiles come from the merged
histogram, within ``tracing.rollups.MAX_RELATIVE_ERROR``. When no clean period falls in the
window, or the filters need the spans themselves, it returns None and the caller computes
everything (percentiles exact) from the spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections, router
from django.db.models import Q, QuerySet
from opentelemetry.trace import StatusCode

from tracing.models import OTelSpan
from tracing.rollups import (
    DIRTY_TABLE,
    HOUR,
    ROLLED_TABLE,
    ROLLUP_TABLE,
    bucket_sql,
    histogram_percentiles,
)

_ERROR = StatusCode.ERROR.name


@dataclass(frozen=True)
class RollupFilter:
    """The filters a rollup can answer; None: not filtered on that."""

    kinds: Sequence[str] | None = None
    names: Sequence[str] | None = None
    models: Sequence[str] | None = None
    tools: Sequence[str] | None = None
    statuses: Sequence[str] | None = None
    after: datetime | None = None
    before: datetime | None = None


@dataclass(frozen=True)
class SpanSelection:
    """The spans a ``spanStats`` aggregates; ``rollup`` None when only they can answer.
    The clean periods inside the filter's window are looked up once for all the parts
    of one ``spanStats`` (kept in ``found``)."""

    rows: QuerySet[OTelSpan]
    rollup: RollupFilter | None = None
    found: dict[str, list[tuple[datetime, int]]] = field(default_factory=dict, compare=False)

    def clean_periods(self) -> list[tuple[datetime, int]]:
        """(start, width) of every clean period inside the filter's window, in order."""
        assert self.rollup is not None
        if "periods" not in self.found:
            alias = router.db_for_read(OTelSpan)
            self.found["periods"] = _clean_periods(alias, self.rollup.after, self.rollup.before)
        return self.found["periods"]


@dataclass(frozen=True)
class Group:
    """What a ``group`` of ``aggregate`` is keyed by: the SQL of the key over the spans
    (alias ``s``) and over the rollups (alias ``r``), and the widest period (hours) the
    key can be read from."""

    spans: str
    rollups: str
    max_width: int
    not_null: str | None = None


SUMMARY = Group("''", "''", 168)


def by_column(column: str) -> Group:
    assert column in ("model", "tool_name", "name")  # identifiers, never user input
    return Group(f"s.{column}", f"r.{column}", 168, not_null=column)


def by_time(unit: str) -> Group | None:
    """Buckets of ``unit``: hour buckets from hour rollups, day buckets from hours, 6-hour
    blocks and days; minute buckets only from the spans (None)."""
    width = {"hour": 1, "day": 24}.get(unit)
    if width is None:
        return None
    return Group(
        f"date_trunc('{unit}', s.started_at, 'UTC')",
        f"date_trunc('{unit}', r.start, 'UTC')",
        width,
    )


def _clean_periods(
    alias: str, after: datetime | None, before: datetime | None
) -> list[tuple[datetime, int]]:
    """The clean periods inside [after, before): (start, width), by start, widest first."""
    where = ["TRUE"]
    params: list[Any] = []
    if after is not None:
        where.append("r.start >= %s")
        params.append(after)
    if before is not None:
        where.append("r.start + r.width * interval '1 hour' <= %s")
        params.append(before)
    sql = (
        f"SELECT r.start, r.width FROM {ROLLED_TABLE} AS r WHERE {' AND '.join(where)} "
        f"AND NOT EXISTS (SELECT 1 FROM {DIRTY_TABLE} AS d WHERE d.hour >= r.start "
        "AND d.hour < r.start + r.width * interval '1 hour') ORDER BY r.start, r.width DESC"
    )
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return [(start, int(width)) for start, width in cursor.fetchall()]


def _cover(
    clean: list[tuple[datetime, int]],
    after: datetime | None,
    before: datetime | None,
    max_width: int,
) -> list[tuple[datetime, datetime]]:
    """The rollup periods to read, as disjoint [start, end) in order: the clean periods
    at most ``max_width`` hours wide inside [after, before), a day rather than its hours."""
    periods: list[tuple[datetime, datetime]] = []
    for start, width in clean:
        end = start + HOUR * width
        if width > max_width or (after is not None and start < after):
            continue
        if before is not None and end > before:
            continue
        if periods and start < periods[-1][1]:
            continue  # an hour of a day already taken
        periods.append((start, end))
    return periods


def _gaps(
    periods: list[tuple[datetime, datetime]], after: datetime | None, before: datetime | None
) -> list[Q]:
    """The spans' conditions, one per range, for [after, before) minus ``periods``."""
    out: list[Q] = []
    cursor = after
    bounds: list[tuple[datetime | None, datetime | None]] = []
    for start, end in periods:
        if cursor is None or cursor < start:
            bounds.append((cursor, start))
        cursor = end
    if before is None or (cursor is not None and cursor < before):
        bounds.append((cursor, before))
    for lo, hi in bounds:
        part = Q()
        if lo is not None:
            part &= Q(started_at__gte=lo)
        if hi is not None:
            part &= Q(started_at__lt=hi)
        out.append(part)
    return out


def _rollup_where(f: RollupFilter, periods: list[tuple[datetime, datetime]]) -> tuple[str, list]:
    by_width: dict[int, list[datetime]] = {}
    for start, end in periods:
        by_width.setdefault(int((end - start) / HOUR), []).append(start)
    where = ["(" + " OR ".join("(r.width = %s AND r.start = ANY(%s))" for _ in by_width) + ")"]
    params: list[Any] = [value for width, starts in by_width.items() for value in (width, starts)]
    for column, values in (
        ("kind", f.kinds),
        ("name", f.names),
        ("model", f.models),
        ("tool_name", f.tools),
        ("status_code", f.statuses),
    ):
        if values is not None:
            where.append(f"r.{column} = ANY(%s)")
            params.append(list(values))
    return " AND ".join(where), params


def aggregate(
    selection: SpanSelection,
    group: Group,
    fractions: Sequence[float],
    window: tuple[datetime | None, datetime | None] = (None, None),
) -> list[dict[str, Any]] | None:
    """Per key of ``group``: count, errors, token sums and the duration percentiles
    ``fractions`` of the selected spans (also inside ``window``, if given), from rollups
    and spans together; None when no rollup period helps (see the module docstring)."""
    f = selection.rollup
    if f is None:
        return None
    after = max((t for t in (f.after, window[0]) if t is not None), default=None)
    before = min((t for t in (f.before, window[1]) if t is not None), default=None)
    alias = router.db_for_read(OTelSpan)
    periods = _cover(selection.clean_periods(), after, before, group.max_width)
    if not periods:
        return None
    rows = selection.rows
    if window[0] is not None:
        rows = rows.filter(started_at__gte=window[0])
    if window[1] is not None:
        rows = rows.filter(started_at__lt=window[1])
    if group.not_null is not None:
        rows = rows.filter(**{f"{group.not_null}__isnull": False})
    rollup_where, params = _rollup_where(f, periods)
    if group.not_null is not None:
        rollup_where += f" AND r.{group.not_null} IS NOT NULL"
    parts = [
        f"""SELECT {group.rollups} AS grp, r.span_count AS n,
               CASE WHEN r.status_code = %s THEN r.span_count ELSE 0 END AS e,
               r.input_tokens AS ti, r.output_tokens AS tout, r.duration_min AS lo,
               r.duration_max AS hi, r.duration_buckets AS bs, r.duration_counts AS cs
        FROM {ROLLUP_TABLE} AS r WHERE {rollup_where}"""
    ]
    params = [_ERROR, *params]
    # The spans outside the rollup periods: one index range per gap (an OR of ranges would
    # make PostgreSQL walk the whole window and filter).
    for gap in _gaps(periods, after, before):
        inner = (
            rows.filter(gap)
            .order_by()
            .values(
                "started_at",
                "status_code",
                "duration_ms",
                "input_tokens",
                "output_tokens",
                *((group.not_null,) if group.not_null else ()),
            )
        )
        try:
            inner_sql, inner_params = inner.query.sql_with_params()
        except EmptyResultSet:  # e.g. ``kind: []``: no span can match
            continue
        parts.append(
            f"""SELECT grp, n, e, ti, tout, lo, hi, ARRAY[b]::smallint[], ARRAY[n]::int[]
            FROM (SELECT {group.spans} AS grp, {bucket_sql("s.duration_ms")} AS b,
                         count(*) AS n, count(*) FILTER (WHERE s.status_code = %s) AS e,
                         sum(s.input_tokens) AS ti, sum(s.output_tokens) AS tout,
                         min(s.duration_ms) AS lo, max(s.duration_ms) AS hi
                  FROM ({inner_sql}) AS s GROUP BY 1, 2) AS raw"""
        )
        params += [_ERROR, *inner_params]
    with connections[alias].cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        fetched = cursor.fetchall()
    # Merged here: summing the histograms in SQL (unnest, then group by bucket) took ~4x
    # as long for a day of hour rollups (~1,300 rows of ~40 buckets).
    merged: dict[Any, _Merged] = {}
    for grp, n, e, ti, tout, lo, hi, bs, cs in fetched:
        m = merged.get(grp)
        if m is None:
            merged[grp] = m = _Merged(lo=lo, hi=hi)
        m.add(n, e, ti, tout, lo, hi, bs, cs)
    return [
        {
            "key": grp,
            "count": m.count,
            "errors": m.errors,
            "input_tokens": m.input_tokens,
            "output_tokens": m.output_tokens,
            "percentiles": m.percentiles(fractions),
        }
        for grp, m in merged.items()
    ]


@dataclass
class _Merged:
    """The figures of one group, summed over its rollup rows and span buckets."""

    lo: float
    hi: float
    count: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    histogram: dict[int, int] = field(default_factory=dict)

    def add(
        self,
        n: int,
        e: int,
        ti: int | None,
        tout: int | None,
        lo: float,
        hi: float,
        buckets: list[int],
        counts: list[int],
    ) -> None:
        self.count += int(n)
        self.errors += int(e)
        self.input_tokens += int(ti or 0)
        self.output_tokens += int(tout or 0)
        self.lo = min(self.lo, lo)
        self.hi = max(self.hi, hi)
        histogram = self.histogram
        get = histogram.get  # the loop runs once per bucket of every row: ~30k times a day
        for b, c in zip(buckets, counts, strict=True):
            histogram[b] = get(b, 0) + c

    def percentiles(self, fractions: Sequence[float]) -> list[float | None]:
        order = sorted(self.histogram)
        return histogram_percentiles(
            order, [self.histogram[b] for b in order], self.lo, self.hi, fractions
        )
