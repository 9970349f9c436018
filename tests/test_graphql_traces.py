"""traces / trace / span / conversations over runs written by the real exporter: every
filter alone and combined, ordering, keyset pagination, argument errors, the span tree
and attribute resolution across the three naming generations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.graphql_support import T0, Built, committed_dataset, execute
from tracing.models import OTelSpan, OTelTrace

pytestmark = pytest.mark.django_db

ALL = {"library", "failed", "loop", "earlier", "legacy", "orphan"}


@pytest.fixture(scope="module")
def data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Built]:
    with committed_dataset(django_db_blocker) as built:
        yield built


TRACE_PAGE = """
query($filters: TraceFilter, $ordering: [TraceOrder!]! = [], $first: Int, $after: String) {
  traces(filters: $filters, ordering: $ordering, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id query status model totalDurationMs toolsUsed } }
  }
}
"""


def _labels(data: Built, page: dict[str, Any]) -> list[str]:
    by_id = {v: k for k, v in data.ids.items()}
    return [by_id[edge["node"]["id"]] for edge in page["edges"]]


def _page(variables: dict[str, Any]) -> dict[str, Any]:
    result = execute(TRACE_PAGE, variables)
    assert result.errors is None, result.errors
    return result.data["traces"]


def _error(query: str, variables: dict[str, Any] | None = None) -> str:
    result = execute(query, variables)
    assert result.errors, f"expected an error, got {result.data}"
    return result.errors[0].message


# --- filters -----------------------------------------------------------------------------

SINGLE_FILTERS = [
    ({"status": ["error"]}, {"failed"}),
    ({"status": ["completed", "max_iterations"]}, {"library", "earlier", "legacy", "loop"}),
    ({"status": ["running"]}, {"orphan"}),
    ({"model": ["gpt-4o"]}, {"library", "earlier"}),
    ({"model": ["legacy-model-1", "gpt-4o-mini"]}, {"legacy", "loop"}),
    ({"minDurationMs": 1000}, {"library", "failed"}),
    ({"maxDurationMs": 600}, {"loop", "legacy", "orphan"}),
    ({"toolUsed": "search_documents"}, {"library", "failed"}),
    ({"toolUsed": "lookup_course"}, {"legacy"}),
    ({"toolUsed": "campus_map"}, {"earlier"}),
    ({"toolUsed": "search"}, set()),  # exact tool names, not substrings
    (
        {"startedAfter": (T0 + timedelta(hours=2)).isoformat()},
        {"loop", "earlier", "legacy", "orphan"},
    ),
    ({"startedBefore": (T0 + timedelta(hours=1)).isoformat()}, {"library"}),
    ({"search": "LIBRARY"}, {"library"}),
    ({"search": "cs101"}, {"legacy"}),
    ({"search": "where is"}, {"earlier"}),
]


@pytest.mark.parametrize(("filters", "expected"), SINGLE_FILTERS)
def test_each_filter_alone(data: Built, filters: dict[str, Any], expected: set[str]) -> None:
    page = _page({"filters": filters, "first": 50})
    assert set(_labels(data, page)) == expected
    assert page["totalCount"] == len(expected)


def test_conversation_filter(data: Built) -> None:
    page = _page({"filters": {"conversationId": str(data.conversations["library"])}})
    assert set(_labels(data, page)) == {"library", "failed"}
    assert _page({"filters": {"conversationId": "999999"}})["totalCount"] == 0


COMBINED = [
    ({"status": ["completed"], "model": ["gpt-4o"], "toolUsed": "campus_map"}, {"earlier"}),
    ({"toolUsed": "search_documents", "status": ["completed"]}, {"library"}),
    ({"minDurationMs": 500, "maxDurationMs": 1500}, {"library", "earlier", "legacy"}),
    (
        {
            "minDurationMs": 500,
            "maxDurationMs": 1500,
            "startedAfter": (T0 + timedelta(minutes=30)).isoformat(),
            "startedBefore": (T0 + timedelta(hours=3, minutes=30)).isoformat(),
        },
        {"earlier"},
    ),
    (
        {"search": "the", "model": ["gpt-4o", "claude-3-5-sonnet"]},
        {"library", "failed", "earlier"},
    ),
    ({"conversationId": "CONV", "status": ["error"], "toolUsed": "get_hours"}, {"failed"}),
    ({"status": ["error"], "model": ["gpt-4o"]}, set()),
]


@pytest.mark.parametrize(("filters", "expected"), COMBINED)
def test_filters_combine_with_and(data: Built, filters: dict[str, Any], expected: set[str]) -> None:
    if filters.get("conversationId") == "CONV":
        filters = {**filters, "conversationId": str(data.conversations["library"])}
    page = _page({"filters": filters})
    assert set(_labels(data, page)) == expected
    assert page["totalCount"] == len(expected)


# --- ordering and pagination -----------------------------------------------------------------


def test_default_order_is_newest_first(data: Built) -> None:
    assert _labels(data, _page({})) == ["orphan", "legacy", "earlier", "loop", "failed", "library"]


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ([{"startedAt": "ASC"}], ["library", "failed", "loop", "earlier", "legacy", "orphan"]),
        (
            [{"totalDurationMs": "DESC"}],
            ["failed", "library", "earlier", "legacy", "loop", "orphan"],
        ),
        (
            [{"totalDurationMs": "ASC"}],
            ["orphan", "loop", "legacy", "earlier", "library", "failed"],
        ),
        # tokens in+out: failed 490, library 150, earlier 150, legacy 88, loop 55, orphan 0
        (
            [{"totalTokens": "DESC"}, {"startedAt": "ASC"}],
            ["failed", "library", "earlier", "legacy", "loop", "orphan"],
        ),
    ],
)
def test_ordering(data: Built, ordering: list[dict[str, str]], expected: list[str]) -> None:
    assert _labels(data, _page({"ordering": ordering})) == expected


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"ordering": [{"totalDurationMs": "ASC"}]},
        {"ordering": [{"totalTokens": "DESC"}]},
        {"ordering": [{"startedAt": "ASC"}], "filters": {"status": ["completed", "running"]}},
    ],
)
@pytest.mark.parametrize("size", [1, 2, 4])
def test_pagination_walks_every_row_exactly_once(
    data: Built, variables: dict[str, Any], size: int
) -> None:
    full = _labels(data, _page({**variables, "first": 50}))
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = _page({**variables, "first": size, "after": after})
        assert page["totalCount"] == len(full)
        assert len(page["edges"]) <= size
        seen += _labels(data, page)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == full
    assert len(set(seen)) == len(seen)


def test_a_cursor_keeps_its_place_when_newer_traces_arrive(data: Built) -> None:
    first = _page({"first": 2})
    # A run newer than everything appears at the head; the next page must not shift.
    OTelTrace.objects.create(
        id="00000000000000000000000000000001", started_at=T0 + timedelta(days=1)
    )
    second = _page({"first": 2, "after": first["pageInfo"]["endCursor"]})
    assert _labels(data, second) == ["earlier", "loop"]


# --- bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables", "words"),
    [
        (TRACE_PAGE, {"first": 201}, "cannot be higher than 200"),
        (TRACE_PAGE, {"first": -1}, "non-negative"),
        (TRACE_PAGE, {"after": "garbage"}, "Invalid cursor"),
        (TRACE_PAGE, {"after": "b3JkZXJlZGN1cnNvcjpbIm5vdC1hLWRhdGUiLCJ4Il0="}, "Invalid cursor"),
        (TRACE_PAGE, {"ordering": [{"startedAt": "SIDEWAYS"}]}, "SIDEWAYS"),
        (TRACE_PAGE, {"ordering": [{"startedAt": "ASC", "totalTokens": "ASC"}]}, "exactly one"),
        (
            TRACE_PAGE,
            {
                "filters": {
                    "startedAfter": T0.isoformat(),
                    "startedBefore": (T0 - timedelta(1)).isoformat(),
                }
            },
            "must be before startedBefore",
        ),
        (
            TRACE_PAGE,
            {"filters": {"minDurationMs": 10, "maxDurationMs": 5}},
            "greater than maxDurationMs",
        ),
        (TRACE_PAGE, {"filters": {"minDurationMs": -1}}, "non-negative"),
        (TRACE_PAGE, {"filters": {"conversationId": "abc"}}, "Invalid conversation id"),
        (TRACE_PAGE, {"filters": {"startedAfter": "yesterday"}}, "DateTime"),
        (TRACE_PAGE, {"filters": {"search": "  "}}, "search must not be empty"),
        ('{ trace(id: "xyz") { id } }', None, "Invalid trace id"),
        ('{ conversation(id: "x") { id } }', None, "Invalid conversation id"),
    ],
)
def test_bad_arguments_are_clear_errors(
    data: Built, query: str, variables: dict[str, Any] | None, words: str
) -> None:
    assert words in _error(query, variables)


def test_unknown_ids_are_null(data: Built) -> None:
    result = execute(
        """{ trace(id: "0123456789abcdef0123456789abcdef") { id }
             dashed: trace(id: "01234567-89ab-cdef-0123-456789abcdef") { id }
             span(traceId: "0123456789abcdef0123456789abcdef", spanId: "0123456789abcdef") { id }
             bad: span(traceId: "nope", spanId: "nope") { id }
             conversation(id: "424242") { id } }"""
    )
    assert result.errors is None
    assert result.data == {
        "trace": None,
        "dashed": None,
        "span": None,
        "bad": None,
        "conversation": None,
    }


# --- trace detail and the span tree --------------------------------------------------------

DETAIL = """
query($id: ID!) {
  trace(id: $id) {
    id query status model startedAt endedAt totalDurationMs totalInputTokens totalOutputTokens
    iterationCount toolCallCount toolsUsed spanCount
    conversation { id title }
    userMessage { id role content }
    aiMessage { id role content }
    rootSpan { id name kind isOrphan }
    spans {
      id traceId parentId name kind op depth offsetMs durationMs selfDurationMs status
      statusMessage isOrphan events
      genAi { operation model provider inputTokens outputTokens finishReasons
              toolName toolInput toolOutput toolSuccess prompt }
      legacyModel: attribute(key: "llm.model")
      genaiModel: attribute(key: "gen_ai.request.model")
      legacyAttrs: attributes(naming: LEGACY)
      genaiAttrs: attributes(naming: GENAI)
      raw: attributes
      parent { id } children { id }
    }
  }
}
"""


def _detail(data: Built, label: str) -> dict[str, Any]:
    result = execute(DETAIL, {"id": data.ids[label]})
    assert result.errors is None, result.errors
    return result.data["trace"]


def _by_kind(trace: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in trace["spans"] if s["kind"] == kind]


def test_trace_detail_fields_and_waterfall(data: Built) -> None:
    trace = _detail(data, "library")
    assert trace["id"] == data.ids["library"]
    assert trace["query"] == "When does the library open?"
    assert (trace["status"], trace["model"]) == ("completed", "gpt-4o")
    assert trace["totalDurationMs"] == 1200
    assert (trace["totalInputTokens"], trace["totalOutputTokens"]) == (120, 30)
    assert (trace["iterationCount"], trace["toolCallCount"]) == (1, 1)
    assert trace["toolsUsed"] == ["search_documents"]
    assert trace["spanCount"] == len(trace["spans"]) == 5
    assert trace["conversation"] == {
        "id": str(data.conversations["library"]),
        "title": "Library hours",
    }
    assert trace["userMessage"]["content"] == "When does the library open?"
    assert trace["aiMessage"]["role"] == "assistant"

    spans = trace["spans"]
    assert [s["name"] for s in spans] == [
        "invoke_agent campuscore_agent",
        "iteration_1",
        "chat gpt-4o",
        "execute_tool search_documents",
        "SELECT campus",
    ]
    assert [s["kind"] for s in spans] == ["AGENT", "ITERATION", "LLM", "TOOL", "DATABASE"]
    assert [s["depth"] for s in spans] == [0, 1, 2, 2, 3]
    assert [s["offsetMs"] for s in spans] == [0, 10, 20, 130, 140]
    assert [s["op"] for s in spans] == [
        "gen_ai.invoke_agent",
        None,
        "gen_ai.chat",
        "gen_ai.execute_tool",
        "db",
    ]
    root, iteration, chat, tool, db = spans
    assert trace["rootSpan"] == {
        "id": root["id"],
        "name": root["name"],
        "kind": "AGENT",
        "isOrphan": False,
    }
    # self time: the agent span minus its iteration; the iteration minus chat and tool
    assert root["selfDurationMs"] == pytest.approx(1200 - 1180)
    assert iteration["selfDurationMs"] == pytest.approx(1180 - 100 - 50)
    assert tool["selfDurationMs"] == pytest.approx(50 - 20)
    assert db["selfDurationMs"] == pytest.approx(20)
    assert root["parentId"] is None and root["parent"] is None
    assert iteration["parent"] == {"id": root["id"]}
    assert iteration["children"] == [{"id": chat["id"]}, {"id": tool["id"]}]
    assert db["parentId"] == tool["id"]
    assert all(s["traceId"] == data.ids["library"] for s in spans)
    assert chat["events"][0]["name"] == "gen_ai.choice"
    assert chat["genAi"]["finishReasons"] == ["tool_calls"]


COLUMNS = """
query($id: ID!) {
  trace(id: $id) {
    spans { id parentId name kind op depth offsetMs durationMs selfDurationMs status
            statusMessage children { id } }
    spanColumns { ids parentIds names kinds ops depths offsetsMs durationsMs
                  selfDurationsMs statuses statusMessages childCounts }
  }
}
"""


@pytest.mark.parametrize("label", ["library", "orphan"])
def test_span_columns_say_what_spans_say(data: Built, label: str) -> None:
    result = execute(COLUMNS, {"id": data.ids[label]})
    assert result.errors is None, result.errors
    spans, columns = result.data["trace"]["spans"], result.data["trace"]["spanColumns"]
    pairs = {
        "ids": "id",
        "parentIds": "parentId",
        "names": "name",
        "kinds": "kind",
        "ops": "op",
        "depths": "depth",
        "offsetsMs": "offsetMs",
        "durationsMs": "durationMs",
        "selfDurationsMs": "selfDurationMs",
        "statuses": "status",
        "statusMessages": "statusMessage",
    }
    for column, field in pairs.items():
        assert columns[column] == [s[field] for s in spans], column
    assert columns["childCounts"] == [len(s["children"]) for s in spans]
    assert len(columns["ids"]) == len(spans) > 0


def test_error_status_and_message(data: Built) -> None:
    trace = _detail(data, "failed")
    assert trace["status"] == "error"
    root = trace["spans"][0]
    assert (root["status"], root["statusMessage"]) == ("ERROR", "agent failed")


def test_legacy_run_resolves_like_a_genai_one(data: Built) -> None:
    legacy = _detail(data, "legacy")
    assert legacy["model"] == "legacy-model-1"
    assert (legacy["totalInputTokens"], legacy["totalOutputTokens"]) == (77, 11)
    assert legacy["toolsUsed"] == ["lookup_course"]
    assert legacy["toolCallCount"] == 1
    assert legacy["query"] == "Legacy question about CS101 schedule"
    assert legacy["rootSpan"]["name"] == "agent_run"
    assert [s["kind"] for s in legacy["spans"]] == ["AGENT", "LLM", "TOOL"]
    agent, llm, tool = legacy["spans"]
    assert llm["op"] == "gen_ai.chat"
    assert llm["genAi"] == {
        "operation": "chat",
        "model": "legacy-model-1",
        "provider": "legacy-vendor",
        "inputTokens": 77,
        "outputTokens": 11,
        "finishReasons": None,
        "toolName": None,
        "toolInput": None,
        "toolOutput": None,
        "toolSuccess": None,
        "prompt": None,
    }
    assert tool["genAi"]["toolName"] == "lookup_course"
    assert tool["genAi"]["toolInput"] == '{"course": "CS101"}'
    assert tool["genAi"]["toolOutput"] == "CS101: Mondays"
    assert tool["genAi"]["toolSuccess"] is True
    assert agent["genAi"]["prompt"] == "Legacy question about CS101 schedule"
    # GenAI key asked of a legacy span; legacy key as stored
    assert llm["genaiModel"] == llm["legacyModel"] == "legacy-model-1"
    assert "gen_ai.request.model" in llm["genaiAttrs"] and "llm.model" not in llm["genaiAttrs"]
    assert llm["genaiAttrs"]["gen_ai.usage.input_tokens"] == 77
    assert llm["raw"] == llm["legacyAttrs"]

    genai = _detail(data, "library")
    chat = _by_kind(genai, "LLM")[0]
    # a legacy key asked of a GenAI span returns its gen_ai.request.model
    assert chat["legacyModel"] == chat["genaiModel"] == "gpt-4o"
    assert chat["legacyAttrs"]["llm.model"] == "gpt-4o"
    assert chat["legacyAttrs"]["llm.input_tokens"] == 120
    assert "gen_ai.request.model" not in chat["legacyAttrs"]
    # what a dashboard built on legacy keys reads is the same shape for both runs
    assert set(chat["legacyAttrs"]) >= {"llm.model", "llm.input_tokens", "llm.output_tokens"}
    assert set(llm["legacyAttrs"]) >= {"llm.model", "llm.input_tokens", "llm.output_tokens"}
    genai_tool = _by_kind(genai, "TOOL")[0]
    assert genai_tool["genAi"]["toolName"] == "search_documents"
    assert genai_tool["legacyAttrs"]["tool.name"] == "search_documents"


def test_earlier_genai_keys_resolve(data: Built) -> None:
    trace = _detail(data, "earlier")
    agent = trace["spans"][0]
    assert agent["genAi"]["provider"] == "offline"  # gen_ai.system
    assert agent["genAi"]["prompt"] == "Where is the cafeteria?"  # gen_ai.prompt
    assert trace["query"] == "Where is the cafeteria?"
    tool = _by_kind(trace, "TOOL")[0]
    assert tool["genAi"]["toolInput"] == '{"q": "Where is the cafeteria?"}'  # gen_ai.tool.input
    assert tool["genAi"]["toolOutput"] == "result text"
    assert tool["genaiAttrs"]["gen_ai.tool.call.arguments"] == tool["genAi"]["toolInput"]


def test_orphans_hang_at_depth_zero_and_become_the_root(data: Built) -> None:
    trace = _detail(data, "orphan")
    assert trace["status"] == "running"
    [chat] = trace["spans"]
    assert chat["isOrphan"] is True
    assert chat["parentId"] is not None and chat["parent"] is None
    assert chat["depth"] == 0
    assert trace["rootSpan"] == {
        "id": chat["id"],
        "name": "chat ghost-model",
        "kind": "LLM",
        "isOrphan": True,
    }


def test_root_span_on_a_list_matches_the_detail(data: Built) -> None:
    result = execute("{ traces { edges { node { id rootSpan { id name } } } } }")
    assert result.errors is None
    for edge in result.data["traces"]["edges"]:
        detail = execute(
            "query($id: ID!) { trace(id: $id) { rootSpan { id } } }", {"id": edge["node"]["id"]}
        )
        assert edge["node"]["rootSpan"]["id"] == detail.data["trace"]["rootSpan"]["id"]


SPAN = """
query($t: ID!, $s: ID!) {
  span(traceId: $t, spanId: $s) {
    id name kind depth offsetMs parent { name } children { name } genAi { toolName }
  }
}
"""


def test_span_by_trace_and_span_id(data: Built) -> None:
    stored = OTelSpan.objects.get(
        trace_id=uuid.UUID(data.ids["library"]), name="execute_tool search_documents"
    )
    result = execute(
        SPAN,
        {"t": data.ids["library"], "s": stored.span_id.upper()},
    )
    assert result.errors is None, result.errors
    assert result.data["span"] == {
        "id": stored.span_id,
        "name": "execute_tool search_documents",
        "kind": "TOOL",
        "depth": 2,
        "offsetMs": 130.0,
        "parent": {"name": "iteration_1"},
        "children": [{"name": "SELECT campus"}],
        "genAi": {"toolName": "search_documents"},
    }


SPAN_FRAGMENTS = """
query($t: ID!, $s: ID!) {
  named: span(traceId: $t, spanId: $s) { id ...Placement }
  inline: span(traceId: $t, spanId: $s) { id ... on Span { depth offsetMs isOrphan } }
}
fragment Placement on Span { depth selfDurationMs parent { name } children { name } }
"""


def test_a_lone_span_answers_tree_fields_asked_through_fragments(data: Built) -> None:
    """Fields that need the whole trace are found inside fragments too: a span fetched on
    its own is then placed in its trace's tree, never answered as a tree of itself."""
    stored = OTelSpan.objects.get(
        trace_id=uuid.UUID(data.ids["library"]), name="execute_tool search_documents"
    )
    result = execute(SPAN_FRAGMENTS, {"t": data.ids["library"], "s": stored.span_id})
    assert result.errors is None, result.errors
    named, inline = result.data["named"], result.data["inline"]
    assert (named["depth"], named["parent"], named["children"]) == (
        2,
        {"name": "iteration_1"},
        [{"name": "SELECT campus"}],
    )
    # The child's time is not its own.
    assert named["selfDurationMs"] < stored.duration_ms
    assert inline == {"id": stored.span_id, "depth": 2, "offsetMs": 130.0, "isOrphan": False}


