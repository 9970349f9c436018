"""The newest stretch of time that holds a page of spans, read from the span rollups.

A newest-first ``spans`` page over the day-partitioned span table without a time bound
makes PostgreSQL plan, lock and open every partition (a merge of each one's index): at 30
days that cost 1.6-6 ms per page more than on one table (benchmarks/RESULTS.md, "Months
of traces", GraphQL A/B). When the filters are all rollup keys, the hour rows say how far
back a page reaches: ``newest_window`` returns the start of the newest hours whose
rolled-up count of matching spans reaches ``need``, and the page is read from there on
(``tracing.read.span_search.span_page``), touching one or two day partitions.

The count is only a guide, never trusted: the page is kept only if the bounded read
found more rows than the page holds (then no span before the bound can belong to it);
otherwise it is read again without the bound. Hours not rolled up yet (the open hour,
the last minute's) are simply not counted, which only widens the window. Since a wrong
window costs time, never a span, the answer is kept per process for ``KEEP_S`` seconds
per (filter, hour of the cursor, page size): a dashboard's repeated pages skip the lookup.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from django.db import connections, router

from tracing.models import OTelSpan
from tracing.read.span_rollups import RollupFilter, keys_where
from tracing.rollups import ROLLUP_TABLE

# How far back from the newest rolled hour the hours are looked at before giving up on a
# bound (their rows summed per hour: an hour has a row per group of kind, name, model,
# tool and status, ~60 in the benchmark's store).
MAX_HOURS = 72
KEEP_S = 60.0
KEPT_MAX = 512

_Key = tuple[object, ...]
_kept: dict[_Key, tuple[float, datetime | None]] = {}
_kept_lock = threading.Lock()


def forget() -> None:
    """Drop every kept window (tests: each starts from the database)."""
    with _kept_lock:
        _kept.clear()


def window_for(f: RollupFilter, before: datetime | None, need: int) -> datetime | None:
    """``newest_window``, kept for ``KEEP_S`` seconds per (``f``, the hour of ``before``,
    ``need``): within one hour of a cursor the same window serves (it only has to start
    before the page; ``span_page`` checks that it holds it)."""
    hour = before.replace(minute=0, second=0, microsecond=0) if before is not None else None
    keys = (f.kinds, f.names, f.models, f.tools, f.statuses)
    key = (*(None if v is None else tuple(v) for v in keys), f.after, f.before, hour, need)
    now = time.monotonic()
    with _kept_lock:
        kept = _kept.get(key)
    if kept is not None and kept[0] > now:
        return kept[1]
    since = newest_window(f, hour, need)
    with _kept_lock:
        if len(_kept) >= KEPT_MAX:
            _kept.clear()
        _kept[key] = (now + KEEP_S, since)
    return since


def newest_window(f: RollupFilter, before: datetime | None, need: int) -> datetime | None:
    """The start of the newest hours (before ``before``, if given) that hold at least
    ``need`` spans matching ``f`` by the hour rollups; None when the ``MAX_HOURS`` hours
    up to the newest rolled hour hold fewer: read without a bound then. Reads those hours'
    rows through the (width, start) index and sums them per hour (~2.5 ms at 10M spans,
    ~60 rows an hour; kept a minute by ``window_for``)."""
    newest = "SELECT max(m.start) FROM {table} AS m WHERE m.width = 1"
    where, params = keys_where(f, ["r.width = 1"], [])
    tail: list[datetime] = []
    if before is not None:
        where += " AND r.start < %s"
        newest += " AND m.start < %s"
        params.append(before)
        tail.append(before)
    if f.after is not None:
        where += " AND r.start + interval '1 hour' > %s"
        params.append(f.after)
    sql = (
        f"SELECT r.start, sum(r.span_count) FROM {ROLLUP_TABLE} AS r WHERE {where} AND "
        f"r.start > ({newest.format(table=ROLLUP_TABLE)}) - %s * interval '1 hour' "
        "GROUP BY r.start ORDER BY r.start DESC"
    )
    with connections[router.db_for_read(OTelSpan)].cursor() as cursor:
        cursor.execute(sql, [*params, *tail, MAX_HOURS])
        total = 0
        for start, count in cursor.fetchall():
            total += int(count)
            if total >= need:
                return start
    return None
