"""The span table's daily partitions: names, bounds, creation ahead of time, and removal.

``tracing_otelspan`` is partitioned by ``RANGE (started_at)``, one partition per UTC day
(``tracing_otelspan_p20261201`` holds spans started on 2026-12-01), plus a DEFAULT
partition that catches every span no day partition covers (clock skew, old replays, a
server that was down over midnight): the exporter never fails for lack of a partition.

``ensure_partitions`` creates the partitions for yesterday .. ``DAYS_AHEAD`` days ahead
(the ASGI process at start-up and the hourly maintenance call it; so do ``migrate`` and
``prune_traces``). Creating a day whose spans already sit in the DEFAULT partition would
fail PostgreSQL's check, so those rows are moved into the new table before it is attached.

Why hand-written DDL and not django-postgres-extra's partitioning manager: see
``benchmarks/RESULTS.md`` ("Months of traces"): in short it needs its own database backend
for the whole project, cannot convert an existing table, fails to create a partition whose
range already has rows in the DEFAULT partition, and drops partitions without a lock
timeout in one transaction with the creations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg import sql

SPAN_TABLE = "tracing_otelspan"
DEFAULT_PARTITION = f"{SPAN_TABLE}_default"
DAYS_AHEAD = 7
_DAY_NAME = re.compile(rf"^{SPAN_TABLE}_p(\d{{8}})$")


def partition_name(day: date) -> str:
    return f"{SPAN_TABLE}_p{day:%Y%m%d}"


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class DayPartition:
    name: str
    day: date

    @property
    def start(self) -> datetime:
        return day_start(self.day)

    @property
    def end(self) -> datetime:
        return day_start(self.day + timedelta(days=1))


def day_partitions(cur: Any) -> list[DayPartition]:
    """The day partitions attached to the span table, oldest first."""
    cur.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        (SPAN_TABLE,),
    )
    found = []
    for (name,) in cur.fetchall():
        m = _DAY_NAME.match(name)
        if m:
            found.append(DayPartition(name, datetime.strptime(m.group(1), "%Y%m%d").date()))
    return sorted(found, key=lambda p: p.day)


def is_partitioned(cur: Any) -> bool:
    cur.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", (SPAN_TABLE,))
    row = cur.fetchone()
    return bool(row) and row[0] == "p"


def create_day(cur: Any, day: date) -> bool:
    """Create the partition for ``day`` unless it exists; True when it was created.

    Runs in the caller's transaction. Spans of that day already in the DEFAULT partition
    are moved into the new table first (PostgreSQL refuses to attach over them otherwise).
    """
    name = partition_name(day)
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    if cur.fetchone()[0]:
        return False
    start, end = day_start(day), day_start(day + timedelta(days=1))
    ident, parent, default = map(sql.Identifier, (name, SPAN_TABLE, DEFAULT_PARTITION))
    cur.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE started_at >= %s AND started_at < %s)"
        ).format(default),
        (start, end),
    )
    if not cur.fetchone()[0]:
        cur.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                ident, parent, sql.Literal(start), sql.Literal(end)
            )
        )
        return True
    cur.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING COMPRESSION)").format(
            ident, parent
        )
    )
    cur.execute(
        sql.SQL(
            "WITH moved AS (DELETE FROM {} WHERE started_at >= %s AND started_at < %s "
            "RETURNING *) INSERT INTO {} SELECT * FROM moved"
        ).format(default, ident),
        (start, end),
    )
    cur.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            parent, ident, sql.Literal(start), sql.Literal(end)
        )
    )
    return True


def ensure_partitions(conn: Any, today: date, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """Create the missing partitions for yesterday .. ``today + days_ahead`` (one short
    transaction each, so ingest waits at most for one). Returns the names created."""
    created: list[str] = []
    with conn.cursor() as cur:
        if not is_partitioned(cur):  # before `migrate` partitioned it
            return created
    for offset in range(-1, days_ahead + 1):
        day = today + timedelta(days=offset)
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = '5s'")
            if create_day(cur, day):
                created.append(partition_name(day))
    return created


def partitions_before(cur: Any, cutoff: datetime) -> list[DayPartition]:
    """The day partitions whose whole day lies before ``cutoff``."""
    return [p for p in day_partitions(cur) if p.end <= cutoff]


def relation_bytes(cur: Any, name: str) -> int:
    """Heap + TOAST + indexes of one partition."""
    cur.execute("SELECT pg_total_relation_size(%s::regclass)", (name,))
    return int(cur.fetchone()[0])
