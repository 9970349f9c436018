"""Request isolation for context variables: every ASGI request starts from an empty
``contextvars.Context``.

Everything request-scoped in this project lives in context variables: the OTel current span
(whose absence makes the ASGI request span a new trace root), the agent-run mark of
``tracing.pipeline.tagger``, the log binding of ``RequestIdMiddleware``. Under asyncio a
request task does not reliably start from a clean context: when uvicorn pauses reading a
connection (a request body above its 64 KiB flow-control limit) and the app resumes it from
inside the request, asyncio re-registers the socket reader with a copy of *that request's*
context, and every later request on the connection is created from it
(python/cpython#140947, Kludex/uvicorn#2167). The next request's span then nests under the
old one and two agent runs share one trace. Running each request in a fresh context here
fixes it for any server and any way the app is started, not only for a server flag
(uvicorn's ``--reset-contextvars``).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class FreshContextPerRequest:
    """ASGI wrapper: runs each ``http`` / ``websocket`` request in a task of its own with an
    empty context. ``lifespan`` keeps the server's context, so state set at start-up stays
    visible to it. Cancelling the server's task cancels the request task with it (awaiting a
    task forwards the cancellation), and its exceptions propagate unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        task = asyncio.get_running_loop().create_task(
            self._run(scope, receive, send), context=contextvars.Context()
        )
        await task

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
