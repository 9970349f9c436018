"""``seed_traces``: fill the database with realistic synthetic agent traces, fast.

What it owns: the synthetic data used by the query benchmark (``make bench-query``).

* Rows go in with PostgreSQL ``COPY`` (text format, lines built in Python), never through
  the ORM: a million traces (~10M spans) take minutes, not hours.
* Traces are shaped like real ``AgentCore`` runs: ``invoke_agent <agent>`` →
  ``knowledge_routing``, ``iteration_N`` → ``token_management``, ``chat <model>`` (+ httpx
  ``POST``), ``execute_tool <tool>`` (+ psycopg ``SELECT``), plus the ``INSERT`` of the
  answer for conversation turns. Older traces use the earlier GenAI (Sentry era) and the
  legacy attribute names, as stored data really does.
* Every summary column of ``OTelTrace`` is exactly what ``PostgresSpanExporter`` would
  compute from the same spans (``tests/test_seed_traces.py`` replays seeded spans through
  the real exporter and compares).
* Traces are written in ``started_at`` order, as live ingestion writes them, so the heap's
  physical order correlates with time the way it does in production.

A generator thread builds chunks while writer threads (``--writers``, 2 by default) COPY
earlier ones, each through its own connection: PostgreSQL's backends, not Python, set the
pace, and a chunk is self-contained (ids reserved up front), so chunks commit independently.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

import psycopg
from django.core.management.base import BaseCommand, CommandError, CommandParser

from campus_core.chat.knowledge import FOLDERS, route_folders
from tracing.conventions import attributes as A
from tracing.conventions import semconv
from tracing.export import conninfo_for
from tracing.export.rows import promoted_values
from tracing.models import SPAN_COLUMNS as exporter_span_columns

# --- the synthetic world ---------------------------------------------------------------------

AGENTS = (("campuscore_agent", 0.9), ("admissions_agent", 0.1))
# (model, weight, provider, median LLM latency in ms)
MODELS = (
    ("gpt-4o-mini", 0.36, "openai", 650.0),
    ("gpt-4o", 0.18, "openai", 1300.0),
    ("claude-sonnet-4-5", 0.17, "anthropic", 1500.0),
    ("claude-haiku-4-5", 0.12, "anthropic", 700.0),
    ("llama-3.3-70b", 0.11, "vllm", 900.0),
    ("offline-campus", 0.06, "offline", 15.0),
)
# (tool, weight of a call, median latency in ms); tools_used ends up a subset of these.
TOOLS = (
    ("search_knowledge", 0.66, 35.0),
    ("calculate", 0.12, 0.4),
    ("lookup_course", 0.11, 120.0),
    ("check_room_availability", 0.06, 220.0),
    ("get_dining_menu", 0.05, 90.0),
)
STATUSES = (("completed", 0.88), ("error", 0.09), ("max_iterations", 0.03))
# Iterations of a run that ends normally; the last one answers without tools.
ITERATIONS = ((1, 0.62), (2, 0.28), (3, 0.06), (4, 0.025), (5, 0.015))
MAX_ITERATIONS = 5
SHARE_IN_CONVERSATION = 0.4  # of traces; the rest are API / CLI runs with no conversation
MEAN_TURNS = 3.0  # turns per conversation, geometric
_LOG_STAY = math.log(1 - 1 / MEAN_TURNS)
# A new conversation starts with this probability, so that SHARE_IN_CONVERSATION of all
# traces end up in one.
CONVERSATION_START = SHARE_IN_CONVERSATION / (
    SHARE_IN_CONVERSATION + (1 - SHARE_IN_CONVERSATION) * MEAN_TURNS
)
TOOL_FAILURE_RATE = 0.03

DEPARTMENTS = ("CS", "MATH", "BIO", "CHEM", "ECON", "HIST", "PHYS", "PSY", "ENG", "ART")
TERMS = ("fall 2026", "spring 2027", "summer 2027", "winter break")
HALLS = ("Maple Hall", "Cedar Hall", "Birch House", "North Tower", "Lakeside")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("library", "When does the library open on {day}?"),
    ("library", "How many books can I borrow at once from the library?"),
    ("library", "Can I renew a library book online during {term}?"),
    ("registrar", "When is the registration deadline for {term}?"),
    ("registrar", "How do I request an official transcript?"),
    ("registrar", "Can I still drop {course} after the deadline?"),
    ("registrar", "Is {course} offered in {term}?"),
    ("financial_aid", "What scholarships are available for {dept} students?"),
    ("financial_aid", "When is the FAFSA deadline for {term}?"),
    ("financial_aid", "How much tuition do I owe if I take {n} credits at 412 per credit?"),
    ("housing", "When is move-in day for {hall}?"),
    ("housing", "Is there a room available in {hall} for {term}?"),
    ("housing", "How do I request a dorm change from {hall}?"),
    ("it", "How do I reset my campus account password?"),
    ("it", "Why can't I connect to the campus wifi in {hall}?"),
    ("dining", "What is on the dining hall menu on {day}?"),
    ("dining", "How many meals are left on a plan of {n} meals if I used 37?"),
    ("other", "My student ID is S{sid}, can you check my {dept} advisor?"),
    ("other", "Who teaches {course} in {term}?"),
)
ERRORS = (
    ("httpx.ReadTimeout", "timed out"),
    ("openai.RateLimitError", "Error code: 429 - rate limit exceeded"),
    ("httpx.ConnectError", "[Errno 111] Connection refused"),
    ("anthropic.InternalServerError", "Error code: 529 - overloaded"),
)
ALL_FOLDERS = list(FOLDERS)
SCOPE_AGENT = "campuscore.agent"
SCOPE_HTTPX = "opentelemetry.instrumentation.httpx"
SCOPE_PSYCOPG = "opentelemetry.instrumentation.psycopg"

TRACE_COLUMNS = (
    "id",
    "conversation_id",
    "user_message_id",
    "ai_message_id",
    "agent_name",
    "query",
    "status",
    "model",
    "started_at",
    "ended_at",
    "total_duration_ms",
    "total_input_tokens",
    "total_output_tokens",
    "iteration_count",
    "tool_call_count",
    "tools_used",
    "span_count",
    "root_span_id",
    "updated_at",
)
# The exporter's columns, so seeded rows are exactly what it would write.
SPAN_COLUMNS = exporter_span_columns


class Generation:
    """Attribute naming generation of a seeded trace (see DESIGN.md)."""

    CURRENT = "current"
    EARLIER = "earlier"
    LEGACY = "legacy"


# --- COPY text format -------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _hour_prefix(hour: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour)).strftime("%Y-%m-%d %H:")


def ts(us: int) -> str:
    """A COPY timestamptz literal for microseconds since the epoch (datetime is 10x slower)."""
    rem = us % 3_600_000_000
    return (
        f"{_hour_prefix(us // 3_600_000_000)}{rem // 60_000_000:02d}:"
        f"{rem // 1_000_000 % 60:02d}.{rem % 1_000_000:06d}+00"
    )


def _json(value: Any) -> str:
    # Backslashes (from JSON escapes) are COPY text's escape character: double them. JSON
    # never contains a raw tab or newline, the other two characters COPY text cares about.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("\\", "\\\\")


def _text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _promoted(name: str, attributes: dict[str, Any], kind: str) -> str:
    """The promoted span columns, as the exporter's row builder computes them."""
    category, model, tool, tokens_in, tokens_out = promoted_values(
        semconv.span_facts(name, attributes, kind)
    )
    return (
        f"{category}\t{_text(model) if model is not None else NULL}\t"
        f"{_text(tool) if tool is not None else NULL}\t{tokens_in}\t{tokens_out}"
    )


