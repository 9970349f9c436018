"""PostgresSpanExporter: agent-tagged spans → OTelTrace / OTelSpan rows.

What it guarantees:

* only spans tagged by ``AgentRunTaggerProcessor`` are kept; the rest return at once;
* spans already stored are never inserted again (a batch is COPYed straight into the span
  table; when the unique constraint rejects it, it is redone through a staging table with
  ``ON CONFLICT DO NOTHING``), and a trace's summary is advanced only by the spans that
  were actually inserted — so a batch exported twice changes nothing, and a trace
  arriving over many batches (root last) ends with the same summary as if it came at once;
* the summary facts of each span come from ``tracing.semconv`` (one classification for
  every naming generation);
* while PostgreSQL is unreachable, rows wait in a bounded buffer and a retry thread writes
  them with backoff once it is back; overflow is counted and logged, never silent;
* values PostgreSQL/JSON reject (NUL bytes, lone surrogates, NaN, non-JSON types) are made
  storable, and values over ``TRACING_MAX_ATTRIBUTE_BYTES`` are truncated with a marker;
* its own database traffic runs with instrumentation suppressed: no feedback loop;
* it never raises into the caller.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from django.conf import settings
from django.db import connections
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tracing import attributes as A
from tracing import semconv
from tracing.semconv import Concept, SpanCategory

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TRUNCATION_MARKER = "…[truncated {n} bytes]"
# Rows written per transaction while draining the buffer.
WRITE_CHUNK = 20_000

SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "span_kind",
    "started_at",
    "ended_at",
    "duration_ms",
    "status_code",
    "status_message",
    "attributes",
    "events",
    "scope",
)


def ns_to_datetime(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


# --- making values storable ----------------------------------------------------------------


def _clean_str(value: str, cap: int) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: PostgreSQL rejects them
            value = value.encode("utf-8", "replace").decode("utf-8")
    if len(value) > cap // 4 and len(encoded := value.encode("utf-8")) > cap:
        kept = encoded[:cap].decode("utf-8", "ignore")
        value = kept + TRUNCATION_MARKER.format(n=len(encoded) - len(kept.encode("utf-8")))
    return value


def _clean_value(value: Any, cap: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _clean_str(value, cap)
    if isinstance(value, bytes | bytearray):
        return _clean_str(bytes(value).decode("utf-8", "replace"), cap)
    if isinstance(value, Mapping):
        return {_clean_str(str(k), cap): _clean_value(v, cap) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        cleaned = [_clean_value(v, cap) for v in value]
        text = json.dumps(cleaned, ensure_ascii=False)
        if len(text) > cap:
            return _clean_str(text, cap)
        return cleaned
    return _clean_str(repr(value), cap)


def _plain_json(value: Any) -> bool:
    """Whether ``value`` holds only what ``json.dumps(allow_nan=False)`` takes as it is.

    For such values orjson writes the same JSON, about five times faster; anything else
    (NaN, which orjson would turn into null silently, bytes, other objects) takes the
    standard-library path and its cleaning, unchanged.
    """
    cls = value.__class__
    if cls is str or cls is int or cls is bool or value is None:
        return True
    if cls is float:
        return math.isfinite(value)
    if cls is dict:
        for key, item in value.items():
            if key.__class__ is not str:
                return False
            cls = item.__class__
            if not (cls is str or cls is int or cls is bool or _plain_json(item)):
                return False
        return True
    if cls is list or cls is tuple:
        return all(_plain_json(item) for item in value)
    return False


def storable_json(value: Mapping[str, Any] | Sequence[Any], cap: int) -> str:
    """JSON text PostgreSQL's jsonb accepts, each value at most ``cap`` bytes."""
    if _plain_json(value):
        try:
            # orjson's output is valid UTF-8, so only NUL and the size are left to check.
            fast = orjson.dumps(value).decode()
            if len(fast) <= cap and "\\u0000" not in fast:
                return fast
        except orjson.JSONEncodeError:  # lone surrogates, integers beyond 64 bits
            pass
    text: str | None
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = None
    if text is not None and len(text) <= cap and "\\u0000" not in text:
        if text.isascii():
            return text
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            pass
    return json.dumps(_clean_value(value, cap), ensure_ascii=False, separators=(",", ":"))


