"""Real OTel spans of one agent run for exporter tests, built by ``tracing.synthetic``."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import datetime

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracing.conventions.semconv import Generation
from tracing.models import AgentStatus
from tracing.pipeline import service_resource
from tracing.pipeline.tagger import AgentRunTaggerProcessor
from tracing.synthetic import run as synthetic
from tracing.synthetic.moved import moved_to


def recording_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider(resource=service_resource())
    memory = InMemorySpanExporter()
    provider.add_span_processor(AgentRunTaggerProcessor())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


_runs = random.Random(0)


def agent_run_spans(
    *,
    legacy: bool = False,
    question: str = "When does the library open?",
    model: str = "gpt-test",
    tools: Sequence[str] = ("search_knowledge", "calculate"),
    tokens: Sequence[tuple[int, int]] = ((120, 30), (200, 45)),
    status: AgentStatus = AgentStatus.COMPLETED,
) -> list[ReadableSpan]:
    """One agent run, one iteration per ``tokens`` pair, iteration N calling ``tools[N-1]``.

    With ``legacy=True`` the same run is written with the product's legacy names
    (agent_run, llm_call, tool_call.<name>, llm.* / tool.* / agent.* keys).
    """
    run = synthetic.AgentRun(
        question=question,
        model=model,
        generation=Generation.LEGACY if legacy else Generation.CURRENT,
        iterations=[
            synthetic.Iteration(
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                tools=[synthetic.ToolCall(tools[n])] if n < len(tools) else [],
            )
            for n, (tokens_in, tokens_out) in enumerate(tokens)
        ],
        status=status,
    )
    provider, memory = recording_provider()
    built = synthetic.build(run, _runs, time.time_ns() // 1000)
    synthetic.emit(built, provider.get_tracer)
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    return spans


def started_at(spans: Sequence[ReadableSpan], start: datetime) -> list[ReadableSpan]:
    """The same spans (ids, attributes, tree) moved in time so the earliest starts at
    ``start``: runs on chosen days, for partition and retention tests."""
    return moved_to(spans, int(start.timestamp() * 1_000_000_000))
