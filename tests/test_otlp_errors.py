"""POST /v1/traces refusals over real HTTP: each status the endpoint answers, the token
scopes on both endpoints, revocation, and 503 + Retry-After beyond the concurrency limit.
A refused request stores nothing."""

from __future__ import annotations

import gzip
import io
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from campus_core.asgi import application
from tests.otlp_support import (
    SPANS_PER_RUN,
    Client,
    FixedIds,
    emit_run,
    recorded_run,
    span_count,
    stored_rows,
    token,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PROTOBUF = "application/x-protobuf"
QUERY = {"query": "{ traces(first: 1) { totalCount } }"}


@pytest.fixture
def body() -> bytes:
    return encode_spans(recorded_run(FixedIds(0xF00D))).SerializeToString()


def _post(http: httpx.Client, content: Any, secret: str | None, **headers: str) -> httpx.Response:
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    headers.setdefault("Content-Type", PROTOBUF)
    return http.post("/v1/traces", content=content, headers=headers)


def _status(response: httpx.Response) -> status_pb2.Status:
    assert response.headers["content-type"] == PROTOBUF
    return status_pb2.Status.FromString(response.content)


def test_wrong_method_405(http: httpx.Client) -> None:
    response = http.get("/v1/traces")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_other_content_type_415(http: httpx.Client, body: bytes) -> None:
    response = _post(http, body, token(), **{"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "Content-Type" in response.json()["message"]
    response = _post(http, body, token(), **{"Content-Encoding": "br"})
    assert response.status_code == 415
    assert span_count() == 0


def test_undecodable_bodies_400(http: httpx.Client) -> None:
    secret = token()
    response = _post(http, b"\xff\xff\xff not protobuf", secret)
    assert response.status_code == 400
    assert "protobuf" in _status(response).message
    response = _post(http, b"{not json", secret, **{"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "invalid JSON" in response.json()["message"]
    response = _post(http, b'{"resourceSpans": 3}', secret, **{"Content-Type": "application/json"})
    assert response.status_code == 400
    response = _post(http, b"not gzip", secret, **{"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert span_count() == 0


def test_over_the_size_cap_413(http: httpx.Client, body: bytes, settings: Any) -> None:
    secret = token()
    settings.OTLP_MAX_BODY_BYTES = len(body) - 1
    # declared by Content-Length: refused before the body is read
    assert _post(http, body, secret).status_code == 413

    # streamed without a length: refused once the count passes the cap
    def chunks() -> Iterator[bytes]:
        yield body[:100]
        yield body[100:]

    response = _post(http, chunks(), secret)
    assert response.status_code == 413
    assert "exceeds" in _status(response).message
    # a gzip bomb: small as sent, over the cap once inflated
    settings.OTLP_MAX_BODY_BYTES = 100_000
    bomb = gzip.compress(b"\x00" * 10_000_000)
    assert len(bomb) < 100_000
    response = _post(http, bomb, secret, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert span_count() == 0


def test_no_or_unknown_token_401(http: httpx.Client, body: bytes) -> None:
    for secret in (None, "cct_not-a-token"):
        response = _post(http, body, secret)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert _post(http, body, None, Authorization="Basic eDp5").status_code == 401
    assert span_count() == 0


def test_read_token_may_not_ingest_403(http: httpx.Client, body: bytes) -> None:
    response = _post(http, body, token("dashboard", scope="read"))
    assert response.status_code == 403
    assert "--scope ingest" in _status(response).message
    assert span_count() == 0


def test_ingest_token_may_not_read_graphql_403(http: httpx.Client, body: bytes) -> None:
    secret = token()
    assert _post(http, body, secret).status_code == 200
    response = http.post("/graphql/", json=QUERY, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 403
    assert "may only ingest" in response.json()["errors"][0]["message"]
    read = token("dashboard", scope="read")
    response = http.post("/graphql/", json=QUERY, headers={"Authorization": f"Bearer {read}"})
    assert response.json()["data"] == {"traces": {"totalCount": 1}}


def test_revoked_tokens_are_refused_on_both_endpoints(http: httpx.Client, body: bytes) -> None:
    ingest, read = token(), token("ingest-bot", scope="read")
    assert _post(http, body, ingest).status_code == 200
    listing = io.StringIO()
    call_command("create_api_token", "ingest-bot", "--list", stdout=listing)
    scopes = sorted(line.split()[1] for line in listing.getvalue().splitlines())
    assert scopes == ["ingest", "read"]
    for secret in (ingest, read):
        call_command(
            "create_api_token", "ingest-bot", "--revoke", secret[:12], stdout=io.StringIO()
        )
    assert _post(http, body, ingest).status_code == 401
    response = http.post("/graphql/", json=QUERY, headers={"Authorization": f"Bearer {read}"})
    assert response.status_code == 401


class HeldRequest:
    """A request whose body is held back: it occupies one slot until released."""

    def __init__(self, url: str, secret: str, body: bytes) -> None:
        self.release = threading.Event()
        self.response: httpx.Response | None = None

        def chunks() -> Iterator[bytes]:
            yield body[:10]
            self.release.wait(60)
            yield body[10:]

        def send() -> None:
            headers = {"Authorization": f"Bearer {secret}", "Content-Type": PROTOBUF}
            self.response = httpx.post(
                f"{url}/v1/traces", content=chunks(), headers=headers, timeout=60
            )

        self.thread = threading.Thread(target=send)
        self.thread.start()

    def finish(self) -> httpx.Response:
        self.release.set()
        self.thread.join(60)
        assert self.response is not None
        return self.response


def test_beyond_the_concurrency_limit_503_then_nothing_lost(
    live_server_url: str, http: httpx.Client, body: bytes, settings: Any
) -> None:
    # given a limit of one request in hand, taken by a request still sending its body
    settings.OTLP_MAX_CONCURRENT_WRITES = 1
    settings.OTLP_RETRY_AFTER_SECONDS = 1
    ingest = application.ingest
    secret = token()
    busy_before = ingest.stats.busy
    held = HeldRequest(live_server_url, secret, body)
    wait_for(lambda: ingest._in_hand == 1, "the held request to take the slot")
    # when another request comes: 503 at once, with Retry-After
    response = _post(http, body, secret)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert span_count() == 0
    # and a service's stock exporter meets the same 503 and retries after Retry-After
    client = Client(live_server_url, secret)
    for number in range(4):
        emit_run(client.tracer, number)
    flushed: list[bool] = []
    flusher = threading.Thread(target=lambda: flushed.append(client.flush()))
    flusher.start()
    wait_for(lambda: ingest.stats.busy >= busy_before + 2, "the exporter's 503")
    # then once the slot is free, everything lands: the held request and the retried batch
    assert held.finish().status_code == 200
    flusher.join(120)
    client.shutdown()
    assert flushed == [True]
    assert len(stored_rows()) == SPANS_PER_RUN + 4 * SPANS_PER_RUN
