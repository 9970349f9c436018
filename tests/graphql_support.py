"""Test support for the GraphQL read path: traces written by the REAL pipeline (OTel SDK
spans → ``PostgresSpanExporter``), and a helper that executes the schema as a given user.

Spans are emitted with explicit timestamps so durations, offsets and orderings are known
exactly. Three naming generations are represented: current GenAI, the earlier (Sentry-era)
GenAI keys, and this product's legacy names.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, RequestFactory
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from campus_core.chat.models import Conversation, Message
from graphql_api.context import build_context
from graphql_api.schema import schema
from tracing.conventions import attributes as A
from tracing.export import PostgresSpanExporter
from tracing.models import OTelResource, OTelTrace
from tracing.pipeline import service_resource

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

T = TypeVar("T")


def ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000) * 1000


class SpanWriter:
    """Emits real SDK spans with chosen timestamps into the real exporter."""

    def __init__(self, exporter: PostgresSpanExporter, resource: Resource | None = None) -> None:
        # This process's resource unless told otherwise (another service's spans).
        self.provider = TracerProvider(resource=resource or service_resource())
        self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("tests.graphql")
        self.exporter = exporter

    def span(
        self,
        name: str,
        start: datetime,
        duration_ms: float,
        parent: Span | None = None,
        attributes: dict[str, Any] | None = None,
        error: str | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        events: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    ) -> Span:
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            name, context=context, kind=kind, attributes=attributes or {}, start_time=ns(start)
        )
        for event_name, event_attributes in events:
            span.add_event(event_name, event_attributes, timestamp=ns(start))
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        return span

    @staticmethod
    def end(span: Span, start: datetime, duration_ms: float) -> None:
        span.end(end_time=ns(start + timedelta(milliseconds=duration_ms)))

    def shutdown(self) -> None:
        self.provider.shutdown()


@dataclass
class Built:
    """What a dataset contains, for assertions: trace id (hex) by label."""

    ids: dict[str, str] = field(default_factory=dict)
    conversations: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)


def _at(offset_ms: float, base: datetime) -> datetime:
    return base + timedelta(milliseconds=offset_ms)


def tool_calls(
    w: SpanWriter,
    *,
    parent: Span,
    started: datetime,
    calls: list[tuple[str, dict[str, Any]]],
) -> None:
    """Tool-call spans (name, attributes) 60 ms apart from 130 ms into the run, each with
    a database child span, under ``parent``."""
    offset = 130.0
    for name, attributes in calls:
        call = w.span(name, _at(offset, started), 50, parent=parent, attributes=attributes)
        db = w.span(
            "SELECT campus",
            _at(offset + 10, started),
            20,
            parent=call,
            kind=SpanKind.CLIENT,
            attributes={A.DB_SYSTEM: "postgresql", A.DB_STATEMENT: "SELECT 1"},
        )
        w.end(db, _at(offset + 10, started), 20)
        w.end(call, _at(offset, started), 50)
        offset += 60


def genai_run(
    w: SpanWriter,
    *,
    started: datetime,
    query: str,
    model: str,
    duration_ms: float,
    tools: list[str],
    status: str = "completed",
    conversation: Conversation | None = None,
    user_message: Message | None = None,
    ai_message: Message | None = None,
    provider_key: str = A.GEN_AI_PROVIDER_NAME,
    prompt_key: str = A.GEN_AI_INPUT_MESSAGES,
    tool_input_key: str = A.GEN_AI_TOOL_CALL_ARGUMENTS,
    tool_output_key: str = A.GEN_AI_TOOL_CALL_RESULT,
    input_tokens: int = 120,
    output_tokens: int = 30,
) -> str:
    """One agent run in the current GenAI names (or the earlier ones via the *_key args):
    invoke_agent → iteration_1 → chat + execute_tool per tool (+ a db child)."""
    prompt: Any = (
        json.dumps([{"role": "user", "parts": [{"type": "text", "content": query}]}])
        if prompt_key == A.GEN_AI_INPUT_MESSAGES
        else query
    )
    attrs: dict[str, Any] = {
        A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
        A.GEN_AI_AGENT_NAME: "campuscore_agent",
        provider_key: "offline",
        A.GEN_AI_REQUEST_MODEL: model,
        prompt_key: prompt,
        A.AGENT_STATUS: status,
    }
    if conversation is not None:
        attrs[A.GEN_AI_CONVERSATION_ID] = str(conversation.pk)
    if user_message is not None:
        attrs[A.USER_MESSAGE_ID] = user_message.pk
    if ai_message is not None:
        attrs[A.AI_MESSAGE_ID] = ai_message.pk
    root = w.span(
        "invoke_agent campuscore_agent",
        started,
        duration_ms,
        attributes=attrs,
        error="agent failed" if status == "error" else None,
    )
    iteration = w.span("iteration_1", _at(10, started), duration_ms - 20, parent=root)
    chat = w.span(
        f"chat {model}",
        _at(20, started),
        100,
        parent=iteration,
        kind=SpanKind.CLIENT,
        attributes={
            A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
            provider_key: "offline",
            A.GEN_AI_REQUEST_MODEL: model,
            A.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
            A.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
            A.GEN_AI_RESPONSE_FINISH_REASONS: ["tool_calls" if tools else "stop"],
        },
        events=[("gen_ai.choice", {"index": 0})],
    )
    w.end(chat, _at(20, started), 100)
    tool_calls(
        w,
        parent=iteration,
        started=started,
        calls=[
            (
                f"execute_tool {tool}",
                {
                    A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
                    A.GEN_AI_TOOL_NAME: tool,
                    tool_input_key: json.dumps({"q": query}),
                    tool_output_key: "result text",
                    A.TOOL_SUCCESS: True,
                },
            )
            for tool in tools
        ],
    )
    w.end(iteration, _at(10, started), duration_ms - 20)
    w.end(root, started, duration_ms)
    return format(root.get_span_context().trace_id, "032x")


def legacy_run(
    w: SpanWriter, *, started: datetime, query: str, model: str, duration_ms: float, tool: str
) -> str:
    """One agent run in this product's legacy names only."""
    root = w.span(
        "agent_run",
        started,
        duration_ms,
        attributes={A.LEGACY_AGENT_QUERY: query, A.LEGACY_AGENT_STATUS: "completed"},
    )
    llm = w.span(
        "llm_call",
        _at(5, started),
        200,
        parent=root,
        attributes={
            A.LEGACY_LLM_MODEL: model,
            A.LEGACY_LLM_PROVIDER: "legacy-vendor",
            A.LEGACY_LLM_INPUT_TOKENS: 77,
            A.LEGACY_LLM_OUTPUT_TOKENS: 11,
        },
    )
    w.end(llm, _at(5, started), 200)
    call = w.span(
        f"tool_call.{tool}",
        _at(210, started),
        40,
        parent=root,
        attributes={
            A.LEGACY_TOOL_NAME: tool,
            A.LEGACY_TOOL_INPUT: '{"course": "CS101"}',
            A.LEGACY_TOOL_OUTPUT: "CS101: Mondays",
            A.LEGACY_TOOL_SUCCESS: "true",
        },
    )
    w.end(call, _at(210, started), 40)
    w.end(root, started, duration_ms)
    return format(root.get_span_context().trace_id, "032x")


