"""Span rollups: per-hour, 6-hour, day and week aggregates of the span table, so
``spanStats`` over days reads a few thousand rollup rows instead of millions of spans, and
5-minute slots of the hours, so a window's partial edge hours read minutes of spans.

Owns the contents of five tables (their models are in ``tracing.models``), the writers'
dirty marks and the refresh:

``tracing_spanrollup``
    One row per (``start``, ``width`` in hours: 1, 6, 24 or 168) and group key (``kind``, ``name``,
    ``model``, ``tool_name``, ``status_code``): span count, token sums, min/max duration
    and a sparse duration histogram (``duration_buckets`` / ``duration_counts``).
``tracing_spanrolluprolled``
    The (``start``, ``width``) periods whose rollup rows are complete (a period with no
    rollup rows and a mark here had no spans).
``tracing_spanrollupslot``
    The same rows per 5-minute slot (``start``; no width) of an hour.
``tracing_spanrollupslotted``
    The hours whose slot rows are complete (hours rolled before the slots existed have
    none until the refresh writes them).
``tracing_spanrollupdirty``
    One row per (hour, write transaction) that added spans: ``write_rows`` (both entries),
    the seeder and retention insert them in the transaction that changes the spans. No
    unique key on purpose: with ``ON CONFLICT DO NOTHING`` a writer whose dirty row
    conflicted with an older, committed one would rely on that row, which a refresh running
    concurrently may delete before the writer's spans are visible to it -- the spans would
    then be in no rollup and in no dirty hour. One row per write keeps every writer's mark
    until a refresh that sees its spans deletes it.

A period is *clean* when it is rolled and no dirty row falls in it; a slot when its hour
is clean and slotted. Readers (``tracing.read.span_rollups``) use rollups only for clean
periods and slots and read the spans of every other instant. ``refresh`` (run by the
maintenance thread every minute) re-aggregates the dirty hours that are closed (ended
``SETTLE`` ago): their slots from the spans (one scan per hour), each hour from its slots,
then the 6-hour blocks, days and weeks (``LEVELS``) they belong to from their parts, all in
one transaction that first deletes those hours' dirty rows committed so far (READ
COMMITTED: the spans they stand for are visible to its later statements); a span committed
after that DELETE began keeps its dirty row for the next refresh. A dirty hour thus
invalidates its slots with it, and they are rewritten together. When no hour is dirty, the
refresh writes the slots of every rolled hour that has none (rolled before the slots
existed; a day's worth per transaction, newest first; an hour dirtied meanwhile is not
clean, so slots and hour are never read apart). The wider periods keep the
rows a long window reads few (30 days: 4 weeks and a few days, blocks and hours, not 720
hours); the slots keep the edges of a window to at most two partial 5-minute slots of spans.

The duration histogram (its buckets, the percentiles read from it and their error) is
``tracing.histogram``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tracing.histogram import bucket_sql

ROLLUP_TABLE = "tracing_spanrollup"
ROLLED_TABLE = "tracing_spanrolluprolled"
DIRTY_TABLE = "tracing_spanrollupdirty"
SLOT_TABLE = "tracing_spanrollupslot"
SLOTTED_TABLE = "tracing_spanrollupslotted"

HOUR = timedelta(hours=1)
SLOT = timedelta(minutes=5)
DAY = timedelta(days=1)
# A closed hour is re-aggregated once it ended this long ago (spans still in exporters'
# buffers usually arrive by then; later ones mark their hour dirty again).
SETTLE = timedelta(minutes=1)
# pg_try_advisory_lock key: "rollups" as a number; one refresh at a time.
REFRESH_LOCK_KEY = 0x726F6C6C_75707300
HOURS_PER_TRANSACTION = 24

GROUP_KEY = ("kind", "name", "model", "tool_name", "status_code")


# --- writers -----------------------------------------------------------------------------

MARK_DIRTY = f"INSERT INTO {DIRTY_TABLE} (hour) SELECT unnest(%s::timestamptz[])"


def hour_of(instant: datetime) -> datetime:
    utc = instant.astimezone(UTC)
    return utc.replace(minute=0, second=0, microsecond=0)


# A batch whose spans span at most this many hours marks every hour from its first to its
# last (two comparisons per span instead of an hour computed per span: the write path's
# cost); a wider one (a replay of old spans) marks each distinct hour.
_CONTIGUOUS_HOURS = 6


def dirty_params(starts: Sequence[datetime]) -> tuple[list[datetime]]:
    """The parameters of ``MARK_DIRTY`` for spans that started at ``starts``: every hour
    holding one of them (and at most a few hours between them)."""
    if not starts:
        return ([],)
    first, last = hour_of(min(starts)), hour_of(max(starts))
    if last - first <= HOUR * _CONTIGUOUS_HOURS:
        count = int((last - first) / HOUR) + 1
        return ([first + HOUR * i for i in range(count)],)
    return (sorted({hour_of(s) for s in starts}),)


# --- refresh -----------------------------------------------------------------------------

_SLOT_COLUMNS = (
    "start, kind, name, model, tool_name, status_code, span_count, input_tokens, "
    "output_tokens, duration_min, duration_max, duration_buckets, duration_counts"
)
_COLUMNS = f"width, {_SLOT_COLUMNS}"
# The 5-minute slots of one hour from its spans, in one scan.
_ROLL_SLOTS = f"""
INSERT INTO {SLOT_TABLE} ({_SLOT_COLUMNS})
SELECT slot, kind, name, model, tool_name, status_code, sum(n), sum(ti), sum(tout),
       min(lo), max(hi), array_agg(b::smallint ORDER BY b), array_agg(n::int ORDER BY b)
