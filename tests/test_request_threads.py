"""Requests' sync code runs on threads kept from one request to the next
(``campus_core.request_threads``): one request's sync calls share one thread, requests at
the same time have threads of their own, a later request reuses an idle thread, and a
thread still busy with a cancelled request's work is not handed to another; a kept thread
starts a request without a hop when its last request finished, and remembers its
connection objects; over real HTTP, sequential requests reuse kept threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core import signals
from django.db import close_old_connections, connections

from campus_core import request_threads
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


class DatabaseUser:
    """An ASGI app that starts its request as Django's handler does (request-started
    signal), touches the database on its thread, notes what it saw, and finishes the
    request with the request-finished signal unless ``finish`` is off."""

    def __init__(self) -> None:
        self.finish = True
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await signals.request_started.asend(sender=None)
        thread = request_threads._current.get()
        clean_after_start = thread.clean if thread is not None else None
        stale = await sync_to_async(_open_connection)()
        remembered = await request_threads.thread_connection("default")
        own = await sync_to_async(connections.__getitem__)("default")
        self.seen.append(
            {
                "stale_at_start": stale,
                "remembered_is_own": remembered is own,
                "clean_after_start": clean_after_start,
            }
        )
        if self.finish:
            await signals.request_finished.asend(sender=None)


def _open_connection() -> bool:
    """Whether this thread held an open connection before; leaves one open either way."""
    was_open = connections["default"].connection is not None
    connections["default"].ensure_connection()
    return was_open


@pytest.fixture
def served_signals() -> Iterator[None]:
    """The request signals as the server's process has them (Django's test client puts its
    own start receiver back after each of its requests)."""
    request_threads.start_requests_without_a_hop()
    yield
    signals.request_started.connect(close_old_connections)  # as the test client leaves it


@pytest.mark.django_db(transaction=True)
def test_a_kept_thread_starts_requests_clean_without_a_hop(served_signals: None) -> None:
    async def scenario() -> None:
        app = DatabaseUser()
        threads = RequestThreads(app)
        await _request(threads)  # a new thread: cleaned before the request's work
        await _request(threads)  # kept after a finished request: nothing queued at start
        app.finish = False
        await _request(threads)  # ends without request-finished: its connection stays open
        app.finish = True
        await _request(threads)  # so the next one is cleaned first
        first, second, unfinished, after = app.seen
        assert not first["stale_at_start"] and first["clean_after_start"] is False
        assert not second["stale_at_start"] and second["clean_after_start"] is True
        assert not unfinished["stale_at_start"]
        assert not after["stale_at_start"] and after["clean_after_start"] is False
        # The connection object handed to the view is the thread's own, remembered or not.
        assert all(seen["remembered_is_own"] for seen in app.seen)

    asyncio.run(scenario())
