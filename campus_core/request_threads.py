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
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope

# Idle threads kept for the next requests; more requests at once start more, and the
# surplus is let go as they finish.
MAX_IDLE = 8


class RequestThread(ThreadPoolExecutor):
    """A one-thread executor that knows whether it is idle: its work runs in order, so it
    is idle once the last work submitted is done."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="django-request")
        self._last: Future[Any] | None = None

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
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
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.app(scope, receive, send)
        finally:
            if thread.idle() and len(self._idle) < MAX_IDLE:
                self._idle.append(thread)
            else:
                thread.shutdown(wait=False)  # the thread ends when its work does
