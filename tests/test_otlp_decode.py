"""OTLP protobuf → span rows without SDK span objects (``tracing.ingest.decode.to_rows``):
the rows equal what the in-process row builder makes of the SDK spans the stock exporter
encoded, and each protobuf edge case (absent fields, defaults, every AnyValue kind, unknown
enum values) is stored as specified. No HTTP here: the endpoint's tests are
test_otlp_ingest.py and test_otlp_errors.py."""

from __future__ import annotations

import json
from typing import Any

import orjson
from django.conf import settings
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.otlp_support import FixedIds, emit_run
from tracing.conventions import attributes as A
from tracing.export.rows import SpanRow, resource_ref, span_to_row
from tracing.ingest import decode
from tracing.models import SPAN_COLUMNS

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
COL = {name: index for index, name in enumerate(SPAN_COLUMNS)}


def _rows(request: ExportTraceServiceRequest) -> decode.Decoded:
    return decode.to_rows(request, settings.TRACING_MAX_ATTRIBUTE_BYTES)


def _comparable(row: SpanRow) -> tuple[Any, ...]:
    return (row.values, row.facts, row.root, row.resource, row.session_id, row.in_agent_run)


def _sdk_spans() -> list[ReadableSpan]:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "decode-test", "host.cores": 2}),
        id_generator=FixedIds(0x5B8EFFF798038103D269B633813FC60C),
    )
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("decode.test", "0.1")
    emit_run(tracer, 0)
    odd = tracer.start_span(
        "odd values",
        kind=SpanKind.CONSUMER,
        start_time=1_780_000_000_000_000_123,
        attributes={
            "big": 2**63 - 1,
            "negative": -5,
            "ratio": -0.0,
            "flags": [True, False],
            "floats": [1.5, 2.0],
            "empty.text": "",
            "empty.list": [],
            "unicode": "naïve ✓ \U0001f600",
            "nul": "a\x00b",
            A.IN_AGENT_RUN: True,
        },
    )
    odd.add_event("no attributes", timestamp=1_780_000_000_000_000_500)
    odd.set_status(Status(StatusCode.OK))
    odd.end(end_time=1_780_000_000_000_000_999)
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_rows_equal_the_in_process_builders_rows() -> None:
    # given SDK spans of every value type, encoded as the stock exporter sends them
    spans = _sdk_spans()
    request = encode_spans(spans)
    # when the ingest converts the protobuf straight into rows
    decoded = _rows(request)
    # then they are the in-process row builder's rows of the same spans, summary facts too
    cap = settings.TRACING_MAX_ATTRIBUTE_BYTES
    assert decoded.rejected == 0
    assert [_comparable(row) for row in decoded.rows] == [
        _comparable(span_to_row(span, cap)) for span in spans
    ]
    odd = decoded.rows[-1]
    assert odd.in_agent_run is True  # the tagger's mark is a flag, not stored data
    assert A.IN_AGENT_RUN not in orjson.loads(odd.values[COL["attributes"]])
    assert odd.values[COL["status_code"]] == "OK"


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _request(span: trace_pb2.Span, resource: list[KeyValue] | None = None) -> Any:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(resource or [])
    resource_spans.scope_spans.add().spans.append(span)
    return request


def _span(**fields: Any) -> trace_pb2.Span:
    defaults: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "span_id": bytes.fromhex("eee19b7ec3c1b174"),
        "start_time_unix_nano": 1_780_000_000_000_000_000,
        "end_time_unix_nano": 1_780_000_000_250_000_000,
    }
    return trace_pb2.Span(**{**defaults, **fields})


