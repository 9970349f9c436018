"""Content-Security-Policy for the pages that run our own JavaScript with a staff session.

The admin trace viewer (its views are named in ``CSP_VIEW_NAMES``) loads only local ES
modules and stylesheets and reads data from /graphql/ on the same origin, so its policy
allows nothing else: no inline script or style attribute, no other origin, no framing. An
injected ``<script>`` or ``onerror=`` in span data would not run even if escaping failed.
(Django 5.2 has no CSP support of its own; 6.0's ``SECURE_CSP`` would replace this.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

HEADER = "Content-Security-Policy"
POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Django's admin stylesheets draw a few icons from data: URIs.
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# URL names (tracing/urls.py) of the viewer's pages.
CSP_VIEW_NAMES = frozenset({"agent_traces", "agent_trace_detail"})


def _apply(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.view_name in CSP_VIEW_NAMES and HEADER not in response:
        response[HEADER] = POLICY
    return response


class ContentSecurityPolicyMiddleware:
    """Sets ``POLICY`` on responses of the views in ``CSP_VIEW_NAMES``. Sync and async
    capable, so Django never adapts it onto a thread."""

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
        return _apply(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        return _apply(request, await get_response(request))
