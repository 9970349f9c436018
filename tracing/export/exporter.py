"""PostgresSpanExporter: the SpanExporter API, its bounded buffer and its retry thread.

What it guarantees:

* only spans tagged by ``AgentRunTaggerProcessor`` are kept; the rest return at once;
* spans already stored are never inserted again, and a trace's summary is advanced only
  by the spans actually inserted (``tracing.export.writer``, ``tracing.export.summary``);
* while PostgreSQL is unreachable, rows wait in a bounded buffer and a retry thread writes
  them with backoff once it is back; every span lost (overflow, rejection, shutdown) is
  counted in ``stats`` and in ``tracing.export.drops``, and logged, never silent;
* values PostgreSQL/JSON reject are made storable (``tracing.export.rows``);
* its own database traffic runs with instrumentation suppressed: no feedback loop;
* it never raises into the caller.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tracing.conventions import attributes as A
from tracing.export.drops import drops
from tracing.export.rows import SpanRow, span_to_row
from tracing.export.writer import StagedWriter, conninfo_for, write_rows

logger = logging.getLogger(__name__)

# Rows written per transaction while draining the buffer.
WRITE_CHUNK = 20_000


@dataclass
class ExporterStats:
    spans_received: int = 0
    spans_ignored: int = 0  # not tagged as agent spans
    spans_written: int = 0  # newly inserted rows
    spans_duplicate: int = 0  # already stored (re-export)
    spans_lost_overflow: int = 0
    spans_lost_rejected: int = 0  # the database refused them even one trace at a time
    spans_lost_unconverted: int = 0
    spans_lost_shutdown: int = 0
    write_failures: int = 0

    @property
    def spans_lost(self) -> int:
        return (
            self.spans_lost_overflow
            + self.spans_lost_rejected
            + self.spans_lost_unconverted
            + self.spans_lost_shutdown
        )


class PostgresSpanExporter(SpanExporter):
    """Writes agent-tagged spans to PostgreSQL; see the module docstring for guarantees."""

    def __init__(
        self,
        *,
        database_alias: str = "default",
        conninfo: str | None = None,
        max_buffered_spans: int | None = None,
        max_attribute_bytes: int | None = None,
        retry_initial_seconds: float = 0.25,
        retry_max_seconds: float = 5.0,
        connect_timeout_seconds: int = 3,
        shutdown_timeout_seconds: float = 30.0,
        keep_untagged: bool = False,
    ) -> None:
        self._alias = database_alias
        self._conninfo = conninfo
        self.max_buffered_spans = max_buffered_spans or settings.TRACING_EXPORTER_BUFFER_SPANS
        self.max_attribute_bytes = max_attribute_bytes or settings.TRACING_MAX_ATTRIBUTE_BYTES
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._connect_timeout = connect_timeout_seconds
        self._shutdown_timeout = shutdown_timeout_seconds
        self._keep_untagged = keep_untagged
        self.stats = ExporterStats()
        self._lock = threading.RLock()
        self._buffer: deque[SpanRow] = deque()
        self._conn: psycopg.Connection[Any] | None = None
        self._staged = StagedWriter()
        self._backoff = retry_initial_seconds
        self._next_attempt = 0.0
        self._outage_since: float | None = None
        self._wake = threading.Event()
        self._retry_thread: threading.Thread | None = None
        self._stopped = False

    # SpanExporter API ------------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._stopped:
            return SpanExportResult.FAILURE
        try:
            rows = self._convert(spans)
            if rows:
                with self._lock:
                    self._enqueue_locked(rows)
                    drained = self._drain_locked()
                if not drained:
                    self._ensure_retry_thread()
            return SpanExportResult.SUCCESS
        except Exception:  # the exporter never raises into the span pipeline
            logger.exception("PostgresSpanExporter.export failed unexpectedly")
            return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        while True:
            with self._lock:
                if self._drain_locked(ignore_backoff=False):
                    return True
                wait = max(self._next_attempt - time.monotonic(), 0.01)
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)

    def shutdown(self) -> None:
        if self._stopped:
            return
        flushed = self.force_flush(int(self._shutdown_timeout * 1000))
        with self._lock:
            self._stopped = True
            if not flushed and self._buffer:
                lost = len(self._buffer)
                self.stats.spans_lost_shutdown += lost
                drops.record(lost, "shutdown")
                self._buffer.clear()
                logger.error(
                    "tracing exporter shut down with PostgreSQL unreachable: %d spans lost", lost
                )
            self._close_locked()
        self._wake.set()
        drops.report()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # internals ---------------------------------------------------------------------------

    def _convert(self, spans: Sequence[ReadableSpan]) -> list[SpanRow]:
        rows: list[SpanRow] = []
        cap = self.max_attribute_bytes
        for span in spans:
            self.stats.spans_received += 1
            attrs = span.attributes or {}
            if not (self._keep_untagged or attrs.get(A.IN_AGENT_RUN)):
                self.stats.spans_ignored += 1
                continue
            try:
                rows.append(span_to_row(span, cap))
            except Exception:
                self.stats.spans_lost_unconverted += 1
                drops.record(1, "unconverted")
                logger.exception("span %r could not be converted; it is lost", span.name)
        return rows

    def _enqueue_locked(self, rows: list[SpanRow]) -> None:
        room = self.max_buffered_spans - len(self._buffer)
        if len(rows) > room:
            lost = len(rows) - max(room, 0)
            rows = rows[: max(room, 0)]
            self.stats.spans_lost_overflow += lost
            drops.record(lost, "buffer_full")
            logger.error(
                "tracing buffer full (%d spans waiting for PostgreSQL): %d spans dropped, "
                "%d dropped in all",
                len(self._buffer),
                lost,
                self.stats.spans_lost_overflow,
            )
        self._buffer.extend(rows)

    def _drain_locked(self, ignore_backoff: bool = False) -> bool:
        """Write buffered rows; True when the buffer is empty afterwards."""
        while self._buffer:
            if not ignore_backoff and time.monotonic() < self._next_attempt:
                return False
            chunk = [self._buffer[i] for i in range(min(WRITE_CHUNK, len(self._buffer)))]
            try:
                self._write(chunk)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._on_unavailable(exc)
                return False
            except psycopg.Error as exc:
                self._close_locked()
                logger.warning("batch rejected (%s); retrying one trace at a time", exc)
                if not self._write_isolated(chunk):
                    return False
            for _ in range(len(chunk)):
                self._buffer.popleft()
            if self._outage_since is not None:
                logger.warning(
                    "PostgreSQL reachable again after %.1fs; buffered spans written",
                    time.monotonic() - self._outage_since,
                )
                self._outage_since = None
            self._backoff = self._retry_initial
            self._next_attempt = 0.0
        return True

    def _write_isolated(self, chunk: list[SpanRow]) -> bool:
        by_trace: dict[uuid.UUID, list[SpanRow]] = {}
        for row in chunk:
            by_trace.setdefault(row.trace_id, []).append(row)
        for trace_id, rows in by_trace.items():
            try:
                self._write(rows)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                # Keep the whole chunk; traces already written are skipped as duplicates.
                self._on_unavailable(exc)
                return False
            except psycopg.Error:
                self._close_locked()
                self.stats.spans_lost_rejected += len(rows)
                drops.record(len(rows), "rejected")
                logger.exception(
                    "PostgreSQL rejected %d spans of trace %s; they are lost", len(rows), trace_id
                )
        return True

    def _on_unavailable(self, exc: Exception) -> None:
        self._close_locked()
        self.stats.write_failures += 1
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            logger.warning(
                "PostgreSQL unavailable (%s); %d spans buffered, retrying with backoff",
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                len(self._buffer),
            )
        self._next_attempt = now + self._backoff
        self._backoff = min(self._backoff * 2, self._retry_max)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conninfo = self._conninfo or conninfo_for(self._alias)
            self._conn = psycopg.connect(
                conninfo,
                connect_timeout=self._connect_timeout,
                application_name="campuscore-span-exporter",
            )
        return self._conn

    def _close_locked(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _write(self, rows: list[SpanRow]) -> None:
        with suppress_instrumentation():
            conn = self._connection()
        fresh = write_rows(conn, rows, self._staged)
        self.stats.spans_written += len(fresh)
        self.stats.spans_duplicate += len(rows) - len(fresh)

    def _ensure_retry_thread(self) -> None:
        with self._lock:
            if self._retry_thread is not None and self._retry_thread.is_alive():
                self._wake.set()
                return
            self._retry_thread = threading.Thread(
                target=self._retry_loop, name="tracing-exporter-retry", daemon=True
            )
            self._retry_thread.start()

    def _retry_loop(self) -> None:
        while not self._stopped:
            with self._lock:
                if not self._buffer:
                    self._retry_thread = None
                    return
                delay = max(self._next_attempt - time.monotonic(), 0.0)
            self._wake.wait(delay if delay > 0 else 0.05)
            self._wake.clear()
            if self._stopped:
                return
            try:
                with self._lock:
                    self._drain_locked()
            except Exception:
                logger.exception("tracing exporter retry failed unexpectedly")
