"""``spans`` and ``spanStats`` over runs written by the real pipeline (SDK spans → the
exporter), in every naming generation: each filter and attribute operator, a legacy-named
and a GenAI-named twin found by the same filter from either name, keyset pages, argument
errors, and aggregates checked against values computed here from the stored rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from opentelemetry.trace import StatusCode

from campus_core.chat.models import Conversation
from tests.graphql_support import (
    T0,
    Built,
    SpanWriter,
    build_dataset,
    execute,
    genai_run,
    legacy_run,
    percentile_cont,
    unsaved_user,
)
from tracing.conventions import semconv
from tracing.conventions.semconv import SpanCategory
from tracing.export import PostgresSpanExporter
from tracing.models import OTelSpan, OTelTrace
from tracing.read.spans import SpanRecord, span_records

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Built]:
    """The six runs of ``build_dataset`` plus twins: one run in current GenAI names and one
    in legacy names, with the same model and tool."""
    with django_db_blocker.unblock():
        exporter = PostgresSpanExporter(keep_untagged=True)
        try:
            built = build_dataset(exporter)
        finally:
            exporter.shutdown()
        # A writer's shutdown shuts its exporter down: the twins get their own.
        exporter = PostgresSpanExporter(keep_untagged=True)
        try:
            w = SpanWriter(exporter)
            built.ids["twin_genai"] = genai_run(
                w,
                started=T0 + timedelta(hours=6),
                query="twin question",
                model="twin-model",
                duration_ms=700,
                tools=["lookup_course"],
                input_tokens=4100,
                output_tokens=12,
            )
            built.ids["twin_legacy"] = legacy_run(
                w,
                started=T0 + timedelta(hours=7),
                query="twin legacy question",
                model="twin-model",
                duration_ms=650,
                tool="lookup_course",
            )
            w.shutdown()
        finally:
            exporter.shutdown()
    yield built
    with django_db_blocker.unblock():
        OTelTrace.objects.all().delete()
        Conversation.objects.all().delete()
        get_user_model().objects.all().delete()


@pytest.fixture(scope="module")
def rows(data: Built, django_db_blocker: Any) -> list[SpanRecord]:
    with django_db_blocker.unblock():
        return span_records(OTelSpan.objects.all())


Key = tuple[str, str]


def key(span: SpanRecord) -> Key:
    return (span.trace_id.hex, span.span_id)


def where(rows: list[SpanRecord], test: Callable[[SpanRecord], bool]) -> set[Key]:
    return {key(s) for s in rows if test(s)}


SPANS = """
query($f: SpanFilter, $o: [SpanOrder!]! = [], $first: Int, $after: String) {
  spans(filters: $f, ordering: $o, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id traceId name kind status durationMs startedAt
                          genAi { model toolName } } }
  }
}
"""


def page(filters: dict[str, Any] | None = None, **variables: Any) -> dict[str, Any]:
    result = execute(SPANS, {"f": filters, "first": 200, **variables})
    assert result.errors is None, result.errors
    return result.data["spans"]


def found(filters: dict[str, Any]) -> set[Key]:
    data = page(filters)
    assert not data["pageInfo"]["hasNextPage"]
    keys = [(e["node"]["traceId"], e["node"]["id"]) for e in data["edges"]]
    assert len(keys) == len(set(keys)) == data["totalCount"]
    return set(keys)


def error(query: str, variables: dict[str, Any]) -> str:
    result = execute(query, variables)
    assert result.errors, result.data
    return str(result.errors[0].message)


def category(span: SpanRecord) -> SpanCategory:
    return semconv.classify(span.name, span.attributes, span.span_kind)


# --- the promoted columns ------------------------------------------------------------------


def test_every_stored_span_has_its_promoted_columns(rows: list[SpanRecord]) -> None:
    assert len(rows) > 30
    for span in rows:
        facts = semconv.span_facts(span.name, span.attributes, span.span_kind)
        assert span.kind == facts.category.value
        assert span.model == facts.model
        assert span.tool_name == facts.tool_name
        assert (span.input_tokens, span.output_tokens) == (
            facts.input_tokens,
            facts.output_tokens,
        )
    by_name = {s.name: s for s in rows}
    assert by_name["llm_call"].model == "twin-model"
    assert by_name["llm_call"].input_tokens == 77
    assert by_name["tool_call.lookup_course"].tool_name == "lookup_course"


# --- each filter alone ---------------------------------------------------------------------


def test_no_filter_is_every_span_newest_first(rows: list[SpanRecord]) -> None:
    data = page()
    assert data["totalCount"] == len(rows)
    starts = [e["node"]["startedAt"] for e in data["edges"]]
    assert starts == sorted(starts, reverse=True)
    assert {(e["node"]["traceId"], e["node"]["id"]) for e in data["edges"]} == {
        key(s) for s in rows
    }


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"kind": ["LLM"]}, lambda s: category(s) is SpanCategory.LLM),
        (
            {"kind": ["TOOL", "AGENT"]},
            lambda s: category(s) in (SpanCategory.TOOL, SpanCategory.AGENT),
        ),
        ({"name": ["iteration_1", "llm_call"]}, lambda s: s.name in ("iteration_1", "llm_call")),
        (
            {"model": ["gpt-4o"]},
            lambda s: semconv.get(s.attributes, semconv.Concept.MODEL) == "gpt-4o",
        ),
        (
            {"toolName": ["search_documents"]},
            lambda s: s.name == "execute_tool search_documents",
        ),
        ({"status": ["ERROR"]}, lambda s: s.status_code == StatusCode.ERROR.name),
        ({"status": ["UNSET", "OK"]}, lambda s: s.status_code != StatusCode.ERROR.name),
        ({"minDurationMs": 600}, lambda s: s.duration_ms >= 600),
        ({"maxDurationMs": 50}, lambda s: s.duration_ms <= 50),
        (
            {"startedAfter": (T0 + timedelta(hours=4)).isoformat()},
            lambda s: s.started_at >= T0 + timedelta(hours=4),
        ),
        (
            {"startedBefore": (T0 + timedelta(hours=1)).isoformat()},
            lambda s: s.started_at < T0 + timedelta(hours=1),
        ),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_each_filter_alone(
    rows: list[SpanRecord], filters: dict[str, Any], expected: Callable[[SpanRecord], bool]
) -> None:
    want = where(rows, expected)
    assert want, "the dataset must hold spans for every filter"
    assert found(filters) == want


def test_trace_id_filter(data: Built, rows: list[SpanRecord]) -> None:
    trace = data.ids["failed"]
    assert found({"traceId": trace}) == where(rows, lambda s: s.trace_id.hex == trace)


def test_nested_trace_filter(data: Built, rows: list[SpanRecord]) -> None:
    failed = where(rows, lambda s: s.trace_id.hex == data.ids["failed"])
    assert found({"trace": {"status": ["error"]}}) == failed
    assert found({"trace": {"status": ["error"]}, "kind": ["LLM"]}) == {
        k for k in failed if k in where(rows, lambda s: category(s) is SpanCategory.LLM)
    }


def test_nested_trace_filter_on_attributes(data: Built, rows: list[SpanRecord]) -> None:
    twins = {data.ids["twin_genai"], data.ids["twin_legacy"]}
    for model_key in ("llm.model", "gen_ai.request.model"):
        condition = {"key": model_key, "equals": "twin-model"}
        assert found({"trace": {"attributes": [condition]}}) == where(
            rows, lambda s: s.trace_id.hex in twins
        )


def test_filters_combine_with_and(rows: list[SpanRecord]) -> None:
    assert found({"kind": ["LLM"], "model": ["gpt-4o"], "minDurationMs": 100}) == where(
        rows,
        lambda s: (
            category(s) is SpanCategory.LLM
            and semconv.get(s.attributes, semconv.Concept.MODEL) == "gpt-4o"
            and s.duration_ms >= 100
        ),
    )


# --- naming generations --------------------------------------------------------------------


def _twins(rows: list[SpanRecord], data: Built, name: str) -> set[Key]:
    twins = {data.ids["twin_genai"], data.ids["twin_legacy"]}
    return where(rows, lambda s: s.trace_id.hex in twins and s.name == name)


def test_a_legacy_and_a_genai_twin_are_found_from_either_name(
    data: Built, rows: list[SpanRecord]
) -> None:
    legacy_llm = _twins(rows, data, "llm_call")
    genai_llm = _twins(rows, data, "chat twin-model")
    genai_agent = _twins(rows, data, "invoke_agent campuscore_agent")  # carries the model too
    assert len(legacy_llm) == len(genai_llm) == len(genai_agent) == 1
    model_spans = legacy_llm | genai_llm | genai_agent
    for model_key in ("llm.model", "gen_ai.request.model"):
        assert found({"attributes": [{"key": model_key, "equals": "twin-model"}]}) == model_spans
        assert found({"attributes": [{"key": model_key, "contains": "TWIN-M"}]}) == model_spans
    assert found({"model": ["twin-model"]}) == model_spans
    assert found({"model": ["twin-model"], "kind": ["LLM"]}) == legacy_llm | genai_llm

    twin_tools = _twins(rows, data, "tool_call.lookup_course") | _twins(
        rows, data, "execute_tool lookup_course"
    )
    assert len(twin_tools) == 2
    # The dataset's own legacy run calls the same tool.
    tools = where(
        rows, lambda s: s.name in ("tool_call.lookup_course", "execute_tool lookup_course")
    )
    assert twin_tools < tools
    for tool_key in ("tool.name", "gen_ai.tool.name"):
        assert found({"attributes": [{"key": tool_key, "equals": "lookup_course"}]}) == tools
    assert found({"toolName": ["lookup_course"]}) == tools

    # Numbers: the GenAI twin has 4,100 input tokens, every legacy llm_call 77.
    every_legacy_llm = where(rows, lambda s: s.name == "llm_call")
    assert legacy_llm < every_legacy_llm
    for tokens_key in ("llm.input_tokens", "gen_ai.usage.input_tokens"):
        assert found({"attributes": [{"key": tokens_key, "gt": 4000}]}) == genai_llm
        assert found({"attributes": [{"key": tokens_key, "equals": 77}]}) == every_legacy_llm


def test_traces_filtered_by_an_attribute_of_any_span(data: Built) -> None:
    query = "query($f: TraceFilter) { traces(filters: $f) { edges { node { id } } } }"
    for model_key in ("llm.model", "gen_ai.request.model"):
        result = execute(query, {"f": {"attributes": [{"key": model_key, "equals": "twin-model"}]}})
        assert result.errors is None, result.errors
        ids = {e["node"]["id"] for e in result.data["traces"]["edges"]}
        assert ids == {data.ids["twin_genai"], data.ids["twin_legacy"]}
    # Each condition may hold on a different span of the run.
    result = execute(
        query,
        {
            "f": {
                "attributes": [
                    {"key": "llm.model", "equals": "twin-model"},
                    {"key": "tool.name", "equals": "lookup_course"},
                    {"key": "llm.input_tokens", "lt": 100},
                ]
            }
        },
    )
    assert result.errors is None, result.errors
    assert [e["node"]["id"] for e in result.data["traces"]["edges"]] == [data.ids["twin_legacy"]]


# --- every attribute operator --------------------------------------------------------------


def _value(span: SpanRecord, *names: str) -> list[Any]:
    return [span.attributes[n] for n in names if n in span.attributes]


MODEL_NAMES = ("gen_ai.request.model", "llm.model")
INPUT_NAMES = ("gen_ai.usage.input_tokens", "llm.input_tokens")
TOOL_INPUT_NAMES = ("gen_ai.tool.call.arguments", "gen_ai.tool.input", "tool.input")


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (
            {"key": "llm.model", "in": ["gpt-4o-mini", "legacy-model-1"]},
            lambda s: bool({"gpt-4o-mini", "legacy-model-1"} & set(_value(s, *MODEL_NAMES))),
        ),
        (
            {"key": "llm.input_tokens", "gte": 120},
            lambda s: any(v >= 120 for v in _value(s, *INPUT_NAMES)),
        ),
        (
            {"key": "gen_ai.usage.input_tokens", "lt": 120},
            lambda s: any(v < 120 for v in _value(s, *INPUT_NAMES)),
        ),
        (
            {"key": "llm.input_tokens", "lte": 120},
            lambda s: any(v <= 120 for v in _value(s, *INPUT_NAMES)),
        ),
        ({"key": "tool.input", "exists": True}, lambda s: bool(_value(s, *TOOL_INPUT_NAMES))),
        ({"key": "tool.input", "exists": False}, lambda s: not _value(s, *TOOL_INPUT_NAMES)),
        (
            {"key": "tool.input", "contains": "cs101"},
            lambda s: any("cs101" in str(v).lower() for v in _value(s, *TOOL_INPUT_NAMES)),
        ),
        ({"key": "db.system", "equals": "postgresql"}, lambda s: "db.system" in s.attributes),
        (
            {"key": "gen_ai.response.finish_reasons", "equals": ["stop"]},
            lambda s: s.attributes.get("gen_ai.response.finish_reasons") == ["stop"],
        ),
        (
            {"key": "campuscore.tool.success", "equals": True},
            lambda s: s.attributes.get("campuscore.tool.success") is True,
        ),
    ],
    ids=lambda v: f"{v['key']}-{sorted(set(v) - {'key'})[0]}" if isinstance(v, dict) else "",
)
def test_each_attribute_operator(
    rows: list[SpanRecord], condition: dict[str, Any], expected: Callable[[SpanRecord], bool]
) -> None:
    want = where(rows, expected)
    assert want, "the dataset must hold spans for every operator"
    assert found({"attributes": [condition]}) == want


def test_a_string_is_not_a_number(rows: list[SpanRecord]) -> None:
    # A string attribute never satisfies a numeric comparison (nor fails the query).
    assert found({"attributes": [{"key": "llm.model", "gt": 0}]}) == set()


# --- pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ordering", "sort_key"),
    [
        ([], lambda n: (n["startedAt"],)),
        ([{"startedAt": "ASC"}], lambda n: (n["startedAt"],)),
        ([{"durationMs": "DESC"}], lambda n: (n["durationMs"],)),
        ([{"durationMs": "ASC"}, {"startedAt": "DESC"}], lambda n: (n["durationMs"],)),
    ],
)
def test_pages_walk_every_span_once_in_order(
    rows: list[SpanRecord], ordering: list[dict[str, str]], sort_key: Callable[..., Any]
) -> None:
    nodes: list[dict[str, Any]] = []
    after = None
    pages = 0
    while True:
        data = page(None, o=ordering, first=7, after=after)
        assert data["totalCount"] == len(rows)
        assert data["pageInfo"]["hasPreviousPage"] is (after is not None)
        nodes.extend(e["node"] for e in data["edges"])
        pages += 1
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
        assert after == data["edges"][-1]["cursor"]
    assert pages == -(-len(rows) // 7)
    assert len(nodes) == len(rows)
    assert {(n["traceId"], n["id"]) for n in nodes} == {key(s) for s in rows}
    keys = [sort_key(n) for n in nodes]
    descending = not ordering or "DESC" in ordering[0].values()
    assert keys == sorted(keys, reverse=descending)


def test_default_page_is_50_and_the_cap_200(rows: list[SpanRecord]) -> None:
    assert len(rows) < 50
    result = execute("{ spans { edges { cursor } } }")
    assert result.errors is None
    assert len(result.data["spans"]["edges"]) == len(rows)
    message = error(SPANS, {"first": 201})
    assert "cannot be higher than 200" in message


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"f": {"attributes": [{"key": "llm.model"}]}}, "exactly one operator"),
        (
            {"f": {"attributes": [{"key": "llm.model", "equals": "a", "contains": "b"}]}},
            "got equals, contains",
        ),
        ({"f": {"attributes": [{"key": "", "exists": True}]}}, "key must not be empty"),
        ({"f": {"attributes": [{"key": "k", "in": []}]}}, "at least one value"),
        ({"f": {"attributes": [{"key": "k", "equals": None}]}}, "use exists: false"),
        ({"f": {"attributes": [{"key": "k", "contains": ""}]}}, "must not be empty"),
        ({"f": {"attributes": [{"key": "k", "equals": "a\x00"}]}}, "NUL"),
        ({"f": {"attributes": [{"key": "k", "gt": "many"}]}}, "Float cannot represent"),
        ({"f": {"kind": ["SPACESHIP"]}}, "SPACESHIP"),
        ({"f": {"status": ["BROKEN"]}}, "BROKEN"),
        ({"f": {"minDurationMs": 10, "maxDurationMs": 5}}, "greater than maxDurationMs"),
        ({"f": {"traceId": "xyz"}}, "Invalid trace id"),
        ({"f": {"name": ["a\x00"]}}, "NUL"),
        ({"after": "not-a-cursor"}, "Invalid cursor"),
        ({"o": [{"startedAt": "ASC", "durationMs": "ASC"}]}, "SpanOrder"),
        ({"o": [{"startedAt": "ASC"}, {"startedAt": "DESC"}]}, "twice"),
        ({"first": -1}, "non-negative"),
    ],
)
def test_bad_arguments_are_clear_errors(
    data: Built, variables: dict[str, Any], message: str
) -> None:
    assert message in error(SPANS, variables)


def test_a_cursor_of_another_ordering_is_refused(data: Built) -> None:
    cursor = page(None, first=1)["pageInfo"]["endCursor"]
    assert "does not belong to this ordering" in error(
        SPANS, {"first": 1, "after": cursor, "o": [{"durationMs": "ASC"}, {"startedAt": "ASC"}]}
    )


def test_staff_only(data: Built) -> None:
    result = execute(SPANS, {}, user=unsaved_user(is_staff=False))
    assert result.errors and "staff" in result.errors[0].message
    result = execute("{ spanStats { count } }", {}, user=unsaved_user(is_staff=False))
    assert result.errors and "staff" in result.errors[0].message


# --- spanStats -----------------------------------------------------------------------------

STATS = """
query($f: SpanFilter, $from: DateTime, $to: DateTime) {
  spanStats(filters: $f) {
    count errors errorRate inputTokens outputTokens
    durationMs { p50 p95 p99 }
    byModel { key count errors inputTokens outputTokens p50DurationMs p95DurationMs }
    byTool { key count }
    byName { key count errors }
    timeSeries(bucket: HOUR, from: $from, to: $to) { start count errors inputTokens }
  }
}
"""


def stats(filters: dict[str, Any] | None) -> dict[str, Any]:
    result = execute(
        STATS,
        {"f": filters, "from": T0.isoformat(), "to": (T0 + timedelta(hours=8)).isoformat()},
    )
    assert result.errors is None, result.errors
    return result.data["spanStats"]


def _groups(spans: list[SpanRecord], group: Callable[[SpanRecord], str | None]) -> dict[str, int]:
    out: dict[str, int] = {}
    for span in spans:
        value = group(span)
        if value is not None:
            out[value] = out.get(value, 0) + 1
    return out


@pytest.mark.parametrize(
    ("filters", "selected"),
    [
        (None, lambda s: True),
        ({"kind": ["LLM"]}, lambda s: category(s) is SpanCategory.LLM),
        (
            {"attributes": [{"key": "llm.model", "equals": "twin-model"}]},
            lambda s: "twin-model" in _value(s, *MODEL_NAMES),
        ),
    ],
)
def test_span_stats_match_the_rows(
    rows: list[SpanRecord], filters: dict[str, Any] | None, selected: Callable[..., bool]
) -> None:
    spans = [s for s in rows if selected(s)]
    facts = {key(s): semconv.span_facts(s.name, s.attributes, s.span_kind) for s in spans}
    got = stats(filters)
    errors = sum(s.status_code == StatusCode.ERROR.name for s in spans)
    assert (got["count"], got["errors"]) == (len(spans), errors)
    assert got["errorRate"] == pytest.approx(errors / len(spans))
    durations = [s.duration_ms for s in spans]
    for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert got["durationMs"][name] == pytest.approx(percentile_cont(durations, fraction))
    assert got["inputTokens"] == sum(f.input_tokens for f in facts.values())
    assert got["outputTokens"] == sum(f.output_tokens for f in facts.values())
    assert got["inputTokens"] > 0
    models = _groups(spans, lambda s: facts[key(s)].model)
    assert {g["key"]: g["count"] for g in got["byModel"]} == models
    counts = [g["count"] for g in got["byModel"]]
    assert counts == sorted(counts, reverse=True)
    for group in got["byModel"]:
        members = [s for s in spans if facts[key(s)].model == group["key"]]
        assert group["inputTokens"] == sum(facts[key(s)].input_tokens for s in members)
        assert group["p50DurationMs"] == pytest.approx(
            percentile_cont([s.duration_ms for s in members], 0.5)
        )
    assert {g["key"]: g["count"] for g in got["byTool"]} == _groups(
        spans, lambda s: facts[key(s)].tool_name
    )
    assert {g["key"]: g["count"] for g in got["byName"]} == _groups(spans, lambda s: s.name)
    series = got["timeSeries"]
    assert len(series) == 8
    assert sum(b["count"] for b in series) == len(spans)
    for i, bucket in enumerate(series):
        start = T0 + timedelta(hours=i)
        members = [s for s in spans if start <= s.started_at < start + timedelta(hours=1)]
        assert bucket["count"] == len(members)
        assert bucket["inputTokens"] == sum(facts[key(s)].input_tokens for s in members)


def test_span_stats_of_nothing(data: Built) -> None:
    got = stats({"name": ["no such span"]})
    assert (got["count"], got["errors"], got["errorRate"], got["inputTokens"]) == (0, 0, 0.0, 0)
    assert got["durationMs"] == {"p50": None, "p95": None, "p99": None}
    assert got["byModel"] == got["byTool"] == got["byName"] == []
