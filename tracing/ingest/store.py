"""The ingest's work off the event loop: who is sending, then decode, convert and commit.

Runs in the ingest's worker threads (one PostgreSQL connection each, kept between
requests), never on the event loop. A request's spans go through the one row builder
(``build_row``: classification, sanitising, size caps) and the one idempotent write
(``tracing.export.writer.write_rows``) that the in-process exporter uses; the answer is a
success only once they are committed. PostgreSQL unreachable → ``Unavailable`` (503): the
client keeps its spans and retries, and a retry of spans already committed inserts nothing
and adds nothing to any summary.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.db import InterfaceError as DjangoInterfaceError
from django.db import OperationalError as DjangoOperationalError
from django.db import close_old_connections
from opentelemetry.instrumentation.utils import suppress_instrumentation

from graphql_api.models import ApiToken, TokenScope
from tracing.export.drops import drops
from tracing.export.rows import SpanRow
from tracing.export.writer import StagedWriter, conninfo_for, write_rows
from tracing.ingest import decode

logger = logging.getLogger(__name__)

# A deadlock or serialization failure between two writers is retried this often.
_ROLLBACK_RETRIES = 3
_CONFLICTS = (
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.TransactionRollback,
)


class Unavailable(Exception):
    """PostgreSQL cannot be reached now: 503, retry later."""


class Refused(Exception):
    """The request is refused as a whole (auth, size, body): its HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Stored:
    """What one request's spans came to: stored (new or already there) and refused."""

    accepted: int
    inserted: int
    rejected: int
    message: str


def authorize(header: str) -> ApiToken:
    """The ingest token of an ``Authorization: Bearer`` header, else ``Refused`` 401/403."""
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Refused(401, "send 'Authorization: Bearer <ingest token>'")
    # This thread has no request cycle: its Django connection is recycled (a broken one
    # replaced, a pooled one handed back) around the lookup, as a request would.
    close_old_connections()
    try:
        token = ApiToken.objects.authenticate(secret.strip())
    except (DjangoOperationalError, DjangoInterfaceError) as exc:
        raise Unavailable(str(exc)) from None
    finally:
        close_old_connections()
    if token is None:
        raise Refused(401, "invalid or revoked API token")
    if token.scope != TokenScope.INGEST:
        raise Refused(403, "this API token may not ingest spans: create one with --scope ingest")
    return token


class SpanStore:
    """Decodes and commits requests, one PostgreSQL connection per worker thread."""

    def __init__(self, conninfo: str | None = None) -> None:
        self._conninfo = conninfo
        self._local = threading.local()

    def ping(self) -> None:
        """``Unavailable`` at once when PostgreSQL is away: one round trip on this thread's
        own connection, before the token lookup could wait on Django's connection pool."""
        try:
            with suppress_instrumentation():
                conn = self._connection()
                conn.execute("SELECT 1")
                conn.rollback()  # the writes commit their own transactions
        except psycopg.Error as exc:
            self._close()
            raise Unavailable(str(exc)) from None

    def store(self, body: bytes, content_type: str, encoding: str) -> Stored:
        cap = settings.OTLP_MAX_BODY_BYTES
        try:
            request = decode.parse(decode.inflate(body, encoding, cap), content_type)
        except decode.TooLarge as exc:
            raise Refused(413, str(exc)) from None
        except decode.BadRequest as exc:
            raise Refused(400, str(exc)) from None
        del body
        decoded = decode.to_rows(request, settings.TRACING_MAX_ATTRIBUTE_BYTES)
        del request
        rows = decoded.rows
        inserted, refused = self._commit(rows) if rows else (0, [])
        for count, reason in refused:
            decoded.reject(count, reason)
        if decoded.rejected:
            drops.record(decoded.rejected, "ingest_rejected")
        return Stored(
            accepted=len(rows) - sum(count for count, _ in refused),
            inserted=inserted,
            rejected=decoded.rejected,
            message="; ".join(decoded.reasons),
        )

    # --- PostgreSQL ---------------------------------------------------------------------------

    def _commit(self, rows: list[SpanRow]) -> tuple[int, list[tuple[int, str]]]:
        """Commit ``rows``; the spans newly inserted, and (count, reason) of refused ones."""
        try:
            return len(self._write(rows)), []
        except psycopg.Error as exc:
            if _unavailable(exc):
                raise Unavailable(str(exc)) from None
            logger.warning("OTLP batch refused by PostgreSQL (%s); writing trace by trace", exc)
        by_trace: dict[uuid.UUID, list[SpanRow]] = {}
        for row in rows:
            by_trace.setdefault(row.trace_id, []).append(row)
        inserted, refused = 0, []
        for trace_id, trace_rows in by_trace.items():
            try:
                inserted += len(self._write(trace_rows))
            except psycopg.Error as exc:
                if _unavailable(exc):  # the traces committed so far are skipped on retry
                    raise Unavailable(str(exc)) from None
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                refused.append(
                    (len(trace_rows), f"trace {trace_id.hex}: refused by the database ({message})")
                )
        return inserted, refused

    def _write(self, rows: list[SpanRow]) -> list[SpanRow]:
        for attempt in range(_ROLLBACK_RETRIES):
            conn = self._connection()
            try:
                return write_rows(conn, rows, self._local.staged)
            except _CONFLICTS:
                if attempt + 1 == _ROLLBACK_RETRIES:
                    raise
            except psycopg.Error:
                if conn.closed or conn.broken:
                    self._close()
                raise
        raise AssertionError("unreachable")

    def _connection(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            with suppress_instrumentation():
                conn = psycopg.connect(
                    self._conninfo or conninfo_for(),
                    connect_timeout=3,
                    application_name="campuscore-otlp-ingest",
                )
            self._local.conn = conn
            self._local.staged = StagedWriter()
        return conn

    def _close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _unavailable(exc: psycopg.Error) -> bool:
    # Deadlocks and serialization failures (retried by _write first) count as "not now"
    # too: the client retries, nothing is refused for a conflict between writers.
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