def orphan_run(w: SpanWriter, *, started: datetime) -> str:
    """A run whose agent span never arrived: its children name a parent that is not stored."""
    ghost = w.tracer.start_span("invoke_agent ghost", start_time=ns(started))
    # Never ended, so never exported: its children are orphans.
    context = trace.set_span_in_context(ghost)
    chat = w.tracer.start_span(
        "chat ghost-model",
        context=context,
        attributes={A.GEN_AI_OPERATION_NAME: A.OP_CHAT, A.GEN_AI_REQUEST_MODEL: "ghost-model"},
        start_time=ns(_at(5, started)),
    )
    chat.end(end_time=ns(_at(105, started)))
    return format(ghost.get_span_context().trace_id, "032x")


def build_dataset(exporter: PostgresSpanExporter) -> Built:
    """Six runs across naming generations, statuses, models, tools and a conversation."""
    built = Built()
    staff = get_user_model().objects.create_user("dataset-owner", password="x")
    conv = Conversation.objects.create(user=staff, title="Library hours")
    question = Message.objects.create(
        conversation=conv, role="user", content="When does the library open?"
    )
    answer = Message.objects.create(conversation=conv, role="assistant", content="At 8.")
    built.conversations["library"] = conv.pk
    built.messages["question"] = question.pk
    built.messages["answer"] = answer.pk
    w = SpanWriter(exporter)
    built.ids["library"] = genai_run(
        w,
        started=T0,
        query="When does the library open?",
        model="gpt-4o",
        duration_ms=1200,
        tools=["search_documents"],
        conversation=conv,
        user_message=question,
        ai_message=answer,
    )
    built.ids["failed"] = genai_run(
        w,
        started=T0 + timedelta(hours=1),
        query="Book a room in the Engineering building",
        model="claude-3-5-sonnet",
        duration_ms=5000,
        tools=["get_hours", "search_documents"],
        status="error",
        conversation=conv,
        input_tokens=400,
        output_tokens=90,
    )
    built.ids["loop"] = genai_run(
        w,
        started=T0 + timedelta(hours=2),
        query="Tell me everything about parking",
        model="gpt-4o-mini",
        duration_ms=300,
        tools=[],
        status="max_iterations",
        input_tokens=50,
        output_tokens=5,
    )
    built.ids["earlier"] = genai_run(
        w,
        started=T0 + timedelta(hours=3),
        query="Where is the cafeteria?",
        model="gpt-4o",
        duration_ms=800,
        tools=["campus_map"],
        provider_key=A.GEN_AI_SYSTEM,
        prompt_key=A.GEN_AI_PROMPT,
        tool_input_key=A.GEN_AI_TOOL_INPUT,
        tool_output_key=A.GEN_AI_TOOL_OUTPUT,
    )
    built.ids["legacy"] = legacy_run(
        w,
        started=T0 + timedelta(hours=4),
        query="Legacy question about CS101 schedule",
        model="legacy-model-1",
        duration_ms=600,
        tool="lookup_course",
    )
    built.ids["orphan"] = orphan_run(w, started=T0 + timedelta(hours=5))
    w.shutdown()
    return built


