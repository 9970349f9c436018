"""One batch of span rows into PostgreSQL, with the summary of every trace it touches.

``write_rows`` is the one write of both entries (the in-process exporter and the OTLP
ingest): ``write_direct`` COPYs straight into the span table (binary) and advances the
summaries in the same transaction; when a span is already stored the unique constraint
fails the COPY and ``StagedWriter`` redoes the batch through a temp table with
``ON CONFLICT DO NOTHING``, advancing the summaries only by the spans actually inserted.
All return those spans, committed. The hours of the spans inserted are marked for the span
rollups (``tracing.rollups``) in the same transaction; a span already stored marks nothing.
The spans' resources (``tracing_otelresource``) are written in the same transaction, each
distinct one once (``ON CONFLICT DO NOTHING``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from django.db import connections
from opentelemetry.instrumentation.utils import suppress_instrumentation

from tracing.export.rows import ResourceRef, SpanRow
from tracing.export.summary import INSERT_TRACE_IDS, UPDATE_TRACES, delta_params, summarize
from tracing.models import SPAN_COLUMNS
from tracing.rollups import MARK_DIRTY, dirty_params

_COLS = ", ".join(SPAN_COLUMNS)
# The column types, for the staging table and the binary COPY (in SPAN_COLUMNS order).
_SQL_TYPES = (
    ("uuid", "uuid"),
    ("varchar(16)", "varchar"),
    ("varchar(16)", "varchar"),
    ("varchar(500)", "varchar"),
    ("varchar(16)", "varchar"),
    ("timestamptz", "timestamptz"),
    ("timestamptz", "timestamptz"),
    ("double precision", "float8"),
    ("varchar(8)", "varchar"),
    ("text", "text"),
    # jsonb's binary input is a version byte and the JSON text; sending those bytes as
    # bytea lets psycopg's C dumper pass them through (the column decides how the server
    # reads them), instead of a Python-level Jsonb dumper per value.
    ("jsonb", "bytea"),
    ("jsonb", "bytea"),
    ("varchar(200)", "varchar"),
    ("varchar(200)", "varchar"),
    ("bigint", "int8"),
    ("varchar(32)", "varchar"),
    ("varchar(200)", "varchar"),
    ("varchar(200)", "varchar"),
    ("bigint", "int8"),
    ("bigint", "int8"),
)
assert len(_SQL_TYPES) == len(SPAN_COLUMNS)
_COPY_SPAN_TYPES = tuple(copy_type for _, copy_type in _SQL_TYPES)
_JSONB_V1 = b"\x01"  # the version byte of jsonb's binary format

_CREATE_STAGE = "CREATE TEMP TABLE IF NOT EXISTS _span_stage ({}) ON COMMIT DELETE ROWS".format(
    ", ".join(f"{c} {t}" for c, (t, _) in zip(SPAN_COLUMNS, _SQL_TYPES, strict=True))
)
_COPY_STAGE = f"COPY _span_stage ({_COLS}) FROM STDIN"
_INSERT_STAGED_TRACES = (
    "INSERT INTO tracing_oteltrace (id) SELECT DISTINCT trace_id FROM _span_stage "
    "ON CONFLICT (id) DO NOTHING"
)
# Binary COPY: no escaping of the (backslash-rich) JSON text on either side.
COPY_SPANS = f"COPY tracing_otelspan ({_COLS}) FROM STDIN (FORMAT BINARY)"
_INSERT_SPANS = (
    f"INSERT INTO tracing_otelspan ({_COLS}) SELECT {_COLS} FROM _span_stage "
    "ON CONFLICT (trace_id, span_id, started_at) DO NOTHING RETURNING trace_id, span_id"
)
_ATTRIBUTES = SPAN_COLUMNS.index("attributes")
_EVENTS = SPAN_COLUMNS.index("events")
assert (_ATTRIBUTES, _EVENTS) == (10, 11), "copy_spans writes the JSON columns by position"


# Ids in a fixed order, so that concurrent writers lock the same resource rows in order.
INSERT_RESOURCES = (
    "INSERT INTO tracing_otelresource (id, service_name, attributes) "
    "SELECT u.id, u.service_name, u.attributes::jsonb "
    "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS u(id, service_name, attributes) "
    "ORDER BY 1 ON CONFLICT (id) DO NOTHING"
)


def resource_params(rows: list[SpanRow]) -> list[list[Any]] | None:
    """The parameters of ``INSERT_RESOURCES`` for the distinct resources of ``rows``."""
    distinct: dict[int, ResourceRef] = {}
    for row in rows:
        resource = row.resource
        if resource is not None and resource.id not in distinct:
            distinct[resource.id] = resource
    if not distinct:
        return None
    refs = list(distinct.values())
    return [[r.id for r in refs], [r.service_name for r in refs], [r.attributes_json for r in refs]]


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


def copy_spans(cur: psycopg.Cursor[Any], rows: list[SpanRow]) -> None:
    """Binary COPY of ``rows`` into the span table (opens the transaction if none is open)."""
    with cur.copy(COPY_SPANS) as copy:
        copy.set_types(_COPY_SPAN_TYPES)
        for row in rows:
            v = row.values
            copy.write_row(
                (*v[:10], _JSONB_V1 + v[10].encode(), _JSONB_V1 + v[11].encode(), *v[12:])
            )


def write_direct(conn: psycopg.Connection[Any], rows: list[SpanRow]) -> list[SpanRow]:
    """COPY straight into the span table.

    About twice as fast as staging: the rows cross the server once and no RETURNING set
    comes back. A span already stored (a batch exported again, a retry after a commit whose
    answer was lost, a span twice in one batch) makes the unique constraint fail the COPY;
    the transaction then rolls back whole and the caller takes the staged path, so nothing
    is duplicated or counted twice.
    """
    try:
        with conn.cursor() as cur:
            copy_spans(cur, rows)
            # The trace rows follow the spans in the same transaction (no foreign key in
            # the database, see tracing/migrations/0007), and the three statements share
            # one round trip.
            with conn.pipeline():
                if (resources := resource_params(rows)) is not None:
                    cur.execute(INSERT_RESOURCES, resources)
                cur.execute(INSERT_TRACE_IDS, (sorted({row.trace_id for row in rows}),))
                cur.execute(UPDATE_TRACES, delta_params(summarize(rows)))
                cur.execute(MARK_DIRTY, dirty_params([row.started_at for row in rows]))
                conn.commit()
    except BaseException:
        # Leave the connection idle for the staged path; if it is broken, the original
        # error is the one worth reporting.
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        raise
    return rows


class StagedWriter:
    """COPY into a temp table, then ``INSERT ... ON CONFLICT DO NOTHING RETURNING``."""

    def __init__(self) -> None:
        self._staged_on: psycopg.Connection[Any] | None = None

    def write(self, conn: psycopg.Connection[Any], rows: list[SpanRow]) -> list[SpanRow]:
        with conn.transaction(), conn.cursor() as cur:
            if self._staged_on is not conn:  # the temp table lives as long as its connection
                cur.execute(_CREATE_STAGE)
                self._staged_on = conn
            with cur.copy(_COPY_STAGE) as copy:
                for row in rows:
                    copy.write_row(row.values)
            if (resources := resource_params(rows)) is not None:
                cur.execute(INSERT_RESOURCES, resources)
            cur.execute(_INSERT_STAGED_TRACES)
            cur.execute(_INSERT_SPANS)
            inserted = {(trace_id, span_id) for trace_id, span_id in cur.fetchall()}
            fresh: list[SpanRow] = []
            for row in rows:
                key = (row.trace_id, row.span_id)
                if key in inserted:
                    inserted.discard(key)  # a span twice in one batch counts once
                    fresh.append(row)
            if fresh:
                cur.execute(UPDATE_TRACES, delta_params(summarize(fresh)))
                cur.execute(MARK_DIRTY, dirty_params([row.started_at for row in fresh]))
        return fresh


def write_rows(
    conn: psycopg.Connection[Any], rows: list[SpanRow], staged: StagedWriter
) -> list[SpanRow]:
    """Commit ``rows`` idempotently; returns the spans newly inserted.

    ``staged`` belongs to ``conn``'s owner (it remembers the connection holding its temp
    table). The writer's own statements are never traced: no feedback loop. Connection
    errors propagate (the caller decides: buffer and retry, or answer 503).
    """
    with suppress_instrumentation():
        try:
            return write_direct(conn, rows)
        except psycopg.errors.UniqueViolation:
            # Some of these spans are stored already; the transaction rolled back whole,
            # and the staged path inserts only the others.
            return staged.write(conn, rows)
