"""OTLP/HTTP request bodies → SDK span objects, and the responses' bodies.

Owns what the OTLP specification says about the wire: ``application/x-protobuf`` and
``application/json`` (OTLP JSON: lowerCamelCase or original field names, trace and span ids
as hex — not protobuf's base64 —, enums as integers, 64-bit integers as strings or numbers,
unknown fields ignored), ``Content-Encoding: gzip`` inflated under a size cap (a gzip bomb
stops at the cap), and which spans are refused (``partial_success``): ids of the wrong
length or all zero, a missing start time, an end before the start.

Accepted spans become ``ReadableSpan`` objects carrying their resource and scope, so the
one row builder (``tracing.export.rows.span_to_row``) stores them exactly as it stores the
in-process exporter's spans.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = (PROTOBUF, JSON)
ENCODINGS = ("", "identity", "gzip")

# OTLP's SpanKind enum (0 unspecified, 1 internal … 5 consumer) → the SDK's.
_KINDS = {
    0: SpanKind.INTERNAL,
    1: SpanKind.INTERNAL,
    2: SpanKind.SERVER,
    3: SpanKind.CLIENT,
    4: SpanKind.PRODUCER,
    5: SpanKind.CONSUMER,
}
_STATUS = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}
_OK = Status(StatusCode.OK)
_UNSET = Status(StatusCode.UNSET)
# Hex id fields of OTLP JSON (spans and their links).
_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
# At most this many refusal reasons are spelled out in ``error_message``.
_MAX_REASONS = 5


class BadRequest(Exception):
    """The body cannot be decoded at all: 400."""


class TooLarge(Exception):
    """The body, inflated, exceeds the cap: 413."""


@dataclass
class Decoded:
    """The spans of one request that can be stored, and the count of those refused."""

    spans: list[ReadableSpan] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, count: int, reason: str) -> None:
        self.rejected += count
        if len(self.reasons) < _MAX_REASONS:
            self.reasons.append(reason)


# --- body ------------------------------------------------------------------------------------


def inflate(body: bytes, encoding: str, cap: int) -> bytes:
    """The body as sent, gunzipped if it is gzip; never more than ``cap`` bytes are made."""
    if encoding != "gzip":
        return body
    out: list[bytes] = []
    size = 0
    data = body
    while True:  # a gzip stream may hold several members
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(data, cap + 1 - size)
        except zlib.error as exc:
            raise BadRequest(f"invalid gzip body: {exc}") from None
        size += len(chunk)
        if size > cap:
            raise TooLarge(f"the decompressed body exceeds {cap} bytes")
        out.append(chunk)
        if inflater.unconsumed_tail:  # the output limit stopped it: more would come
            raise TooLarge(f"the decompressed body exceeds {cap} bytes")
        if not inflater.eof:
            raise BadRequest("truncated gzip body")
        data = inflater.unused_data
        if not data:
            return b"".join(out)


def parse(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if content_type == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise BadRequest(f"undecodable protobuf body: {exc}") from None
        return request
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest("the JSON body must be an object (ExportTraceServiceRequest)")
    for span in _json_spans(document):
        _hex_ids_to_base64(span)
        for link in span.get("links") or ():
            if isinstance(link, dict):
                _hex_ids_to_base64(link)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise BadRequest(f"not an OTLP ExportTraceServiceRequest: {exc}") from None
    return request


def _json_spans(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource_spans in _list(document, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            yield from _list(scope_spans, "spans", "spans")


def _list(obj: Any, camel: str, snake: str) -> list[Any]:
    if not isinstance(obj, dict):
        return []
    value = obj.get(camel, obj.get(snake))
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _hex_ids_to_base64(obj: dict[str, Any]) -> None:
    """OTLP JSON writes ids as hex; protobuf's JSON parser expects base64 for bytes. An id
    that is not hex becomes empty, and the span is then refused for its id alone."""
    for key in _ID_FIELDS:
        value = obj.get(key)
        if isinstance(value, str):
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raw = b""
            obj[key] = base64.b64encode(raw).decode("ascii")


# --- spans -----------------------------------------------------------------------------------


def any_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return key_values(value.kvlist_value.values)
    if which == "bytes_value":
        # JSON has no bytes; OTLP JSON itself writes them as base64.
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, which)


def key_values(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        item_value = any_value(item.value)
        if item_value is not None:  # an empty value is no attribute (the SDK's rule too)
            out[item.key] = item_value
    return out


def _refusal(span: trace_pb2.Span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "invalid trace id (want 16 bytes, not all zero)"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "invalid span id (want 8 bytes, not all zero)"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "invalid parent span id (want 8 bytes or none)"
    if not span.start_time_unix_nano:
        return "missing start time"
    if span.end_time_unix_nano < span.start_time_unix_nano:
        return "end time before start time"
    return None


def to_spans(request: ExportTraceServiceRequest) -> Decoded:
    """The request's spans as SDK objects; refused spans are counted with a reason."""
    decoded = Decoded()
    add = decoded.spans.append
    for resource_spans in request.resource_spans:
        resource = Resource(
            key_values(resource_spans.resource.attributes), resource_spans.schema_url or None
        )
        for scope_spans in resource_spans.scope_spans:
            scope = InstrumentationScope(
                scope_spans.scope.name,
                scope_spans.scope.version or None,
                scope_spans.schema_url or None,
            )
            for span in scope_spans.spans:
                reason = _refusal(span)
                if reason is not None:
                    decoded.reject(1, f"span {span.span_id.hex() or '?'}: {reason}")
                    continue
                add(_readable(span, resource, scope))
    return decoded


def _readable(
    span: trace_pb2.Span, resource: Resource, scope: InstrumentationScope
) -> ReadableSpan:
    trace_id = int.from_bytes(span.trace_id, "big")
    flags = TraceFlags(span.flags & 0xFF)
    context = SpanContext(trace_id, int.from_bytes(span.span_id, "big"), False, flags)
    parent = None
    if span.parent_span_id:
        parent_id = int.from_bytes(span.parent_span_id, "big")
        if parent_id:  # eight zero bytes: a root, as an empty field would say
            parent = SpanContext(trace_id, parent_id, True, flags)
    code = _STATUS.get(span.status.code, StatusCode.UNSET)
    if code is StatusCode.ERROR:
        # The SDK keeps a description only on errors; OTLP says the same.
        status = Status(code, span.status.message or None)
    else:
        status = _OK if code is StatusCode.OK else _UNSET
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=key_values(span.attributes),
        events=[
            Event(event.name, key_values(event.attributes), event.time_unix_nano)
            for event in span.events
        ],
        kind=_KINDS.get(span.kind, SpanKind.INTERNAL),
        status=status,
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
        instrumentation_scope=scope,
    )


# --- responses -------------------------------------------------------------------------------


def success_body(content_type: str, rejected: int, message: str) -> bytes:
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return _encode(response, content_type)


def status_body(content_type: str, code: int, message: str) -> bytes:
    """A ``google.rpc.Status``: what OTLP/HTTP puts in the body of a refusal."""
    return _encode(status_pb2.Status(code=code, message=message), content_type)


def _encode(message: Any, content_type: str) -> bytes:
    if content_type == PROTOBUF:
        data: bytes = message.SerializeToString()
        return data
    dump: Callable[..., dict[str, Any]] = json_format.MessageToDict
    return orjson.dumps(dump(message))
