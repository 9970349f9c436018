"""Django's own middleware, with the hooks that cannot block run on the event loop.

Under ASGI, Django runs every hook of a ``MiddlewareMixin`` middleware (``process_request``,
``process_response``) through ``sync_to_async``: a hop to the request's thread and back for
each, 13 per request for the stack in ``settings.MIDDLEWARE`` — more time than the rest of
a small GraphQL request. Most of those hooks only read headers and cookies and set headers.
The subclasses here run such hooks directly and hand to the request's thread, as Django
does, only the work that may touch the database: saving a modified session, storing
messages (which may load the session), reading a POST body for the CSRF check.

``settings.MIDDLEWARE`` keeps Django's own names (the deploy checks look for them);
``ASGIHandler``, the handler ``campus_core/asgi.py`` serves, loads each of them that has a
subclass here (``ON_THE_LOOP``) as that subclass. The WSGI test client keeps Django's.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.http import HttpRequest, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class _OnTheLoop:
    """Runs ``process_request`` on the event loop, and ``process_response`` too unless
    ``response_may_block`` says it may touch the database (then on the request's thread,
    as Django would). For middleware whose ``process_request`` never blocks."""

    get_response: Any
    async_mode: bool

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self._acall_on_loop(request)
        return super().__call__(request)  # type: ignore[misc]

    def response_may_block(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return False

    async def _acall_on_loop(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        process_request = getattr(self, "process_request", None)
        if process_request is not None:
            response = process_request(request)
        response = response or await self.get_response(request)
        process_response = getattr(self, "process_response", None)
        if process_response is not None:
            if self.response_may_block(request, response):
                response = await sync_to_async(process_response, thread_sensitive=True)(
                    request, response
                )
            else:
                response = process_response(request, response)
        return response


class Security(_OnTheLoop, SecurityMiddleware):
    """Headers and the HTTPS redirect: nothing that blocks."""


class Sessions(_OnTheLoop, SessionMiddleware):
    """``process_request`` makes a lazy session (no query); saving one that was modified
    is a query, so that response goes to the request's thread."""

    def response_may_block(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (
            bool(session.modified) or settings.SESSION_SAVE_EVERY_REQUEST
        )


class Common(_OnTheLoop, CommonMiddleware):
    """User-agent refusals, the slash redirect (a URL resolution), Content-Length."""


class Csrf(_OnTheLoop, CsrfViewMiddleware):
    """The CSRF cookie is read and set on the loop (a cookie, not the session, holds it:
    with ``CSRF_USE_SESSIONS`` every hook goes to the thread). The check of an unsafe
    request to a protected view reads its POST body: on the thread."""

    def __call__(self, request: HttpRequest) -> Any:
        if settings.CSRF_USE_SESSIONS:
            return CsrfViewMiddleware.__call__(self, request)
        return super().__call__(request)

    async def process_view(  # type: ignore[override]
        self, request: HttpRequest, callback: Any, callback_args: Any, callback_kwargs: Any
    ) -> HttpResponseBase | None:
        # Django calls a coroutine process_view as it is under ASGI (and through
        # async_to_sync under WSGI).
        check = super().process_view
        if (
            request.method in SAFE_METHODS
            or getattr(callback, "csrf_exempt", False)
            or getattr(request, "csrf_processing_done", False)
        ) and not settings.CSRF_USE_SESSIONS:
            return check(request, callback, callback_args, callback_kwargs)
        return await sync_to_async(check, thread_sensitive=True)(
            request, callback, callback_args, callback_kwargs
        )


class Authentication(_OnTheLoop, AuthenticationMiddleware):
    """Sets the lazy ``request.user`` / ``request.auser``: no query until they are used."""


class Messages(_OnTheLoop, MessageMiddleware):
    """Makes the (lazy) message storage on the loop; storing messages that were read or
    added may load and write the session: on the thread."""

    def response_may_block(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class XFrameOptions(_OnTheLoop, XFrameOptionsMiddleware):
    """One response header."""


# Django's middleware (as named in settings.MIDDLEWARE) -> the subclass loaded under ASGI.
ON_THE_LOOP = {
    "django.middleware.security.SecurityMiddleware": "campus_core.middleware.Security",
    "django.contrib.sessions.middleware.SessionMiddleware": "campus_core.middleware.Sessions",
    "django.middleware.common.CommonMiddleware": "campus_core.middleware.Common",
    "django.middleware.csrf.CsrfViewMiddleware": "campus_core.middleware.Csrf",
    "django.contrib.auth.middleware.AuthenticationMiddleware": (
        "campus_core.middleware.Authentication"
    ),
    "django.contrib.messages.middleware.MessageMiddleware": "campus_core.middleware.Messages",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": (
        "campus_core.middleware.XFrameOptions"
    ),
}


class ASGIHandler(DjangoASGIHandler):
    """Django's ASGI handler, with each middleware of ``settings.MIDDLEWARE`` that has an
    on-the-loop subclass (``ON_THE_LOOP``) loaded as that subclass."""

    def load_middleware(self, is_async: bool = False) -> None:
        named = settings.MIDDLEWARE
        settings.MIDDLEWARE = [ON_THE_LOOP.get(path, path) for path in named]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = named
