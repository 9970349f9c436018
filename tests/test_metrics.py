"""Golden-signal metrics after real agent runs, read with an in-memory OTel metric reader.

Every name of the design document's table is checked on the path that should emit it:
success, no tool call, tool failure, tool exception, LLM error, max iterations, empty
retrieval. The OTLP exporter is checked against a loopback OTLP/HTTP peer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from campus_core.chat import knowledge
from campus_core.chat.agent_core import AgentCore
from campus_core.chat.chat_service import ChatService
from campus_core.chat.llm.offline import completion
from campus_core.chat.models import Conversation
from campus_core.observability.metrics import (
    GOLDEN_SIGNALS,
    TOOL_SIGNALS,
    MetricsService,
    build_meter_provider,
    metrics,
)
from tests.metric_support import read
from tests.sentry_receiver import SentryReceiver

pytestmark = pytest.mark.django_db(transaction=True)

HISTOGRAMS = {
    "chat.request.duration_ms",
    "chat.steps_per_response",
    "chat.tools_used_per_response",
    "agent.iteration_count",
    "agent.tool_call_count",
    "agent.tokens.input",
    "agent.tokens.output",
    "retrieval.duration_ms",
    "retrieval.result_count",
    "tool.calculate.duration_ms",
    "tool.search_knowledge.duration_ms",
}

Policy = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def tool_then_answer(name: str, arguments: dict[str, Any]) -> Policy:
    """Call one tool, then answer once its result is in the conversation."""

    def policy(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if request["messages"][-1]["role"] == "tool":
            return 200, completion(request, content="Here is what I found.")
        return 200, completion(request, tool_calls=[(name, arguments)])

    return policy


def always_tool(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, completion(request, tool_calls=[("calculate", {"expression": "1 + 1"})])


def answer_directly(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, completion(request, content="Hello! Ask me about campus services.")


def server_error(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 500, {"error": {"message": "upstream exploded"}}


async def run_agent(provider: Any, question: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [event async for event in AgentCore(provider, **kwargs).run(question)]


async def run_chat(provider: Any, question: str) -> list[dict[str, Any]]:
    conversation = await Conversation.objects.acreate()
    service = ChatService(provider=provider)
    return [event async for event in service.generate_response(conversation, question)]


async def test_success_path_emits_chat_agent_tool_and_retrieval_signals(
    reader: InMemoryMetricReader, offline_llm: Callable[..., Any]
) -> None:
    # given the knowledge base and the default policy (search, then answer)
    await sync_to_async(knowledge.seed_documents)()

    # when one chat request runs to its answer
    events = await run_chat(offline_llm(), "What are the library hours during finals?")

    # then
    assert events[-1]["type"] == "final" and events[-1]["status"] == "completed"
    got = read(reader)
    assert got["chat.request.count"].value == 1
    assert "chat.request.error_count" not in got
    assert got["chat.request.duration_ms"].count == 1
    assert got["chat.request.duration_ms"].value > 0
    # llm, tool_call, llm
    assert got["chat.steps_per_response"].value == 3
    assert got["chat.tools_used_per_response"].value == 1
    assert got["agent.run.count"].value == 1
    assert got["agent.run.status.completed"].value == 1
    assert "agent.run.error_count" not in got
    assert "agent.no_tool_calls_count" not in got
    assert got["agent.iteration_count"].value == 2
    assert got["agent.tool_call_count"].value == 1
    assert got["agent.tokens.input"].value > 0
    assert got["agent.tokens.output"].value > 0
    assert got["tool.search_knowledge.success_count"].value == 1
    assert got["tool.search_knowledge.duration_ms"].count == 1
    assert got["retrieval.request_count"].value == 1
    assert got["retrieval.result_count"].value >= 1
    assert got["retrieval.duration_ms"].count == 1
    assert "retrieval.empty_result_count" not in got
    assert "retrieval.error_count" not in got


async def test_run_without_tools_counts_a_routing_regression(
    reader: InMemoryMetricReader, offline_llm: Callable[..., Any]
) -> None:
    events = await run_agent(offline_llm(answer_directly), "hi")

    assert events[-1]["status"] == "completed"
    got = read(reader)
    assert got["agent.no_tool_calls_count"].value == 1
    assert got["agent.tool_call_count"].value == 0
    assert got["agent.iteration_count"].value == 1


async def test_tool_failure_is_counted_as_failure_not_exception(
    reader: InMemoryMetricReader, offline_llm: Callable[..., Any]
) -> None:
    provider = offline_llm(tool_then_answer("calculate", {"expression": "2 +* two"}))

    events = await run_agent(provider, "what is 2 plus two")

    result = next(e for e in events if e["type"] == "tool_result")
    assert result["success"] is False
    got = read(reader)
    assert got["tool.calculate.failure_count"].value == 1
    assert "tool.calculate.exception_count" not in got
    assert "tool.calculate.success_count" not in got
    assert got["tool.calculate.duration_ms"].count == 1
    assert got["agent.run.status.completed"].value == 1


async def test_tool_exception_is_counted_and_the_run_still_completes(
    reader: InMemoryMetricReader, offline_llm: Callable[..., Any]
) -> None:
    provider = offline_llm(tool_then_answer("calculate", {"expression": "10 / 0"}))

    events = await run_agent(provider, "what is 10 / 0")

    result = next(e for e in events if e["type"] == "tool_result")
    assert "ZeroDivisionError" in result["output"]["error"]
    got = read(reader)
    assert got["tool.calculate.exception_count"].value == 1
    assert "tool.calculate.failure_count" not in got
    assert got["agent.run.status.completed"].value == 1


async def test_llm_error_counts_error_on_agent_and_chat(
    reader: InMemoryMetricReader, offline_llm: Callable[..., Any]
) -> None:
    events = await run_chat(offline_llm(server_error), "When is the add/drop deadline?")

    assert events[-1]["type"] == "error"
    got = read(reader)
    assert got["chat.request.count"].value == 1
    assert got["chat.request.error_count"].value == 1
    assert got["chat.request.duration_ms"].count == 1
    # only successful responses have steps and tools
    assert "chat.steps_per_response" not in got
    assert "chat.tools_used_per_response" not in got
    assert got["agent.run.count"].value == 1
    assert got["agent.run.error_count"].value == 1
    assert got["agent.run.status.error"].value == 1
    assert "agent.run.status.completed" not in got
    assert got["agent.iteration_count"].value == 1
    assert got["agent.tokens.input"].value == 0


async def test_max_iterations_path(
    reader: InMemoryMetricReader, offline_llm: Callable[..., Any]
) -> None:
    events = await run_agent(offline_llm(always_tool), "keep adding", max_iterations=3)

    assert events[-1]["status"] == "max_iterations"
    got = read(reader)
    assert got["agent.run.count"].value == 1
    assert got["agent.run.status.max_iterations"].value == 1
    assert "agent.run.error_count" not in got
    assert got["agent.iteration_count"].value == 3
    assert got["agent.tool_call_count"].value == 3
    assert got["tool.calculate.success_count"].value == 3
    assert got["tool.calculate.duration_ms"].count == 3


async def test_empty_retrieval(
    reader: InMemoryMetricReader, offline_llm: Callable[..., Any]
) -> None:
    await sync_to_async(knowledge.seed_documents)()
    provider = offline_llm(tool_then_answer("search_knowledge", {"query": "xylophone quokka"}))

    await run_agent(provider, "anything about xylophone quokka?")

    got = read(reader)
    assert got["retrieval.request_count"].value == 1
    assert got["retrieval.empty_result_count"].value == 1
    assert got["retrieval.result_count"].value == 0
    assert got["tool.search_knowledge.success_count"].value == 1


async def test_every_golden_signal_name_is_emitted_by_some_path(
    reader: InMemoryMetricReader, offline_llm: Callable[..., Any]
) -> None:
    """The table is the contract alarms are written against: no name may go missing."""
    await sync_to_async(knowledge.seed_documents)()
    await run_chat(offline_llm(), "What are the library hours?")
    await run_chat(offline_llm(server_error), "When is the add/drop deadline?")
    await run_agent(offline_llm(answer_directly), "hi")
    await run_agent(offline_llm(always_tool), "keep adding", max_iterations=2)
    await run_agent(offline_llm(tool_then_answer("calculate", {"expression": "1 +"})), "1 +")
    await run_agent(offline_llm(tool_then_answer("calculate", {"expression": "1 / 0"})), "1/0")
    await run_agent(offline_llm(tool_then_answer("search_knowledge", {"query": "zzqx"})), "zzqx")

    await run_agent(
        offline_llm(tool_then_answer("search_knowledge", {"query": "x", "folders": "it"})), "x"
    )

    got = read(reader)
    expected = set(GOLDEN_SIGNALS) | {t.format(name="calculate") for t in TOOL_SIGNALS}
    expected |= {"tool.search_knowledge.success_count", "tool.search_knowledge.duration_ms"}
    assert expected - set(got) == set()
    for name, point in got.items():
        assert point.kind == ("histogram" if name in HISTOGRAMS else "counter"), name


async def test_retrieval_error_is_counted_when_the_search_query_fails(
    reader: InMemoryMetricReader, offline_llm: Callable[..., Any]
) -> None:
    # a folder filter that is not a list makes PostgreSQL reject the search query
    arguments = {"query": "library hours", "folders": "library"}
    provider = offline_llm(tool_then_answer("search_knowledge", arguments))

    events = await run_agent(provider, "library hours?")

    assert events[-1]["status"] == "completed"
    got = read(reader)
    assert got["retrieval.request_count"].value == 1
    assert got["retrieval.error_count"].value == 1
    assert got["retrieval.duration_ms"].count == 1
    assert "retrieval.result_count" not in got
    assert got["tool.search_knowledge.exception_count"].value == 1


async def test_otlp_exporter_sends_golden_signals_to_a_collector(
    offline_llm: Callable[..., Any],
) -> None:
    # given a collector on loopback and METRICS_EXPORTER=otlp pointing at it
    collector = SentryReceiver().start()
    previous = metrics.meter_provider
    try:
        with override_settings(
            METRICS_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=f"{collector.base_url}/v1/metrics",
        ):
            provider = metrics.configure_from_settings()
        assert isinstance(provider, MeterProvider)

        # when an agent run finishes and the reader flushes
        await run_agent(offline_llm(answer_directly), "hi")
        assert metrics.force_flush()

        # then the collector decoded the agent's counters from OTLP protobuf
        assert sum(p.as_int for p in collector.metric_points["agent.run.count"]) == 1
        assert sum(p.as_int for p in collector.metric_points["agent.run.status.completed"]) == 1
        assert sum(p.count for p in collector.metric_points["agent.iteration_count"]) == 1
        provider.shutdown()
    finally:
        metrics.use_meter_provider(previous)
        collector.stop()


def test_exporter_setting_is_validated() -> None:
    with pytest.raises(ValueError, match="METRICS_EXPORTER must be one of none, console, otlp"):
        build_meter_provider("prometheus")
    assert build_meter_provider("none") is None
    console = build_meter_provider("console")
    assert isinstance(console, MeterProvider)
    console.shutdown()


def test_counters_and_histograms_are_created_once_per_name() -> None:
    memory = InMemoryMetricReader()
    service = MetricsService(MeterProvider(metric_readers=[memory]))
    service.increment("agent.run.count")
    service.increment("agent.run.count", 2)
    service.record("chat.request.duration_ms", 12.5)
    service.record("chat.request.duration_ms", 7.5)

    data = memory.get_metrics_data()
    assert data is not None
    by_name = {m.name: m for m in data.resource_metrics[0].scope_metrics[0].metrics}
    assert by_name["agent.run.count"].data.data_points[0].value == 3  # type: ignore[union-attr]
    duration = by_name["chat.request.duration_ms"]
    assert duration.unit == "ms"
    assert duration.description == GOLDEN_SIGNALS["chat.request.duration_ms"]
    assert duration.data.data_points[0].sum == 20.0  # type: ignore[union-attr]
