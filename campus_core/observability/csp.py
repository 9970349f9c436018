"""Content-Security-Policy for the pages that run JavaScript with a staff session.

The admin trace viewer (its views are named in ``CSP_VIEW_NAMES``) loads only local ES
modules and stylesheets and reads data from /graphql/ on the same origin, so its policy
allows nothing else: no inline script or style attribute, no other origin, no framing. An
injected ``<script>`` or ``onerror=`` in span data would not run even if escaping failed.

GraphiQL's page (strawberry's ``graphiql.html``, served from vendored files) has one inline
``<script>`` and one inline ``<style>``: its policy is the same plus the SHA-256 of exactly
those two blocks, computed from strawberry's file (the page holds no request data), so any
other inline code is refused there too.
(Django 5.2 has no CSP support of its own; 6.0's ``SECURE_CSP`` would replace this.)
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

HEADER = "Content-Security-Policy"


def _policy(*, script_hashes: tuple[str, ...] = (), style_hashes: tuple[str, ...] = ()) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(["script-src 'self'", *script_hashes]),
            " ".join(["style-src 'self'", *style_hashes]),
            # Django's admin and GraphiQL's stylesheets draw icons and fonts from data: URIs.
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


POLICY = _policy()
# URL names (trace_viewer/urls.py) of the viewer's pages, and of /graphql/ (graphql_api/urls.py).
CSP_VIEW_NAMES = frozenset({"agent_traces", "agent_spans", "agent_trace_detail"})
GRAPHIQL_VIEW_NAMES = frozenset({"graphql"})
# An inline block is a <script> or <style> tag without attributes (a src= script is a file).
_INLINE_BLOCK = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def _source_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


@functools.cache
def graphiql_policy() -> str:
    from strawberry.http.ides import get_graphql_ide_html

    blocks = _INLINE_BLOCK.findall(get_graphql_ide_html("graphiql"))
    return _policy(
        script_hashes=tuple(_source_hash(body) for tag, body in blocks if tag == "script"),
        style_hashes=tuple(_source_hash(body) for tag, body in blocks if tag == "style"),
    )


def _apply(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    match = getattr(request, "resolver_match", None)
    if match is None or HEADER in response:
        return response
    if match.view_name in CSP_VIEW_NAMES:
        response[HEADER] = POLICY
    elif match.view_name in GRAPHIQL_VIEW_NAMES and response.get("Content-Type", "").startswith(
        "text/html"
    ):
        response[HEADER] = graphiql_policy()
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