def test_every_any_value_kind_and_empty_values() -> None:
    inner = ArrayValue(values=[AnyValue(int_value=1), AnyValue()])
    nested = AnyValue(
        kvlist_value=KeyValueList(
            values=[_kv("inner", AnyValue(array_value=inner)), _kv("unset", AnyValue())]
        )
    )
    span = _span(
        attributes=[
            _kv("s", AnyValue(string_value="text")),
            _kv("empty.s", AnyValue(string_value="")),
            _kv("b", AnyValue(bool_value=False)),
            _kv("i", AnyValue(int_value=-(2**63))),
            _kv("zero", AnyValue(int_value=0)),
            _kv("d", AnyValue(double_value=0.125)),
            _kv("nan", AnyValue(double_value=float("nan"))),
            _kv("raw", AnyValue(bytes_value=b"\x00\xffid")),
            _kv("arr", AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="a")]))),
            _kv("empty.arr", AnyValue(array_value=ArrayValue())),
            _kv("map", nested),
            _kv("empty.map", AnyValue(kvlist_value=KeyValueList())),
            _kv("absent", AnyValue()),  # no value set: no attribute (the SDK's rule)
        ]
    )
    (row,) = _rows(_request(span)).rows
    attributes = json.loads(row.values[COL["attributes"]])
    assert attributes == {
        "s": "text",
        "empty.s": "",
        "b": False,
        "i": -(2**63),
        "zero": 0,
        "d": 0.125,
        "nan": "nan",  # JSON has no NaN: kept as text
        "raw": "AP9pZA==",  # JSON has no bytes: base64, as OTLP JSON writes them
        "arr": ["a"],
        "empty.arr": [],
        "map": {"inner": [1, None]},
        "empty.map": {},
    }


def test_protobuf_defaults_and_unknown_enum_values() -> None:
    # given a span with only ids and times: no name, kind, status, scope, resource or events
    (row,) = _rows(_request(_span())).rows
    values = dict(zip(SPAN_COLUMNS, row.values, strict=True))
    # then it is an INTERNAL root with status UNSET and empty text, not an error
    assert values["parent_span_id"] == ""
    assert (values["name"], values["span_kind"], values["scope"]) == ("", "INTERNAL", "")
    assert (values["status_code"], values["status_message"]) == ("UNSET", "")
    assert (values["attributes"], values["events"]) == ("{}", "[]")
    assert values["service_name"] == ""
    assert values["duration_ms"] == 250.0
    # and enum values this receiver does not know fall back like the SDK's defaults
    unknown = _span(
        kind=9,  # type: ignore[arg-type]  # an enum value from a newer OTLP
        status=trace_pb2.Status(code=7, message="ignored"),  # type: ignore[arg-type]
        parent_span_id=bytes(8),  # eight zero bytes: a root, like an empty field
    )
    (row,) = _rows(_request(unknown)).rows
    values = dict(zip(SPAN_COLUMNS, row.values, strict=True))
    assert (values["span_kind"], values["status_code"], values["status_message"]) == (
        "INTERNAL",
        "UNSET",
        "",
    )
    assert values["parent_span_id"] == ""


def test_status_message_kept_only_on_errors() -> None:
    ok = _span(status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_OK, message="fine"))
    error = _span(
        span_id=bytes.fromhex("eee19b7ec3c1b175"),
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="bad"),
    )
    request = _request(ok)
    request.resource_spans[0].scope_spans[0].spans.append(error)
    first, second = _rows(request).rows
    assert first.values[COL["status_code"] : COL["status_message"] + 1] == ("OK", "")
    assert second.values[COL["status_code"] : COL["status_message"] + 1] == ("ERROR", "bad")


def test_events_and_resource() -> None:
    span = _span(
        events=[
            trace_pb2.Span.Event(time_unix_nano=1_780_000_000_100_000_000, name="plain"),
            trace_pb2.Span.Event(
                time_unix_nano=1_780_000_000_200_000_000,
                attributes=[_kv("n", AnyValue(int_value=1))],
            ),
        ]
    )
    resource = [
        _kv("service.name", AnyValue(string_value="node-agent")),
        _kv("", AnyValue(string_value="no key")),  # the SDK drops a resource key-less value
        _kv("host.arch", AnyValue(string_value="arm64")),
    ]
    (row,) = _rows(_request(span, resource)).rows
    assert json.loads(row.values[COL["events"]]) == [
        {"name": "plain", "timestamp": "2026-05-28T20:26:40.100000+00:00", "attributes": {}},
        {"name": "", "timestamp": "2026-05-28T20:26:40.200000+00:00", "attributes": {"n": 1}},
    ]
    expected = resource_ref(
        {"service.name": "node-agent", "host.arch": "arm64"}, settings.TRACING_MAX_ATTRIBUTE_BYTES
    )
    assert row.resource == expected
    assert row.values[COL["service_name"]] == "node-agent"
    assert row.values[COL["resource_id"]] == expected.id
