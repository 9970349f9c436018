"""X-Request-ID: accepted from the caller when sane, generated otherwise, returned on the
response, and bound (with the user id) to the log context for the request's lifetime."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from campus_core.observability.logging_filters import bind_request, unbind_request

REQUEST_ID_HEADER = "X-Request-ID"
# Caller ids land in every log line: short, printable, no separators a log parser splits on.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def request_id_from(request: HttpRequest) -> str:
    """The caller's X-Request-ID if it is 1-128 characters of [A-Za-z0-9._:-], else a new one."""
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    if _VALID_REQUEST_ID.fullmatch(supplied):
        return supplied
    return uuid.uuid4().hex


def _user_id(user: Any) -> str | None:
    if user is not None and getattr(user, "is_authenticated", False):
        return str(user.pk)
    return None


class RequestIdMiddleware:
    """Sync and async capable, so Django never adapts it onto another thread (where the
    context variables it sets would not reach an async view or its streaming body)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        request_id = request_id_from(request)
        request.request_id = request_id  # type: ignore[attr-defined]
        tokens = bind_request(request_id, _user_id(getattr(request, "user", None)))
        try:
            response = self.get_response(request)
        except BaseException:
            unbind_request(tokens)
            raise
        return self._finish(response, request_id, tokens)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_from(request)
        request.request_id = request_id  # type: ignore[attr-defined]
        auser: Callable[[], Awaitable[Any]] | None = getattr(request, "auser", None)
        user = await auser() if auser is not None else None
        if user is not None:
            # The resolved user instead of the lazy one: code that reads request.user
            # synchronously later (Sentry's user attribution on error events) would
            # otherwise hit the database from the event loop and get nothing.
            request.user = user
        tokens = bind_request(request_id, _user_id(user))
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        try:
            response = await get_response(request)
        except BaseException:
            unbind_request(tokens)
            raise
        return self._finish(response, request_id, tokens)

    @staticmethod
    def _finish(response: HttpResponseBase, request_id: str, tokens: Any) -> HttpResponseBase:
        response[REQUEST_ID_HEADER] = request_id
        # A streaming body is produced after this returns and must still log with the
        # request's ids, so they stay bound; under ASGI each request runs in its own task
        # context, and the values go away with it.
        if not response.streaming:
            unbind_request(tokens)
        return response
