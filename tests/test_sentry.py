"""The Sentry bridge against a Sentry-protocol peer on loopback (tests/sentry_receiver.py).

sentry-sdk is process-global: the ``sentry`` fixture initialises it against the receiver
with the real pipeline (our TracerProvider → SentrySpanBridge → scrubbing OTLP export) and
shuts it down afterwards, so other tests run with Sentry off.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from campus_core.chat.chat_service import ChatService
from campus_core.chat.models import Conversation
from campus_core.observability import sentry_setup
from campus_core.observability.sentry_setup import FerpaScrubber
from tests.sentry_receiver import SentryReceiver
from tests.waiting import wait_for
from tracing import pipeline
from tracing.models import OTelSpan, OTelTrace

EMAIL = "jane.doe@example.edu"
STUDENT_ID = "S1234567"
NINE_DIGIT_ID = "912345678"
NAME = "Jane Doe"
QUESTION = (
    f"Hi, my name is {NAME}, student {STUDENT_ID}, ID {NINE_DIGIT_ID}, email {EMAIL}. "
    "What are the library hours during finals?"
)
STUDENT_DATA = (EMAIL, STUDENT_ID, NINE_DIGIT_ID, NAME, "Jane")


@pytest.fixture
def sentry() -> Iterator[SentryReceiver]:
    receiver = SentryReceiver().start()
    provider = pipeline.init_telemetry()
    assert isinstance(provider, TracerProvider)
    assert sentry_setup.init_sentry(receiver.dsn, provider=provider)
    yield receiver
    sentry_setup.shutdown_sentry()
    receiver.stop()


def flush_all(flush: Callable[[], None]) -> None:
    """Spans to PostgreSQL and Sentry (one provider), then events and logs."""
    flush()
    sentry_sdk.flush(timeout=10)


def assert_no_student_data(receiver: SentryReceiver) -> None:
    text = receiver.all_text()
    assert text, "nothing reached the receiver"
    for secret in STUDENT_DATA:
        assert secret not in text


@pytest.mark.django_db(transaction=True)
async def test_agent_run_spans_reach_sentry_with_the_postgres_trace_id_and_no_student_data(
    sentry: SentryReceiver, offline_llm: Callable[..., Any], flush: Callable[[], None]
) -> None:
    # given a conversation and the default offline policy (search, then answer)
    conversation = await Conversation.objects.acreate()

    # when one agent run answers a question full of student data
    events = [
        e
        async for e in ChatService(provider=offline_llm()).generate_response(conversation, QUESTION)
    ]
    flush_all(flush)

    # then PostgreSQL holds the trace with the full text for staff
    trace_id = events[-1]["trace_id"]
    assert events[-1]["type"] == "final"
    row = await OTelTrace.objects.aget(id=trace_id)
    root = await OTelSpan.objects.filter(trace=row, name__startswith="invoke_agent").aget()
    assert EMAIL in json.dumps(root.attributes)

    # and Sentry received the same spans under the same trace id, over OTLP
    received = [s for s in sentry.spans if s.trace_id == row.id.hex]
    names = {s.name for s in received}
    assert "invoke_agent campuscore_agent" in names
    assert {"knowledge_routing", "iteration_1", "execute_tool search_knowledge"} <= names
    assert {s.span_id for s in received} == {
        s.span_id async for s in OTelSpan.objects.filter(trace=row)
    }
    sentry_root = next(s for s in received if s.name.startswith("invoke_agent"))
    assert sentry_root.span_id == root.span_id
    assert sentry_root.attributes["sentry.op"] == "gen_ai.invoke_agent"
    prompt = sentry_root.attributes["gen_ai.input.messages"]
    assert "my name is [Filtered]" in prompt
    assert "email [Filtered]" in prompt
    assert "library hours" in prompt  # the question itself survives

    # and nothing that left for Sentry carries the student's data
    assert sentry.rejected == []
    assert_no_student_data(sentry)


def llm_server_error(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 500, {"error": {"message": "upstream exploded"}}


def test_error_in_a_chat_request_arrives_as_an_event_linked_to_the_same_trace(
    sentry: SentryReceiver,
    logged_in: tuple[httpx.Client, Any],
    offline_llm: Callable[..., Any],
    flush: Callable[[], None],
) -> None:
    client, user = logged_in
    failing = offline_llm(llm_server_error)

    # when the LLM fails during a chat request served by the real ASGI stack
    with (
        override_settings(LLM_PROVIDER="openai", LLM_BASE_URL=failing.base_url, LLM_MODEL="m"),
        client.stream("POST", "/get_chatbot_response/", json={"message": QUESTION}) as response,
    ):
        assert response.status_code == 200
        events = [json.loads(line) for line in response.iter_lines() if line]
    flush_all(flush)

    # then the trace is in PostgreSQL, marked as an error
    assert events[-1]["type"] == "error"
    trace_id = events[-1]["trace_id"]
    assert response.headers["X-Trace-Id"] == trace_id
    row = OTelTrace.objects.get(id=trace_id)
    assert row.status == "error"

    # and Sentry received one error event for it, joined by the OTel trace id
    errors = [e for e in sentry.events if e.get("level") == "error"]
    assert len(errors) == 1, errors
    event = errors[0]
    assert event["contexts"]["trace"]["trace_id"] == row.id.hex
    assert event["logger"] == "campus_core.chat.agent_core"
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "LLMError"
    assert "HTTP 500" in exception["value"]
    # Django's request and user attribution, by id only
    assert event["request"]["url"].endswith("/get_chatbot_response/")
    assert event["request"]["method"] == "POST"
    assert event["user"] == {"id": str(user.pk)}
    # the request body was sent, scrubbed
    body = event["request"]["data"]["message"]
    assert body.startswith("Hi, my name is [Filtered], student [Filtered], ID [Filtered]")

    # and the request's spans, the ASGI server span included, are in the same Sentry trace
    # (the server span ends just after the last body byte: wait for it, not for a time)
    wait_for(
        lambda: any(s.name == "POST /get_chatbot_response/" for s in sentry.spans),
        "Sentry to receive the request's transaction",
        between=lambda: flush_all(flush),
    )
    received = {s.name for s in sentry.spans if s.trace_id == row.id.hex}
    assert "POST /get_chatbot_response/" in received
    assert "invoke_agent campuscore_agent" in received
    # no second trace invented for the chat request (the login page is another request)
    chat_spans = [s for s in sentry.spans if "get_chatbot_response" in s.name]
    assert chat_spans and {s.trace_id for s in chat_spans} == {row.id.hex}

    # and Sentry logs of the request carry the same trace id
    agent_logs = [log for log in sentry.logs if log["body"] == "agent run started"]
    assert agent_logs and {log["trace_id"] for log in agent_logs} == {row.id.hex}

    assert sentry.rejected == []
    assert_no_student_data(sentry)


def test_outbound_httpx_requests_carry_traceparent_sentry_trace_and_baggage(
    sentry: SentryReceiver,
) -> None:
    tracer = pipeline.get_tracer("obs.test")
    downstream = f"{sentry.base_url}/downstream/service"

    with httpx.Client() as client:
        # the OTel httpx instrumentation on this one client, injecting the global propagator
        HTTPXClientInstrumentor.instrument_client(client)
        with tracer.start_as_current_span("outbound") as span:
            assert client.get(downstream).status_code == 200
        HTTPXClientInstrumentor.uninstrument_client(client)

    context = span.get_span_context()
    trace_hex = format(context.trace_id, "032x")
    (request,) = [r for r in sentry.requests if r.path == "/downstream/service"]
    traceparent = request.headers["traceparent"]
    version, traced_id, parent_span_id, flags = traceparent.split("-")
    assert (version, traced_id) == ("00", trace_hex)
    assert int(flags, 16) & 1, "sampled"
    # the httpx client span is the parent downstream; both headers name the same span
    assert request.headers["sentry-trace"] == f"{trace_hex}-{parent_span_id}-1"
    baggage = dict(item.split("=", 1) for item in request.headers["baggage"].split(","))
    assert baggage["sentry-trace_id"] == trace_hex
    assert baggage["sentry-public_key"] == sentry.public_key
    assert baggage["sentry-sampled"] == "true"


def test_incoming_sentry_baggage_is_passed_on_unchanged(sentry: SentryReceiver) -> None:
    upstream = {
        "sentry-trace": "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
        "baggage": "sentry-trace_id=0af7651916cd43dd8448eb211c80319c,sentry-public_key=up",
    }
    # as the ASGI middleware does: the extracted context is current while the server span runs
    token = otel_context.attach(propagate.extract(upstream))
    try:
        with pipeline.get_tracer("obs.test").start_as_current_span("server"):
            headers: dict[str, str] = {}
            propagate.inject(headers)
    finally:
        otel_context.detach(token)

    assert headers["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert headers["sentry-trace"].startswith("0af7651916cd43dd8448eb211c80319c-")
    assert "sentry-public_key=up" in headers["baggage"]


def test_log_records_and_their_breadcrumbs_are_scrubbed(sentry: SentryReceiver) -> None:
    log = logging.getLogger("campus_core.obs_test")
    log.warning("student %s wrote from %s", STUDENT_ID, EMAIL)
    try:
        raise ValueError(f"no record for {NINE_DIGIT_ID}")
    except ValueError:
        log.exception("lookup failed for student %s", STUDENT_ID)
    sentry_sdk.flush(timeout=10)

    bodies = [entry["body"] for entry in sentry.logs if entry["body"].startswith("student")]
    assert bodies == ["student [Filtered] wrote from [Filtered]"]
    (event,) = [e for e in sentry.events if e.get("logger") == "campus_core.obs_test"]
    assert event["logentry"]["formatted"] == "lookup failed for student [Filtered]"
    assert event["exception"]["values"][0]["value"] == "no record for [Filtered]"
    assert_no_student_data(sentry)


def test_the_tracing_hook_starts_sentry_from_settings_on_that_provider() -> None:
    """Production start-up: init_telemetry() calls attach_to_tracer_provider(provider)."""
    receiver = SentryReceiver().start()
    provider = TracerProvider()
    sibling = InMemorySpanExporter()  # stands for the PostgreSQL exporter beside Sentry
    provider.add_span_processor(SimpleSpanProcessor(sibling))
    try:
        with override_settings(SENTRY_DSN=receiver.dsn):
            sentry_setup.attach_to_tracer_provider(provider)
        assert sentry_sdk.get_client().is_active()
        with provider.get_tracer("obs.test").start_as_current_span(f"lookup {EMAIL}") as span:
            span.set_attribute("student.email", EMAIL)
        assert provider.force_flush()

        # (the bridge is the process's one: a span another thread ends on the global
        # provider meanwhile reaches this receiver too, under its own trace id)
        trace_hex = format(span.get_span_context().trace_id, "032x")
        (received,) = [s for s in receiver.spans if s.trace_id == trace_hex]
        assert received.name == "lookup [Filtered]"
        assert received.attributes["student.email"] == "[Filtered]"
        # the sibling consumer of the same provider got the original, full text
        (original,) = sibling.get_finished_spans()
        assert original.name == f"lookup {EMAIL}"
        assert original.attributes is not None
        assert original.attributes["student.email"] == EMAIL
    finally:
        sentry_setup.shutdown_sentry()
        provider.shutdown()
        receiver.stop()


def test_shutdown_stops_sending_and_restores_the_propagator() -> None:
    receiver = SentryReceiver().start()
    before = propagate.get_global_textmap()
    try:
        sentry_setup.init_sentry(receiver.dsn, provider=pipeline.init_telemetry())
        assert sentry_setup.get_bridge().active
        sentry_setup.shutdown_sentry()

        assert not sentry_sdk.get_client().is_active()
        assert not sentry_setup.get_bridge().active
        assert propagate.get_global_textmap() is before
        sentry_sdk.capture_message("after shutdown")
        sentry_sdk.flush(timeout=2)
        assert receiver.events == []
    finally:
        receiver.stop()


def test_without_a_dsn_nothing_starts() -> None:
    with override_settings(SENTRY_DSN=""):
        assert sentry_setup.init_sentry() is False
        assert sentry_setup.ensure_started() is False
    assert not sentry_sdk.get_client().is_active()
    assert not sentry_setup.get_bridge().active


def test_a_malformed_dsn_is_a_clear_configuration_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="SENTRY_DSN is not a valid Sentry DSN"):
        sentry_setup.init_sentry("not-a-dsn")
    assert not sentry_sdk.get_client().is_active()


# --- the scrubber ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe@example.edu now", "mail [Filtered] now"),
        ("I am S1234567.", "I am [Filtered]."),
        ("id 123456789 ok", "id [Filtered] ok"),
        ("ssn 123-45-6789", "ssn [Filtered]"),
        ("My name is Jane Doe and I need help", "My name is [Filtered] and I need help"),
        ("hello, I'm Omar.", "hello, I'm [Filtered]."),
        ("I am looking for the library", "I am looking for the library"),
        ("room 12345678 and 1234567890", "room 12345678 and 1234567890"),
        ("trace 0af7651916cd43dd8448eb211c80319c", "trace 0af7651916cd43dd8448eb211c80319c"),
    ],
)
def test_default_patterns(text: str, expected: str) -> None:
    assert sentry_setup.scrubber_from_settings().text(text) == expected


def test_scrubbing_is_recursive_keeps_ids_and_reduces_the_user_to_its_id() -> None:
    scrubber = FerpaScrubber([r"\d{9}"])
    event: dict[str, Any] = {
        "event_id": "123456789abcdef",
        "contexts": {"trace": {"trace_id": "123456789012345678901234567890ab"}},
        "user": {"id": "7", "username": "S1234567", "email": "a@b.edu", "ip_address": "::1"},
        "breadcrumbs": {"values": [{"message": "looked up 123456789"}]},
        "extra": {"ids": ("123456789", 5)},
    }

    scrubbed = scrubber.before_send(event, {})

    assert scrubbed["event_id"] == event["event_id"]
    assert scrubbed["contexts"]["trace"]["trace_id"] == "123456789012345678901234567890ab"
    assert scrubbed["user"] == {"id": "7"}
    assert scrubbed["breadcrumbs"]["values"][0]["message"] == "looked up [Filtered]"
    assert scrubbed["extra"]["ids"] == ("[Filtered]", 5)
    assert event["breadcrumbs"]["values"][0]["message"] == "looked up 123456789"  # a copy


def test_an_invalid_pattern_is_a_clear_configuration_error() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"SENTRY_SCRUB_PATTERNS: '\(unclosed'"):
        FerpaScrubber([r"\d{9}", "(unclosed"])