SPAN_FIELDS = """
{ __type(name: "Span") { fields { name args { name }
  type { kind ofType { kind ofType { kind ofType { kind } } } } } } }
"""


def _leaf(type_: dict[str, Any] | None) -> bool:
    while type_ is not None and type_["kind"] in ("NON_NULL", "LIST"):
        type_ = type_["ofType"]
    return type_ is not None and type_["kind"] in ("SCALAR", "ENUM")


def test_every_span_field_of_a_lone_span_matches_its_trace(data: Built) -> None:
    """Each field of Span, asked alone of a span fetched without its trace, answers what
    the trace's own spans answer: a field that depends on the other spans cannot be
    answered from the span alone by mistake (a new one must join TREE_FIELDS)."""
    fields = execute(SPAN_FIELDS).data["__type"]["fields"]
    selections = [
        f["name"] if _leaf(f["type"]) else f"{f['name']} {{ __typename }}"
        for f in fields
        if not any(arg["name"] == "key" for arg in f["args"])
    ]
    assert {"depth", "selfDurationMs", "parent { __typename }"} <= set(selections)
    trace_id = data.ids["library"]
    detail = execute(
        "query($id: ID!) { trace(id: $id) { spans { " + " ".join(selections) + " } } }",
        {"id": trace_id},
    ).data["trace"]["spans"]
    deep = next(s for s in detail if s["name"] == "execute_tool search_documents")
    for selection in selections:
        name = selection.split(" ")[0]
        alone = execute(
            "query($t: ID!, $s: ID!) { span(traceId: $t, spanId: $s) { " + selection + " } }",
            {"t": trace_id, "s": deep["id"]},
        )
        assert alone.errors is None, alone.errors
        assert alone.data["span"][name] == deep[name], name