FROM (
    SELECT date_bin('5 minutes', started_at, %(start)s) AS slot, kind, name, model,
           tool_name, status_code, {bucket_sql("duration_ms")} AS b,
           count(*) AS n, sum(input_tokens) AS ti, sum(output_tokens) AS tout,
           min(duration_ms) AS lo, max(duration_ms) AS hi
    FROM tracing_otelspan
    WHERE started_at >= %(start)s AND started_at < %(end)s
    GROUP BY 1, 2, 3, 4, 5, 6, 7
) AS per_bucket
GROUP BY slot, kind, name, model, tool_name, status_code
"""
# The wider periods, each rolled up from its narrower ones once all of those are rolled and
# it is closed: (width, child width) in hours. Weeks start on Monday (as date_trunc's).
LEVELS = ((6, 1), (24, 6), (168, 24))
_CHILD = dict(LEVELS)


def _roll_up_sql(table: str, children: str) -> str:
    """A period from its children's rows (those of ``table`` where ``children``; the
    caller checked they are all rolled)."""
    return f"""
INSERT INTO {ROLLUP_TABLE} ({_COLUMNS})
SELECT %(width)s, %(start)s, g.kind, g.name, g.model, g.tool_name, g.status_code, g.n, g.ti,
       g.tout, g.lo, g.hi, h.bs, h.cs
FROM (
    SELECT kind, name, model, tool_name, status_code, sum(span_count) AS n,
           sum(input_tokens) AS ti, sum(output_tokens) AS tout,
           min(duration_min) AS lo, max(duration_max) AS hi
    FROM {table} WHERE {children}
    GROUP BY 1, 2, 3, 4, 5
) AS g
JOIN (
    SELECT kind, name, model, tool_name, status_code,
           array_agg(b::smallint ORDER BY b) AS bs, array_agg(c::int ORDER BY b) AS cs
    FROM (
        SELECT r.kind, r.name, r.model, r.tool_name, r.status_code, u.b, sum(u.c) AS c
        FROM {table} AS r, unnest(r.duration_buckets, r.duration_counts) AS u(b, c)
        WHERE {children}
        GROUP BY 1, 2, 3, 4, 5, 6
    ) AS per_bucket
    GROUP BY 1, 2, 3, 4, 5
) AS h
ON (h.kind, h.name, h.status_code) = (g.kind, g.name, g.status_code)
   AND h.model IS NOT DISTINCT FROM g.model AND h.tool_name IS NOT DISTINCT FROM g.tool_name
