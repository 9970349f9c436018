"""Requests' sync code runs on threads kept from one request to the next
(``campus_core.request_threads``): one request's sync calls share one thread, requests at
the same time have threads of their own, a later request reuses an idle thread, and a
thread still busy with a cancelled request's work is not handed to another; over real
HTTP, sequential requests reuse kept threads."""

from __future__ import annotations

import asyncio
import threading
from contextlib import suppress
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async

from campus_core.request_threads import RequestThreads
from tests.graphql_support import api_token, make_user

HTTP: dict[str, Any] = {"type": "http"}


async def _request(threads: RequestThreads) -> None:
    """One HTTP request through ``threads`` (the recorders neither receive nor send)."""
    await threads(HTTP, None, None)  # type: ignore[arg-type]


def _current() -> threading.Thread:
    return threading.current_thread()


class Recorder:
    """An ASGI app whose request makes two sync calls, recording their threads; with
    ``gate`` set, the first call waits for it."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.threads: list[tuple[threading.Thread, threading.Thread]] = []
        self.gate = gate
        self.inside = threading.Semaphore(0)
        self.entered: list[threading.Thread] = []

    def _first(self) -> threading.Thread:
        gate = self.gate
        self.entered.append(threading.current_thread())
        self.inside.release()
        if gate is not None:
            assert gate.wait(30)
        return threading.current_thread()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        first = await sync_to_async(self._first)()
        second = await sync_to_async(_current)()
        self.threads.append((first, second))


def test_sequential_requests_share_a_thread_and_concurrent_ones_do_not() -> None:
    async def scenario() -> None:
        app = Recorder()
        threads = RequestThreads(app)
        await _request(threads)
        await _request(threads)
        (a1, a2), (b1, b2) = app.threads
        assert a1 is a2 and b1 is b2  # one request, one thread
        assert a1 is b1  # reused by the next request
        assert a1 is not threading.current_thread()

        gate = threading.Event()
        held = Recorder(gate)
        both = RequestThreads(held)
        tasks = [asyncio.ensure_future(_request(both)) for _ in range(2)]
        for _ in range(2):  # both requests are inside their sync call at once
            assert await asyncio.to_thread(held.inside.acquire, True, 30)
        gate.set()
        await asyncio.gather(*tasks)
        (c1, _), (d1, _) = held.threads
        assert c1 is not d1

    asyncio.run(scenario())


def test_a_thread_busy_with_a_cancelled_requests_work_is_not_reused() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        app = Recorder(gate)
        threads = RequestThreads(app)
        cancelled = asyncio.ensure_future(_request(threads))
        assert await asyncio.to_thread(app.inside.acquire, True, 30)
        cancelled.cancel()
        with suppress(asyncio.CancelledError):
            await cancelled

        app.gate = None  # the next request does not wait
        await _request(threads)  # while the first one's thread is still busy
        gate.set()

        busy = app.entered[0]
        ((later, _),) = app.threads  # the cancelled request recorded nothing
        assert later is not busy

    asyncio.run(scenario())


@pytest.mark.django_db(transaction=True)
def test_sequential_http_requests_reuse_kept_threads(live_server_url: str) -> None:
    make_user("threads", staff=True)
    token = api_token("threads")
    with httpx.Client(
        base_url=live_server_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        assert client.post("/graphql/", json={"query": "{ __typename }"}).status_code == 200
        before = _request_threads()
        for _ in range(10):
            response = client.post("/graphql/", json={"query": "{ __typename }"})
            assert response.status_code == 200 and response.json()["data"]
        after = _request_threads()
    # A request's thread may still be closing the response when the client's next request
    # arrives (that one then takes another thread), but kept threads are reused: ten
    # requests start far fewer than ten threads.
    assert after, "no request thread is kept"
    assert len(after - before) < 10


def _request_threads() -> set[int | None]:
    return {t.ident for t in threading.enumerate() if t.name.startswith("django-request")}
