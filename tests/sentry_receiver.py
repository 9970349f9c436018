"""A Sentry-protocol peer on loopback for tests (Sentry's servers are outside our system).

It speaks what the sentry-sdk and the OpenTelemetry exporters send:

- ``POST /api/<project>/envelope/``: Sentry envelopes (gzip/deflate bodies), checked for
  the DSN's public key; error events, structured logs and anything else are kept per item;
- ``POST /api/<project>/integration/otlp/v1/traces/``: OTLP/HTTP protobuf spans (Sentry's
  OTLP ingestion endpoint), decoded with opentelemetry-proto;
- ``POST /v1/metrics``: OTLP/HTTP protobuf metrics (the collector role for metric tests);
- any other request: answered 200 and kept, so a test can read the headers a client sent.

Everything received is also kept as text (``all_text``) so a test can assert a string
never left the process.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class EnvelopeItem:
    type: str
    headers: dict[str, Any]
    payload: Any


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    status_message: str = ""


def _any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[EnvelopeItem]]:
    """Sentry's envelope format: a header line, then items of header line + payload."""
    header_line, _, rest = body.partition(b"\n")
    header = json.loads(header_line)
    items: list[EnvelopeItem] = []
    while rest.strip():
        item_header_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_header_line)
        length = item_header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        content_type = item_header.get("content_type", "application/json")
        try:
            decoded: Any = json.loads(payload) if "json" in content_type else payload
        except ValueError:
            decoded = payload
        items.append(EnvelopeItem(item_header.get("type", ""), item_header, decoded))
    return header, items


class _Handler(BaseHTTPRequestHandler):
    server: SentryReceiver

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        try:
            if encoding == "gzip":
                raw = gzip.decompress(raw)
            elif encoding == "deflate":
                raw = zlib.decompress(raw)
            elif encoding not in ("", "identity"):
                self._reply(415, b"unsupported encoding")
                return
        except (OSError, zlib.error):
            self._reply(400, b"bad compressed body")
            return
        request = ReceivedRequest(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, raw
        )
        status = self.server.accept(request)
        self._reply(status, b"{}")

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


class SentryReceiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, public_key: str = "publickey", project_id: str = "1") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.public_key = public_key
        self.project_id = project_id
        self._lock = threading.Lock()
        self.requests: list[ReceivedRequest] = []
        self.rejected: list[ReceivedRequest] = []
        self.envelope_items: list[EnvelopeItem] = []
        self.spans: list[ReceivedSpan] = []
        self.metric_points: dict[str, list[Any]] = {}
        self._texts: list[str] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="sentry-rx")

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def dsn(self) -> str:
        return self.base_url.replace("http://", f"http://{self.public_key}@") + (
            f"/{self.project_id}"
        )

    def start(self) -> SentryReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    # --- what arrived ---------------------------------------------------------------------
    def items(self, item_type: str) -> list[EnvelopeItem]:
        with self._lock:
            return [item for item in self.envelope_items if item.type == item_type]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [item.payload for item in self.items("event")]

    @property
    def logs(self) -> list[dict[str, Any]]:
        return [log for item in self.items("log") for log in item.payload.get("items", [])]

    def all_text(self) -> str:
        with self._lock:
            return "\n".join(self._texts)

    # --- the protocol -----------------------------------------------------------------------
    def _authorised(self, request: ReceivedRequest) -> bool:
        auth = request.headers.get("x-sentry-auth", "") + " " + request.path
        return f"sentry_key={self.public_key}" in auth

    def accept(self, request: ReceivedRequest) -> int:
        api = f"/api/{self.project_id}/"
        with self._lock:
            self.requests.append(request)
        if request.path.startswith(api):
            if not self._authorised(request):
                with self._lock:
                    self.rejected.append(request)
                return 401
            if request.path.startswith(api + "envelope/"):
                self._envelope(request.body)
                return 200
            if request.path.startswith(api + "integration/otlp/v1/traces"):
                self._otlp_traces(request.body)
                return 200
            return 404
        if request.path.startswith("/v1/metrics"):
            self._otlp_metrics(request.body)
        return 200

    def _envelope(self, body: bytes) -> None:
        _, items = parse_envelope(body)
        with self._lock:
            self._texts.append(body.decode("utf-8", "replace"))
            self.envelope_items.extend(items)

    def _otlp_traces(self, body: bytes) -> None:
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        spans = [
            ReceivedSpan(
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(),
                name=span.name,
                attributes={kv.key: _any_value(kv.value) for kv in span.attributes},
                events=[
                    {
                        "name": event.name,
                        "attributes": {kv.key: _any_value(kv.value) for kv in event.attributes},
                    }
                    for event in span.events
                ],
                status_message=span.status.message,
            )
            for resource_spans in message.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            # JSON of the decoded message plus the raw bytes: strings may hide in either.
            self._texts.append(MessageToJson(message))
            self._texts.append(body.decode("utf-8", "replace"))
            self.spans.extend(spans)

    def _otlp_metrics(self, body: bytes) -> None:
        message = ExportMetricsServiceRequest()
        message.ParseFromString(body)
        with self._lock:
            for resource_metrics in message.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        kind = metric.WhichOneof("data")
                        if kind is None:
                            continue
                        data = getattr(metric, kind)
                        self.metric_points.setdefault(metric.name, []).extend(data.data_points)