"""


_WITHIN = "start >= %(start)s AND start < %(end)s"
_ROLL_UP = _roll_up_sql(ROLLUP_TABLE, f"width = %(child)s AND {_WITHIN}")
_ROLL_HOUR = _roll_up_sql(SLOT_TABLE, _WITHIN)


def period_start(instant: datetime, width: int) -> datetime:
    """The start of the ``width``-hour period (6, 24 or 168) holding ``instant``."""
    hour = hour_of(instant)
    if width == 168:
        day = hour.replace(hour=0)
        return day - DAY * day.weekday()
    return hour.replace(hour=hour.hour - hour.hour % width)


@dataclass
class RefreshReport:
    hours: int = 0
    wider: int = 0  # 6-hour blocks, days and weeks rolled up from their parts
    rows: int = 0  # hour rows
    slotted: int = 0  # clean hours given the slots they lacked
    slot_rows: int = 0


def refresh(conn: psycopg.Connection[Any], now: datetime, backfill: bool = True) -> RefreshReport:
    """Re-aggregate every dirty closed hour, and the wider periods they belong to, then
    (``backfill``) give the clean hours without slots theirs (see the module docstring).
    ``conn`` in autocommit mode; a no-op while another process refreshes."""
    report = RefreshReport()
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (REFRESH_LOCK_KEY,)).fetchone()
    if not row or not row[0]:
        return report
    try:
        while True:
            hours = [
                h
                for (h,) in conn.execute(
                    f"SELECT DISTINCT hour FROM {DIRTY_TABLE} WHERE hour + interval '1 hour' "
                    "<= %s ORDER BY hour LIMIT %s",
                    (now - SETTLE, HOURS_PER_TRANSACTION),
                ).fetchall()
            ]
            if not hours:
                break
            _refresh_hours(conn, hours, now - SETTLE, report)
        while backfill and _backfill_slots(conn, report):
            pass
        return report
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (REFRESH_LOCK_KEY,))


def _refresh_hours(
    conn: psycopg.Connection[Any], hours: list[datetime], closed: datetime, report: RefreshReport
) -> None:
    with conn.transaction():
        # Only the marks committed before this statement; the spans they stand for are
        # visible to every later statement of this transaction (READ COMMITTED).
        conn.execute(f"DELETE FROM {DIRTY_TABLE} WHERE hour = ANY(%s)", (hours,))
        conn.execute(f"DELETE FROM {ROLLUP_TABLE} WHERE width = 1 AND start = ANY(%s)", (hours,))
        _roll_slots(conn, hours, report)
        for hour in hours:
            report.rows += conn.execute(
                _ROLL_HOUR, {"start": hour, "end": hour + HOUR, "width": 1}
            ).rowcount
        conn.execute(
            f"INSERT INTO {ROLLED_TABLE} (start, width) SELECT unnest(%s::timestamptz[]), 1 "
            "ON CONFLICT (start, width) DO NOTHING",
            (hours,),
        )
        report.hours += len(hours)
        for width, child in LEVELS:
            for start in sorted({period_start(h, width) for h in hours}):
                if start + HOUR * width <= closed:
                    report.wider += _roll_up(conn, start, width, child)


def _roll_slots(
    conn: psycopg.Connection[Any], hours: list[datetime], report: RefreshReport
) -> None:
    """Rewrite the slots of ``hours`` from their spans and mark the hours slotted (in the
    caller's transaction)."""
    for hour in hours:
        bounds = {"start": hour, "end": hour + HOUR}
        conn.execute(f"DELETE FROM {SLOT_TABLE} WHERE {_WITHIN}", bounds)
        report.slot_rows += conn.execute(_ROLL_SLOTS, bounds).rowcount
    conn.execute(
        f"INSERT INTO {SLOTTED_TABLE} (hour) SELECT unnest(%s::timestamptz[]) "
        "ON CONFLICT (hour) DO NOTHING",
        (hours,),
    )


def _backfill_slots(conn: psycopg.Connection[Any], report: RefreshReport) -> bool:
    """Give a day's worth of rolled, clean hours without slots (rolled before the slots
    existed) theirs, newest first; False when there were none. A span committed meanwhile
    marks its hour dirty: hour and slots are then not clean, and the next refresh rewrites
    both."""
    hours = [
        h
        for (h,) in conn.execute(
            f"SELECT r.start FROM {ROLLED_TABLE} AS r WHERE r.width = 1 "
            f"AND NOT EXISTS (SELECT 1 FROM {SLOTTED_TABLE} AS s WHERE s.hour = r.start) "
            f"AND NOT EXISTS (SELECT 1 FROM {DIRTY_TABLE} AS d WHERE d.hour = r.start) "
            "ORDER BY r.start DESC LIMIT %s",
            (HOURS_PER_TRANSACTION,),
        ).fetchall()
    ]
    if not hours:
        return False
    with conn.transaction():
        _roll_slots(conn, hours, report)
    report.slotted += len(hours)
    return True


def _roll_up(conn: psycopg.Connection[Any], start: datetime, width: int, child: int) -> int:
    """Roll the period up from its ``child``-hour parts when they are all rolled (parts
    never rolled are tried first: hours without spans that were never marked dirty are
    rolled, empty); 1 if done."""
    end = start + HOUR * width
    if child > 1:
        rolled = {
            s
            for (s,) in conn.execute(
                f"SELECT start FROM {ROLLED_TABLE} WHERE width = %s AND start >= %s AND start < %s",
                (child, start, end),
            ).fetchall()
        }
        for i in range(width // child):
            part = start + HOUR * child * i
            if part not in rolled:
                _roll_up(conn, part, child, _CHILD[child])
    else:  # the hours newly rolled here have no spans: no slots either
        conn.execute(
            f"WITH rolled AS (INSERT INTO {ROLLED_TABLE} (start, width) SELECT h, 1 "
            "FROM unnest(%s::timestamptz[]) AS h "
            f"WHERE NOT EXISTS (SELECT 1 FROM {DIRTY_TABLE} d WHERE d.hour = h) "
            "ON CONFLICT (start, width) DO NOTHING RETURNING start) "
            f"INSERT INTO {SLOTTED_TABLE} (hour) SELECT start FROM rolled "
            "ON CONFLICT (hour) DO NOTHING",
            ([start + HOUR * i for i in range(width)],),
        )
    conn.execute(f"DELETE FROM {ROLLUP_TABLE} WHERE width = %s AND start = %s", (width, start))
    conn.execute(f"DELETE FROM {ROLLED_TABLE} WHERE width = %s AND start = %s", (width, start))
    row = conn.execute(
        f"SELECT count(*) FROM {ROLLED_TABLE} WHERE width = %s AND start >= %s AND start < %s",
        (child, start, end),
    ).fetchone()
    if not row or row[0] < width // child:
        return 0
    conn.execute(_ROLL_UP, {"start": start, "end": end, "width": width, "child": child})
    conn.execute(f"INSERT INTO {ROLLED_TABLE} (start, width) VALUES (%s, %s)", (start, width))
    return 1


def forget_before(conn: psycopg.Connection[Any], cutoff: datetime) -> None:
    """Retention: remove the rollups and marks of every period that began before
    ``cutoff`` (a UTC midnight; the spans of those days are gone)."""
    with conn.transaction():
        # Waits for a refresh in progress, which could otherwise write rollups of a day
        # just forgotten.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (REFRESH_LOCK_KEY,))
        for table, column in (
            (ROLLUP_TABLE, "start"),
            (ROLLED_TABLE, "start"),
            (SLOT_TABLE, "start"),
            (SLOTTED_TABLE, "hour"),
            (DIRTY_TABLE, "hour"),
        ):
            conn.execute(f"DELETE FROM {table} WHERE {column} < %s", (cutoff,))
