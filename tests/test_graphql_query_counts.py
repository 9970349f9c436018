"""The read path's SQL is bounded: a page of 200 traces costs the same queries as a page
of 10, and a trace of 1,000 spans the same as a trace of 5."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from campus_core.chat.models import Conversation, Message
from tests.graphql_support import T0, SpanWriter, _at, execute, genai_run
from tracing.export import PostgresSpanExporter
from tracing.models import OTelTrace
from tracing.read import span_window

pytestmark = pytest.mark.django_db

PAGE = """
query($first: Int!) {
  traces(first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id query status model totalDurationMs toolsUsed serviceName sessionId
      conversation { id title }
      userMessage { id content }
      aiMessage { id content }
      rootSpan { id name kind op durationMs genAi { model provider } }
    } }
  }
}
"""

DETAIL = """
query($id: ID!) {
  trace(id: $id) {
    id spanCount conversation { id }
    rootSpan { id depth }
    spans {
      id parentId name kind op depth offsetMs durationMs selfDurationMs status
      attributes(naming: LEGACY) attribute(key: "llm.model") serviceName
      oi: attributes(naming: OPENINFERENCE) oiModel: attribute(key: "llm.model_name")
      genAi { model inputTokens outputTokens toolName }
      parent { id } children { id }
    }
  }
}
"""

PAGE_TRACES = 220
BIG_TRACE_SPANS = 1000


@pytest.fixture(scope="module")
def traces(django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, str]]:
    """220 runs (each with a conversation and messages) and one run of 1,000 spans, all
    emitted as SDK spans and handed to the real exporter in one batch."""
    with django_db_blocker.unblock():
        memory = InMemorySpanExporter()
        writer = SpanWriter(memory)  # type: ignore[arg-type]
        owner = get_user_model().objects.create_user("counts-owner")
        for i in range(PAGE_TRACES):
            conv = Conversation.objects.create(user=owner, title=f"c{i}")
            question = Message.objects.create(conversation=conv, role="user", content=f"q{i}")
            answer = Message.objects.create(conversation=conv, role="assistant", content="a")
            genai_run(
                writer,
                started=T0 + timedelta(seconds=i),
                query=f"question {i}",
                model="gpt-4o" if i % 2 else "claude",
                duration_ms=100 + i,
                tools=["search_documents"],
                conversation=conv,
                user_message=question,
                ai_message=answer,
            )
        small = genai_run(
            writer,
            started=T0 - timedelta(days=1),
            query="small",
            model="m",
            duration_ms=500,
            tools=[],
        )
        big = _big_trace(writer)
        writer.shutdown()
        exporter = PostgresSpanExporter(keep_untagged=True)
        try:
            exporter.export(memory.get_finished_spans())
        finally:
            exporter.shutdown()
    yield {"small": small, "big": big}
    with django_db_blocker.unblock():
        OTelTrace.objects.all().delete()
        Conversation.objects.all().delete()
        get_user_model().objects.all().delete()


def _big_trace(w: SpanWriter) -> str:
    start = T0 - timedelta(days=2)
    root = w.span(
        "invoke_agent big", start, 60_000, attributes={"gen_ai.operation.name": "invoke_agent"}
    )
    parents = [root]
    for i in range(BIG_TRACE_SPANS - 1):
        parent = parents[i // 10]  # a ten-way fan-out, several levels deep
        span = w.span(
            "chat m" if i % 3 else "execute_tool t",
            _at(i * 10, start),
            5,
            parent=parent,
            attributes={"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 3}
            if i % 3
            else {"gen_ai.tool.name": "t"},
        )
        parents.append(span)
    for span in reversed(parents[1:]):
        span.end()
    w.end(root, start, 60_000)
    return format(root.get_span_context().trace_id, "032x")


def _count(query: str, variables: dict[str, Any]) -> tuple[int, Any, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        result = execute(query, variables)
    assert result.errors is None, result.errors
    # Shortened: enough to tell which query is extra when a pin fails.
    sql = [q["sql"][:300] for q in captured.captured_queries]
    return len(sql), result.data, sql


def test_a_page_of_200_costs_the_same_queries_as_a_page_of_10(traces: dict[str, str]) -> None:
    n10, data10, _ = _count(PAGE, {"first": 10})
    n200, data200, sql200 = _count(PAGE, {"first": 200})
    assert len(data10["traces"]["edges"]) == 10
    assert len(data200["traces"]["edges"]) == 200
    assert all(e["node"]["rootSpan"]["kind"] == "AGENT" for e in data200["traces"]["edges"])
    assert all(e["node"]["conversation"] for e in data200["traces"]["edges"])
    assert n10 == n200, "\n\n".join(sql200)
    # page (with its joins), count, root spans
    assert n200 <= 3, "\n\n".join(sql200)


def test_a_trace_of_1000_spans_costs_the_same_queries_as_a_small_one(
    traces: dict[str, str],
) -> None:
    n_small, small, _ = _count(DETAIL, {"id": traces["small"]})
    n_big, big, sql = _count(DETAIL, {"id": traces["big"]})
    spans = big["trace"]["spans"]
    assert len(spans) == BIG_TRACE_SPANS
    assert max(s["depth"] for s in spans) == 3
    assert len(small["trace"]["spans"]) == 3
    assert n_small == n_big, "\n\n".join(sql)
    # trace (with conversation), spans (bounded by the trace row's own start and end: no
    # query for the bounds), root span
    assert n_big == 3, "\n\n".join(sql)


CONVERSATIONS = """
query($first: Int!) {
  conversations(first: $first) {
    totalCount
    edges { node {
      id title messages { role content }
      traces(first: 2) { totalCount edges { node { id status rootSpan { id name } } } }
    } }
  }
}
"""


def test_conversations_with_nested_traces_cost_the_same_at_any_page_size(
    traces: dict[str, str],
) -> None:
    n10, _, _ = _count(CONVERSATIONS, {"first": 10})
    n100, data100, sql = _count(CONVERSATIONS, {"first": 100})
    assert len(data100["conversations"]["edges"]) == 100
    for edge in data100["conversations"]["edges"]:
        node = edge["node"]
        assert [m["role"] for m in node["messages"]] == ["user", "assistant"]
        assert node["traces"]["totalCount"] == 1
        assert node["traces"]["edges"][0]["node"]["rootSpan"]["name"].startswith("invoke_agent")
    assert n10 == n100, "\n\n".join(sql)


SPAN_PAGE = """
query($first: Int!, $f: SpanFilter, $o: [SpanOrder!]! = []) {
  spans(first: $first, filters: $f, ordering: $o) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id traceId name kind durationMs depth parent { id } children { id }
      genAi { model inputTokens } attribute(key: "llm.model")
    } }
  }
}
"""


@pytest.mark.parametrize(
    ("variables", "window"),
    [
        ({}, 1),
        ({"f": {"kind": ["LLM"], "trace": {"model": ["gpt-4o", "claude"]}}}, 1),
        (
            {
                "f": {"attributes": [{"key": "llm.model", "in": ["gpt-4o", "claude"]}]},
                "o": [{"durationMs": "DESC"}],
            },
            0,
        ),
    ],
)
def test_a_page_of_200_spans_costs_the_same_queries_as_a_page_of_10(
    traces: dict[str, str], variables: dict[str, Any], window: int
) -> None:
    n10, data10, _ = _count(SPAN_PAGE, {"first": 10, **variables})
    span_window.forget()  # the window lookup is kept a minute (may be shared by both sizes)
    n200, data200, sql = _count(SPAN_PAGE, {"first": 200, **variables})
    assert len(data10["spans"]["edges"]) == 10
    assert len(data200["spans"]["edges"]) == 200
    assert len({e["node"]["traceId"] for e in data200["spans"]["edges"]}) > 10
    assert n10 == n200, "\n\n".join(sql)
    # page, count, the page's traces (for depth / parent / children)
    # + the traces' time bounds before their spans (partition pruning, within_traces)
    # + for a newest-first page, the rollups' lookup of the newest window holding it
    # (tracing/read/span_window.py; no rollups here: read unbounded)
    assert n200 == 4 + window, "\n\n".join(sql)


SPAN_STATS = """
{
  spanStats(filters: {kind: [LLM]}) {
    count errors errorRate inputTokens outputTokens durationMs { p50 p95 p99 }
    byModel { key count } byTool { key count } byName { key count }
    timeSeries(bucket: DAY, from: "2026-02-20T00:00:00Z", to: "2026-03-10T00:00:00Z") {
      start count
    }
  }
}
"""


def test_span_stats_cost_one_query_per_part(traces: dict[str, str]) -> None:
    n, data, sql = _count(SPAN_STATS, {})
    assert data["spanStats"]["count"] > 200
    # the clean rollup periods (shared, tracing.read.span_rollups), headline numbers
    # (shared), byModel, byTool, byName, timeSeries
    assert n == 6, "\n\n".join(sql)
