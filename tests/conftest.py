# >>> ENGINEERS WORKING IN PARALLEL: read /work/main/.local/PARALLEL_RULES.md before anything else
# >>> (own DATABASE_URL per engineer for pytest, commit only your own files with explicit paths, stop by 03:00 UTC).
"""Shared fixtures: a real PostgreSQL (pytest-django), the real OTel pipeline, an offline
LLM on loopback, and a live uvicorn server for HTTP tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from campus_core.chat.llm.offline import OfflineLLMServer, Policy, campus_policy
from campus_core.chat.llm.openai_compat import OpenAICompatibleProvider
from tracing import tracer as tracing_tracer
from tracing.exporter import PostgresSpanExporter


@pytest.fixture(scope="session", autouse=True)
def _close_exporter_connections(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """The exporter's own connection must be closed before the test database is dropped."""
    yield
    tracing_tracer.force_flush()
    exporter = tracing_tracer.get_exporter()
    if exporter is not None:
        exporter.close()


@pytest.fixture(scope="session")
def recorded_spans() -> InMemorySpanExporter:
    """Every span the global provider sees (a second consumer beside the PostgreSQL path)."""
    provider = tracing_tracer.init_tracing()
    assert isinstance(provider, TracerProvider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


@pytest.fixture(scope="session")
def instrumented() -> bool:
    """Turn on psycopg/httpx/logging auto-instrumentation (process-wide, from here on)."""
    from django.db import connections

    from tracing.instrumentation import enable_auto_instrumentation

    enabled = enable_auto_instrumentation(force=True)
    # The psycopg instrumentor wraps connections opened from now on: reopen ours.
    connections.close_all()
    return enabled


@pytest.fixture
def flush() -> Callable[[], None]:
    def _flush() -> None:
        assert tracing_tracer.force_flush(), "spans did not reach PostgreSQL"

    return _flush


@pytest.fixture
def offline_llm() -> Iterator[Callable[..., OpenAICompatibleProvider]]:
    """Start scripted OpenAI-compatible servers on loopback; returns a provider factory."""
    servers: list[OfflineLLMServer] = []

    def make(policy: Policy = campus_policy, model: str = "test-model") -> OpenAICompatibleProvider:
        server = OfflineLLMServer(policy).start()
        servers.append(server)
        return OpenAICompatibleProvider(
            base_url=server.base_url, model=model, provider_name="offline", timeout=10
        )

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def db_exporter(transactional_db: None) -> Iterator[PostgresSpanExporter]:
    exporter = PostgresSpanExporter(keep_untagged=True)
    yield exporter
    exporter.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def live_server_url(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """The real ASGI app (OpenTelemetryMiddleware + Django) under uvicorn on loopback."""
    import uvicorn

    from campus_core.asgi import application

    port = _free_port()
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    django_db_blocker.unblock()
    thread = threading.Thread(target=server.run, daemon=True, name="uvicorn-test")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    django_db_blocker.restore()