# --- rows -------------------------------------------------------------------------------------


@dataclass(slots=True)
class RootInfo:
    span_id: str
    started_at: datetime
    duration_ms: float
    query: str
    status: str
    model: str
    agent_name: str
    conversation_id: int | None
    user_message_id: int | None
    ai_message_id: int | None


@dataclass(slots=True)
class SpanRow:
    trace_id: uuid.UUID
    span_id: str
    values: tuple[Any, ...]
    started_at: datetime
    ended_at: datetime
    facts: semconv.SpanFacts
    root: RootInfo | None


def _optional_int(value: Any) -> int | None:
    number = semconv.as_int(value)
    return number if number > 0 else None


@functools.lru_cache(maxsize=4096)
def _trace_uuid(trace_id: int) -> uuid.UUID:
    # The spans of one trace arrive together: one UUID object per trace, not per span.
    return uuid.UUID(int=trace_id)


def span_to_row(span: ReadableSpan, cap: int) -> SpanRow:
    ctx = span.context
    assert ctx is not None
    raw = dict(span.attributes or {})
    raw.pop(A.IN_AGENT_RUN, None)  # the exporter's filter mark, not data
    name = _clean_str(span.name or "", 2000)[:500]
    kind = span.kind.name if span.kind is not None else "INTERNAL"
    start_ns = span.start_time or 0
    end_ns = span.end_time or start_ns
    started_at, ended_at = ns_to_datetime(start_ns), ns_to_datetime(end_ns)
    duration_ms = max(end_ns - start_ns, 0) / 1e6
    status_code = span.status.status_code.name
    status_message = _clean_str(span.status.description or "", cap)
    events = [
        {
            "name": event.name,
            "timestamp": ns_to_datetime(event.timestamp).isoformat(),
            "attributes": dict(event.attributes or {}),
        }
        for event in span.events
    ]
    trace_id = _trace_uuid(ctx.trace_id)
    span_id = format(ctx.span_id, "016x")
    parent_id = format(span.parent.span_id, "016x") if span.parent is not None else ""
    facts = semconv.span_facts(name, raw, kind)
    root = None
    if facts.category is SpanCategory.AGENT:
        root = RootInfo(
            span_id=span_id,
            started_at=started_at,
            duration_ms=duration_ms,
            query=_clean_str(semconv.prompt_text(semconv.get(raw, Concept.PROMPT)), cap),
            status=semconv.agent_status(raw, status_code)[:32],
            model=(facts.model or "")[:200],
            agent_name=str(raw.get(A.GEN_AI_AGENT_NAME) or name.partition(" ")[2])[:200],
            conversation_id=_optional_int(semconv.get(raw, Concept.CONVERSATION_ID)),
            user_message_id=_optional_int(raw.get(A.USER_MESSAGE_ID)),
            ai_message_id=_optional_int(raw.get(A.AI_MESSAGE_ID)),
        )
    scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
    values = (
        trace_id,
        span_id,
        parent_id,
        name,
        kind,
        started_at,
        ended_at,
        duration_ms,
        status_code,
        status_message,
        storable_json(raw, cap),
        storable_json(events, cap) if events else "[]",
        scope[:200],
    )
    return SpanRow(trace_id, span_id, values, started_at, ended_at, facts, root)