def test_a_lone_span_reads_its_trace_only_when_asked(
    data: Built, django_assert_num_queries: Any
) -> None:
    stored = OTelSpan.objects.get(
        trace_id=uuid.UUID(data.ids["library"]), name="execute_tool search_documents"
    )
    variables = {"t": data.ids["library"], "s": stored.span_id}
    # the span, after its trace's time bounds (partition pruning, within_traces)
    with django_assert_num_queries(2):
        plain = execute(
            "query($t: ID!, $s: ID!) { span(traceId: $t, spanId: $s) { id name kind op } }",
            variables,
        )
    assert plain.data["span"] == {
        "id": stored.span_id,
        "name": "execute_tool search_documents",
        "kind": "TOOL",
        "op": "gen_ai.execute_tool",
    }
    # the span, then its trace's spans: each after its trace's time bounds
    with django_assert_num_queries(4):
        placed = execute(
            "query($t: ID!, $s: ID!) { span(traceId: $t, spanId: $s) { id depth } }", variables
        )
    assert placed.data["span"] == {"id": stored.span_id, "depth": 2}


# --- conversations -----------------------------------------------------------------------


CONVERSATION = """
query($id: ID!) {
  conversation(id: $id) {
    id title messages { role content }
    traces(first: 1) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } }
  }
}
"""


def test_conversation_with_messages_and_traces(data: Built) -> None:
    result = execute(
        CONVERSATION,
        {"id": str(data.conversations["library"])},
    )
    assert result.errors is None, result.errors
    conv = result.data["conversation"]
    assert conv["title"] == "Library hours"
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
    assert conv["traces"]["totalCount"] == 2
    assert conv["traces"]["edges"][0]["node"]["id"] == data.ids["failed"]  # newest first
    assert conv["traces"]["pageInfo"]["hasNextPage"] is True


def test_conversations_list(data: Built) -> None:
    result = execute(
        "{ conversations(first: 10) { totalCount edges { node { id traces { totalCount } } } } }"
    )
    assert result.errors is None, result.errors
    page = result.data["conversations"]
    assert page["totalCount"] == 1
    assert page["edges"][0]["node"]["traces"]["totalCount"] == 2
