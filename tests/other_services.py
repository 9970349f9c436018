"""Spans as other services send them, written through the REAL exporter (``SpanWriter``
with the other service's resource): OpenInference agent runs, the OpenInference twin of
``graphql_support.genai_run`` (same timings, same facts, OpenInference names), and a
trace of plain HTTP spans with no agent work at all.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.trace import SpanKind

from tests.graphql_support import SpanWriter, _at, tool_calls
from tracing.conventions import attributes as A

PHOENIX_SERVICE = "phoenix-worker"
EDGE_SERVICE = "edge-proxy"


def service(name: str, **attributes: Any) -> Resource:
    return Resource.create({SERVICE_NAME: name, **attributes})


def openinference_run(
    w: SpanWriter,
    *,
    started: datetime,
    query: str,
    model: str,
    duration_ms: float,
    tools: list[str],
    status: str = "completed",
    session: str | None = None,
    input_tokens: int = 120,
    output_tokens: int = 30,
) -> str:
    """``genai_run``'s run in OpenInference names: AGENT → LLM + TOOL (+ a db child), no
    iteration spans, the outcome in the agent span's OTel status, as Phoenix users'
    instrumentations send it."""
    attrs: dict[str, Any] = {
        A.OPENINFERENCE_SPAN_KIND: A.OI_KIND_AGENT,
        A.OI_AGENT_NAME: "campuscore_agent",
        A.OI_INPUT_VALUE: query,
        A.OI_USER_ID: "user-7",
    }
    if session is not None:
        attrs[A.OI_SESSION_ID] = session
    root = w.span(
        "campuscore_agent",
        started,
        duration_ms,
        attributes=attrs,
        error="agent failed" if status == "error" else None,
    )
    llm = w.span(
        "ChatCompletion",
        _at(20, started),
        100,
        parent=root,
        kind=SpanKind.CLIENT,
        attributes={
            A.OPENINFERENCE_SPAN_KIND: A.OI_KIND_LLM,
            A.OI_LLM_PROVIDER: "offline",
            A.OI_LLM_MODEL_NAME: model,
            A.OI_LLM_TOKEN_COUNT_PROMPT: input_tokens,
            A.OI_LLM_TOKEN_COUNT_COMPLETION: output_tokens,
            A.OI_LLM_TOKEN_COUNT_TOTAL: input_tokens + output_tokens,
            A.OI_LLM_FINISH_REASON: "tool_calls" if tools else "stop",
            A.OI_INPUT_VALUE: query,
        },
    )
    w.end(llm, _at(20, started), 100)
    tool_calls(
        w,
        parent=root,
        started=started,
        calls=[
            (
                tool,
                {
                    A.OPENINFERENCE_SPAN_KIND: A.OI_KIND_TOOL,
                    A.OI_TOOL_NAME: tool,
                    A.OI_TOOL_PARAMETERS: json.dumps({"q": query}),
                    A.OI_OUTPUT_VALUE: "result text",
                },
            )
            for tool in tools
        ],
    )
    w.end(root, started, duration_ms)
    return format(root.get_span_context().trace_id, "032x")


def http_only_trace(w: SpanWriter, *, started: datetime) -> str:
    """A request a service traced with plain HTTP instrumentation: no agent span at all."""
    request = w.span(
        "GET /health",
        started,
        30,
        kind=SpanKind.SERVER,
        attributes={A.HTTP_REQUEST_METHOD: "GET", A.HTTP_RESPONSE_STATUS_CODE: 200},
    )
    upstream = w.span(
        "GET",
        _at(5, started),
        20,
        parent=request,
        kind=SpanKind.CLIENT,
        attributes={A.HTTP_REQUEST_METHOD: "GET", A.URL_FULL: "http://upstream/health"},
    )
    w.end(upstream, _at(5, started), 20)
    w.end(request, started, 30)
    return format(request.get_span_context().trace_id, "032x")
