"""Correlated JSON logs: trace_id / span_id / request_id / user_id on every line.

The end-to-end test goes through the real ASGI stack (uvicorn + OpenTelemetryMiddleware +
Django) with httpx: the agent's log lines, emitted inside its async generator while the
response streams, must carry the trace id of the trace persisted in PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from opentelemetry.sdk.trace import TracerProvider

from campus_core.observability.logging_filters import request_id_var, user_id_var
from campus_core.observability.middleware import request_id_from
from tests.conftest import JsonLines
from tracing.models import OTelTrace

CHAT_URL = "/get_chatbot_response/"
HEX32 = re.compile(r"[0-9a-f]{32}")


def test_log_lines_inside_the_streaming_agent_carry_the_persisted_trace_id(
    logged_in: tuple[httpx.Client, Any],
    json_lines: JsonLines,
    flush: Callable[[], None],
) -> None:
    client, user = logged_in

    # when a chat request streams its answer through the real ASGI stack
    with client.stream(
        "POST",
        CHAT_URL,
        json={"message": "What is 6 * 7?"},
        headers={"X-Request-ID": "req-abc.123"},
    ) as response:
        assert response.status_code == 200
        events = [json.loads(line) for line in response.iter_lines() if line]
    flush()

    # then the response names the request and the trace
    assert response.headers["X-Request-ID"] == "req-abc.123"
    assert events[-1]["type"] == "final", events[-1]
    trace_id = events[-1]["trace_id"]
    assert response.headers["X-Trace-Id"] == trace_id
    persisted = OTelTrace.objects.get(id=trace_id)
    assert persisted.id.hex == trace_id

    # and the agent's own lines, written inside its generator while streaming, join them
    agent_lines = json_lines.messages("campus_core.chat.agent_core")
    assert [line["message"] for line in agent_lines] == ["agent run started", "agent run finished"]
    for line in agent_lines:
        assert line["trace_id"] == persisted.id.hex
        assert re.fullmatch(r"[0-9a-f]{16}", line["span_id"])
        assert line["request_id"] == "req-abc.123"
        assert line["user_id"] == str(user.pk)
        assert line["level"] == "INFO"
        assert {"timestamp", "level", "logger", "message"} <= set(line)
    # the outbound LLM call logged by httpx is part of the same request
    httpx_lines = [
        line for line in json_lines.messages("httpx") if "chat/completions" in line["message"]
    ]
    assert httpx_lines and {line["trace_id"] for line in httpx_lines} == {trace_id}


def test_request_id_is_generated_when_missing_or_unsafe(
    logged_in: tuple[httpx.Client, Any],
) -> None:
    client, _ = logged_in
    missing = client.get("/admin/login/")
    unsafe = client.get("/admin/login/", headers={"X-Request-ID": "two words; and=more"})
    too_long = client.get("/admin/login/", headers={"X-Request-ID": "a" * 129})

    for response in (missing, unsafe, too_long):
        assert HEX32.fullmatch(response.headers["X-Request-ID"]), response.headers
    assert len({r.headers["X-Request-ID"] for r in (missing, unsafe, too_long)}) == 3


def test_rejected_request_still_gets_a_request_id(logged_in: tuple[httpx.Client, Any]) -> None:
    client, _ = logged_in
    response = client.post(CHAT_URL, json={"message": ""}, headers={"X-Request-ID": "r-1"})

    assert response.status_code == 400
    assert response.json() == {"error": "'message' must be a non-empty string"}
    assert response.headers["X-Request-ID"] == "r-1"


@pytest.mark.parametrize(
    ("supplied", "kept"),
    [
        ("4f1c2a9e-0d7b-4c55-9d61-2b8e0f3a1c77", True),
        ("req-abc.123:7", True),
        ("", False),
        ("-leading-dash", False),
        ("has space", False),
        ("new\nline", False),
        ("ü-unicode", False),
        ("x" * 128, True),
        ("x" * 129, False),
    ],
)
def test_request_id_validation(rf: Any, supplied: str, kept: bool) -> None:
    request = rf.get("/", headers={"X-Request-ID": supplied})

    result = request_id_from(request)

    assert (result == supplied) is kept
    if not kept:
        assert HEX32.fullmatch(result)


def test_filter_outside_any_span_leaves_the_ids_empty(json_lines: JsonLines) -> None:
    logging.getLogger("obs.test").info("no span here")

    (line,) = json_lines.messages("obs.test")
    assert line["trace_id"] is None and line["span_id"] is None
    assert line["request_id"] is None and line["user_id"] is None


def test_filter_reads_the_current_span_and_keeps_extra_fields(json_lines: JsonLines) -> None:
    tracer = TracerProvider().get_tracer("obs.test")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("obs.test").info("inside", extra={"tool": "calculate"})
        context = span.get_span_context()

    (line,) = json_lines.messages("obs.test")
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert line["tool"] == "calculate"
    assert line["message"] == "inside"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be json or text, not 'xml'"),
        ("METRICS_EXPORTER", "prometheus", "METRICS_EXPORTER must be one of none, console, otlp"),
        ("SENTRY_SCRUB_PATTERNS", "[1]", "SENTRY_SCRUB_PATTERNS must be a JSON list of strings"),
        ("SENTRY_SCRUB_PATTERNS", "{", "SENTRY_SCRUB_PATTERNS is not a JSON list"),
    ],
)
def test_a_bad_observability_setting_stops_start_up(
    variable: str, value: str, message: str
) -> None:
    """Settings are read once per process, so a fresh interpreter loads them."""
    env = {**os.environ, variable: value}
    result = subprocess.run(
        [sys.executable, "-c", "import campus_core.settings"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {message}" in result.stderr


@pytest.mark.django_db
def test_sync_stack_returns_the_request_id_and_unbinds_it_after_the_response(
    json_lines: JsonLines,
) -> None:
    # Django's test Client drives the synchronous handler, i.e. the middleware's sync path
    user = get_user_model().objects.create_user("lin", password="correct horse battery")
    client = Client()
    client.force_login(user)

    response = client.get("/admin/login/", headers={"X-Request-ID": "sync-1"})

    assert response.headers["X-Request-ID"] == "sync-1"
    # nothing of that request stays bound to this thread for the next log line
    assert request_id_var.get() is None and user_id_var.get() is None
    logging.getLogger("obs.test").info("between requests")
    (line,) = json_lines.messages("obs.test")
    assert line["request_id"] is None and line["user_id"] is None
