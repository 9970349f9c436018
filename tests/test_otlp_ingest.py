"""POST /v1/traces over real HTTP (the stock OTLP/HTTP exporter, or httpx) against the real
ASGI app under uvicorn: what is stored, in both encodings and gzip, and idempotence."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

from tests.otlp_support import (
    SPANS_PER_RUN,
    T0_NS,
    Client,
    FixedIds,
    emit_run,
    expected_row,
    recorded_run,
    stored_rows,
    token,
)
from tests.waiting import wait_for
from tracing.models import SUMMARY_COLUMNS, AgentStatus, OTelTrace

pytestmark = pytest.mark.django_db(transaction=True)

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def secret() -> str:
    return token()


def _auth(secret: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **headers}


def test_stock_exporter_spans_are_stored_exactly(live_server_url: str, secret: str) -> None:
    # given a service's SDK pipeline with the stock OTLP/HTTP exporter, small batches
    client = Client(live_server_url, secret, batch=7)
    # when it ends three agent runs and flushes
    for number in range(3):
        emit_run(client.tracer, number)
    assert client.flush()
    client.shutdown()
    # then every span is stored once, exactly as the in-process row builder makes it:
    # ids, parent, name, kind, times, status and message, attributes, events, scope
    sent = client.sent
    assert len(sent) == 3 * SPANS_PER_RUN
    rows = stored_rows()
    assert len(rows) == len(sent)
    for span in sent:
        key = (format(span.context.trace_id, "032x"), format(span.context.span_id, "016x"))
        assert rows[key] == expected_row(span), span.name
    tool = next(s for s in sent if s.name.startswith("execute_tool"))
    row = rows[(format(tool.context.trace_id, "032x"), format(tool.context.span_id, "016x"))]
    assert row[8:10] == ("ERROR", "no such invoice")
    assert row[11][0]["name"] == "exception"
    chat = next(s for s in sent if s.name.startswith("chat"))
    chat_row = rows[(format(chat.context.trace_id, "032x"), format(chat.context.span_id, "016x"))]
    assert chat_row[4] == "CLIENT"
    assert chat_row[10]["gen_ai.request.temperature"] == 0.25
    assert chat_row[10]["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert chat_row[11][0]["attributes"] == {"index": 0, "ids": [1, 2]}
    # and each run is summarised by the exporter's rules
    traces = OTelTrace.objects.order_by("started_at")
    assert [t.span_count for t in traces] == [SPANS_PER_RUN] * 3
    first = traces[0]
    assert (first.status, first.model, first.query) == (
        AgentStatus.COMPLETED,
        "gpt-remote",
        "invoice 0?",
    )
    assert (first.total_input_tokens, first.tool_call_count, first.tools_used) == (
        100,
        1,
        ["lookup_invoice"],
    )


def _request_json(spans: list[dict[str, object]]) -> bytes:
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [
                            {"key": "service.name", "value": {"stringValue": "node-agent"}}
                        ]
                    },
                    "scopeSpans": [{"scope": {"name": "hand.written"}, "spans": spans}],
                    "someFutureField": 1,
                }
            ]
        }
    )


TRACE = "5b8efff798038103d269b633813fc60c"


def _json_span(span_id: str, **extra: object) -> dict[str, object]:
    return {
        "traceId": TRACE,
        "spanId": span_id,
        "name": "invoke_agent node_agent",
        "kind": 1,
        "startTimeUnixNano": "1780000000000000000",
        "endTimeUnixNano": 1780000000250000000,
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
            {"key": "ratio", "value": {"doubleValue": 0.5}},
            {"key": "ok", "value": {"boolValue": True}},
            {
                "key": "tags",
                "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 2}]}},
            },
            {
                "key": "meta",
                "value": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}},
            },
        ],
        "events": [
            {
                "timeUnixNano": "1780000000100000000",
                "name": "note",
                "attributes": [{"key": "n", "value": {"intValue": 1}}],
            }
        ],
        "status": {"code": 2, "message": "it failed"},
        **extra,
    }


def test_hand_written_json_body(http: httpx.Client, secret: str) -> None:
    body = _request_json(
        [
            _json_span("eee19b7ec3c1b174"),
            _json_span(
                "eee19b7ec3c1b175",
                parentSpanId="eee19b7ec3c1b174",
                name="chat m",
                kind=3,
                attributes=[
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
                ],
            ),
        ]
    )
    response = http.post(
        "/v1/traces", content=body, headers=_auth(secret, **{"Content-Type": "application/json"})
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    rows = stored_rows()
    root = rows[(TRACE, "eee19b7ec3c1b174")]
    assert root[2:5] == ("", "invoke_agent node_agent", "INTERNAL")
    assert root[5].timestamp() == 1_780_000_000.0
    assert root[7] == 250.0
    assert root[8:10] == ("ERROR", "it failed")
    assert root[10] == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.usage.input_tokens": 42,
        "ratio": 0.5,
        "ok": True,
        "tags": ["a", 2],
        "meta": {"k": "v"},
    }
    assert root[11] == [
        {"name": "note", "timestamp": "2026-05-28T20:26:40.100000+00:00", "attributes": {"n": 1}}
    ]
    assert root[12] == "hand.written"
    child = rows[(TRACE, "eee19b7ec3c1b175")]
    assert child[2:5] == ("eee19b7ec3c1b174", "chat m", "CLIENT")
    trace_row = OTelTrace.objects.get(id=TRACE)
    assert (trace_row.span_count, trace_row.root_span_id, trace_row.total_input_tokens) == (
        2,
        "eee19b7ec3c1b174",
        42,
    )


def test_json_partial_success_for_invalid_spans(http: httpx.Client, secret: str) -> None:
    body = _request_json(
        [
            _json_span("eee19b7ec3c1b174"),
            _json_span("0000000000000000"),  # zero span id
            _json_span("eee19b7ec3c1b176", traceId="00000000000000000000000000000000"),
            _json_span("not-hex-at-all!!"),
            _json_span("eee19b7ec3c1b177", endTimeUnixNano="1"),  # ends before it starts
        ]
    )
    response = http.post(
        "/v1/traces", content=body, headers=_auth(secret, **{"Content-Type": "application/json"})
    )
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "4"  # int64 in OTLP JSON: a string
    assert "invalid span id" in partial["errorMessage"]
    assert "end time before start time" in partial["errorMessage"]
    assert list(stored_rows()) == [(TRACE, "eee19b7ec3c1b174")]


def _run_spans(trace_id: int) -> list[ReadableSpan]:
    """One run with this trace id and span ids 0x1001…, recorded (nothing sent)."""
    return recorded_run(FixedIds(trace_id))


def _post(http: httpx.Client, secret: str, spans: list[ReadableSpan], **headers: str) -> bytes:
    body = encode_spans(spans).SerializeToString()
    response = http.post("/v1/traces", content=body, headers=_auth(secret, **PROTOBUF, **headers))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-protobuf"
    return response.content


def _summary(trace_id: int) -> tuple[object, ...]:
    row = OTelTrace.objects.filter(id=format(trace_id, "032x")).values(*SUMMARY_COLUMNS).get()
    return tuple(row.values())


def test_trace_split_across_requests_root_last_same_summary(
    http: httpx.Client, secret: str
) -> None:
    at_once, split = 0xA1, 0xB2
    _post(http, secret, _run_spans(at_once))
    spans = _run_spans(split)
    root = next(s for s in spans if s.parent is None)
    children = [s for s in spans if s.parent is not None]
    _post(http, secret, children[:2])
    _post(http, secret, children[2:])
    assert OTelTrace.objects.get(id=format(split, "032x")).status == AgentStatus.RUNNING
    _post(http, secret, [root])
    assert _summary(split) == _summary(at_once)
    assert _summary(split)[SUMMARY_COLUMNS.index("span_count")] == SPANS_PER_RUN


def test_resent_spans_are_not_duplicated_nor_counted_twice(http: httpx.Client, secret: str) -> None:
    spans = _run_spans(0xC3)
    _post(http, secret, spans)
    before = (stored_rows(), _summary(0xC3))
    answer = ExportTraceServiceResponse.FromString(_post(http, secret, spans))  # a retry
    _post(http, secret, spans[:3])  # a partial retry
    assert not answer.HasField("partial_success")
    assert (stored_rows(), _summary(0xC3)) == before


def test_gzip_body(http: httpx.Client, secret: str) -> None:
    spans = _run_spans(0xD4)
    body = gzip.compress(encode_spans(spans).SerializeToString())
    response = http.post(
        "/v1/traces",
        content=body,
        headers=_auth(secret, **PROTOBUF, **{"Content-Encoding": "gzip"}),
    )
    assert response.status_code == 200, response.text
    assert len(stored_rows()) == SPANS_PER_RUN
    assert _summary(0xD4)[SUMMARY_COLUMNS.index("span_count")] == SPANS_PER_RUN


def test_times_keep_microseconds(http: httpx.Client, secret: str) -> None:
    spans = _run_spans(0xE5)
    _post(http, secret, spans)
    started = OTelTrace.objects.get(id=format(0xE5, "032x")).started_at
    assert started is not None
    assert int(started.timestamp() * 1_000_000) * 1000 == T0_NS


def test_ingest_does_not_trace_itself(
    http: httpx.Client, secret: str, instrumented: bool, recorded_spans: Any
) -> None:
    assert instrumented
    # Control: a request through Django gets its server span (which ends after the
    # response has been sent, so it is waited for), and its token lookup is traced.
    reader = token("dashboard", "read")
    recorded_spans.clear()
    marker = _traced_django_request(http, reader, recorded_spans)
    assert any("SELECT" in statement for _, _, statement in _server_side(recorded_spans, marker))
    # An ingest request, then the same Django request as a marker on the same connection:
    # once the marker's server span has ended, every server-side span there is is the
    # marker's own: none for the ingest request, its token lookup or its writes.
    recorded_spans.clear()
    _post(http, secret, _run_spans(0xF6))
    marker = _traced_django_request(http, reader, recorded_spans)
    assert {trace for _, trace in _server_traces(recorded_spans)} == {marker}
    assert len(stored_rows()) == SPANS_PER_RUN


def _traced_django_request(http: httpx.Client, reader: str, recorded: Any) -> int:
    """A GraphQL request (through Django, its token looked up in SQL); return the trace id
    of its server span once that has ended."""
    answer = http.post(
        "/graphql/", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {reader}"}
    )
    assert answer.status_code == 200, answer.text

    def server_span() -> list[int]:
        return [trace for kind, trace in _server_traces(recorded) if kind is SpanKind.SERVER]

    wait_for(server_span, "the server span of a request through Django")
    (trace,) = server_span()
    return trace


def _server_traces(recorded: Any) -> list[tuple[SpanKind, int]]:
    """(kind, trace id) of the recorded spans but the test's own HTTP requests (its
    instrumented httpx client)."""
    return [
        (s.kind, s.context.trace_id)
        for s in recorded.get_finished_spans()
        if not (s.kind is SpanKind.CLIENT and "http.url" in (s.attributes or {}))
    ]


def _server_side(recorded: Any, trace: int) -> list[tuple[str, str, str]]:
    return [
        (s.kind.name, s.name, str((s.attributes or {}).get("db.statement", "")))
        for s in recorded.get_finished_spans()
        if s.context.trace_id == trace
    ]


def test_protobuf_partial_success_and_multi_member_gzip(http: httpx.Client, secret: str) -> None:
    spans = _run_spans(0xE7)
    ended_early = ReadableSpan(
        name="backwards",
        context=SpanContext(0xE7, 0x9999, False),
        start_time=T0_NS,
        end_time=T0_NS - 1,
    )
    first = encode_spans(spans[:2]).SerializeToString()
    second = encode_spans([*spans[2:], ended_early]).SerializeToString()
    # two requests' worth of protobuf concatenated are one valid message (repeated fields
    # merge), here gzipped as two members
    body = gzip.compress(first) + gzip.compress(second)
    response = http.post(
        "/v1/traces",
        content=body,
        headers=_auth(secret, **PROTOBUF, **{"Content-Encoding": "gzip"}),
    )
    assert response.status_code == 200, response.text
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "end time before start time" in answer.partial_success.error_message
    assert len(stored_rows()) == SPANS_PER_RUN
