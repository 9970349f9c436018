"""OTLP/HTTP request bodies → span rows, and the responses' bodies.

Owns what the OTLP specification says about the wire: ``application/x-protobuf`` and
``application/json`` (OTLP JSON: lowerCamelCase or original field names, trace and span ids
as hex — not protobuf's base64 —, enums as integers, 64-bit integers as strings or numbers,
unknown fields ignored), ``Content-Encoding: gzip`` inflated under a size cap (a gzip bomb
stops at the cap), and which spans are refused (``partial_success``): ids of the wrong
length or all zero, a missing start time, an end before the start.

Accepted spans go straight from protobuf (OTLP JSON is parsed into the same message) to
the one row builder (``tracing.export.rows.build_row``), the builder behind the in-process
exporter's ``span_to_row``: no SDK span objects in between, and the same rows.
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
from opentelemetry.trace import SpanKind, StatusCode

from tracing.export.rows import ResourceRef, SpanRow, build_row, event_dict, resource_ref

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = (PROTOBUF, JSON)
ENCODINGS = ("", "identity", "gzip")

# OTLP's SpanKind enum (0 unspecified, 1 internal … 5 consumer) → the SDK's names, as
# stored; an unknown value is INTERNAL, as the SDK's default.
_INTERNAL = SpanKind.INTERNAL.name
_KINDS = {
    0: _INTERNAL,
    1: _INTERNAL,
    2: SpanKind.SERVER.name,
    3: SpanKind.CLIENT.name,
    4: SpanKind.PRODUCER.name,
    5: SpanKind.CONSUMER.name,
}
# OTLP's status codes → the SDK's names; an unknown code is UNSET.
_UNSET = StatusCode.UNSET.name
_ERROR = StatusCode.ERROR.name
_STATUS = {0: _UNSET, 1: StatusCode.OK.name, 2: _ERROR}
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
    """The rows of one request's storable spans, and the count of those refused."""

    rows: list[SpanRow] = field(default_factory=list)
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


# AnyValue kinds read as they are (the others are converted by ``any_value``).
_SCALARS = frozenset({"string_value", "int_value", "bool_value", "double_value"})


def key_values(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        value = item.value
        which = value.WhichOneof("value")
        if which is None:  # an empty value is no attribute (the SDK's rule too)
            continue
        item_value = getattr(value, which) if which in _SCALARS else any_value(value)
        if item_value is not None:
            out[item.key] = item_value
    return out


_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


def _refusal(span: trace_pb2.Span) -> str | None:
    trace_id, span_id = span.trace_id, span.span_id
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE_ID:
        return "invalid trace id (want 16 bytes, not all zero)"
    if len(span_id) != 8 or span_id == _ZERO_SPAN_ID:
        return "invalid span id (want 8 bytes, not all zero)"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "invalid parent span id (want 8 bytes or none)"
    if not span.start_time_unix_nano:
        return "missing start time"
    if span.end_time_unix_nano < span.start_time_unix_nano:
        return "end time before start time"
    return None


def to_rows(request: ExportTraceServiceRequest, cap: int) -> Decoded:
    """The request's spans as rows of the one row builder; refused spans are counted with a
    reason (invalid ones here, ones the row builder cannot take as "unstorable")."""
    decoded = Decoded()
    add = decoded.rows.append
    for resource_spans in request.resource_spans:
        # The SDK's rule for resources: an attribute needs a key.
        attributes = key_values(resource_spans.resource.attributes)
        resource = resource_ref({k: v for k, v in attributes.items() if k}, cap)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                reason = _refusal(span)
                if reason is not None:
                    decoded.reject(1, f"span {span.span_id.hex() or '?'}: {reason}")
                    continue
                try:
                    add(_row(span, scope, resource, cap))
                except Exception as exc:  # a span the row builder cannot take: refused, told
                    decoded.reject(1, f"span {span.span_id.hex()}: unstorable ({exc})")
    return decoded


def _row(span: trace_pb2.Span, scope: str, resource: ResourceRef, cap: int) -> SpanRow:
    parent_id = int.from_bytes(span.parent_span_id, "big") if span.parent_span_id else 0
    status = span.status
    code = _STATUS.get(status.code, _UNSET)
    return build_row(
        int.from_bytes(span.trace_id, "big"),
        int.from_bytes(span.span_id, "big"),
        # Eight zero bytes: a root, as an empty field would say.
        parent_id or None,
        span.name,
        _KINDS.get(span.kind, _INTERNAL),
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        code,
        # The SDK keeps a description only on errors; OTLP says the same.
        status.message if code is _ERROR else "",
        key_values(span.attributes),
        [
            event_dict(event.name, event.time_unix_nano, key_values(event.attributes))
            for event in span.events
        ],
        scope,
        cap,
        resource,
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