NULL = "\\N"


# --- one trace ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Turn:
    """Where a trace sits in a conversation (ids are reserved from the real sequences)."""

    conversation_id: int
    user_message_id: int
    ai_message_id: int  # used only when the run produced an answer


@dataclass
class TraceShape:
    """What to generate for one trace; chosen before any span is built."""

    started_us: int
    generation: str
    status: str
    iterations: int
    tools_per_iteration: list[int]
    model: str
    provider: str
    llm_median_ms: float
    agent: str
    question: str
    turn: Turn | None = None


@dataclass
class Chunk:
    conversations: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    spans: list[str] = field(default_factory=list)
    trace_count: int = 0
    span_count: int = 0


@cache
def _cumulative(table: tuple[tuple[Any, ...], ...]) -> list[float]:
    return list(itertools.accumulate(row[1] for row in table))


def _weighted(rng: random.Random, table: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    """A row of ``table`` drawn by its weight (column 1)."""
    cumulative = _cumulative(table)
    return table[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


def _lognormal_ms(rng: random.Random, median: float, sigma: float = 0.6) -> float:
    value = median * math.exp(rng.gauss(0.0, sigma))
    if rng.random() < 0.004:  # the long tail: retries, cold starts, vendor hiccups
        value *= rng.uniform(8, 40)
    return value


def _question(rng: random.Random) -> str:
    _, template = QUESTIONS[rng.randrange(len(QUESTIONS))]
    return template.format(
        day=DAYS[rng.randrange(7)],
        term=TERMS[rng.randrange(len(TERMS))],
        course=f"{DEPARTMENTS[rng.randrange(len(DEPARTMENTS))]} {rng.randrange(100, 500)}",
        dept=DEPARTMENTS[rng.randrange(len(DEPARTMENTS))],
        hall=HALLS[rng.randrange(len(HALLS))],
        n=rng.randrange(6, 240),
        sid=rng.randrange(100_000, 1_000_000),
    )


class SpanWriter:
    """Builds the span lines of one trace and the facts its summary is made of."""

    def __init__(self, rng: random.Random, trace_id: str, chunk: Chunk) -> None:
        self.rng = rng
        self.trace_id = trace_id
        self.chunk = chunk
        self.count = 0
        self.first_us: int | None = None
        self.last_us = 0

    def new_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def add(
        self,
        span_id: str,
        parent: str,
        name: str,
        kind: str,
        start_us: int,
        end_us: int,
        attributes: dict[str, Any],
        *,
        scope: str = SCOPE_AGENT,
        error: tuple[str, str] | None = None,
        status_message: str = "",
    ) -> None:
        status_code = "UNSET"
        events = "[]"
        if error is not None:
            exc_type, exc_message = error
            status_code = "ERROR"
            status_message = status_message or f"{exc_type.rsplit('.', 1)[-1]}: {exc_message}"
            events = _json(
                [
                    {
                        "name": "exception",
                        "timestamp": datetime.fromtimestamp(end_us / 1e6, UTC).isoformat(),
                        "attributes": {
                            "exception.type": exc_type,
                            "exception.message": exc_message,
                            "exception.escaped": "False",
                            "exception.stacktrace": f"Traceback (most recent call last):\n  "
                            f'File "campus_core/chat/agent_core.py", line 241, in _call_llm\n'
                            f"{exc_type}: {exc_message}\n",
                        },
                    }
                ]
            )
        elif status_message:
            status_code = "ERROR"
        self.chunk.spans.append(
            f"{self.trace_id}\t{span_id}\t{parent}\t{_text(name)}\t{kind}\t{ts(start_us)}\t"
            f"{ts(end_us)}\t{(end_us - start_us) / 1000!r}\t{status_code}\t"
            f"{_text(status_message)}\t{_json(attributes)}\t{events}\t{scope}\t"
            f"{_promoted(name, attributes, kind)}\n"
        )
        self.count += 1
        if self.first_us is None or start_us < self.first_us:
            self.first_us = start_us
        self.last_us = max(self.last_us, end_us)


def build_trace(rng: random.Random, shape: TraceShape, chunk: Chunk) -> None:
    """Append one trace (its spans and its summary row) to ``chunk``."""
    legacy = shape.generation == Generation.LEGACY
    earlier = shape.generation == Generation.EARLIER
    trace_id = f"{rng.getrandbits(128):032x}"
    w = SpanWriter(rng, trace_id, chunk)
    root_id = w.new_id()
    t0 = shape.started_us
    t = t0 + rng.randrange(50, 400)

    # knowledge_routing, with the folders the real router picks for this question
    folders = route_folders(shape.question)
    end = t + int(rng.uniform(0.3, 12) * 1000)
    w.add(
        w.new_id(),
        root_id,
        A.SPAN_KNOWLEDGE_ROUTING,
        "INTERNAL",
        t,
        end,
        {A.ROUTING_FOLDER_COUNT: len(folders), A.ROUTING_FOLDERS: folders or ALL_FOLDERS},
    )
    t = end + rng.randrange(20, 200)

    input_tokens = output_tokens = tool_calls = 0
    tools_used: set[str] = set()
    failed: tuple[str, str] | None = None
    fail_at = rng.randint(1, shape.iterations) if shape.status == "error" else 0
    messages = 2
    iterations_done = 0
    for number in range(1, shape.iterations + 1):
        iterations_done = number
        iteration_id = w.new_id()
        iteration_start = t
        t += rng.randrange(20, 120)
        # token_management
        end = t + rng.randrange(30, 900)
        w.add(
            w.new_id(),
            iteration_id,
            A.SPAN_TOKEN_MANAGEMENT,
            "INTERNAL",
            t,
            end,
            {
                A.TOKEN_MANAGEMENT_STRATEGY: "sliding_window",
                A.TOKEN_MANAGEMENT_MESSAGES_BEFORE: messages,
                A.TOKEN_MANAGEMENT_MESSAGES_AFTER: min(messages, 21),
            },
        )
        t = end + rng.randrange(10, 80)
        # chat <model> with its httpx POST child
        chat_id = w.new_id()
        chat_end = t + int(_lognormal_ms(rng, shape.llm_median_ms) * 1000) + 600
        ins = rng.randrange(350, 900) + 300 * number + rng.randrange(0, 600) * (number - 1)
        outs = rng.randrange(15, 380)
        tools_here = shape.tools_per_iteration[number - 1]
        finish = "tool_calls" if tools_here else "stop"
        error = None
        if number == fail_at:
            failed = error = ERRORS[rng.randrange(len(ERRORS))]
        if legacy:
            chat_name = A.LEGACY_SPAN_LLM_CALL
            chat_attrs: dict[str, Any] = {
                A.LEGACY_LLM_MODEL: shape.model,
                A.LEGACY_LLM_PROVIDER: shape.provider,
            }
            if error is None:
                chat_attrs |= {
                    A.LEGACY_LLM_INPUT_TOKENS: ins,
                    A.LEGACY_LLM_OUTPUT_TOKENS: outs,
                    A.LEGACY_LLM_FINISH_REASONS: [finish],
                }
        else:
            chat_name = f"{A.SPAN_CHAT_PREFIX} {shape.model}"
            chat_attrs = {
                A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
                A.SENTRY_OP: A.SENTRY_OP_CHAT,
                (A.GEN_AI_SYSTEM if earlier else A.GEN_AI_PROVIDER_NAME): shape.provider,
                A.GEN_AI_REQUEST_MODEL: shape.model,
            }
            if error is None:
                chat_attrs |= {
                    A.GEN_AI_RESPONSE_MODEL: shape.model,
                    A.GEN_AI_RESPONSE_ID: f"chatcmpl-{rng.getrandbits(48):012x}",
                    A.GEN_AI_RESPONSE_FINISH_REASONS: [finish],
                    A.GEN_AI_USAGE_INPUT_TOKENS: ins,
                    A.GEN_AI_USAGE_OUTPUT_TOKENS: outs,
                }
        if error is None:
            input_tokens += ins
            output_tokens += outs
        post_status = 429 if error and "429" in error[1] else 200
        w.add(
            w.new_id(),
            chat_id,
            "POST",
            "CLIENT",
            t + 250,
            chat_end - 150,
            {
                A.HTTP_METHOD: "POST",
                A.HTTP_URL: f"https://llm.internal/{shape.provider}/v1/chat/completions",
                "http.status_code": post_status,
            },
            scope=SCOPE_HTTPX,
        )
        w.add(chat_id, iteration_id, chat_name, "CLIENT", t, chat_end, chat_attrs, error=error)
        t = chat_end + rng.randrange(40, 400)
        messages += 1
        if error is None:
            for _ in range(tools_here):
                tool_calls += 1
                tool, _, median = _weighted(rng, TOOLS)
                tools_used.add(tool)
                tool_id = w.new_id()
                tool_end = t + int(_lognormal_ms(rng, median, 0.8) * 1000) + 300
                ok = rng.random() >= TOOL_FAILURE_RATE
                arguments = json.dumps({"query": shape.question[:60]})
                result = json.dumps({"hits": rng.randrange(0, 4)} if ok else {"error": "bad input"})
                if legacy:
                    tool_name = f"{A.LEGACY_SPAN_TOOL_CALL_PREFIX}{tool}"
                    tool_attrs: dict[str, Any] = {
                        A.LEGACY_TOOL_NAME: tool,
                        A.LEGACY_TOOL_INPUT: arguments,
                        A.LEGACY_TOOL_OUTPUT: result,
                        A.LEGACY_TOOL_SUCCESS: ok,
                    }
                else:
                    tool_name = f"{A.SPAN_EXECUTE_TOOL_PREFIX} {tool}"
                    tool_attrs = {
                        A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
                        A.SENTRY_OP: A.SENTRY_OP_EXECUTE_TOOL,
                        A.GEN_AI_TOOL_NAME: tool,
                        A.GEN_AI_TOOL_CALL_ID: f"call_{rng.getrandbits(40):010x}",
                        A.GEN_AI_TOOL_TYPE: "function",
                        (A.GEN_AI_TOOL_INPUT if earlier else A.GEN_AI_TOOL_CALL_ARGUMENTS): (
                            arguments
                        ),
                        (A.GEN_AI_TOOL_OUTPUT if earlier else A.GEN_AI_TOOL_CALL_RESULT): result,
                        A.TOOL_SUCCESS: ok,
                    }
                    if not ok:
                        tool_attrs[A.TOOL_ERROR] = "bad input"
                w.add(
                    w.new_id(),
                    tool_id,
                    "SELECT",
                    "CLIENT",
                    t + 120,
                    tool_end - 80,
                    {
                        A.DB_SYSTEM: "postgresql",
                        "db.name": "campus",
                        A.DB_STATEMENT: "SELECT id, folder, title, content FROM "
                        "chat_documentchunk WHERE search_vector @@ websearch_to_tsquery(%s)",
                        "net.peer.name": "127.0.0.1",
                    },
                    scope=SCOPE_PSYCOPG,
                )
                w.add(
                    tool_id,
                    iteration_id,
                    tool_name,
                    "INTERNAL",
                    t,
                    tool_end,
                    tool_attrs,
                    status_message="" if ok else "ToolInputError: bad input",
                )
                t = tool_end + rng.randrange(30, 200)
                messages += 1
        iteration_attrs: dict[str, Any] = {A.ITERATION_NUMBER: number}
        if error is None:
            iteration_attrs[A.ITERATION_TOOL_CALLS] = tools_here
        t += rng.randrange(20, 100)
        w.add(
            iteration_id,
            root_id,
            f"{A.SPAN_ITERATION_PREFIX}{number}",
            "INTERNAL",
            iteration_start,
            t,
            iteration_attrs,
            error=error,
        )
        if error is not None:
            break

    turn = shape.turn
    answered = failed is None
    if turn is not None:
        chunk.messages.append(
            f"{turn.user_message_id}\t{turn.conversation_id}\tuser\t"
            f"{_text(shape.question)}\t{ts(t0 - 5_000)}\n"
        )
        if answered:
            # on_answer: the assistant message INSERT, nested under the agent span
            end = t + rng.randrange(600, 3000)
            w.add(
                w.new_id(),
                root_id,
                "INSERT",
                "CLIENT",
                t,
                end,
                {
                    A.DB_SYSTEM: "postgresql",
                    "db.name": "campus",
                    A.DB_STATEMENT: 'INSERT INTO "chat_message" ("conversation_id", "role", '
                    '"content", "created_at") VALUES (%s, %s, %s, %s) RETURNING "id"',
                    "net.peer.name": "127.0.0.1",
                },
                scope=SCOPE_PSYCOPG,
            )
            chunk.messages.append(
                f"{turn.ai_message_id}\t{turn.conversation_id}\tassistant\t"
                f"Here is what I found about: {_text(shape.question)}\t{ts(end)}\n"
            )
            t = end
    t_end = t + rng.randrange(100, 1500)

    status = shape.status if failed is None else "error"
    if legacy:
        root_name = A.LEGACY_SPAN_AGENT_RUN
        root_attrs: dict[str, Any] = {
            A.LEGACY_AGENT_QUERY: shape.question,
            A.LEGACY_LLM_MODEL: shape.model,
            A.LEGACY_LLM_PROVIDER: shape.provider,
            A.LEGACY_AGENT_STATUS: status,
        }
        if turn is not None:
            root_attrs[A.LEGACY_CONVERSATION_ID] = str(turn.conversation_id)
    else:
        root_name = f"{A.SPAN_INVOKE_AGENT_PREFIX} {shape.agent}"
        prompt = (
            json.dumps([{"role": "user", "content": shape.question}])
            if earlier
            else json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": shape.question}]}]
            )
        )
        root_attrs = {
            A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
            A.SENTRY_OP: A.SENTRY_OP_INVOKE_AGENT,
            A.GEN_AI_AGENT_NAME: shape.agent,
            (A.GEN_AI_SYSTEM if earlier else A.GEN_AI_PROVIDER_NAME): shape.provider,
            A.GEN_AI_REQUEST_MODEL: shape.model,
            (A.GEN_AI_PROMPT if earlier else A.GEN_AI_INPUT_MESSAGES): prompt,
            A.AGENT_STATUS: status,
        }
        if turn is not None:
            root_attrs[A.GEN_AI_CONVERSATION_ID] = str(turn.conversation_id)
            root_attrs[A.USER_MESSAGE_ID] = turn.user_message_id
            if answered:
                root_attrs[A.AI_MESSAGE_ID] = turn.ai_message_id
    root_attrs |= {
        A.AGENT_ITERATIONS: iterations_done,
        A.AGENT_TOOL_CALLS: tool_calls,
        A.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        A.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
    }
    root_message = ""
    if status == "max_iterations":
        root_message = "max_iterations reached"
    w.add(
        root_id,
        "",
        root_name,
        "INTERNAL",
        t0,
        t_end,
        root_attrs,
        error=failed,
        status_message=root_message or (f"{failed[1]}" if failed else ""),
    )

    # The summary row, computed the way the exporter's UPDATE does.
    conversation = user_msg = ai_msg = r"\N"
    if turn is not None:
        conversation = str(turn.conversation_id)
        if not legacy:
            user_msg = str(turn.user_message_id)
            if answered:
                ai_msg = str(turn.ai_message_id)
    agent_name = "" if legacy else shape.agent
    tools = "{" + ",".join(sorted(tools_used)) + "}"
    assert w.first_us == t0
    chunk.traces.append(
        f"{trace_id}\t{conversation}\t{user_msg}\t{ai_msg}\t{agent_name}\t"
        f"{_text(shape.question)}\t{status}\t{shape.model}\t{ts(t0)}\t{ts(w.last_us)}\t"
        f"{(t_end - t0) / 1000!r}\t{input_tokens}\t{output_tokens}\t{iterations_done}\t"
        f"{tool_calls}\t{tools}\t{w.count}\t{root_id}\t{ts(w.last_us)}\n"
    )
    chunk.trace_count += 1
    chunk.span_count += w.count


# --- shapes --------------------------------------------------------------------------------------


def _status_weight(name: str) -> float:
    return next(w for status, w in STATUSES if status == name) / sum(w for _, w in STATUSES)


def _iteration_mean(f: Callable[[int], float]) -> float:
    return sum(p * f(i) for i, p in ITERATIONS) / sum(p for _, p in ITERATIONS)


def natural_spans_per_trace() -> float:
    """Average spans of a trace when each tool-using iteration calls exactly one tool.

    A run with i iterations has the agent and routing spans, 4 spans per iteration
    (iteration, token_management, chat, POST) and 2 per tool call (execute_tool, SELECT);
    an error stops at a uniformly chosen iteration; answered conversation turns add the
    INSERT of the answer.
    """
    completed = _iteration_mean(lambda i: 2 + 4 * i + 2 * (i - 1))
    error = _iteration_mean(lambda i: sum(2 + 4 * f + 2 * (f - 1) for f in range(1, i + 1)) / i)
    maxed = 2 + 6 * MAX_ITERATIONS
    answered = 1 - _status_weight("error")
    return (
        _status_weight("completed") * completed
        + _status_weight("error") * error
        + _status_weight("max_iterations") * maxed
        + SHARE_IN_CONVERSATION * answered
    )


def _tool_iterations_per_trace() -> float:
    return (
        _status_weight("completed") * _iteration_mean(lambda i: i - 1)
        + _status_weight("error") * _iteration_mean(lambda i: (i - 1) / 2)
        + _status_weight("max_iterations") * MAX_ITERATIONS
    )


class ShapePicker:
    """Chooses trace shapes so that the average span count is close to the target."""

    def __init__(self, rng: random.Random, spans_per_trace: float) -> None:
        self.rng = rng
        # Extra tool calls (2 spans each) spread over the tool-using iterations.
        extra_spans = max(spans_per_trace - natural_spans_per_trace(), 0.0)
        self.extra_tools_mean = extra_spans / 2 / _tool_iterations_per_trace()

    def tools_count(self) -> int:
        extra = 0
        if self.extra_tools_mean > 0:
            # Geometric number of extra calls: most iterations call one tool, a few many.
            p = 1 / (1 + self.extra_tools_mean)
            extra = int(math.log(1 - self.rng.random()) / math.log(1 - p)) if p < 1 else 0
        return 1 + extra

    def pick(
        self, started_us: int, age_fraction: float, question: str, turn: Turn | None
    ) -> TraceShape:
        rng = self.rng
        status = _weighted(rng, STATUSES)[0]
        if status == "max_iterations":
            iterations = MAX_ITERATIONS
            tools = [self.tools_count() for _ in range(iterations)]
        else:
            iterations = _weighted(rng, ITERATIONS)[0]
            tools = [self.tools_count() for _ in range(iterations - 1)] + [0]
        model, _, provider, median = _weighted(rng, MODELS)
        # The oldest traces predate the current GenAI names: legacy first, then Sentry era.
        roll = rng.random()
        if age_fraction < 0.2 and roll < 0.5:
            generation = Generation.LEGACY
        elif age_fraction < 0.45 and roll < 0.5:
            generation = Generation.EARLIER
        else:
            generation = Generation.CURRENT
        return TraceShape(
            started_us=started_us,
            generation=generation,
            status=status,
            iterations=iterations,
            tools_per_iteration=tools,
            model=model,
            provider=provider,
            llm_median_ms=median,
            agent=_weighted(rng, AGENTS)[0],
            question=question,
            turn=turn,
        )


def large_shape(started_us: int, spans: int, rng: random.Random) -> TraceShape:
    """A max_iterations run with many tool calls per iteration: exactly ``spans`` spans."""
    tool_calls = max((spans - 2 - 4 * MAX_ITERATIONS) // 2, 0)
    per, rest = divmod(tool_calls, MAX_ITERATIONS)
    tools = [per + (1 if i < rest else 0) for i in range(MAX_ITERATIONS)]
    return TraceShape(
        started_us=started_us,
        generation=Generation.CURRENT,
        status="max_iterations",
        iterations=MAX_ITERATIONS,
        tools_per_iteration=tools,
        model="gpt-4o",
        provider="openai",
        llm_median_ms=1300.0,
        agent="campuscore_agent",
        question=f"Large benchmark run: audit every course section ({rng.getrandbits(32):08x})",
    )


# --- chunks and the load -------------------------------------------------------------------------


@dataclass
class Reserved:
    """Id ranges taken from the real sequences, so seeded rows never collide with live ones."""

    next_conversation: int
    next_message: int


@dataclass
class SeedResult:
    traces: int
    spans: int
    conversations: int
    seconds: float
    generate_seconds: float = 0.0

    @property
    def spans_per_second(self) -> float:
        return self.spans / self.seconds if self.seconds else 0.0


def _diurnal_offsets(rng: random.Random, count: int, lo_us: int, hi_us: int) -> list[int]:
    """``count`` sorted instants in [lo, hi): more traffic in the afternoon than at night."""
    out: list[int] = []
    while len(out) < count:
        x = rng.randrange(lo_us, hi_us)
        hour = (x // 3_600_000_000) % 24
        if rng.random() < 0.35 + 0.65 * math.sin(math.pi * ((hour - 4) % 24) / 24) ** 2:
            out.append(x)
    out.sort()
    return out


def generate_chunks(
    *,
    traces: int,
    spans_per_trace: float,
    seed: int,
    chunk_size: int,
    window_start_us: int,
    window_end_us: int,
    reserved: Reserved,
) -> Iterator[Chunk]:
    """Chunks of traces in time order over the window; conversations never cross chunks."""
    rng = random.Random(seed)
    # Start times come from their own stream: how many draws the day/night rejection takes
    # depends on where the window falls, and must not shift the traces' contents. For the
    # same reason a trace's age (which picks its naming generation) is its rank in the
    # sequence, not its instant: only the start times follow the window.
    time_rng = random.Random(f"{seed}-times")
    picker = ShapePicker(rng, spans_per_trace)
    chunks = max(math.ceil(traces / chunk_size), 1)
    span_us = window_end_us - window_start_us
    next_conversation = reserved.next_conversation
    next_message = reserved.next_message
    done = 0
    for index in range(chunks):
        size = min(chunk_size, traces - done)
        lo = window_start_us + span_us * index // chunks
        hi = window_start_us + span_us * (index + 1) // chunks
        starts = _diurnal_offsets(time_rng, size, lo, hi)
        chunk = Chunk()
        i = 0
        while i < size:
            started = starts[i]
            age = (done + i) / traces
            if rng.random() < CONVERSATION_START:
                turns = min(1 + int(math.log(1 - rng.random()) / _LOG_STAY), size - i)
                conversation_id = next_conversation
                next_conversation += 1
                chunk.conversations.append(
                    f"{conversation_id}\t\\N\t{_text(_question(rng)[:200])}\t"
                    f"{ts(started - 10_000)}\n"
                )
                # Turns follow each other minutes apart.
                t = started
                for _ in range(turns):
                    turn = Turn(conversation_id, next_message, next_message + 1)
                    next_message += 2
                    shape = picker.pick(t, age, _question(rng), turn)
                    build_trace(rng, shape, chunk)
                    t += rng.randrange(20, 300) * 1_000_000
                    i += 1
            else:
                build_trace(rng, picker.pick(started, age, _question(rng), None), chunk)
                i += 1
        done += size
        yield chunk


def _reserve(cur: psycopg.Cursor[Any], table: str, count: int) -> int:
    """First of ``count`` ids set aside in ``table``'s id sequence.

    Moving the sequence past the range means later ORM inserts never collide with seeded
    rows. Not safe against inserts running at the same moment: seed a quiet database.
    """
    cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,))
    row = cur.fetchone()
    assert row is not None and row[0]
    sequence = row[0]
    cur.execute(
        f"SELECT GREATEST((SELECT last_value FROM {sequence}), "
        f"(SELECT COALESCE(MAX(id), 0) FROM {table}))"
    )
    row = cur.fetchone()
    assert row is not None
    first = int(row[0]) + 1
    cur.execute("SELECT setval(%s, %s)", (sequence, first + count))
    return first


def seed(
    *,
    traces: int,
    spans_per_trace: float = 10.0,
    seed: int = 0,
    chunk_size: int = 20_000,
    days: float = 30.0,
    end: datetime | None = None,
    large_traces: int = 0,
    large_trace_spans: int = 1000,
    conninfo: str | None = None,
    vacuum: bool = True,
    writers: int = 2,
    progress: Callable[[str], None] | None = None,
) -> SeedResult:
    """Write ``traces`` synthetic traces (plus ``large_traces`` of ``large_trace_spans``)."""
    began = time.perf_counter()
    end = end or datetime.now(UTC)
    end_us = int(end.timestamp() * 1_000_000)
    start_us = end_us - int(days * 86_400 * 1_000_000)
    conn = psycopg.connect(conninfo or conninfo_for("default"), autocommit=False)
    result = SeedResult(traces=0, spans=0, conversations=0, seconds=0.0)
    try:
        with conn.cursor() as cur:
            reserved = Reserved(
                next_conversation=_reserve(cur, "chat_conversation", traces + 1),
                next_message=_reserve(cur, "chat_message", 2 * traces + 2),
            )
        conn.commit()

        # Chunks are independent (ids reserved above, every FK inside its own chunk), so
        # several connections can COPY them at once: PostgreSQL, not Python, is the bottleneck.
        chunks: queue.Queue[Chunk | None] = queue.Queue(maxsize=writers + 1)
        failures: list[BaseException] = []
        lock = threading.Lock()
        gen_seconds = [0.0]

        def produce() -> None:
            try:
                started = time.perf_counter()
                for chunk in generate_chunks(
                    traces=traces,
                    spans_per_trace=spans_per_trace,
                    seed=seed,
                    chunk_size=chunk_size,
                    window_start_us=start_us,
                    window_end_us=end_us,
                    reserved=reserved,
                ):
                    gen_seconds[0] += time.perf_counter() - started
                    if failures:
                        break
                    chunks.put(chunk)
                    started = time.perf_counter()
                if large_traces and not failures:
                    rng = random.Random(seed + 1)
                    chunk = Chunk()
                    for k in range(large_traces):
                        at = end_us - (k + 1) * 3_600_000_000
                        build_trace(rng, large_shape(at, large_trace_spans, rng), chunk)
                    chunks.put(chunk)
            except BaseException as exc:
                failures.append(exc)
            finally:
                for _ in range(writers):
                    chunks.put(None)

        def write(writer_conn: psycopg.Connection[Any]) -> None:
            while (item := chunks.get()) is not None:
                if failures:
                    continue  # keep draining so the generator never blocks
                try:
                    _write_chunk(writer_conn, item)
                except BaseException as exc:
                    failures.append(exc)
                    continue
                with lock:
                    result.traces += item.trace_count
                    result.spans += item.span_count
                    result.conversations += len(item.conversations)
                    if progress is not None:
                        elapsed = time.perf_counter() - began
                        progress(
                            f"{result.traces:,} traces, {result.spans:,} spans "
                            f"({result.spans / elapsed:,.0f} spans/s)"
                        )

        writer_conns = [
            psycopg.connect(conninfo or conninfo_for("default"), autocommit=False)
            for _ in range(writers)
        ]
        try:
            threads = [
                threading.Thread(target=produce, name="seed-traces-generator", daemon=True),
                *(
                    threading.Thread(target=write, args=(c,), name=f"seed-traces-copy-{i}")
                    for i, c in enumerate(writer_conns)
                ),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for writer_conn in writer_conns:
                writer_conn.close()
        if failures:
            raise failures[0]
        result.generate_seconds = gen_seconds[0]
        conn.autocommit = True
        with conn.cursor() as cur:
            # Fresh bulk rows have no visibility map and no hint bits yet; without this the
            # first readers pay for both, and the planner has no statistics.
            statement = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
            for table in (
                "chat_conversation",
                "chat_message",
                "tracing_oteltrace",
                "tracing_otelspan",
            ):
                cur.execute(f"{statement} {table}")
    finally:
        conn.close()
    result.seconds = time.perf_counter() - began
    return result


def _copy(cur: psycopg.Cursor[Any], table: str, columns: tuple[str, ...], lines: list[str]) -> None:
    if not lines:
        return
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        # Large writes keep per-call overhead negligible without holding a whole chunk twice.
        for i in range(0, len(lines), 5000):
            copy.write("".join(lines[i : i + 5000]))


def _write_chunk(conn: psycopg.Connection[Any], chunk: Chunk) -> None:
    with conn.transaction(), conn.cursor() as cur:
        _copy(
            cur, "chat_conversation", ("id", "user_id", "title", "created_at"), chunk.conversations
        )
        _copy(
            cur,
            "chat_message",
            ("id", "conversation_id", "role", "content", "created_at"),
            chunk.messages,
        )
        _copy(cur, "tracing_oteltrace", TRACE_COLUMNS, chunk.traces)
        _copy(cur, "tracing_otelspan", SPAN_COLUMNS, chunk.spans)


class Command(BaseCommand):
    help = (
        "Fill the database with realistic synthetic agent traces (COPY, in time order), "
        "for benchmarks. Adds to what is there."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--traces", type=int, required=True, help="number of traces")
        parser.add_argument(
            "--spans-per-trace",
            type=float,
            default=10.0,
            help=f"average spans per trace (at least ~{natural_spans_per_trace():.1f}, "
            "the shape of a minimal run)",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=0,
            help="random seed: the same seed gives the same traces (times follow the window)",
        )
        parser.add_argument("--days", type=float, default=30.0, help="time window, ending now")
        parser.add_argument("--chunk-size", type=int, default=20_000, help="traces per COPY")
        parser.add_argument(
            "--large-traces", type=int, default=0, help="extra traces of --large-trace-spans spans"
        )
        parser.add_argument("--large-trace-spans", type=int, default=1000)
        parser.add_argument(
            "--no-vacuum", action="store_true", help="only ANALYZE at the end, no VACUUM"
        )
        parser.add_argument(
            "--writers", type=int, default=2, help="connections COPYing chunks in parallel"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        traces = options["traces"]
        if traces < 0 or options["large_traces"] < 0:
            raise CommandError("--traces and --large-traces must be >= 0")
        if options["chunk_size"] < 1 or options["writers"] < 1:
            raise CommandError("--chunk-size and --writers must be >= 1")
        if options["days"] <= 0:
            raise CommandError("--days must be > 0")
        if options["large_trace_spans"] < 2 + 4 * MAX_ITERATIONS:
            raise CommandError(f"--large-trace-spans must be >= {2 + 4 * MAX_ITERATIONS}")
        verbose = options["verbosity"] > 1
        result = seed(
            traces=traces,
            spans_per_trace=options["spans_per_trace"],
            seed=options["seed"],
            chunk_size=options["chunk_size"],
            days=options["days"],
            large_traces=options["large_traces"],
            large_trace_spans=options["large_trace_spans"],
            vacuum=not options["no_vacuum"],
            writers=options["writers"],
            progress=(lambda line: self.stdout.write(line)) if verbose else None,
        )
        self.stdout.write(
            f"seeded {result.traces:,} traces, {result.spans:,} spans, "
            f"{result.conversations:,} conversations in {result.seconds:.1f}s "
            f"({result.spans_per_second:,.0f} spans/s; generating took "
            f"{result.generate_seconds:.1f}s of it, overlapped with COPY)"
        )
