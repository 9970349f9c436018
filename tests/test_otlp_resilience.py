"""Zero loss, zero duplicates under failure: the server (uvicorn in a subprocess) killed with
SIGKILL in the middle of a burst and restarted, and PostgreSQL cut mid-burst (the TCP proxy
of the exporter tests). The client is a service's stock SDK pipeline; its retries (on
connection errors and 503) are all it takes."""

from __future__ import annotations

import logging
from collections import Counter

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.otlp_support import (
    SPANS_PER_RUN,
    Client,
    FixedIds,
    emit_run,
    recorded_run,
    server,
    span_count,
    stored_rows,
    token,
)
from tests.pg_proxy import PostgresProxy
from tests.waiting import wait_for
from tracing.export import conninfo_for
from tracing.models import OTelTrace

pytestmark = pytest.mark.django_db(transaction=True)

EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def _burst_client(url: str, secret: str) -> Client:
    # Small batches, sent often: many requests in flight over the burst. A queue that holds
    # the whole burst, and retries that outlast a restart (backoff 1, 2, 4, 8, 16 s).
    return Client(
        url, secret, batch=40, timeout=120, max_queue_size=100_000, schedule_delay_millis=20
    )


def _emit(client: Client, runs: range) -> None:
    for number in runs:
        emit_run(client.tracer, number)


def _assert_stored_exactly_once(client: Client, runs: int) -> None:
    sent = client.sent
    assert len(sent) == runs * SPANS_PER_RUN
    keys = Counter(
        (format(s.context.trace_id, "032x"), format(s.context.span_id, "016x")) for s in sent
    )
    assert set(stored_rows()) == set(keys)
    assert span_count() == len(keys)  # one row per span: the unique key holds no doubles
    counts = Counter(OTelTrace.objects.values_list("span_count", flat=True))
    assert counts == {SPANS_PER_RUN: runs}  # no summary counted a span twice


def test_server_killed_mid_burst_every_span_stored_once() -> None:
    secret = token()
    with server(conninfo_for()) as srv:
        client = _burst_client(srv.url, secret)
        # given a burst under way: some of it already committed
        _emit(client, range(0, 60))
        wait_for(lambda: span_count() > 0, "the first committed batch")
        _emit(client, range(60, 120))
        # when the server is killed outright while the burst goes on, and comes back
        srv.kill()
        _emit(client, range(120, 180))
        srv.start()
        _emit(client, range(180, 240))
        # then the client's retries bring every span, each exactly once
        assert client.flush(240)
        client.shutdown()
    _assert_stored_exactly_once(client, 240)


def test_postgres_cut_mid_burst_503_then_everything_stored(
    proxy: PostgresProxy, caplog: pytest.LogCaptureFixture
) -> None:
    secret = token()
    caplog.set_level(logging.WARNING, logger=EXPORTER_LOGGER)
    with server(proxy.conninfo) as srv:
        client = _burst_client(srv.url, secret)
        _emit(client, range(0, 60))
        wait_for(lambda: span_count() > 0, "the first committed batch")
        # when PostgreSQL goes away mid-burst
        proxy.down()
        body = encode_spans(recorded_run(FixedIds(0xFEED))).SerializeToString()
        response = httpx.post(
            f"{srv.url}/v1/traces",
            content=body,
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/x-protobuf"},
            timeout=30,
        )
        # then the server answers 503 with Retry-After, to us and to the service's exporter
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        _emit(client, range(60, 120))
        wait_for(
            lambda: any("Service Unavailable" in r.getMessage() for r in caplog.records),
            "the exporter to meet a 503",
        )
        # and once PostgreSQL is back, everything lands, once
        proxy.up()
        _emit(client, range(120, 150))
        assert client.flush(240)
        client.shutdown()
    _assert_stored_exactly_once(client, 150)
