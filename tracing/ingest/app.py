"""``POST /v1/traces``: the OTLP/HTTP receiver as a small ASGI app in front of Django.

``OtlpRouter`` sends that one path here and everything else to the wrapped application, so
ingest has no Django middleware (no session, CSRF or request span: it does not trace
itself) and reads the body itself, chunk by chunk, stopping at the cap. What it answers:

* ``405`` other methods, ``415`` other content types or encodings, ``413`` a body over
  ``OTLP_MAX_BODY_BYTES`` (as sent, by ``Content-Length`` or counted while reading, or once
  inflated), ``408`` a body not received within ``OTLP_BODY_TIMEOUT_SECONDS``;
* ``503`` + ``Retry-After`` when ``OTLP_MAX_CONCURRENT_WRITES`` requests are already in
  hand (at once: there is no queue) or PostgreSQL is unreachable;
* ``401`` no or unknown/revoked token, ``403`` a token without the ``ingest`` scope, ``400``
  an undecodable body (a ``google.rpc.Status`` in the request's encoding);
* ``200`` with an ``ExportTraceServiceResponse`` once every storable span is committed;
  refused spans are counted in ``partial_success``.

Authentication, decoding and the write run in the ingest's threads (``SpanStore``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from opentelemetry.instrumentation.utils import suppress_instrumentation

from tracing.ingest import decode
from tracing.ingest.store import Refused, SpanStore, Stored, Unavailable, authorize

logger = logging.getLogger(__name__)

PATH = "/v1/traces"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# google.rpc.Code values for the Status bodies of refusals.
_RPC_CODE = {400: 3, 401: 16, 403: 7, 408: 4, 413: 8, 500: 13, 503: 14}


@dataclass
class IngestStats:
    """Answers given since start, by kind (read by tests and the benchmark's log)."""

    accepted_requests: int = 0
    spans_stored: int = 0
    spans_rejected: int = 0
    busy: int = 0  # 503: all slots taken
    unavailable: int = 0  # 503: PostgreSQL unreachable


class OtlpIngest:
    """The receiver: admission, body, then the worker threads."""

    def __init__(self, conninfo: str | None = None) -> None:
        self.store = SpanStore(conninfo)
        self.stats = IngestStats()
        self._in_hand = 0
        # One thread per slot: admission (``_in_hand``) keeps submissions within it.
        self._executor = ThreadPoolExecutor(
            max_workers=settings.OTLP_MAX_CONCURRENT_WRITES, thread_name_prefix="otlp-ingest"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        reply_type = content_type if content_type in decode.CONTENT_TYPES else decode.JSON
        if scope["method"] != "POST":
            await _refuse(send, reply_type, 405, "use POST", [(b"allow", b"POST")])
            return
        if content_type not in decode.CONTENT_TYPES:
            await _refuse(
                send, reply_type, 415, f"Content-Type must be one of {decode.CONTENT_TYPES}"
            )
            return
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding not in decode.ENCODINGS:
            await _refuse(send, reply_type, 415, "Content-Encoding must be gzip or none")
            return
        cap = settings.OTLP_MAX_BODY_BYTES
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await _refuse(send, reply_type, 413, f"the body exceeds {cap} bytes", close=True)
            return
        if self._in_hand >= settings.OTLP_MAX_CONCURRENT_WRITES:
            self.stats.busy += 1
            await _refuse(send, reply_type, 503, "busy: retry later", _retry_after())
            return
        self._in_hand += 1
        try:
            await self._handle(receive, send, headers, content_type, reply_type, encoding, cap)
        finally:
            self._in_hand -= 1

    async def _handle(
        self,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        content_type: str,
        reply_type: str,
        encoding: str,
        cap: int,
    ) -> None:
        try:
            body = await asyncio.wait_for(
                _read_body(receive, cap), settings.OTLP_BODY_TIMEOUT_SECONDS
            )
        except TimeoutError:
            await _refuse(send, reply_type, 408, "the body did not arrive in time", close=True)
            return
        if body is None:  # over the cap: stop reading, say so, close the connection
            await _refuse(send, reply_type, 413, f"the body exceeds {cap} bytes", close=True)
            return
        if body is _DISCONNECTED:
            return
        auth = headers.get("authorization", "")
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(
                self._executor, _work, self.store, auth, body, content_type, encoding
            )
        except Refused as refusal:
            extra = [(b"www-authenticate", b"Bearer")] if refusal.status == 401 else []
            await _refuse(send, reply_type, refusal.status, refusal.message, extra)
            return
        except Unavailable as exc:
            self.stats.unavailable += 1
            logger.warning("OTLP ingest: PostgreSQL unavailable (%s); answering 503", exc)
            await _refuse(send, reply_type, 503, "storage unavailable: retry later", _retry_after())
            return
        except Exception:
            logger.exception("OTLP ingest failed unexpectedly; answering 500")
            await _refuse(send, reply_type, 500, "internal error")
            return
        self.stats.accepted_requests += 1
        self.stats.spans_stored += stored.accepted
        self.stats.spans_rejected += stored.rejected
        body_out = decode.success_body(reply_type, stored.rejected, stored.message)
        await _respond(send, 200, reply_type, body_out)


_DISCONNECTED = b"\x00disconnected"


def _work(store: SpanStore, auth: str, body: bytes, content_type: str, encoding: str) -> Stored:
    # Ingest does not trace itself: no spans for its token lookup or its writes.
    with suppress_instrumentation():
        store.ping()
        authorize(auth)
        return store.store(body, content_type, encoding)


async def _read_body(receive: Receive, cap: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _DISCONNECTED
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            return None
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _retry_after() -> list[tuple[bytes, bytes]]:
    return [(b"retry-after", str(settings.OTLP_RETRY_AFTER_SECONDS).encode())]


async def _refuse(
    send: Send,
    content_type: str,
    status: int,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    close: bool = False,
) -> None:
    body = decode.status_body(content_type, _RPC_CODE.get(status, 2), message)
    extra = list(headers or [])
    if close:  # the rest of the body is not read: the connection cannot be reused
        extra.append((b"connection", b"close"))
    await _respond(send, status, content_type, body, extra)


async def _respond(
    send: Send,
    status: int,
    content_type: str,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class OtlpRouter:
    """``/v1/traces`` to the receiver, anything else to ``app``."""

    def __init__(self, app: ASGIApp, ingest: OtlpIngest | None = None) -> None:
        self.app = app
        self.ingest = ingest or OtlpIngest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH:
            await self.ingest(scope, receive, send)
        else:
            await self.app(scope, receive, send)
