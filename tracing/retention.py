"""Retention: how long runs are kept (``TRACE_RETENTION_DAYS``) and their removal.

The rule: a run (trace) is removed once it *started* before the cutoff, the UTC midnight
``TRACE_RETENTION_DAYS`` days before now (so between ``days`` and ``days + 1`` days are
kept). A run is removed whole: spans of a run that straddles the cutoff (started before
it, still producing spans after it) are deleted with the run, never left as orphans; a run
that started at or after the cutoff is never touched. Conversations and messages (the
chat app's data) are not touched either; their ``traces`` links simply end.

``prune`` removes, in this order: every day partition of the span table that lies wholly
before the cutoff (one ``DROP TABLE`` of them all, with a lock timeout so ingest never
waits long); the trace rows, in batches of ``BATCH`` by ranges of start time on the
``trace_started_idx`` index (one statement and one short transaction each, ``SKIP
LOCKED`` so a trace the exporter is updating is left for the next run, never waited
for), with the straddlers' newer spans (the hours those leave are marked dirty for the
span rollups); then the old rows of the DEFAULT partition (bounded batches), which also
takes spans ingest stored for the removed runs meanwhile; and the span rollups of the
removed days (``tracing.rollups.forget_before``). It is idempotent (a second run finds
nothing), safe while ingest runs, and holds a PostgreSQL advisory lock so two processes
never prune at once. ``MaintenanceThread`` runs partition creation and (unless
``TRACE_PRUNE_SCHEDULE=off``) pruning from the ASGI process, at most once an hour, and the
span rollups' refresh (``tracing.rollups.refresh``) every minute.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from django.conf import settings
from opentelemetry.instrumentation.utils import suppress_instrumentation
from psycopg import sql

from tracing import partitions, rollups
from tracing.partitions import DEFAULT_PARTITION, SPAN_TABLE

logger = logging.getLogger(__name__)

# pg_try_advisory_lock key: "tracing.prune" as a number, shared by every process.
PRUNE_LOCK_KEY = 0x74726163_65707275
BATCH = 20_000
LOCK_TIMEOUT = "2s"
LOCK_ATTEMPTS = 5
PERIOD_S = 3600.0


def retention_days() -> int | None:
    days: int | None = settings.TRACE_RETENTION_DAYS
    return days


def cutoff_for(now: datetime, days: int) -> datetime:
    """Runs that started before this instant are removed."""
    return partitions.day_start((now - timedelta(days=days)).astimezone(UTC).date())


@dataclass
class PruneReport:
    cutoff: datetime
    dry_run: bool
    partitions: list[str] = field(default_factory=list)
    partition_spans: int = 0
    partition_bytes: int = 0
    loose_spans: int = 0  # from the DEFAULT partition and straddling runs
    traces: int = 0

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"prune_traces: {verb} runs started before {self.cutoff.isoformat()}: "
            f"{len(self.partitions)} span partitions ({self.partition_spans} spans, "
            f"{self.partition_bytes} bytes), {self.loose_spans} other spans, "
            f"{self.traces} traces"
        )


class PruneBusy(Exception):
    """Another process holds the prune lock."""


def prune(
    conninfo: str, now: datetime, days: int, dry_run: bool = False, batch: int = BATCH
) -> PruneReport:
    """Remove runs that started before ``cutoff_for(now, days)``; see the module docstring."""
    cutoff = cutoff_for(now, days)
    report = PruneReport(cutoff=cutoff, dry_run=dry_run)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (PRUNE_LOCK_KEY,)).fetchone()
        if not row or not row[0]:
            raise PruneBusy("another process is pruning traces")
        try:
            if not dry_run:
                partitions.ensure_partitions(conn, now.astimezone(UTC).date())
            _drop_partitions(conn, report)
            _delete_traces(conn, report, batch)
            # After the trace rows: it also takes spans that ingest stored for those runs
            # while they were being deleted (old-dated: the DEFAULT partition).
            _delete_default_rows(conn, report, batch)
            if not dry_run:
                rollups.forget_before(conn, cutoff)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (PRUNE_LOCK_KEY,))
    logger.info(report.summary())
    return report


def _with_lock_retries(conn: psycopg.Connection[Any], statement: sql.Composed) -> None:
    """Run a DDL statement that needs the span table's lock, giving way to ingest: a
    statement waiting for a lock makes every later writer queue behind it, so it waits at
    most LOCK_TIMEOUT and tries again."""
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT))
                )
                conn.execute(statement)
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == LOCK_ATTEMPTS:
                raise
            logger.warning("prune_traces: lock timeout, retrying (%d)", attempt)


def _drop_partitions(conn: psycopg.Connection[Any], report: PruneReport) -> None:
    with conn.cursor() as cur:
        doomed = partitions.partitions_before(cur, report.cutoff)
        for part in doomed:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(part.name)))
            report.partition_spans += int(cur.fetchone()[0])  # type: ignore[index]
            report.partition_bytes += partitions.relation_bytes(cur, part.name)
            report.partitions.append(part.name)
    if doomed and not report.dry_run:
        # One statement: the span table's lock is taken once for all the days (each
        # DROP waits for ingest's open transactions and makes ingest wait behind it;
        # 60 one by one halved ingest for 15 s in the benchmark).
        names = sql.SQL(", ").join(sql.Identifier(p.name) for p in doomed)
        _with_lock_retries(conn, sql.SQL("DROP TABLE {}").format(names))
        logger.info(
            "prune_traces: dropped %s (%d spans, %d bytes)",
            ", ".join(report.partitions),
            report.partition_spans,
            report.partition_bytes,
        )


def _delete_default_rows(conn: psycopg.Connection[Any], report: PruneReport, batch: int) -> None:
    """Old spans in the DEFAULT partition (no day partition held them), in batches."""
    table = sql.Identifier(DEFAULT_PARTITION)
    if report.dry_run:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE started_at < %s").format(table),
            (report.cutoff,),
        ).fetchone()
        report.loose_spans += int(row[0]) if row else 0
        return
    delete = sql.SQL(
        "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE started_at < %s "
        "LIMIT %s))"
    ).format(t=table)
    while True:
        deleted = conn.execute(delete, (report.cutoff, batch)).rowcount
        report.loose_spans += deleted
        if deleted < batch:
            return


# The start that closes the next batch: ``batch`` rows on from the last one, by the
# trace_started_idx index (no rows re-read, none of the dead ones the batches before left).
_BATCH_END = (
    "SELECT started_at FROM tracing_oteltrace WHERE started_at > %s AND started_at < %s "
    "ORDER BY started_at OFFSET %s LIMIT 1"
)
# One batch: the trace rows that started in (after, until] (``until`` inclusive for a
# batch that ends on a row, exclusive when it ends at the cutoff), in one statement; rows
# the exporter holds are skipped (left for the next prune), never waited for. Returns how
# many went, and the runs that straddle the cutoff (their newer spans go too).
_DELETE_BATCH = """
WITH gone AS (
    DELETE FROM tracing_oteltrace WHERE id IN (
        SELECT id FROM tracing_oteltrace
        WHERE started_at > %(after)s AND started_at {until} %(until)s
        FOR UPDATE SKIP LOCKED)
    RETURNING id, ended_at)
