"""The per-trace summary: the one rule set that turns a trace's spans into its OTelTrace row.

``TraceDelta`` is what newly stored spans add to one trace; ``MERGE`` says, column by
column of ``tracing.models.SUMMARY_COLUMNS``, how a stored summary ``t`` and a delta ``d``
combine. From those two come the statements: ``UPDATE_TRACES`` (the exporter: advance
traces already in the table), ``INSERT_NEW_TRACES`` (the seeder: traces nobody stored
yet, merged into an empty summary) and ``INSERT_FRESH_TRACES`` (the exporter: the same,
skipping ids stored meanwhile). A trace written over many batches, root last, ends
with the same row as one written at once: totals only grow by new spans, and the root is
the earliest agent span (``ROOT_RULE``, here in SQL and in ``TraceDelta.add``).

A trace's status is ``no_agent`` (the column's default) until a span of agent work or an
in-process tagged span arrives (then ``running``), and the agent span's outcome once that
arrives: a trace of HTTP spans alone never shows as a run in progress. ``service_name``
and ``session_id`` are the agent span's once it arrives, until then the earliest span's
that has one (``_ROOT_ELSE_FIRST``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from tracing.conventions.semconv import SpanCategory
from tracing.export.rows import RootInfo, SpanRow
from tracing.models import SUMMARY_COLUMNS, AgentStatus


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
    agent_work: bool = False
    service_name: str = ""
    service_started_at: datetime | None = None
    session_id: str = ""
    session_started_at: datetime | None = None

    def add(self, row: SpanRow) -> None:
        facts = row.facts
        self.span_count += 1
        if self.started_at is None or row.started_at < self.started_at:
            self.started_at = row.started_at
        # A span's start counts as an end too: a span that ends before it starts (a clock
        # set back; its duration is stored as 0) still lies within [started_at, ended_at],
        # the bounds the reads prune day partitions by (tracing.read.spans.TraceExtent).
        ended = row.ended_at if row.ended_at > row.started_at else row.started_at
        if self.ended_at is None or ended > self.ended_at:
            self.ended_at = ended
        self.input_tokens += facts.input_tokens
        self.output_tokens += facts.output_tokens
        self.agent_work = self.agent_work or facts.agent_work or row.in_agent_run
        service = row.service_name
        if service and (
            self.service_started_at is None or row.started_at < self.service_started_at
        ):
            self.service_name, self.service_started_at = service, row.started_at
        if row.session_id and (
            self.session_started_at is None or row.started_at < self.session_started_at
        ):
            self.session_id, self.session_started_at = row.session_id, row.started_at
        if facts.iteration:
            self.iterations += 1
        if facts.category is SpanCategory.TOOL:
            self.tool_calls += 1
            if facts.tool_name:
                self.tools.add(facts.tool_name[:200])
        elif (
            facts.category is SpanCategory.LLM
            and facts.model
            and (self.llm_model_started_at is None or row.started_at < self.llm_model_started_at)
        ):
            self.llm_model, self.llm_model_started_at = facts.model[:200], row.started_at
        # ROOT_RULE within one batch.
        if row.root is not None and (
            self.root is None or row.root.started_at < self.root.started_at
        ):
            self.root = row.root

    def values(self, trace_id: uuid.UUID) -> dict[str, Any]:
        """This delta as one row of ``DELTA_COLUMNS``."""
        r = self.root
        return {
            "id": trace_id,
            "span_count": self.span_count,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "iterations": self.iterations,
            "tool_calls": self.tool_calls,
            # A ragged text[][] is not allowed: each trace's tools travel as JSON text.
            "tools_json": json.dumps(sorted(self.tools)),
            "llm_model": self.llm_model,
            "llm_model_started_at": self.llm_model_started_at,
            "has_root_candidate": r is not None,
            "root_span_id": r.span_id if r else "",
            "root_started_at": r.started_at if r else None,
            "root_duration_ms": r.duration_ms if r else None,
            "query": r.query if r else "",
            "status": r.status if r else "",
            "root_model": r.model if r else "",
            "agent_name": r.agent_name if r else "",
            "conversation_id": r.conversation_id if r else None,
            "user_message_id": r.user_message_id if r else None,
            "ai_message_id": r.ai_message_id if r else None,
            "agent_work": self.agent_work,
            "service_name": self.service_name,
            "root_service_name": r.service_name if r else "",
            "session_id": self.session_id,
            "root_session_id": r.session_id if r else "",
        }


def summarize(rows: Iterable[SpanRow]) -> dict[uuid.UUID, TraceDelta]:
    deltas: dict[uuid.UUID, TraceDelta] = {}
    for row in rows:
        delta = deltas.get(row.trace_id)
        if delta is None:
            delta = deltas[row.trace_id] = TraceDelta()
        delta.add(row)
    return deltas


# --- SQL ------------------------------------------------------------------------------------

# The delta as PostgreSQL receives it: one JSON object per trace, rows ``u`` of these types.
DELTA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "uuid"),
    ("span_count", "int"),
    ("started_at", "timestamptz"),
    ("ended_at", "timestamptz"),
    ("input_tokens", "bigint"),
    ("output_tokens", "bigint"),
    ("iterations", "int"),
    ("tool_calls", "int"),
    ("tools_json", "text"),
    ("llm_model", "text"),
    ("llm_model_started_at", "timestamptz"),
    ("has_root_candidate", "bool"),
    ("root_span_id", "text"),
    ("root_started_at", "timestamptz"),
    ("root_duration_ms", "float8"),
    ("query", "text"),
    ("status", "text"),
    ("root_model", "text"),
    ("agent_name", "text"),
    ("conversation_id", "bigint"),
    ("user_message_id", "bigint"),
    ("ai_message_id", "bigint"),
    ("agent_work", "bool"),
    ("service_name", "text"),
    ("root_service_name", "text"),
    ("session_id", "text"),
    ("root_session_id", "text"),
)

# ROOT_RULE: the delta's agent span becomes the root when the trace has none yet or when it
# started before the stored one (an outer run arriving after a nested one).
ROOT_RULE = """(u.has_root_candidate AND (t.root_span_id = '' OR u.root_started_at < (
    SELECT s.started_at FROM tracing_otelspan s
    WHERE s.trace_id = t.id AND s.span_id = t.root_span_id
      AND s.started_at BETWEEN t.started_at AND t.ended_at)))"""


def _from_root(column: str, value: str | None = None) -> str:
    return f"CASE WHEN d.take_root THEN {value or 'd.' + column} ELSE t.{column} END"


def _root_else_first(column: str) -> str:
    # _ROOT_ELSE_FIRST: the root's value when it has one, else the first value seen.
    return f"""CASE
        WHEN d.take_root AND d.root_{column} <> '' THEN d.root_{column}
        WHEN t.{column} = '' THEN d.{column}
        ELSE t.{column} END"""


def _existing(table: str, column: str) -> str:
    # Ids from span attributes may point at rows that are gone (or never were).
    return _from_root(column, f"(SELECT x.id FROM {table} x WHERE x.id = d.{column})")


# How each summary column of a stored trace ``t`` advances by a delta ``d``.
MERGE: dict[str, str] = {
    "conversation_id": _existing("chat_conversation", "conversation_id"),
    "user_message_id": _existing("chat_message", "user_message_id"),
    "ai_message_id": _existing("chat_message", "ai_message_id"),
    "agent_name": _from_root("agent_name"),
    "query": _from_root("query"),
    "status": f"""CASE
        WHEN d.take_root THEN d.status
        WHEN t.root_span_id = '' AND d.agent_work THEN '{AgentStatus.RUNNING.value}'
        ELSE t.status END""",
    "model": """CASE
        WHEN d.take_root AND d.root_model <> '' THEN d.root_model
        WHEN t.model = '' THEN d.llm_model
        ELSE t.model END""",
    "started_at": "LEAST(t.started_at, d.started_at)",
    "ended_at": "GREATEST(t.ended_at, d.ended_at)",
    # The root's own duration once known; until then the spans' extent.
    "total_duration_ms": """CASE
        WHEN d.take_root THEN d.root_duration_ms
        WHEN t.root_span_id <> '' THEN t.total_duration_ms
        ELSE EXTRACT(EPOCH FROM (GREATEST(t.ended_at, d.ended_at)
                                 - LEAST(t.started_at, d.started_at))) * 1000 END""",
    "total_input_tokens": "t.total_input_tokens + d.input_tokens",
    "total_output_tokens": "t.total_output_tokens + d.output_tokens",
    "iteration_count": "t.iteration_count + d.iterations",
    "tool_call_count": "t.tool_call_count + d.tool_calls",
    "tools_used": """CASE WHEN cardinality(d.tools) = 0 THEN t.tools_used ELSE ARRAY(
        SELECT DISTINCT u FROM unnest(t.tools_used || d.tools) AS u ORDER BY u) END""",
    "span_count": "t.span_count + d.span_count",
    "root_span_id": _from_root("root_span_id"),
    "service_name": _root_else_first("service_name"),
    "session_id": _root_else_first("session_id"),
}
# A trace no span has reached yet (the columns' defaults): what INSERT_NEW_TRACES merges into.
EMPTY: dict[str, str] = {
    "conversation_id": "NULL::bigint",
    "user_message_id": "NULL::bigint",
    "ai_message_id": "NULL::bigint",
    "agent_name": "''",
    "query": "''",
    "status": f"'{AgentStatus.NO_AGENT.value}'",
    "model": "''",
    "started_at": "NULL::timestamptz",
    "ended_at": "NULL::timestamptz",
    "total_duration_ms": "NULL::float8",
    "total_input_tokens": "0",
    "total_output_tokens": "0",
    "iteration_count": "0",
    "tool_call_count": "0",
    "tools_used": "'{}'::varchar[]",
    "span_count": "0",
    "root_span_id": "''",
    "service_name": "''",
    "session_id": "''",
}
assert tuple(MERGE) == SUMMARY_COLUMNS == tuple(EMPTY), "one rule per summary column"

# One JSON array of delta objects (orjson writes it in C; 27 parameter arrays were dumped
# element by element in Python), read back with the columns' types.
_DELTA = "jsonb_to_recordset(%s::jsonb) AS u({})".format(
    ", ".join(f"{name} {sql_type}" for name, sql_type in DELTA_COLUMNS)
)
_TOOLS = "ARRAY(SELECT jsonb_array_elements_text(u.tools_json::jsonb)) AS tools"

# One statement advances every touched trace stored already (see INSERT_FRESH_TRACES).
# ``OFFSET 0`` keeps ``d`` a subquery of its own: pulled up into the statement, each of
# the MERGE rules' references to ``take_root`` became a copy of ROOT_RULE's subquery over
# every day partition of the span table (planned and run ~10 times over; 2-3x the time of
# the whole statement with 90 days of partitions, benchmarks/RESULTS.md).
UPDATE_TRACES = f"""
UPDATE tracing_oteltrace t SET
    {", ".join(f"{column} = {rule}" for column, rule in MERGE.items())},
    updated_at = now()
