"""Builders of real OTel spans for exporter tests: one agent run, in either naming generation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracing.conventions import attributes as A
from tracing.pipeline.tagger import AgentRunTaggerProcessor, enter_agent_run, exit_agent_run


def recording_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(AgentRunTaggerProcessor())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def agent_run_spans(
    *,
    legacy: bool = False,
    question: str = "When does the library open?",
    model: str = "gpt-test",
    tools: Sequence[str] = ("search_knowledge", "calculate"),
    tokens: Sequence[tuple[int, int]] = ((120, 30), (200, 45)),
    status: str = "completed",
) -> list[ReadableSpan]:
    """One agent run: root → iterations → chat (+POST) / tool (+SELECT) spans.

    With ``legacy=True`` the same run is written with the product's legacy names
    (agent_run, llm_call, tool_call.<name>, llm.* / tool.* / agent.* keys).
    """
    provider, memory = recording_provider()
    tracer = provider.get_tracer("tests")
    token = enter_agent_run()
    try:
        if legacy:
            root_attrs: dict[str, Any] = {
                A.LEGACY_AGENT_QUERY: question,
                A.LEGACY_LLM_MODEL: model,
                A.LEGACY_AGENT_STATUS: status,
            }
            root = tracer.start_span(A.LEGACY_SPAN_AGENT_RUN, attributes=root_attrs)
        else:
            root_attrs = {
                A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
                A.GEN_AI_REQUEST_MODEL: model,
                A.GEN_AI_INPUT_MESSAGES: json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": question}]}]
                ),
                A.AGENT_STATUS: status,
            }
            root = tracer.start_span("invoke_agent campuscore_agent", attributes=root_attrs)
        root_ctx = trace.set_span_in_context(root)
        for number, (tokens_in, tokens_out) in enumerate(tokens, start=1):
            iteration = tracer.start_span(f"iteration_{number}", context=root_ctx)
            it_ctx = trace.set_span_in_context(iteration)
            if legacy:
                llm_attrs: dict[str, Any] = {
                    A.LEGACY_LLM_MODEL: model,
                    A.LEGACY_LLM_INPUT_TOKENS: tokens_in,
                    A.LEGACY_LLM_OUTPUT_TOKENS: tokens_out,
                    A.LEGACY_LLM_PROVIDER: "openai",
                }
                chat = tracer.start_span(
                    A.LEGACY_SPAN_LLM_CALL, context=it_ctx, attributes=llm_attrs
                )
            else:
                llm_attrs = {
                    A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
                    A.GEN_AI_REQUEST_MODEL: model,
                    A.GEN_AI_USAGE_INPUT_TOKENS: tokens_in,
                    A.GEN_AI_USAGE_OUTPUT_TOKENS: tokens_out,
                    A.GEN_AI_PROVIDER_NAME: "openai",
                }
                chat = tracer.start_span(
                    f"chat {model}", context=it_ctx, kind=SpanKind.CLIENT, attributes=llm_attrs
                )
            post = tracer.start_span(
                "POST",
                context=trace.set_span_in_context(chat),
                kind=SpanKind.CLIENT,
                attributes={A.HTTP_REQUEST_METHOD: "POST", A.URL_FULL: "http://llm/v1/chat"},
            )
            post.end()
            chat.end()
            if number <= len(tools):
                tool = tools[number - 1]
                if legacy:
                    tool_span = tracer.start_span(
                        f"{A.LEGACY_SPAN_TOOL_CALL_PREFIX}{tool}",
                        context=it_ctx,
                        attributes={
                            A.LEGACY_TOOL_NAME: tool,
                            A.LEGACY_TOOL_INPUT: '{"q": 1}',
                            A.LEGACY_TOOL_OUTPUT: "ok",
                        },
                    )
                else:
                    tool_span = tracer.start_span(
                        f"execute_tool {tool}",
                        context=it_ctx,
                        attributes={
                            A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
                            A.GEN_AI_TOOL_NAME: tool,
                            A.GEN_AI_TOOL_CALL_ARGUMENTS: '{"q": 1}',
                            A.GEN_AI_TOOL_CALL_RESULT: "ok",
                        },
                    )
                select = tracer.start_span(
                    "SELECT",
                    context=trace.set_span_in_context(tool_span),
                    attributes={A.DB_SYSTEM: "postgresql", A.DB_STATEMENT: "SELECT 1"},
                )
                select.end()
                tool_span.end()
            iteration.end()
        if status == "error":
            root.set_status(Status(StatusCode.ERROR, "boom"))
        root.end()
    finally:
        exit_agent_run(token)
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    return spans


def started_at(spans: Sequence[ReadableSpan], start: datetime) -> list[ReadableSpan]:
    """The same spans (ids, attributes, tree) moved in time so the earliest starts at
    ``start``: runs on chosen days, for partition and retention tests."""
    first = min(s.start_time or 0 for s in spans)
    shift = int(start.timestamp() * 1_000_000_000) - first
    return [
        ReadableSpan(
            name=s.name,
            context=s.context,
            parent=s.parent,
            resource=s.resource,
            attributes=s.attributes,
            events=[Event(e.name, e.attributes, e.timestamp + shift) for e in s.events],
            links=s.links,
            kind=s.kind,
            status=s.status,
            start_time=(s.start_time or 0) + shift,
            end_time=(s.end_time or 0) + shift,
            instrumentation_scope=s.instrumentation_scope,
        )
        for s in spans
    ]
