"""Shared fixtures: a real PostgreSQL (pytest-django), the real OTel pipeline, an offline
LLM on loopback, and a live uvicorn server for HTTP tests."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from campus_core.chat.llm.offline import OfflineLLMServer, Policy, campus_policy
from campus_core.chat.llm.openai_compat import OpenAICompatibleProvider
from campus_core.observability.logging_filters import RequestIdFilter, json_formatter
from campus_core.observability.metrics import metrics
from graphql_api import token_cache
from tests.pg_proxy import PostgresProxy
from tracing import pipeline
from tracing.export import PostgresSpanExporter, conninfo_for
from tracing.read import span_window

# The in-process app's maintenance thread (campus_core.asgi) and the servers started as
# subprocesses must not roll up the tests' committed spans on the wall clock's schedule:
# spanStats would then answer from rollups in some runs and from spans in others. Tests of
# the rollups refresh them explicitly, at fixed instants (tests/test_span_rollups.py).
os.environ["SPAN_ROLLUP_REFRESH_S"] = "0"
django_settings.SPAN_ROLLUP_REFRESH_S = 0


@pytest.fixture(scope="session", autouse=True)
def _telemetry() -> None:
    """The test session is an entry point: the same start-up as the server's."""
    pipeline.init_telemetry()


@pytest.fixture(scope="session", autouse=True)
def _close_connections_before_dropping_the_test_db(
    django_db_setup: Any, django_db_blocker: Any
) -> Iterator[None]:
    """Every connection to the test database must be gone before pytest-django drops it:
    the exporter's own (shutdown flushes and closes it, and stops the timer that would
    reopen it), the API token listener's (stopped, or it would reconnect) and those the
    live server's worker threads still hold."""
    yield
    pipeline.shutdown_telemetry()
    token_cache.stop_listener()
    import psycopg
    from django.db import connections

    connections.close_all()
    with django_db_blocker.unblock(), psycopg.connect(conninfo_for(), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _no_kept_span_windows() -> None:
    """Each test's span pages look their window up in its own data
    (tracing/read/span_window.py keeps them a minute per process)."""
    span_window.forget()


@pytest.fixture(autouse=True)
def _flush_spans_before_db_teardown(_django_db_helper: Any) -> Iterator[None]:
    """A test's spans reach PostgreSQL before its database is rolled back or truncated;
    otherwise the BatchSpanProcessor's timer could write them into the next test."""
    yield
    pipeline.force_flush()


@pytest.fixture(scope="session")
def recorded_spans() -> InMemorySpanExporter:
    """Every span the global provider sees (a second consumer beside the PostgreSQL path)."""
    provider = pipeline.init_telemetry()
    assert isinstance(provider, TracerProvider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


@pytest.fixture(scope="session")
def instrumented() -> bool:
    """Turn on psycopg/httpx/logging auto-instrumentation (process-wide, from here on)."""
    from django.db import connections

    from tracing.pipeline.instrumentation import enable_auto_instrumentation

    enabled = enable_auto_instrumentation(force=True)
    # The psycopg instrumentor wraps connections opened from now on: reopen ours, and
    # empty the pool (closing a pooled connection only hands it back, uninstrumented).
    connections.close_all()
    for connection in connections.all():
        if hasattr(connection, "close_pool"):
            connection.close_pool()
    return enabled


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    """Every metric of the test, in memory (the process's metrics service points at it)."""
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    previous = metrics.meter_provider
    metrics.use_meter_provider(provider)
    yield memory
    metrics.use_meter_provider(previous)
    provider.shutdown()


@pytest.fixture
def flush() -> Callable[[], None]:
    def _flush() -> None:
        assert pipeline.force_flush(), "spans did not reach PostgreSQL"

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
def proxy(transactional_db: None) -> Iterator[PostgresProxy]:
    """A TCP proxy in front of the test database that can be taken down and up again."""
    proxy = PostgresProxy(conninfo_for())
    yield proxy
    proxy.close()


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


@pytest.fixture
def http(live_server_url: str) -> Iterator[httpx.Client]:
    """An HTTP client of the live server (the timeout only turns a hang into a failure)."""
    with httpx.Client(base_url=live_server_url, timeout=30) as client:
        yield client


class JsonLines(logging.Handler):
    """The production formatter and filter, writing to a list instead of stderr."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.addFilter(RequestIdFilter())
        self.setFormatter(json_formatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def messages(self, logger: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["logger"] == logger]


@pytest.fixture
def json_lines() -> Iterator[JsonLines]:
    handler = JsonLines()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous_level)


@pytest.fixture
def logged_in(transactional_db: None, live_server_url: str) -> Iterator[tuple[httpx.Client, Any]]:
    """An httpx client with a real session cookie (a non-staff user) and the CSRF token
    for the live server; one client, so its requests share one keep-alive connection."""
    user = get_user_model().objects.create_user("ada", password="correct horse battery")
    django_client = Client()
    django_client.force_login(user)
    with httpx.Client(base_url=live_server_url, timeout=30) as client:
        client.cookies.set("sessionid", django_client.cookies["sessionid"].value)
        # The admin login page sets the csrftoken cookie the chat POST must echo back.
        assert client.get("/admin/login/").status_code == 200
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        yield client, user