FROM (
    SELECT u.*, {_TOOLS}, {ROOT_RULE} AS take_root
    FROM {_DELTA} JOIN tracing_oteltrace t ON t.id = u.id
    OFFSET 0
) d
WHERE t.id = d.id
"""
# Trace rows first written whole from their spans (the seeder: no earlier state exists).
INSERT_NEW_TRACES = f"""
INSERT INTO tracing_oteltrace (id, {", ".join(SUMMARY_COLUMNS)}, updated_at)
SELECT d.id, {", ".join(MERGE.values())}, now()
FROM (
    SELECT u.*, {_TOOLS}, {ROOT_RULE} AS take_root
    FROM {_DELTA} CROSS JOIN t
    OFFSET 0
) d CROSS JOIN t
"""
INSERT_NEW_TRACES = (
    "WITH t AS (SELECT NULL::uuid AS id, "
    + ", ".join(f"{value} AS {column}" for column, value in EMPTY.items())
    + ")"
    + INSERT_NEW_TRACES
)
# The exporter's first write of the traces a batch touches: whole rows, merged into the
# empty summary, in one row version (not an empty row, then its update). The ids another
# writer has stored already are skipped, absent from the ids returned: UPDATE_TRACES
# advances those. Ids in a fixed order, so that concurrent writers lock in the same order.
INSERT_FRESH_TRACES = INSERT_NEW_TRACES + "ORDER BY d.id ON CONFLICT (id) DO NOTHING RETURNING id"


# Run first in each transaction of the summary statements. Their many CASE rules with
# subqueries over every span partition, and the planner's default guess of 100 rows for
# jsonb_to_recordset, put their cost over jit_above_cost: PostgreSQL then compiles
# thousands of functions per statement (seconds with a few dozen partitions) for a
# statement that runs in milliseconds.
NO_JIT = "SET LOCAL jit = off"


def delta_params(deltas: dict[uuid.UUID, TraceDelta]) -> tuple[str]:
    """The parameter of ``UPDATE_TRACES`` / ``INSERT_NEW_TRACES``: the deltas as one JSON
    array of ``DELTA_COLUMNS`` objects (times as RFC 3339 with microseconds)."""
    return (orjson.dumps([delta.values(trace_id) for trace_id, delta in deltas.items()]).decode(),)
