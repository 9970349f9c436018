"""What other services' spans become in the store (issue 12, "What gets stored"), over
traces written by the real exporter: an OpenInference run summarised like its GenAI twin,
``genAi`` / ``attribute(key)`` across all four naming generations, service names and
resources, external session ids kept as text, and traces without agent work (reachable
by id, out of the default run list)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from campus_core.chat.models import Conversation
from tests.graphql_support import (
    T0,
    SpanWriter,
    committed,
    execute,
    genai_run,
    legacy_run,
)
from tests.other_services import (
    EDGE_SERVICE,
    PHOENIX_SERVICE,
    http_only_trace,
    openinference_run,
    service,
)
from tracing.conventions import attributes as A
from tracing.conventions import semconv
from tracing.conventions.semconv import Concept, Generation, SpanCategory
from tracing.export import PostgresSpanExporter
from tracing.export.rows import ResourceRef, RootInfo, build_row, resource_ref
from tracing.models import SUMMARY_COLUMNS, AgentStatus, OTelResource, OTelSpan, OTelTrace

pytestmark = pytest.mark.django_db

NODE_SERVICE = "node-agent"
# One run's facts, written by genai_run and by openinference_run alike.
TWINS = {
    "completed": dict(
        query="When does the gym open?",
        model="gpt-4o",
        duration_ms=900,
        tools=["get_hours", "search_documents"],
        input_tokens=310,
        output_tokens=42,
    ),
    "error": dict(
        query="Book the big lecture hall",
        model="claude-3-5-sonnet",
        duration_ms=2400,
        tools=["book_room"],
        status="error",
        input_tokens=95,
        output_tokens=7,
    ),
}


def _build(exporter: PostgresSpanExporter) -> dict[str, Any]:
    ids: dict[str, str] = {}
    owner = get_user_model().objects.create_user("other-services-owner", password="x")
    conversation = Conversation.objects.create(user=owner, title="Gym")
    ours = SpanWriter(exporter)
    phoenix = SpanWriter(
        exporter, service(PHOENIX_SERVICE, **{"deployment.environment": "staging"})
    )
    node = SpanWriter(exporter, service(NODE_SERVICE))
    edge = SpanWriter(exporter, service(EDGE_SERVICE))
    for hour, (outcome, facts) in enumerate(TWINS.items()):
        started = T0 + timedelta(hours=hour)
        ids[f"genai_{outcome}"] = genai_run(ours, started=started, **facts)  # type: ignore[arg-type]
        ids[f"oi_{outcome}"] = openinference_run(phoenix, started=started, **facts)  # type: ignore[arg-type]
    ids["earlier"] = genai_run(
        ours,
        started=T0 + timedelta(hours=3),
        query="Where is the cafeteria?",
        model="gpt-4o-mini",
        duration_ms=800,
        tools=["campus_map"],
        provider_key=A.GEN_AI_SYSTEM,
        prompt_key=A.GEN_AI_PROMPT,
        tool_input_key=A.GEN_AI_TOOL_INPUT,
        tool_output_key=A.GEN_AI_TOOL_OUTPUT,
    )
    ids["legacy"] = legacy_run(
        ours,
        started=T0 + timedelta(hours=4),
        query="Legacy question about CS101",
        model="legacy-model-1",
        duration_ms=600,
        tool="lookup_course",
    )
    ids["ours_in_conversation"] = genai_run(
        ours,
        started=T0 + timedelta(hours=5),
        query="And on Sundays?",
        model="gpt-4o",
        duration_ms=500,
        tools=[],
        conversation=conversation,
    )
    # Another service whose own conversation id happens to equal one of ours.
    ids["external_same_number"] = genai_run(
        node,
        started=T0 + timedelta(hours=6),
        query="Node-side question",
        model="gpt-4o",
        duration_ms=400,
        tools=[],
        conversation=conversation,
    )
    ids["oi_session"] = openinference_run(
        phoenix,
        started=T0 + timedelta(hours=7),
        query="Phoenix-side question",
        model="gpt-4o",
        duration_ms=700,
        tools=[],
        session="sess-9f2c",
    )
    ids["http"] = http_only_trace(edge, started=T0 + timedelta(hours=8))
    for writer in (ours, phoenix, node, edge):
        writer.shutdown()
    return {"ids": ids, "conversation": conversation.pk}


@pytest.fixture(scope="module")
def data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    with committed(django_db_blocker, _build) as built:
        yield built


def _row(data: dict[str, Any], label: str) -> dict[str, Any]:
    row: dict[str, Any] = OTelTrace.objects.values(*SUMMARY_COLUMNS).get(
        id=uuid.UUID(data["ids"][label])
    )
    return row


# --- the OpenInference generation -----------------------------------------------------------


@pytest.mark.parametrize("outcome", list(TWINS))
def test_an_openinference_run_is_summarised_like_its_genai_twin(
    data: dict[str, Any], outcome: str
) -> None:
    genai, oi = _row(data, f"genai_{outcome}"), _row(data, f"oi_{outcome}")
    # The twin is not trivially empty: every fact the summary has is there to compare.
    assert genai["status"] == outcome
    assert genai["total_input_tokens"] > 0 and genai["tools_used"] and genai["model"]
    assert genai["query"] and genai["agent_name"] and genai["iteration_count"] > 0
    # Apart by design: ids, the service, and the GenAI run's iteration_N spans, which an
    # OpenInference run does not have (its LLM calls count as its iterations).
    apart = {"root_span_id", "service_name", "span_count"}
    for column in SUMMARY_COLUMNS:
        if column not in apart:
            assert oi[column] == genai[column], column
    assert oi["span_count"] == genai["span_count"] - genai["iteration_count"]
    assert (genai["service_name"], oi["service_name"]) == (
        settings.OTEL_SERVICE_NAME,
        PHOENIX_SERVICE,
    )
    assert oi["root_span_id"] and genai["root_span_id"]


@pytest.mark.parametrize(
    ("kind", "category"),
    [
        ("AGENT", SpanCategory.AGENT),
        ("LLM", SpanCategory.LLM),
        ("TOOL", SpanCategory.TOOL),
        ("CHAIN", SpanCategory.OTHER),
        ("RETRIEVER", SpanCategory.OTHER),
        ("EMBEDDING", SpanCategory.OTHER),
        ("RERANKER", SpanCategory.OTHER),
        ("GUARDRAIL", SpanCategory.OTHER),
        ("EVALUATOR", SpanCategory.OTHER),
        ("llm", SpanCategory.LLM),  # the kind is compared case-insensitively
    ],
)
def test_openinference_span_kinds_classify_by_kind_not_name(
    kind: str, category: SpanCategory
) -> None:
    # A name that would classify as a chat span in the GenAI names: the kind decides.
    attributes = {A.OPENINFERENCE_SPAN_KIND: kind}
    assert semconv.classify("chat gpt-4o", attributes) is category
    facts = semconv.span_facts("chat gpt-4o", attributes | {A.OI_LLM_TOKEN_COUNT_PROMPT: 5})
    assert facts.iteration is (category is SpanCategory.LLM)
    assert facts.input_tokens == (5 if category is SpanCategory.LLM else 0)


def test_a_retriever_span_with_http_attributes_is_still_an_http_span() -> None:
    attributes = {A.OPENINFERENCE_SPAN_KIND: "RETRIEVER", A.HTTP_REQUEST_METHOD: "GET"}
    assert semconv.classify("fetch", attributes, "CLIENT") is SpanCategory.HTTP


def test_the_alias_table_has_a_key_for_every_concept_in_every_generation() -> None:
    keys = semconv.ALIASES
    assert keys[Concept.MODEL].key(Generation.OPENINFERENCE) == A.OI_LLM_MODEL_NAME
    # Shared keys mean the same concept in the legacy names and in OpenInference.
    for concept in (Concept.TOOL_NAME, Concept.PROVIDER):
        assert keys[concept].key(Generation.LEGACY) == keys[concept].key(Generation.OPENINFERENCE)
    owners: dict[str, Concept] = {}
    for concept, alias in keys.items():
        for generation in Generation:
            key = alias.key(generation)
            assert owners.setdefault(key, concept) is concept, f"{key} names two concepts"


GENERATIONS_QUERY = """
query($id: ID!) {
  trace(id: $id) {
    serviceName
    spans {
      kind
      serviceName
      genAi { model provider inputTokens outputTokens toolName toolInput toolOutput prompt }
      current: attribute(key: "gen_ai.request.model")
      legacy: attribute(key: "llm.model")
      openinference: attribute(key: "llm.model_name")
      inCurrent: attribute(key: "gen_ai.usage.input_tokens")
      inLegacy: attribute(key: "llm.input_tokens")
      inOpenInference: attribute(key: "llm.token_count.prompt")
      argsCurrent: attribute(key: "gen_ai.tool.call.arguments")
      argsEarlier: attribute(key: "gen_ai.tool.input")
      argsOpenInference: attribute(key: "tool.parameters")
      asOpenInference: attributes(naming: OPENINFERENCE)
    }
  }
}
"""

_RUNS_OF_EACH_GENERATION = {
    "genai_completed": ("gpt-4o", TWINS["completed"]["query"]),
    "earlier": ("gpt-4o-mini", "Where is the cafeteria?"),
    "legacy": ("legacy-model-1", "Legacy question about CS101"),
    "oi_completed": ("gpt-4o", TWINS["completed"]["query"]),
}


@pytest.mark.parametrize("label", list(_RUNS_OF_EACH_GENERATION))
def test_gen_ai_and_attribute_resolve_across_all_four_generations(
    data: dict[str, Any], label: str
) -> None:
    model, query = _RUNS_OF_EACH_GENERATION[label]
    result = execute(GENERATIONS_QUERY, {"id": data["ids"][label]})
    assert result.errors is None, result.errors
    spans = result.data["trace"]["spans"]
    [agent] = [s for s in spans if s["kind"] == "AGENT"]
    assert agent["genAi"]["prompt"] == query
    llm_spans = [s for s in spans if s["kind"] == "LLM"]
    tool_spans = [s for s in spans if s["kind"] == "TOOL"]
    assert llm_spans and tool_spans
    for llm in llm_spans:
        facts = llm["genAi"]
        assert facts["model"] == model
        assert facts["provider"] and facts["inputTokens"] and facts["outputTokens"]
        # Every generation's key for the same concept answers the same value.
        assert llm["current"] == llm["legacy"] == llm["openinference"] == model
        assert llm["inCurrent"] == llm["inLegacy"] == llm["inOpenInference"]
        assert llm["inCurrent"] == facts["inputTokens"]
        renamed = llm["asOpenInference"]
        assert renamed[A.OI_LLM_MODEL_NAME] == model
        assert renamed[A.OI_LLM_TOKEN_COUNT_PROMPT] == facts["inputTokens"]
        assert A.GEN_AI_USAGE_INPUT_TOKENS not in renamed
    for tool in tool_spans:
        facts = tool["genAi"]
        assert facts["toolName"] and facts["toolInput"] and facts["toolOutput"]
        assert tool["argsCurrent"] == tool["argsEarlier"] == tool["argsOpenInference"]
        assert tool["argsCurrent"] == facts["toolInput"]


# --- services and resources ---------------------------------------------------------------

SERVICE_PAGE = """
query($filters: TraceFilter) {
  traces(filters: $filters, first: 100) { edges { node { id serviceName } } }
  filterOptions { services }
}
"""


def _page(filters: dict[str, Any] | None = None) -> dict[str, str]:
    result = execute(SERVICE_PAGE, {"filters": filters})
    assert result.errors is None, result.errors
    return {e["node"]["id"]: e["node"]["serviceName"] for e in result.data["traces"]["edges"]}


def test_service_name_per_trace_and_span_filter_and_options(data: dict[str, Any]) -> None:
    ids = data["ids"]
    everything = _page({"agentRunsOnly": False})
    assert everything[ids["genai_completed"]] == settings.OTEL_SERVICE_NAME
    assert everything[ids["oi_completed"]] == PHOENIX_SERVICE
    assert everything[ids["external_same_number"]] == NODE_SERVICE
    assert everything[ids["http"]] == EDGE_SERVICE

    phoenix = {ids["oi_completed"], ids["oi_error"], ids["oi_session"]}
    assert set(_page({"serviceName": [PHOENIX_SERVICE]})) == phoenix
    assert set(_page({"serviceName": [PHOENIX_SERVICE, NODE_SERVICE]})) == phoenix | {
        ids["external_same_number"]
    }
    assert _page({"serviceName": ["no-such-service"]}) == {}

    result = execute(SERVICE_PAGE)
    assert result.data["filterOptions"]["services"] == sorted(
        {settings.OTEL_SERVICE_NAME, PHOENIX_SERVICE, NODE_SERVICE, EDGE_SERVICE}
    )


def test_each_span_keeps_its_service_and_resource_stored_once(data: dict[str, Any]) -> None:
    oi_ids = [uuid.UUID(data["ids"][label]) for label in ("oi_completed", "oi_session")]
    spans = OTelSpan.objects.filter(trace_id__in=oi_ids)
    assert {s.service_name for s in spans} == {PHOENIX_SERVICE}
    # Every span of the service points at one resource row, with all its attributes.
    [resource_id] = {s.resource_id for s in spans}
    assert resource_id is not None
    resource = OTelResource.objects.get(id=resource_id)
    assert resource.service_name == PHOENIX_SERVICE
    assert resource.attributes[A.SERVICE_NAME] == PHOENIX_SERVICE
    assert resource.attributes["deployment.environment"] == "staging"
    assert resource.attributes["telemetry.sdk.language"] == "python"
    # One row per distinct resource, however many spans carried it.
    assert OTelResource.objects.count() == len(
        {settings.OTEL_SERVICE_NAME, PHOENIX_SERVICE, NODE_SERVICE, EDGE_SERVICE}
    )


# --- sessions from elsewhere ----------------------------------------------------------------

SESSION_QUERY = """
query($id: ID!) { trace(id: $id) { sessionId conversation { id } } }
"""


def _session(data: dict[str, Any], label: str) -> dict[str, Any]:
    result = execute(SESSION_QUERY, {"id": data["ids"][label]})
    assert result.errors is None, result.errors
    trace: dict[str, Any] = result.data["trace"]
    return trace


def test_external_session_ids_are_kept_as_text_never_as_a_link(data: dict[str, Any]) -> None:
    conversation = str(data["conversation"])
    assert _session(data, "oi_session") == {"sessionId": "sess-9f2c", "conversation": None}
    # Another service's conversation id equal to one of ours is not ours.
    assert _session(data, "external_same_number") == {
        "sessionId": conversation,
        "conversation": None,
    }
    assert _session(data, "ours_in_conversation") == {
        "sessionId": conversation,
        "conversation": {"id": conversation},
    }
    assert _session(data, "genai_completed") == {"sessionId": "", "conversation": None}

    ids = data["ids"]
    assert set(_page({"sessionId": "sess-9f2c"})) == {ids["oi_session"]}
    assert set(_page({"sessionId": conversation})) == {
        ids["ours_in_conversation"],
        ids["external_same_number"],
    }


def test_only_this_service_links_conversation_ids() -> None:
    """A resource without a service name is not this service: its ids stay text."""
    attributes = {A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT, A.GEN_AI_CONVERSATION_ID: "17"}

    def root(resource: ResourceRef | None) -> RootInfo:
        row = build_row(
            1,
            2,
            None,
            "invoke_agent a",
            "INTERNAL",
            0,
            1,
            "UNSET",
            "",
            attributes,
            [],
            "",
            1000,
            resource,
        )
        assert row.root is not None and row.session_id == "17"
        return row.root

    ours = resource_ref({A.SERVICE_NAME: settings.OTEL_SERVICE_NAME}, 1000)
    assert root(None).conversation_id == root(ours).conversation_id == 17
    for other in ({A.SERVICE_NAME: NODE_SERVICE}, {"host.name": "worker-1"}):
        assert root(resource_ref(other, 1000)).conversation_id is None


# --- traces without agent work --------------------------------------------------------------

STATS = """
query($filters: TraceFilter) { traceStats(filters: $filters) { count } }
"""


def test_a_trace_without_agent_spans_is_reachable_by_id_and_not_a_run(
    data: dict[str, Any],
) -> None:
    http = data["ids"]["http"]
    result = execute(
        """query($id: ID!) { trace(id: $id) { status serviceName spanCount rootSpan { name } } }""",
        {"id": http},
    )
    assert result.errors is None, result.errors
    assert result.data["trace"] == {
        "status": AgentStatus.NO_AGENT.value,
        "serviceName": EDGE_SERVICE,
        "spanCount": 2,
        "rootSpan": {"name": "GET /health"},
    }
    runs = _page()
    assert http not in runs
    assert len(runs) == len(data["ids"]) - 1
    assert http in _page({"agentRunsOnly": False})
    assert set(_page({"status": [AgentStatus.NO_AGENT.value]})) == {http}
    assert http not in _page({"agentRunsOnly": True, "serviceName": [EDGE_SERVICE]})

    def count(filters: dict[str, Any] | None) -> int:
        stats = execute(STATS, {"filters": filters})
        assert stats.errors is None, stats.errors
        return int(stats.data["traceStats"]["count"])

    assert count(None) == len(runs)
    assert count({"agentRunsOnly": False}) == len(runs) + 1