def unsaved_user(*, is_staff: bool = True) -> Any:
    """A user object for schema-level tests (no row needed: permissions read attributes)."""
    return get_user_model()(username="staff" if is_staff else "someone", is_staff=is_staff)


def execute(query: str, variables: dict[str, Any] | None = None, user: Any = None) -> Any:
    """Run a GraphQL document through the async schema as ``user`` (default: staff).

    ``async_to_sync`` from the test thread brings every ``sync_to_async`` database call back
    to this thread: the queries run on the test's connection, where
    ``django_assert_num_queries`` counts them and the test's own rows are visible.
    """
    request = RequestFactory().post("/graphql/")
    request.user = user if user is not None else unsaved_user()
    return async_to_sync(schema.execute)(
        query, variable_values=variables, context_value=build_context(request)
    )


def committed_dataset(django_db_blocker: Any) -> AbstractContextManager[Built]:
    """``build_dataset`` committed for a whole test module."""
    return committed(django_db_blocker, build_dataset)


@contextmanager
def committed(django_db_blocker: Any, build: Callable[[PostgresSpanExporter], T]) -> Iterator[T]:
    """What ``build`` writes through the real exporter, committed for a whole test module
    (the exporter writes through its own connection), removed afterwards."""
    with django_db_blocker.unblock():
        exporter = PostgresSpanExporter(keep_untagged=True)
        try:
            built = build(exporter)
        finally:
            exporter.shutdown()
    try:
        yield built
    finally:
        with django_db_blocker.unblock():
            OTelTrace.objects.all().delete()
            OTelResource.objects.all().delete()
            Conversation.objects.all().delete()
            get_user_model().objects.all().delete()


def make_user(name: str, *, staff: bool) -> Any:
    return get_user_model().objects.create_user(name, password="pw-" + name, is_staff=staff)


def session_cookies(user: Any) -> dict[str, str]:
    """The session cookie of ``user`` logged in, for httpx against the live server."""
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


def api_token(username: str, *extra: str) -> str:
    """A new API token of ``username``, made by the real ``create_api_token`` command."""
    out = io.StringIO()
    call_command("create_api_token", username, *extra, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def percentile_cont(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
