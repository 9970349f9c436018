"""One synthetic agent run → its spans (``build``), as rows (``to_rows``) or as OTel spans
(``emit``). The span tree is ``AgentCore.run``'s: ``invoke_agent <agent>`` →
``knowledge_routing``, ``iteration_N`` → ``token_management``, ``chat <model>`` (+ httpx
``POST``), ``execute_tool <tool>`` (+ psycopg ``SELECT``), plus the ``INSERT`` of the
answer for conversation turns; named in any ``Generation``.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from campus_core.chat.knowledge import FOLDERS, route_folders
from tracing.conventions import attributes as A
from tracing.conventions.semconv import Generation
from tracing.export.rows import ResourceRef, SpanRow, build_row, resource_ref
from tracing.models import AgentStatus
from tracing.pipeline.tagger import enter_agent_run, exit_agent_run
from tracing.synthetic.names import chat_attributes, root_attributes, tool_attributes
from tracing.synthetic.shape import AgentRun, Iteration, ToolCall, Turn

SCOPE_AGENT = "campuscore.agent"
SCOPE_HTTPX = "opentelemetry.instrumentation.httpx"
SCOPE_PSYCOPG = "opentelemetry.instrumentation.psycopg"
ALL_FOLDERS = list(FOLDERS)
SEARCH_SQL = (
    "SELECT id, folder, title, content FROM chat_documentchunk "
    "WHERE search_vector @@ websearch_to_tsquery(%s)"
)
ANSWER_SQL = (
    'INSERT INTO "chat_message" ("conversation_id", "role", "content", "created_at") '
    'VALUES (%s, %s, %s, %s) RETURNING "id"'
)
_INTERNAL, _CLIENT = SpanKind.INTERNAL.name, SpanKind.CLIENT.name
# What describes a run lives in ``shape``; named here too, as this module's vocabulary.
__all__ = [
    "AgentRun",
    "BuiltRun",
    "Iteration",
    "SpanSpec",
    "ToolCall",
    "Turn",
    "build",
    "emit",
    "to_rows",
]


@dataclass(slots=True)
class SpanSpec:
    span_id: int
    parent_id: int | None
    name: str
    kind: str
    start_us: int
    end_us: int
    attributes: dict[str, Any]
    status_code: str = StatusCode.UNSET.name
    status_message: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    scope: str = SCOPE_AGENT


@dataclass
class BuiltRun:
    trace_id: int
    spans: list[SpanSpec]
    status: AgentStatus
    answered_at_us: int | None  # when the answer was stored (conversation turns only)


def _exception_event(error: tuple[str, str], at_us: int) -> dict[str, Any]:
    exc_type, message = error
    return {
        "name": "exception",
        "timestamp": datetime.fromtimestamp(at_us / 1e6, UTC).isoformat(),
        "attributes": {
            "exception.type": exc_type,
            "exception.message": message,
            "exception.escaped": "False",
            "exception.stacktrace": "Traceback (most recent call last):\n  "
            'File "campus_core/chat/agent_core.py", line 241, in _call_llm\n'
            f"{exc_type}: {message}\n",
        },
    }


class _Builder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.spans: list[SpanSpec] = []

    def new_id(self) -> int:
        return self.rng.getrandbits(64)

    def add(
        self,
        span_id: int,
        parent: int | None,
        name: str,
        kind: str,
        start: int,
        end: int,
        attributes: dict[str, Any],
        *,
        scope: str = SCOPE_AGENT,
        error: tuple[str, str] | None = None,
        status_message: str = "",
    ) -> None:
        spec = SpanSpec(span_id, parent, name, kind, start, end, attributes, scope=scope)
        if error is not None:
            spec.status_code = StatusCode.ERROR.name
            spec.status_message = status_message or f"{error[0].rsplit('.', 1)[-1]}: {error[1]}"
            spec.events = [_exception_event(error, end)]
        elif status_message:
            spec.status_code, spec.status_message = StatusCode.ERROR.name, status_message
        self.spans.append(spec)


def _opening(run: AgentRun) -> list[dict[str, Any]]:
    from campus_core.chat.agent_core import SYSTEM_PROMPT  # only runs that carry messages

    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": run.question}]


def _converse(attrs: dict[str, Any], conversation: list[dict[str, Any]], it: Iteration) -> None:
    """The chat span's messages; the conversation grows by its answer and tool results."""
    attrs[A.GEN_AI_INPUT_MESSAGES] = json.dumps(conversation)
    if it.error is not None:
        return
    calls = [
        {"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in it.tools
    ]
    answer = {
        "role": "assistant",
        "content": None if calls else "Here is what I found.",
        "tool_calls": calls,
    }
    attrs[A.GEN_AI_OUTPUT_MESSAGES] = json.dumps([answer])
    conversation.append(answer)
    conversation.extend({"role": "tool", "content": c.result} for c in it.tools)


def build(run: AgentRun, rng: random.Random, start_us: int) -> BuiltRun:
    """The spans of ``run`` starting at ``start_us``; gaps between steps and ids from ``rng``."""
    b = _Builder(rng)
    trace_id = rng.getrandbits(128)
    root_id = b.new_id()
    t = start_us + rng.randrange(50, 400)

    folders = route_folders(run.question)
    end = t + int(rng.uniform(0.3, 12) * 1000)
    routing = {A.ROUTING_FOLDER_COUNT: len(folders), A.ROUTING_FOLDERS: folders or ALL_FOLDERS}
    b.add(b.new_id(), root_id, A.SPAN_KNOWLEDGE_ROUTING, _INTERNAL, t, end, routing)
    t = end + rng.randrange(20, 200)

    tokens_in = tokens_out = tool_calls = 0
    failed: tuple[str, str] | None = None
    messages = 2
    conversation: list[dict[str, Any]] = _opening(run) if run.messages else []
    done = 0
    for number, it in enumerate(run.iterations, start=1):
        done = number
        iteration_id, iteration_start = b.new_id(), t
        t += rng.randrange(20, 120)
        end = t + rng.randrange(30, 900)
        b.add(
            b.new_id(),
            iteration_id,
            A.SPAN_TOKEN_MANAGEMENT,
            _INTERNAL,
            t,
            end,
            {
                A.TOKEN_MANAGEMENT_STRATEGY: "sliding_window",
                A.TOKEN_MANAGEMENT_MESSAGES_BEFORE: messages,
                A.TOKEN_MANAGEMENT_MESSAGES_AFTER: min(messages, 21),
            },
        )
        t = end + rng.randrange(10, 80)
        chat_id, chat_end = b.new_id(), t + int(it.llm_ms * 1000) + 600
        chat_attrs = chat_attributes(run, it, rng)
        if run.messages:
            _converse(chat_attrs, conversation, it)
        if it.error is None:
            tokens_in, tokens_out = tokens_in + it.input_tokens, tokens_out + it.output_tokens
        b.add(
            b.new_id(),
            chat_id,
            "POST",
            _CLIENT,
            t + 250,
            chat_end - 150,
            {
                A.HTTP_METHOD: "POST",
                A.HTTP_URL: f"https://llm.internal/{run.provider}/v1/chat/completions",
                A.HTTP_STATUS_CODE: 429 if it.error and "429" in it.error[1] else 200,
            },
            scope=SCOPE_HTTPX,
        )
        chat_name = (
            A.LEGACY_SPAN_LLM_CALL
            if run.generation is Generation.LEGACY
            else f"{A.SPAN_CHAT_PREFIX} {run.model}"
        )
        b.add(chat_id, iteration_id, chat_name, _CLIENT, t, chat_end, chat_attrs, error=it.error)
        t = chat_end + rng.randrange(40, 400)
        messages += 1
        for call in [] if it.error else it.tools:
            tool_calls += 1
            tool_id, tool_end = b.new_id(), t + int(call.duration_ms * 1000) + 300
            name, attrs = tool_attributes(run, call, rng)
            b.add(
                b.new_id(),
                tool_id,
                "SELECT",
                _CLIENT,
                t + 120,
                tool_end - 80,
                {
                    A.DB_SYSTEM: "postgresql",
                    "db.name": "campus",
                    A.DB_STATEMENT: SEARCH_SQL,
                    "net.peer.name": "127.0.0.1",
                },
                scope=SCOPE_PSYCOPG,
            )
            status_message = "" if call.ok else "ToolInputError: bad input"
            b.add(
                tool_id,
                iteration_id,
                name,
                _INTERNAL,
                t,
                tool_end,
                attrs,
                status_message=status_message,
            )
            t = tool_end + rng.randrange(30, 200)
            messages += 1
        iteration_attrs: dict[str, Any] = {A.ITERATION_NUMBER: number}
        if it.error is None:
            iteration_attrs[A.ITERATION_TOOL_CALLS] = len(it.tools)
        t += rng.randrange(20, 100)
        name = f"{A.SPAN_ITERATION_PREFIX}{number}"
        b.add(
            iteration_id,
            root_id,
            name,
            _INTERNAL,
            iteration_start,
            t,
            iteration_attrs,
            error=it.error,
        )
        if it.error is not None:
            failed = it.error
            break

    answered_at = None
    if run.turn is not None and failed is None:
        # on_answer: the assistant message INSERT, nested under the agent span
        end = t + rng.randrange(600, 3000)
        b.add(
            b.new_id(),
            root_id,
            "INSERT",
            _CLIENT,
            t,
            end,
            {
                A.DB_SYSTEM: "postgresql",
                "db.name": "campus",
                A.DB_STATEMENT: ANSWER_SQL,
                "net.peer.name": "127.0.0.1",
            },
            scope=SCOPE_PSYCOPG,
        )
        t = answered_at = end
    t_end = t + rng.randrange(100, 1500)

    status = run.status if failed is None else AgentStatus.ERROR
    root_name, root_attrs = root_attributes(run, status, failed is None)
    root_attrs |= {
        A.AGENT_ITERATIONS: done,
        A.AGENT_TOOL_CALLS: tool_calls,
        A.GEN_AI_USAGE_INPUT_TOKENS: tokens_in,
        A.GEN_AI_USAGE_OUTPUT_TOKENS: tokens_out,
    }
    message = "max_iterations reached" if status is AgentStatus.MAX_ITERATIONS else ""
    b.add(
        root_id,
        None,
        root_name,
        _INTERNAL,
        start_us,
        t_end,
        root_attrs,
        error=failed,
        status_message=message or (failed[1] if failed else ""),
    )
    return BuiltRun(trace_id, b.spans, status, answered_at)


@functools.cache
def own_resource(cap: int) -> ResourceRef:
    """This process's resource (``OTEL_SERVICE_NAME``), as its exporter stores it."""
    from tracing.pipeline import service_resource  # the pipeline imports the exporter

    return resource_ref(service_resource().attributes, cap)


def to_rows(built: BuiltRun, cap: int) -> list[SpanRow]:
    """The stored rows of a built run, exactly as the exporter would make them."""
    resource = own_resource(cap)
    return [
        build_row(
            built.trace_id,
            s.span_id,
            s.parent_id,
            s.name,
            s.kind,
            s.start_us * 1000,
            s.end_us * 1000,
            s.status_code,
            s.status_message,
            s.attributes,
            s.events,
            s.scope,
            cap,
            resource,
        )
        for s in built.spans
    ]


def emit(built: BuiltRun, tracer_for: Callable[[str], trace.Tracer]) -> None:
    """Record a built run as real OTel spans (new ids), inside an agent run so it is tagged.

    ``tracer_for(scope)`` gives the tracer of an instrumentation scope.
    """
    depth: dict[int, int] = {}
    by_id = {s.span_id: s for s in built.spans}

    def depth_of(spec: SpanSpec) -> int:
        if spec.span_id not in depth:
            parent = by_id.get(spec.parent_id) if spec.parent_id is not None else None
            depth[spec.span_id] = 0 if parent is None else depth_of(parent) + 1
        return depth[spec.span_id]

    started: dict[int, trace.Span] = {}
    token = enter_agent_run()
    try:
        for spec in sorted(built.spans, key=depth_of):
            parent = started.get(spec.parent_id) if spec.parent_id is not None else None
            span = tracer_for(spec.scope).start_span(
                spec.name,
                context=trace.set_span_in_context(parent) if parent else Context(),
                kind=SpanKind[spec.kind],
                attributes=spec.attributes,
                start_time=spec.start_us * 1000,
            )
            for event in spec.events:
                at = datetime.fromisoformat(event["timestamp"])
                span.add_event(event["name"], event["attributes"], int(at.timestamp() * 1e9))
            if spec.status_code == StatusCode.ERROR.name:
                span.set_status(Status(StatusCode.ERROR, spec.status_message))
            span.end(end_time=spec.end_us * 1000)
            started[spec.span_id] = span
    finally:
        exit_agent_run(token)