@dataclass
class TraceDelta:
    """What newly inserted spans add to one trace's summary."""

    span_count: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    iterations: int = 0
    tool_calls: int = 0
    tools: set[str] = field(default_factory=set)
    llm_model: str = ""
    llm_model_started_at: datetime | None = None
    root: RootInfo | None = None

    def add(self, row: SpanRow) -> None:
        facts = row.facts
        self.span_count += 1
        if self.started_at is None or row.started_at < self.started_at:
            self.started_at = row.started_at
        if self.ended_at is None or row.ended_at > self.ended_at:
            self.ended_at = row.ended_at
        self.input_tokens += facts.input_tokens
        self.output_tokens += facts.output_tokens
        if facts.category is SpanCategory.ITERATION:
            self.iterations += 1
        elif facts.category is SpanCategory.TOOL:
            self.tool_calls += 1
            if facts.tool_name:
                self.tools.add(facts.tool_name[:200])
        elif (
            facts.category is SpanCategory.LLM
            and facts.model
            and (self.llm_model_started_at is None or row.started_at < self.llm_model_started_at)
        ):
            self.llm_model, self.llm_model_started_at = facts.model[:200], row.started_at
        if row.root is not None and (
            self.root is None or row.root.started_at < self.root.started_at
        ):
            self.root = row.root


def summarize(rows: Iterable[SpanRow]) -> dict[uuid.UUID, TraceDelta]:
    deltas: dict[uuid.UUID, TraceDelta] = {}
    for row in rows:
        delta = deltas.get(row.trace_id)
        if delta is None:
            delta = deltas[row.trace_id] = TraceDelta()
        delta.add(row)
    return deltas


# --- SQL ----------------------------------------------------------------------------------

_CREATE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS _span_stage (
    trace_id uuid, span_id varchar(16), parent_span_id varchar(16), name varchar(500),
    span_kind varchar(16), started_at timestamptz, ended_at timestamptz,
    duration_ms double precision, status_code varchar(8), status_message text,
    attributes jsonb, events jsonb, scope varchar(200)
) ON COMMIT DELETE ROWS
"""
_COLS = ", ".join(SPAN_COLUMNS)
_COPY_STAGE = f"COPY _span_stage ({_COLS}) FROM STDIN"
_INSERT_TRACES = (
    "INSERT INTO tracing_oteltrace (id) SELECT DISTINCT trace_id FROM _span_stage "
    "ON CONFLICT (id) DO NOTHING"
)
# The direct path (see ``_write``): trace ids in a fixed order so concurrent writers lock
# trace rows in the same order.
_INSERT_TRACE_IDS = (
    "INSERT INTO tracing_oteltrace (id) SELECT unnest(%s::uuid[]) ORDER BY 1 "
    "ON CONFLICT (id) DO NOTHING"
)
_COPY_SPANS = f"COPY tracing_otelspan ({_COLS}) FROM STDIN (FORMAT BINARY)"
# Binary COPY: no escaping of the (backslash-rich) JSON text on either side.
_COPY_SPAN_TYPES = (
    "uuid",
    "varchar",
    "varchar",
    "varchar",
    "varchar",
    "timestamptz",
    "timestamptz",
    "float8",
    "varchar",
    "text",
    # jsonb's binary input is a version byte and the JSON text; sending those bytes as
    # bytea lets psycopg's C dumper pass them through (the column decides how the server
    # reads them), instead of a Python-level Jsonb dumper per value.
    "bytea",
    "bytea",
    "varchar",
)
_INSERT_SPANS = (
    f"INSERT INTO tracing_otelspan ({_COLS}) SELECT {_COLS} FROM _span_stage "
    "ON CONFLICT (trace_id, span_id) DO NOTHING RETURNING trace_id, span_id"
)
# One statement advances every touched trace. Root fields are taken from the outermost
# (earliest) agent span seen so far; totals only ever grow by newly inserted spans.
_UPDATE_TRACES = """
UPDATE tracing_oteltrace t SET
    span_count = t.span_count + d.span_count,
    started_at = LEAST(t.started_at, d.started_at),
    ended_at = GREATEST(t.ended_at, d.ended_at),
    total_input_tokens = t.total_input_tokens + d.input_tokens,
    total_output_tokens = t.total_output_tokens + d.output_tokens,
    iteration_count = t.iteration_count + d.iterations,
    tool_call_count = t.tool_call_count + d.tool_calls,
    tools_used = CASE WHEN cardinality(d.tools) = 0 THEN t.tools_used ELSE ARRAY(
        SELECT DISTINCT u FROM unnest(t.tools_used || d.tools) AS u ORDER BY u) END,
    has_root = t.has_root OR d.take_root,
    root_span_id = CASE WHEN d.take_root THEN d.root_span_id ELSE t.root_span_id END,
    query = CASE WHEN d.take_root THEN d.query ELSE t.query END,
    status = CASE WHEN d.take_root THEN d.status ELSE t.status END,
    agent_name = CASE WHEN d.take_root THEN d.agent_name ELSE t.agent_name END,
    model = CASE
        WHEN d.take_root AND d.root_model <> '' THEN d.root_model
        WHEN t.model = '' THEN d.llm_model
        ELSE t.model END,
    conversation_id = CASE WHEN d.take_root THEN
        (SELECT c.id FROM chat_conversation c WHERE c.id = d.conversation_id)
        ELSE t.conversation_id END,
    user_message_id = CASE WHEN d.take_root THEN
        (SELECT m.id FROM chat_message m WHERE m.id = d.user_message_id)
        ELSE t.user_message_id END,
    ai_message_id = CASE WHEN d.take_root THEN
        (SELECT m.id FROM chat_message m WHERE m.id = d.ai_message_id)
        ELSE t.ai_message_id END,
    total_duration_ms = CASE
        WHEN d.take_root THEN d.root_duration_ms
        WHEN t.has_root THEN t.total_duration_ms
        ELSE EXTRACT(EPOCH FROM (GREATEST(t.ended_at, d.ended_at)
                                 - LEAST(t.started_at, d.started_at))) * 1000 END,
    updated_at = now()