SELECT count(*), coalesce(array_agg(id) FILTER (WHERE ended_at >= %(cutoff)s), '{{}}')
FROM gone
"""
_NEVER = datetime.min.replace(tzinfo=UTC)


def _delete_traces(conn: psycopg.Connection[Any], report: PruneReport, batch: int) -> None:
    """The trace rows of the runs that started before the cutoff, in batches of about
    ``batch`` by ranges of start time, each its own short transaction; and the spans of
    runs that straddle the cutoff (the day partitions before it are gone already)."""
    cutoff = report.cutoff
    if report.dry_run:
        row = conn.execute(
            "SELECT count(*) FROM tracing_oteltrace WHERE started_at < %s", (cutoff,)
        ).fetchone()
        report.traces += int(row[0]) if row else 0
        row = conn.execute(
            "SELECT count(*) FROM tracing_oteltrace t JOIN tracing_otelspan s "
            "ON s.trace_id = t.id AND s.started_at >= %s "
            "WHERE t.started_at < %s AND t.ended_at >= %s",
            (cutoff, cutoff, cutoff),
        ).fetchone()
        report.loose_spans += int(row[0]) if row else 0
        return
    after = _NEVER
    while True:
        with conn.transaction():
            row = conn.execute(_BATCH_END, (after, cutoff, batch - 1)).fetchone()
            until, last = (row[0], False) if row else (cutoff, True)
            statement = _DELETE_BATCH.format(until="<" if last else "<=")
            gone = conn.execute(
                statement, {"after": after, "until": until, "cutoff": cutoff}
            ).fetchone()
            assert gone is not None
            report.traces += int(gone[0])
            if gone[1]:
                # Not bounded above: a stale end must not leave spans behind, and the few
                # straddlers cost a key probe per day partition. The hours those spans
                # leave are marked for the rollups (tracing.rollups).
                row = conn.execute(
                    f"WITH gone AS (DELETE FROM {SPAN_TABLE} WHERE trace_id = ANY(%s) "
                    "AND started_at >= %s RETURNING started_at), "
                    f"marked AS (INSERT INTO {rollups.DIRTY_TABLE} (hour) "
                    "SELECT DISTINCT date_trunc('hour', started_at, 'UTC') FROM gone) "
                    "SELECT count(*) FROM gone",
                    (gone[1], cutoff),
                ).fetchone()
                report.loose_spans += int(row[0]) if row else 0
        if last:
            return
        after = until


@dataclass(frozen=True)
class Window:
    """What the viewer shows: the policy and the oldest run still stored."""

    days: int | None
    cutoff: datetime | None
    oldest_kept: datetime | None


def window(now: datetime, oldest_kept: datetime | None) -> Window:
    days = retention_days()
    return Window(days, cutoff_for(now, days) if days else None, oldest_kept)


class MaintenanceThread(threading.Thread):
    """Creates the coming days' partitions and prunes, at start-up and then every
    ``period_s``; refreshes the span rollups at start-up and every
    ``SPAN_ROLLUP_REFRESH_S`` seconds (never when 0)."""

    def __init__(self, conninfo: str, period_s: float = PERIOD_S) -> None:
        super().__init__(daemon=True, name="trace-maintenance")
        self._conninfo = conninfo
        self._period_s = period_s
        self.stopped = threading.Event()

    def run_once(self) -> None:
        # Housekeeping, not the product's work: its SQL is never traced (no spans to Sentry,
        # none recorded beside a request's own).
        with suppress_instrumentation():
            self._maintain()
            self._refresh_rollups()

    def _maintain(self) -> None:
        now = datetime.now(UTC)
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            created = partitions.ensure_partitions(conn, now.date())
        if created:
            logger.info("trace partitions created: %s", ", ".join(created))
        days = retention_days()
        if days and settings.TRACE_PRUNE_SCHEDULE != "off":
            try:
                prune(self._conninfo, now, days)
            except PruneBusy:
                logger.info("prune_traces: skipped, another process is pruning")

    def _refresh_rollups(self) -> None:
        if not settings.SPAN_ROLLUP_REFRESH_S:
            return
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            done = rollups.refresh(conn, datetime.now(UTC))
        if done.hours or done.slotted:
            logger.info(
                "span rollups: %d hours (and %d wider periods) re-aggregated, "
                "%d more hours given 5-minute slots",
                done.hours,
                done.wider,
                done.slotted,
            )

    def run(self) -> None:
        last_maintained: float | None = None
        while not self.stopped.is_set():
            try:
                now = time.monotonic()
                with suppress_instrumentation():
                    if last_maintained is None or now - last_maintained >= self._period_s:
                        last_maintained = now
                        self._maintain()
                    self._refresh_rollups()
            except Exception:
                # Maintenance must never take the server down; the next round tries again.
                logger.exception("trace maintenance failed")
            self.stopped.wait(min(self._period_s, settings.SPAN_ROLLUP_REFRESH_S or self._period_s))
