"""Span aggregates answered from the rollups (``tracing.rollups``) where they can be.

A ``SpanSelection`` is the filtered spans plus, when every filter given is one the rollups
are keyed by (kind, name, model, tool, status, and the time window), that filter as a
``RollupFilter``. ``fetch`` then covers the window with clean rollup periods at most as
wide as asked (a day where all of it is clean, else its blocks or hours; 5-minute slots in
the partial hours at its edges) and reads the spans only for the rest (the partial slots
at the edges, the open hour, dirty hours, hours without slots), aggregated per (hour, name,
model, tool) as a rollup row: one statement to find the clean periods and edge hours (once
per selection), one for the rows, which come back as columns
(``Fetched``). ``Fetched.figures`` merges them per group, all groups at once: counts,
errors and token sums exactly those of the spans, duration percentiles from the merged
histogram within ``tracing.histogram.MAX_RELATIVE_ERROR``. When no clean period falls in
the window, or the filters need the spans themselves, ``fetch`` returns None and the
caller computes everything (percentiles exact) from the spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.core.exceptions import EmptyResultSet
from django.db import connections, router
from django.db.models import QuerySet
from opentelemetry.trace import StatusCode

from tracing.histogram import Floats, Ints, bucket_sql, merged_percentiles
from tracing.models import OTelSpan
from tracing.rollups import (
    DIRTY_TABLE,
    HOUR,
    ROLLED_TABLE,
    ROLLUP_TABLE,
    SLOT,
    SLOT_TABLE,
    SLOTTED_TABLE,
    hour_of,
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
    ``series``: the time-bucket units (hour, day) of the time series asked over the
    filter's own window, which the parts' one fetch serves too (``tracing.read.span_stats``).
    What one ``spanStats`` looks up once for all its parts is kept in ``found``."""

    rows: QuerySet[OTelSpan]
    rollup: RollupFilter | None = None
    series: frozenset[str] = frozenset()
    found: dict[str, Any] = field(default_factory=dict, compare=False)

    def clean_periods(self) -> list[tuple[datetime, timedelta]]:
        """(start, width) of every clean period and slot inside the filter's window, in
        order."""
        assert self.rollup is not None
        if "periods" not in self.found:
            alias = router.db_for_read(OTelSpan)
            self.found["periods"] = _clean_periods(alias, self.rollup.after, self.rollup.before)
        periods: list[tuple[datetime, timedelta]] = self.found["periods"]
        return periods


# The widest rollup period (hours) a time bucket of each unit can be read from: hour
# buckets from hours, day buckets from hours, 6-hour blocks and days (all inside one UTC
# day); minute buckets only from the spans.
SERIES_WIDTH = {"hour": 1, "day": 24}
WIDEST = 168
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)