FROM (
    SELECT u.*, (u.has_root_candidate AND (NOT t2.has_root OR u.root_started_at < (
        SELECT s.started_at FROM tracing_otelspan s
        WHERE s.trace_id = t2.id AND s.span_id = t2.root_span_id))) AS take_root
    FROM unnest(
        %s::uuid[], %s::int[], %s::timestamptz[], %s::timestamptz[], %s::bigint[],
        %s::bigint[], %s::int[], %s::int[], %s::text[], %s::text[], %s::timestamptz[],
        %s::bool[], %s::text[], %s::timestamptz[], %s::float8[], %s::text[], %s::text[],
        %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[]
    ) AS u(id, span_count, started_at, ended_at, input_tokens, output_tokens, iterations,
           tool_calls, tools_json, llm_model, llm_model_started_at, has_root_candidate,
           root_span_id, root_started_at, root_duration_ms, query, status, root_model,
           agent_name, conversation_id, user_message_id, ai_message_id)
    JOIN tracing_oteltrace t2 ON t2.id = u.id
) d0 CROSS JOIN LATERAL (
    SELECT d0.*, ARRAY(SELECT jsonb_array_elements_text(d0.tools_json::jsonb)) AS tools
) d
WHERE t.id = d.id
"""


_JSONB_V1 = b"\x01"  # the version byte of jsonb's binary format


def _update_params(deltas: dict[uuid.UUID, TraceDelta]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(22)]
    for trace_id, d in deltas.items():
        r = d.root
        row = (
            trace_id,
            d.span_count,
            d.started_at,
            d.ended_at,
            d.input_tokens,
            d.output_tokens,
            d.iterations,
            d.tool_calls,
            json.dumps(sorted(d.tools)),
            d.llm_model,
            d.llm_model_started_at,
            r is not None,
            r.span_id if r else "",
            r.started_at if r else None,
            r.duration_ms if r else None,
            r.query if r else "",
            r.status if r else "",
            r.model if r else "",
            r.agent_name if r else "",
            r.conversation_id if r else None,
            r.user_message_id if r else None,
            r.ai_message_id if r else None,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def conninfo_for(alias: str = "default") -> str:
    """A libpq connection string for a Django database alias (read at connect time, so the
    test database is used under pytest-django)."""
    cfg = connections[alias].settings_dict
    params: dict[str, Any] = {
        "dbname": cfg.get("NAME") or "postgres",
        "user": cfg.get("USER") or None,
        "password": cfg.get("PASSWORD") or None,
        "host": cfg.get("HOST") or None,
        "port": str(cfg.get("PORT") or "") or None,
    }
    for key, value in (cfg.get("OPTIONS") or {}).items():
        if isinstance(value, str | int):
            params[key] = value
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v})


# --- the exporter -------------------------------------------------------------------------


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
        self._staged = False
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
                self._buffer.clear()
                logger.error(
                    "tracing exporter shut down with PostgreSQL unreachable: %d spans lost", lost
                )
            self._close_locked()
        self._wake.set()

    def close(self) -> None:
        """Close the database connection (it is reopened on the next write)."""
        with self._lock:
            self._close_locked()

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
                logger.exception("span %r could not be converted; it is lost", span.name)
        return rows

    def _enqueue_locked(self, rows: list[SpanRow]) -> None:
        room = self.max_buffered_spans - len(self._buffer)
        if len(rows) > room:
            lost = len(rows) - max(room, 0)
            rows = rows[: max(room, 0)]
            self.stats.spans_lost_overflow += lost
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
            self._staged = False
        return self._conn

    def _close_locked(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _write(self, rows: list[SpanRow]) -> None:
        with suppress_instrumentation():
            conn = self._connection()
            try:
                fresh = self._write_direct(conn, rows)
            except psycopg.errors.UniqueViolation:
                # Some of these spans are stored already; the transaction rolled back
                # whole, and the staged path inserts only the others.
                fresh = self._write_staged(conn, rows)
        self.stats.spans_written += len(fresh)
        self.stats.spans_duplicate += len(rows) - len(fresh)

    def _write_direct(self, conn: psycopg.Connection[Any], rows: list[SpanRow]) -> list[SpanRow]:
        """COPY straight into the span table.

        About twice as fast as staging: the rows cross the server once and no RETURNING
        set comes back. A span already stored (a batch exported again, a retry after a
        commit whose answer was lost, a span twice in one batch) makes the unique
        constraint fail the COPY; the transaction then rolls back whole and ``_write``
        takes the staged path, so nothing is duplicated or counted twice.
        """
        try:
            with conn.cursor() as cur:
                with cur.copy(_COPY_SPANS) as copy:  # opens the transaction
                    copy.set_types(_COPY_SPAN_TYPES)
                    for row in rows:
                        v = row.values
                        copy.write_row(
                            (*v[:10], _JSONB_V1 + v[10].encode(), _JSONB_V1 + v[11].encode(), v[12])
                        )
                # The span -> trace foreign key is checked at commit, so the trace rows can
                # follow the spans, and the three statements share one round trip.
                with conn.pipeline():
                    cur.execute(_INSERT_TRACE_IDS, (sorted({row.trace_id for row in rows}),))
                    cur.execute(_UPDATE_TRACES, _update_params(summarize(rows)))
                    conn.commit()
        except BaseException:
            # Leave the connection idle for the staged path; if it is broken, the original
            # error is the one worth reporting.
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            raise
        return rows

    def _write_staged(self, conn: psycopg.Connection[Any], rows: list[SpanRow]) -> list[SpanRow]:
        """COPY into a temp table, then INSERT ... ON CONFLICT DO NOTHING RETURNING."""
        with conn.transaction(), conn.cursor() as cur:
            if not self._staged:
                cur.execute(_CREATE_STAGE)
                self._staged = True
            with cur.copy(_COPY_STAGE) as copy:
                for row in rows:
                    copy.write_row(row.values)
            cur.execute(_INSERT_TRACES)
            cur.execute(_INSERT_SPANS)
            inserted = {(trace_id, span_id) for trace_id, span_id in cur.fetchall()}
            fresh: list[SpanRow] = []
            for row in rows:
                key = (row.trace_id, row.span_id)
                if key in inserted:
                    inserted.discard(key)  # a span twice in one batch counts once
                    fresh.append(row)
            if fresh:
                cur.execute(_UPDATE_TRACES, _update_params(summarize(fresh)))
        return fresh

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
