"""The threads a request's synchronous Django code runs on, kept from one request to the next.

Django's ASGI handler gives each request a thread of its own for its thread-sensitive work
(ORM queries, sync middleware, signals): asgiref starts a one-thread executor when the
request first hops to sync code, and on the way out starts one more thread to join it.
Two thread starts and a join per request, each waiting for the GIL under load, cost more
than a small query. ``RequestThreads`` hands each request a one-thread executor from a
pool instead (asgiref's ``ThreadSensitiveContext(executor=...)``, which Django's own
context then defers to): the same guarantee — one request's sync code on one thread, no
other request's code on it meanwhile — without starting a thread per request.

An executor goes back to the pool only when nothing of its request is still running on
it (a cancelled request may leave a statement running); otherwise it is shut down once
that work ends. Database connections are thread-local: the request-finished signal closes
the request's connections (or returns them to the pool) on the request's thread, as it
does for a fresh thread, so the next request on the thread starts without one.

Two hops to the thread that a kept thread makes unnecessary are skipped
(``start_requests_without_a_hop``, installed by ``campus_core/asgi.py``):

* Django's request-started receivers (close the thread's stale connections, clear its
  query log) hop to the request's thread before the request begins. A kept thread whose
  last work was the previous request's request-finished signal is already in that state;
  another one (a new thread, or one whose request ended some other way) gets them queued
  ahead of the request's own work, without waiting for them.
* The view asks for the request thread's connection object (to cancel its statement at
  the time cap). Django keeps one per thread and alias for the thread's life: a kept
  thread remembers it (``thread_connection``).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from django.core import signals
from django.db import close_old_connections, connections, reset_queries
from django.db.backends.base.base import BaseDatabaseWrapper

# Idle threads kept for the next requests; more requests at once start more, and the
# surplus is let go as they finish.
MAX_IDLE = 8


class RequestThread(ThreadPoolExecutor):
    """A one-thread executor that knows whether it is idle: its work runs in order, so it
    is idle once the last work submitted is done."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="django-request")
        self._last: Future[Any] | None = None
        # Django's connection objects of this thread, by alias (read on the event loop).
        self.databases: dict[str, BaseDatabaseWrapper] = {}
        # Whether the last work done here was a request's request-finished signal.
        self.clean = False

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.clean = False
        future = super().submit(fn, *args, **kwargs)
        self._last = future
        return future

    def idle(self) -> bool:
        return self._last is None or self._last.done()


class RequestThreads:
    """ASGI middleware: every HTTP request runs in a ``ThreadSensitiveContext`` whose
    executor is a ``RequestThread`` taken from the pool (or a new one)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._idle: list[RequestThread] = []  # only the event loop touches it

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        thread = self._idle.pop() if self._idle else RequestThread()
        token = _current.set(thread)
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.app(scope, receive, send)
        finally:
            _current.reset(token)
            if thread.idle() and len(self._idle) < MAX_IDLE:
                self._idle.append(thread)
            else:
                thread.shutdown(wait=False)  # the thread ends when its work does


_current: ContextVar[RequestThread | None] = ContextVar("request_thread", default=None)


async def thread_connection(alias: str) -> BaseDatabaseWrapper:
    """Django's connection object for ``alias`` on the current request's thread: remembered
    by a kept thread, asked of the thread otherwise."""
    thread = _current.get()
    if thread is not None and alias in thread.databases:
        return thread.databases[alias]
    db: BaseDatabaseWrapper = await sync_to_async(connections.__getitem__)(alias)
    if thread is not None:
        thread.databases[alias] = db
    return db


def _start_clean() -> None:
    reset_queries()
    close_old_connections()


async def _request_started(**kwargs: Any) -> None:
    # Outside RequestThreads (Django's test client, which connects Django's own receivers
    # around its requests when it wants them) there is no request thread to clean.
    thread = _current.get()
    if thread is not None and not thread.clean:
        thread.submit(_start_clean)  # runs before the request's own work on the thread


def _request_finished(**kwargs: Any) -> None:
    # After Django's close_old_connections (connected first), on the request's thread.
    thread = _current.get()
    if thread is not None:
        reset_queries()
        thread.clean = True


def start_requests_without_a_hop() -> None:
    """Replace Django's request-started receivers by ``_request_started`` (for the server's
    process: a test client still connects Django's own around its requests)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_started.disconnect(reset_queries)
    signals.request_started.connect(_request_started, weak=False)
    signals.request_finished.connect(_request_finished, weak=False)
