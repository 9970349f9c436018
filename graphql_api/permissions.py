"""Who may query: staff users, by session or by API token.

Two layers. The view (``authenticate``) refuses anonymous and non-staff callers with an
HTTP 401/403 before any GraphQL runs, and enforces CSRF on session POSTs; a token's user
becomes the request's user, in the log lines too. Every root field
also carries ``STAFF_ONLY`` (strawberry-django's ``IsStaff``, raising rather than returning
null), so the schema stays closed when executed outside the view.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from strawberry.extensions.field_extension import FieldExtension
from strawberry_django.permissions import IsStaff

from campus_core.observability.logging_filters import user_id_var
from graphql_api.models import TokenScope
from graphql_api.token_cache import accepted

MSG_STAFF_ONLY = "Staff only: sign in as a staff user or send an API token."
MSG_NOT_STAFF = "Permission denied: the GraphQL API is for staff users only."
MSG_BAD_TOKEN = "Invalid or revoked API token."
MSG_BAD_AUTH_HEADER = "Malformed Authorization header: expected 'Bearer <token>'."
MSG_WRONG_SCOPE = "This API token may only ingest spans (POST /v1/traces); use a read token."


def staff_only() -> list[FieldExtension]:
    """The permission extension of every root field."""
    return [IsStaff(message=MSG_NOT_STAFF, fail_silently=False)]


def json_error(status: int, message: str, **headers: str) -> HttpResponse:
    """A refusal of the request itself, in the shape of a GraphQL error response."""
    response = HttpResponse(
        json.dumps({"errors": [{"message": message}]}),
        status=status,
        content_type="application/json",
    )
    for name, value in headers.items():
        response[name] = value
    return response


def _csrf_failure(request: HttpRequest) -> HttpResponse | None:
    def ok(_request: HttpRequest) -> HttpResponse:  # never called: only the check runs
        return HttpResponse()

    return CsrfViewMiddleware(ok).process_view(request, ok, (), {})


def uses_token(request: HttpRequest) -> bool:
    """Whether the caller authenticated (or tried to) with an API token, not the session."""
    return bool(request.headers.get("Authorization"))


async def authenticate(request: HttpRequest) -> HttpResponse | None:
    """None when the caller may query (``request.user`` then set), else the refusal."""
    if uses_token(request):
        header = request.headers["Authorization"]
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return json_error(401, MSG_BAD_AUTH_HEADER, **{"WWW-Authenticate": "Bearer"})
        grant = await accepted(secret.strip())
        if grant is None:
            return json_error(401, MSG_BAD_TOKEN, **{"WWW-Authenticate": "Bearer"})
        scope, user = grant
        if scope != TokenScope.READ:
            return json_error(403, MSG_WRONG_SCOPE)
        request.user = user
        # The request middleware bound the (anonymous) session user to the log context.
        user_id_var.set(str(user.pk))
        # A bearer token is not an ambient credential: cross-site forgery cannot send it.
        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        return None

    session_user: Any = await request.auser()
    if session_user is None or isinstance(session_user, AnonymousUser):
        return json_error(401, MSG_STAFF_ONLY, **{"WWW-Authenticate": "Bearer"})
    if not session_user.is_active or not session_user.is_staff:
        return json_error(403, MSG_NOT_STAFF)
    if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
        failure = _csrf_failure(request)
        if failure is not None:
            return json_error(403, "CSRF verification failed: send the X-CSRFToken header.")
    return None
