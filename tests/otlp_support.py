"""OTLP ingest test support: tokens, a client-side SDK pipeline with the stock OTLP/HTTP
exporter, agent runs emitted through it, the rows PostgreSQL holds, and a uvicorn server in
a subprocess (for SIGKILL and database-outage tests)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from tracing.conventions import attributes as A
from tracing.export import conninfo_for
from tracing.export.rows import span_to_row
from tracing.models import SPAN_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
T0_NS = 1_780_000_000_000_000_000  # 2026-05-28, a fixed instant
SERVICE = "billing-agent"


def token(username: str = "ingest-bot", scope: str = "ingest") -> str:
    """A fresh token from ``create_api_token`` for a staff user (created when missing)."""
    users = get_user_model().objects
    if not users.filter(username=username).exists():
        users.create_user(username, password="pw", is_staff=True)
    out = io.StringIO()
    call_command("create_api_token", username, "--scope", scope, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


class Client:
    """A service's own SDK pipeline: TracerProvider → BatchSpanProcessor → OTLPSpanExporter,
    plus an in-memory copy of every span it ended (what the server must hold)."""

    def __init__(
        self, url: str, secret: str, *, batch: int = 512, timeout: float = 30.0, **bsp: Any
    ) -> None:
        self.exporter = OTLPSpanExporter(
            endpoint=f"{url}/v1/traces",
            headers={"Authorization": f"Bearer {secret}"},
            timeout=timeout,
        )
        self.provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
        self.memory = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.provider.add_span_processor(
            BatchSpanProcessor(self.exporter, max_export_batch_size=batch, **bsp)
        )
        self.tracer = self.provider.get_tracer("billing.agent", "1.2.3")

    @property
    def sent(self) -> list[ReadableSpan]:
        return list(self.memory.get_finished_spans())

    def flush(self, seconds: float = 120) -> bool:
        return self.provider.force_flush(int(seconds * 1000))

    def shutdown(self) -> None:
        self.provider.shutdown()


def emit_run(tracer: Tracer, number: int, *, start_ns: int = T0_NS) -> None:
    """One agent run of 5 spans with explicit times: every value type, kinds, an event with
    attributes, an error status with a message, a float and a list attribute."""
    t = start_ns + number * 10_000_000_000
    root = tracer.start_span(
        "invoke_agent billing_agent",
        start_time=t,
        attributes={
            A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
            A.GEN_AI_AGENT_NAME: "billing_agent",
            A.GEN_AI_REQUEST_MODEL: "gpt-remote",
            A.GEN_AI_INPUT_MESSAGES: json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": f"invoice {number}?"}]}]
            ),
            A.AGENT_STATUS: "completed",
        },
    )
    ctx = trace.set_span_in_context(root)
    iteration = tracer.start_span("iteration_1", context=ctx, start_time=t + 1_000)
    it_ctx = trace.set_span_in_context(iteration)
    chat = tracer.start_span(
        "chat gpt-remote",
        context=it_ctx,
        kind=SpanKind.CLIENT,
        start_time=t + 2_000,
        attributes={
            A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
            A.GEN_AI_REQUEST_MODEL: "gpt-remote",
            A.GEN_AI_USAGE_INPUT_TOKENS: 100 + number,
            A.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
            A.GEN_AI_RESPONSE_FINISH_REASONS: ["tool_calls"],
            "gen_ai.request.temperature": 0.25,
            "llm.streaming": False,
        },
    )
    chat.add_event("gen_ai.choice", {"index": 0, "ids": [1, 2]}, timestamp=t + 3_000)
    post = tracer.start_span(
        "POST", context=trace.set_span_in_context(chat), kind=SpanKind.CLIENT, start_time=t + 2_500
    )
    post.end(end_time=t + 40_000_000)
    chat.end(end_time=t + 41_000_000)
    tool = tracer.start_span(
        "execute_tool lookup_invoice",
        context=it_ctx,
        start_time=t + 42_000_000,
        attributes={
            A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
            A.GEN_AI_TOOL_NAME: "lookup_invoice",
            A.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"n": number}),
        },
    )
    tool.add_event("exception", {"exception.type": "KeyError"}, timestamp=t + 43_000_000)
    tool.set_status(Status(StatusCode.ERROR, "no such invoice"))
    tool.end(end_time=t + 50_000_000)
    iteration.end(end_time=t + 51_000_000)
    root.end(end_time=t + 60_000_000)


SPANS_PER_RUN = 5


class FixedIds(IdGenerator):
    """One trace id, span ids counting up from 0x1001: the same run under chosen ids."""

    def __init__(self, trace_id: int) -> None:
        self.trace_id = trace_id
        self.next_span = 0x1000

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        self.next_span += 1
        return self.next_span


def recorded_run(ids: IdGenerator, number: int = 0) -> list[ReadableSpan]:
    """The spans of ``emit_run``, recorded in memory only."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}), id_generator=ids)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    emit_run(provider.get_tracer("billing.agent", "1.2.3"), number)
    provider.shutdown()
    return list(memory.get_finished_spans())


def stored_rows() -> dict[tuple[str, str], tuple[Any, ...]]:
    """Every stored span row (JSON columns parsed), keyed by (trace hex, span hex)."""
    cols = ", ".join(SPAN_COLUMNS)
    with psycopg.connect(conninfo_for()) as conn:
        rows = conn.execute(f"SELECT {cols} FROM tracing_otelspan").fetchall()
    return {(row[0].hex, row[1]): tuple(row) for row in rows}


def expected_row(span: ReadableSpan) -> tuple[Any, ...]:
    """The row the in-process exporter's row builder makes of ``span``."""
    values = list(span_to_row(span, settings.TRACING_MAX_ATTRIBUTE_BYTES).values)
    for index in (SPAN_COLUMNS.index("attributes"), SPAN_COLUMNS.index("events")):
        values[index] = orjson.loads(values[index])
    return tuple(values)


def span_count() -> int:
    with psycopg.connect(conninfo_for()) as conn:
        row = conn.execute("SELECT count(*) FROM tracing_otelspan").fetchone()
    assert row is not None
    return int(row[0])


# --- a server in a subprocess -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url(conninfo: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = params.get("user") or "postgres"
    host = params.get("host") or "127.0.0.1"
    port = params.get("port") or "5432"
    # A Unix socket directory (the embedded PostgreSQL) travels percent-encoded in the host.
    return f"postgres://{user}@{quote(str(host), safe='')}:{port}/{params['dbname']}"


class Server:
    """``uvicorn campus_core.asgi:application`` in its own process, killable with SIGKILL."""

    def __init__(self, conninfo: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(conninfo),
            "OTEL_SERVICE_NAME": "otlp-test-server",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "campus_core.asgi:application"),
                *("--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"),
            ],
            cwd=ROOT,
            env=self.env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/v1/traces", timeout=1)
                return
            except httpx.TransportError:
                if self.process.poll() is not None:
                    raise RuntimeError("the server exited at start") from None
                time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def server(conninfo: str, **env: str) -> Iterator[Server]:
    srv = Server(conninfo, **env)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