def _clean_periods(
    alias: str, after: datetime | None, before: datetime | None
) -> list[tuple[datetime, timedelta]]:
    """The clean periods inside [after, before), and the clean slots inside it of its
    partial edge hours: (start, width), by start, widest first."""
    edges = [h for h in {_partial_hour(after), _partial_hour(before)} if h is not None]
    inside = ["TRUE"]
    params: list[Any] = []
    if after is not None:
        inside.append("r.start >= %s")
        params.append(after)
    if before is not None:
        inside.append("r.start + r.width * interval '1 hour' <= %s")
        params.append(before)
    sql = (
        # epoch seconds: Python makes datetimes of them several times faster than it
        # parses timestamps (30 days: ~900 periods)
        f"SELECT extract(epoch FROM r.start)::bigint, r.width FROM {ROLLED_TABLE} AS r "
        f"WHERE (({' AND '.join(inside)}) OR (r.width = 1 AND r.start = ANY(%s) AND EXISTS "
        f"(SELECT 1 FROM {SLOTTED_TABLE} AS s WHERE s.hour = r.start))) "
        f"AND NOT EXISTS (SELECT 1 FROM {DIRTY_TABLE} AS d WHERE d.hour >= r.start "
        "AND d.hour < r.start + r.width * interval '1 hour') ORDER BY r.start, r.width DESC"
    )
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, [*params, edges])
        rows = [(_EPOCH + timedelta(seconds=s), int(w)) for s, w in cursor.fetchall()]
    periods = []
    for start, width in rows:
        if width != 1 or start not in edges:
            periods.append((start, HOUR * width))
            continue
        for i in range(HOUR // SLOT):  # a clean, slotted edge hour: its slots in the window
            slot = start + SLOT * i
            if (after is None or slot >= after) and (before is None or slot + SLOT <= before):
                periods.append((slot, SLOT))
    periods.sort(key=lambda p: (p[0], -p[1]))
    return periods


def _partial_hour(bound: datetime | None) -> datetime | None:
    """The hour ``bound`` falls inside (None when it is one's start)."""
    if bound is None or bound == hour_of(bound):
        return None
    return hour_of(bound)


def _cover(
    clean: list[tuple[datetime, timedelta]],
    after: datetime | None,
    before: datetime | None,
    max_width: int,
) -> list[tuple[datetime, datetime]]:
    """The rollup periods to read, as disjoint [start, end) in order: the clean periods
    at most ``max_width`` hours wide inside [after, before), a day rather than its hours."""
    periods: list[tuple[datetime, datetime]] = []
    for start, width in clean:
        if width > HOUR * max_width or (after is not None and start < after):
            continue
        end = start + width
        if before is not None and end > before:
            continue
        if periods and start < periods[-1][1]:
            continue  # an hour of a day already taken
        periods.append((start, end))
    return periods


def _gaps(
    periods: list[tuple[datetime, datetime]], after: datetime | None, before: datetime | None
) -> list[tuple[datetime | None, datetime | None]]:
    """[after, before) minus ``periods``, as [lo, hi) ranges (None: unbounded)."""
    cursor = after
    bounds: list[tuple[datetime | None, datetime | None]] = []
    for start, end in periods:
        if cursor is None or cursor < start:
            bounds.append((cursor, start))
        cursor = end
    if before is None or (cursor is not None and cursor < before):
        bounds.append((cursor, before))
    return bounds


def _rollup_where(f: RollupFilter, periods: list[tuple[datetime, datetime]]) -> tuple[str, list]:
    """The rows of ``periods`` (all as wide as an hour or wider) matching ``f``."""
    by_width: dict[int, list[datetime]] = {}
    for start, end in periods:
        by_width.setdefault(int((end - start) / HOUR), []).append(start)
    where = ["(" + " OR ".join("(r.width = %s AND r.start = ANY(%s))" for _ in by_width) + ")"]
    params: list[Any] = [value for width, starts in by_width.items() for value in (width, starts)]
    return keys_where(f, where, params)


def keys_where(f: RollupFilter, where: list[str], params: list[Any]) -> tuple[str, list]:
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


# A row per rollup or slot row of the covered periods, and per (hour, name, model, tool)
# of the spans in the gaps, aggregated as an hour's rollup row is: the hour (since the
# epoch) it belongs to, its keys, sums, min/max duration and histogram. The histograms come as text
# ('{3,7,9}' from a rollup row, '3,7,9' from the spans) and are parsed all at once:
# PostgreSQL writes text arrays faster than any other form tried, and loading them as
# Python lists cost more than the rest of the request together.
_ROWS_OF = """SELECT floor(extract(epoch FROM r.start) / 3600)::bigint, r.name, r.model,
    r.tool_name, r.span_count, CASE WHEN r.status_code = %s THEN r.span_count ELSE 0 END,
    r.input_tokens, r.output_tokens, r.duration_min, r.duration_max,
    cardinality(r.duration_buckets), r.duration_buckets::text, r.duration_counts::text
FROM {table} AS r WHERE """
_ROLLUP_ROWS = _ROWS_OF.format(table=ROLLUP_TABLE)
_SLOT_ROWS = _ROWS_OF.format(table=SLOT_TABLE)
_GAP_ROWS = """SELECT (extract(epoch FROM hour) / 3600)::bigint, name, model, tool_name,
    sum(n)::bigint, sum(e)::bigint,
    sum(ti)::bigint, sum(tout)::bigint, min(lo), max(hi), count(*)::int,
    string_agg(b::text, ',' ORDER BY b), string_agg(n::text, ',' ORDER BY b)
FROM (SELECT {hour} AS hour, s.name, s.model, s.tool_name, {bucket} AS b, count(*) AS n,
             count(*) FILTER (WHERE s.status_code = %s) AS e, sum(s.input_tokens) AS ti,
             sum(s.output_tokens) AS tout, min(s.duration_ms) AS lo, max(s.duration_ms) AS hi
      FROM ({spans}) AS s GROUP BY 1, 2, 3, 4, 5) AS per_bucket
GROUP BY 1, 2, 3, 4"""


def fetch(
    selection: SpanSelection,
    max_width: int,
    window: tuple[datetime | None, datetime | None] = (None, None),
) -> Fetched | None:
    """The selected spans (also inside ``window``, if given) as rollup rows of periods at
    most ``max_width`` hours wide and span buckets of the rest, in one statement; None when
    no clean period helps (see the module docstring)."""
    f = selection.rollup
    if f is None:
        return None
    after = max((t for t in (f.after, window[0]) if t is not None), default=None)
    before = min((t for t in (f.before, window[1]) if t is not None), default=None)
    periods = _cover(selection.clean_periods(), after, before, max_width)
    if not periods:
        return None
    rows = selection.rows
    if window[0] is not None:
        rows = rows.filter(started_at__gte=window[0])
    if window[1] is not None:
        rows = rows.filter(started_at__lt=window[1])
    parts: list[str] = []
    params: list[Any] = []
    slots = [start for start, end in periods if end - start < HOUR]
    if len(slots) < len(periods):
        rollup_where, rollup_params = _rollup_where(
            f, [(start, end) for start, end in periods if end - start >= HOUR]
        )
        parts.append(_ROLLUP_ROWS + rollup_where)
        params += [_ERROR, *rollup_params]
    if slots:
        slot_where, slot_params = keys_where(f, ["r.start = ANY(%s)"], [slots])
        parts.append(_SLOT_ROWS + slot_where)
        params += [_ERROR, *slot_params]
    # The spans outside the rollup periods: one index range per gap (an OR of ranges would
    # make PostgreSQL walk the whole window and filter).
    for lo, hi in _gaps(periods, after, before):
        gap = rows
        if lo is not None:
            gap = gap.filter(started_at__gte=lo)
        if hi is not None:
            gap = gap.filter(started_at__lt=hi)
        # The edges of a window lie inside one hour: it is then a constant, not an
        # expression per span (a third of the time of an hour's aggregate).
        one_hour = lo is not None and hi is not None and hour_of(lo) == hour_of(hi - _TICK)
        inner = gap.order_by().values(
            "started_at",
            "status_code",
            "duration_ms",
            "input_tokens",
            "output_tokens",
            "name",
            "model",
            "tool_name",
        )
        try:
            inner_sql, inner_params = inner.query.sql_with_params()
        except EmptyResultSet:  # e.g. ``kind: []``: no span can match
            continue
        hour = "%s::timestamptz" if one_hour else "date_trunc('hour', s.started_at, 'UTC')"
        parts.append(
            _GAP_ROWS.format(hour=hour, bucket=bucket_sql("s.duration_ms"), spans=inner_sql)
        )
        params += [*((hour_of(lo),) if one_hour and lo else ()), _ERROR, *inner_params]
    with connections[router.db_for_read(OTelSpan)].cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return Fetched.of(cursor.fetchall())


_NO_BRACES = str.maketrans("", "", "{}")


def _integers(texts: Sequence[str], count: int) -> Ints:
    """The comma-separated integers of ``texts`` (PostgreSQL arrays as text) in order."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    values = np.fromstring(",".join(texts).translate(_NO_BRACES), dtype=np.int64, sep=",")
    assert len(values) == count
    return values


@dataclass(frozen=True)
class Fetched:
    """What ``fetch`` read, a column per attribute, a row per rollup row or span bucket;
    the histograms flattened (``sizes[i]`` entries for row ``i``, in row order)."""

    hours: Ints
    names: list[str]
    models: list[str | None]
    tools: list[str | None]
    count: Ints
    errors: Ints
    input_tokens: Ints
    output_tokens: Ints
    low: Floats
    high: Floats
    sizes: Ints
    buckets: Ints
    counts: Ints

    @classmethod
    def of(cls, rows: list[tuple[Any, ...]]) -> Fetched:
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) or [()] * 13

        def ints(i: int) -> Ints:
            return np.array(columns[i], dtype=np.int64)

        sizes = ints(10)
        total = int(sizes.sum())
        return cls(
            hours=ints(0),
            names=list(columns[1]),
            models=list(columns[2]),
            tools=list(columns[3]),
            count=ints(4),
            errors=ints(5),
            input_tokens=ints(6),
            output_tokens=ints(7),
            low=np.array(columns[8], dtype=np.float64),
            high=np.array(columns[9], dtype=np.float64),
            sizes=sizes,
            buckets=_integers(columns[11], total),
            counts=_integers(columns[12], total),
        )

    def collapsed(self, keys: Ints, groups: int) -> Fetched:
        """The rows merged by ``keys`` (each row's group, ``0 <= key < groups``): row g
        sums the rows of group g and their histograms; its hour and names are those of the
        group's first row (the caller's keys say whether they mean anything)."""
        first = np.full(groups, len(keys), dtype=np.int64)
        np.minimum.at(first, keys, np.arange(len(keys), dtype=np.int64))
        entry_keys = np.repeat(keys, self.sizes)
        present = np.bincount(self.buckets) > 0 if len(self.buckets) else np.zeros(0, dtype=bool)
        used = np.flatnonzero(present)  # the buckets that occur, ascending
        width = max(len(used), 1)
        cells = np.bincount(
            entry_keys * width + (np.cumsum(present) - 1)[self.buckets],
            weights=self.counts,
            minlength=groups * width,
        )  # float64 sums of integers: exact below 2**53
        filled = np.flatnonzero(cells)
        return Fetched(
            hours=self.hours[first],
            names=[self.names[i] for i in first.tolist()],
            models=[self.models[i] for i in first.tolist()],
            tools=[self.tools[i] for i in first.tolist()],
            count=_sums(self.count, keys, groups),
            errors=_sums(self.errors, keys, groups),
            input_tokens=_sums(self.input_tokens, keys, groups),
            output_tokens=_sums(self.output_tokens, keys, groups),
            low=_extremes(np.minimum, self.low, keys, groups),
            high=_extremes(np.maximum, self.high, keys, groups),
            sizes=np.bincount(filled // width, minlength=groups),
            buckets=used[filled % width] if len(used) else filled,
            counts=cells[filled].astype(np.int64),
        )

    def figures(self, keys: Ints, groups: int, fractions: Sequence[float]) -> list[dict[str, Any]]:
        """Per group ``0 <= g < groups``, the rows whose ``keys`` is g (-1: in none) merged:
        count, errors, token sums (exact) and the duration ``percentiles`` of ``fractions``
        (``tracing.histogram``; Nones for a group without spans)."""
        kept = keys >= 0
        key = keys[kept]
        sums = [
            _sums(column[kept], key, groups).tolist()
            for column in (self.count, self.errors, self.input_tokens, self.output_tokens)
        ]
        low = _extremes(np.minimum, self.low[kept], key, groups)
        high = _extremes(np.maximum, self.high[kept], key, groups)
        entry_keys = np.repeat(keys, self.sizes)
        entries = entry_keys >= 0
        percentiles = merged_percentiles(
            entry_keys[entries], self.buckets[entries], self.counts[entries], low, high, fractions
        )
        return [
            {
                "count": n,
                "errors": e,
                "input_tokens": ti,
                "output_tokens": tout,
                "percentiles": p,
            }
            for n, e, ti, tout, p in zip(*sums, percentiles, strict=True)
        ]


def _sums(values: Ints, keys: Ints, groups: int) -> Ints:
    total = np.zeros(groups, dtype=np.int64)
    np.add.at(total, keys, values)  # integers: exact, unlike bincount's float weights
    return total


def _extremes(ufunc: np.ufunc, values: Floats, keys: Ints, groups: int) -> Floats:
    out = np.full(groups, np.inf if ufunc is np.minimum else -np.inf)
    ufunc.at(out, keys, values)
    return out


def factorize(values: Sequence[Any]) -> tuple[Ints, list[Any]]:
    """Each value's index among the distinct non-null ``values`` (in order of first
    appearance; -1 for None), and those values."""
    index: dict[Any, int] = {}
    keys = [-1 if v is None else index.setdefault(v, len(index)) for v in values]
    return np.array(keys, dtype=np.int64), list(index)
