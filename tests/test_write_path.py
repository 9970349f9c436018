"""A real agent run, end to end: agent → OTel → BatchSpanProcessor → exporter → PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from campus_core.chat.knowledge import seed_documents
from campus_core.chat.llm.offline import campus_policy, completion
from campus_core.chat.models import Conversation, Message
from tests.agent_helpers import run_turn
from tracing.conventions.semconv import SpanCategory, classify
from tracing.models import OTelResource, OTelSpan, OTelTrace

pytestmark = pytest.mark.django_db(transaction=True)


def spans_by_id(trace: OTelTrace) -> dict[str, OTelSpan]:
    return {s.span_id: s for s in trace.spans.all()}


def children(spans: dict[str, OTelSpan], parent: OTelSpan) -> list[OTelSpan]:
    return sorted(
        (s for s in spans.values() if s.parent_span_id == parent.span_id),
        key=lambda s: s.started_at,
    )


def recording(policy: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]], log: list):
    def wrapped(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, body = policy(request)
        log.append(body)
        return status, body

    return wrapped


def test_agent_run_is_persisted_as_one_complete_trace(
    instrumented: bool, offline_llm: Any, flush: Callable[[], None]
) -> None:
    seed_documents()
    replies: list[dict[str, Any]] = []
    provider = offline_llm(recording(campus_policy, replies), model="campus-test-model")

    events = run_turn("When does the library open on weekends?", provider)
    flush()

    final = events[-1]
    assert final["type"] == "final" and final["status"] == "completed"
    trace = OTelTrace.objects.get(pk=uuid.UUID(final["trace_id"]))
    spans = spans_by_id(trace)
    root = spans[trace.root_span_id]
    assert root.name == "invoke_agent campuscore_agent"
    # The last child is the INSERT that stores the answer, made inside the agent run.
    assert [s.name for s in children(spans, root)] == [
        "knowledge_routing",
        "iteration_1",
        "iteration_2",
        "INSERT",
    ]
    iteration_1 = children(spans, root)[1]
    assert [s.name for s in children(spans, iteration_1)] == [
        "token_management",
        "chat campus-test-model",
        "execute_tool search_knowledge",
    ]
    _, chat, tool = children(spans, iteration_1)
    [post] = children(spans, chat)
    assert post.name == "POST"
    assert classify(post.name, post.attributes, post.span_kind) is SpanCategory.HTTP
    [select] = children(spans, tool)
    assert select.name == "SELECT" and select.attributes["db.system"] == "postgresql"
    assert classify(select.name, select.attributes) is SpanCategory.DATABASE
    assert "chat_documentchunk" in select.attributes["db.statement"]
    assert chat.attributes["gen_ai.provider.name"] == "offline"
    assert tool.attributes["campuscore.tool.success"] is True
    assert "Library hours" in tool.attributes["gen_ai.tool.call.result"]

    # The summary is exactly what the spans and the LLM's replies say.
    assert trace.status == "completed"
    assert trace.model == "campus-test-model"
    assert trace.query == "When does the library open on weekends?"
    assert trace.iteration_count == 2
    assert trace.tool_call_count == 1
    assert trace.tools_used == ["search_knowledge"]
    assert trace.total_input_tokens == sum(r["usage"]["prompt_tokens"] for r in replies)
    assert trace.total_output_tokens == sum(r["usage"]["completion_tokens"] for r in replies)
    assert len(replies) == 2
    assert trace.span_count == len(spans)
    assert trace.started_at == root.started_at
    assert trace.total_duration_ms == pytest.approx(root.duration_ms)

    # Linked to the conversation and both messages.
    assert trace.conversation_id == final["conversation_id"]
    assert trace.user_message is not None and trace.user_message.role == Message.Role.USER
    assert trace.user_message.content == "When does the library open on weekends?"
    assert trace.ai_message is not None and trace.ai_message.content == final["content"]
    assert "10 am to 10 pm" in final["content"]
    assert trace.session_id == str(final["conversation_id"])

    # Every span, and so the run, under this process's service name.
    assert trace.service_name == settings.OTEL_SERVICE_NAME
    assert {s.service_name for s in spans.values()} == {settings.OTEL_SERVICE_NAME}
    [resource_id] = {s.resource_id for s in spans.values()}
    assert resource_id is not None
    resource = OTelResource.objects.get(id=resource_id)
    assert resource.attributes["service.name"] == settings.OTEL_SERVICE_NAME


def _always_call_a_tool(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, completion(request, tool_calls=[("calculate", {"expression": "1 + 1"})])


def _vendor_down(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 500, {"error": {"message": "upstream overloaded"}}


def test_max_iterations_terminal_status(offline_llm: Any, flush: Callable[[], None]) -> None:
    events = run_turn("loop forever", offline_llm(_always_call_a_tool), max_iterations=3)
    flush()
    final = events[-1]
    assert final["status"] == "max_iterations"
    trace = OTelTrace.objects.get(pk=uuid.UUID(final["trace_id"]))
    assert (trace.status, trace.iteration_count, trace.tool_call_count) == ("max_iterations", 3, 3)
    assert trace.tools_used == ["calculate"]
    root = trace.spans.get(span_id=trace.root_span_id)
    assert root.status_code == "ERROR"
    assert trace.ai_message is not None  # the apology is stored as the answer


def test_error_terminal_status(offline_llm: Any, flush: Callable[[], None]) -> None:
    events = run_turn("anything", offline_llm(_vendor_down))
    flush()
    final = events[-1]
    assert final["type"] == "error" and "HTTP 500" in final["message"]
    trace = OTelTrace.objects.get(pk=uuid.UUID(final["trace_id"]))
    assert trace.status == "error" and trace.ai_message is None
    root = trace.spans.get(span_id=trace.root_span_id)
    assert root.status_code == "ERROR" and "HTTP 500" in root.status_message
    assert any(e["name"] == "exception" for e in root.events)
    chat = trace.spans.get(name="chat test-model")
    assert chat.status_code == "ERROR"
    iteration = trace.spans.get(name="iteration_1")
    assert iteration.status_code == "ERROR"


def test_completed_tool_failure_and_exception_are_recorded_on_the_tool_span(
    offline_llm: Any, flush: Callable[[], None]
) -> None:
    def policy(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if request["messages"][-1]["role"] == "tool":
            return 200, completion(request, content="done")
        return 200, completion(
            request,
            tool_calls=[
                ("calculate", {"expression": "import os"}),
                ("calculate", {"expression": "1 / 0"}),
            ],
        )

    final = run_turn("break the calculator", offline_llm(policy))[-1]
    flush()
    assert final["status"] == "completed"
    trace = OTelTrace.objects.get(pk=uuid.UUID(final["trace_id"]))
    failure, exception = trace.spans.filter(name="execute_tool calculate").order_by("started_at")
    assert failure.attributes["campuscore.tool.success"] is False
    assert "not an arithmetic expression" in failure.attributes["campuscore.tool.error"]
    assert exception.status_code == "ERROR"
    assert "ZeroDivisionError" in exception.status_message
    assert any(e["name"] == "exception" for e in exception.events)
    assert trace.tool_call_count == 2


def test_second_turn_continues_the_conversation(
    offline_llm: Any, flush: Callable[[], None]
) -> None:
    seed_documents()
    provider = offline_llm()
    first = run_turn("What is the FAFSA priority deadline?", provider)[-1]
    conversation = Conversation.objects.get(pk=first["conversation_id"])
    second = run_turn("How do I get a transcript?", provider, conversation)[-1]
    flush()
    traces = OTelTrace.objects.filter(conversation=conversation).order_by("started_at")
    assert [t.query for t in traces] == [
        "What is the FAFSA priority deadline?",
        "How do I get a transcript?",
    ]
    assert second["trace_id"] != first["trace_id"]
    assert conversation.messages.count() == 4


def _staff_session(live_server_url: str) -> httpx.Client:
    user = get_user_model().objects.create_user("chatter", password="pw")
    django_client = Client()
    django_client.force_login(user)
    client = httpx.Client(base_url=live_server_url, timeout=30)
    client.cookies.set("sessionid", django_client.cookies["sessionid"].value)
    client.get("/admin/login/")  # sets the csrftoken cookie
    return client


def test_chat_endpoint_streams_events_and_persists_the_trace(
    live_server_url: str, instrumented: bool, flush: Callable[[], None]
) -> None:
    seed_documents()
    client = _staff_session(live_server_url)
    csrf = client.cookies["csrftoken"]
    with client.stream(
        "POST",
        "/get_chatbot_response/",
        json={"message": "What is 6 * 7?"},
        headers={"X-CSRFToken": csrf},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        import json

        events = [json.loads(line) for line in response.iter_lines() if line]
    assert next(e["type"] for e in events) == "start"
    final = events[-1]
    assert final["type"] == "final" and "42" in final["content"]
    assert response.headers["x-trace-id"] == final["trace_id"]
    flush()
    trace = OTelTrace.objects.get(pk=uuid.UUID(final["trace_id"]))
    assert trace.tools_used == ["calculate"] and trace.status == "completed"
    root = trace.spans.get(span_id=trace.root_span_id)
    # The ASGI request span is the agent span's parent, but it is not an agent span.
    assert root.parent_span_id and not trace.spans.filter(span_id=root.parent_span_id).exists()


def test_chat_endpoint_rejects_bad_input_and_anonymous_callers(live_server_url: str) -> None:
    anonymous = httpx.Client(base_url=live_server_url)
    anonymous.get("/admin/login/")
    refused = anonymous.post(
        "/get_chatbot_response/",
        json={"message": "hi"},
        headers={"X-CSRFToken": anonymous.cookies["csrftoken"]},
    )
    assert refused.status_code == 401
    client = _staff_session(live_server_url)
    headers = {"X-CSRFToken": client.cookies["csrftoken"]}
    assert (
        client.post("/get_chatbot_response/", json={"message": "  "}, headers=headers).status_code
        == 400
    )
    missing = client.post(
        "/get_chatbot_response/", json={"message": "hi", "conversation_id": 999999}, headers=headers
    )
    assert missing.status_code == 404
    assert (
        client.post("/get_chatbot_response/", json={"message": "hi"}).status_code == 403
    )  # no CSRF
    assert Message.objects.count() == 0 and OTelTrace.objects.count() == 0


def test_non_agent_request_persists_nothing(
    live_server_url: str, instrumented: bool, recorded_spans: Any, flush: Callable[[], None]
) -> None:
    recorded_spans.clear()
    assert httpx.get(f"{live_server_url}/admin/login/").status_code == 200
    flush()
    assert any(s.name.startswith("GET") for s in recorded_spans.get_finished_spans())
    assert OTelTrace.objects.count() == 0 and OTelSpan.objects.count() == 0


def test_run_agent_command_prints_the_trace_id(
    offline_llm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("run_agent", "What is 2 + 2?", "--quiet")
    out = capsys.readouterr().out
    trace_id = out.strip().split("trace_id=")[1].split()[0]
    trace = OTelTrace.objects.get(pk=uuid.UUID(trace_id))
    assert trace.status == "completed" and trace.tools_used == ["calculate"]


def test_migrations_are_complete() -> None:
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_agent_log_lines_outside_a_request_carry_the_run_trace_id(
    offline_llm: Any, flush: Callable[[], None]
) -> None:
    import logging

    from campus_core.observability.logging_filters import RequestIdFilter

    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    handler.addFilter(RequestIdFilter())
    agent_logger = logging.getLogger("campus_core.chat.agent_core")
    agent_logger.addHandler(handler)
    try:
        final = run_turn("What is 3 + 4?", offline_llm())[-1]
    finally:
        agent_logger.removeHandler(handler)
    messages = {r.getMessage(): getattr(r, "trace_id", None) for r in records}
    assert messages["agent run started"] == final["trace_id"]
    assert messages["agent run finished"] == final["trace_id"]
