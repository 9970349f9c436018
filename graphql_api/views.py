"""The ``/graphql/`` endpoint: strawberry's AsyncGraphQLView behind ``authenticate``.

GraphiQL is served to staff who open the URL in a browser; anonymous browsers are sent to
the admin login first. Queries run over POST; over GET only for API tokens, since a
cross-site link carries the session cookie but can never carry an Authorization header.
A user has at most ``GRAPHQL_MAX_IN_FLIGHT_PER_USER`` requests in flight (more: 429).
Every operation runs under a wall-clock cap (``GRAPHQL_OPERATION_TIMEOUT_S``) and a result
size cap (``graphql_api.execution``); every refusal of the request itself (bad JSON, wrong
content type, GET with a session) is a JSON error with a 4xx status.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import orjson
import psycopg
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.csrf import get_token
from django.templatetags.static import static
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphql import GraphQLError
from strawberry.django.views import AsyncGraphQLView, TemporalHttpResponse
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from campus_core.db_router import read_alias, replica_reads
from campus_core.request_threads import thread_connection
from graphql_api.context import Context, build_context
from graphql_api.execution import ResultTooLarge, bounded
from graphql_api.permissions import authenticate, json_error, uses_token

logger = logging.getLogger(__name__)

UNPKG = "https://unpkg.com/"

MSG_GET_NEEDS_TOKEN = (
    "Queries over GET need an API token (Authorization: Bearer); "
    "with a session, send them by POST with the X-CSRFToken header."
)
MSG_BAD_JSON = "The request body is not valid JSON (UTF-8, nested at most 1,024 levels)."
MSG_NOT_AN_OBJECT = 'Expected a JSON object ({{"query": ...}}), got {kind}.'
MSG_BODY_TOO_LARGE = "The request body is too large."
MSG_TOO_MANY = (
    "Too many GraphQL requests in flight for this user (at most {limit} at once); "
    "retry when one has been answered."
)
# GraphQL requests in flight per user id, in this process (only the event loop touches it).
_in_flight: Counter[int | None] = Counter()


def _wants_html(request: HttpRequest) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


def timeout_message(seconds: float) -> str:
    return (
        f"The operation was cancelled after {seconds:g} s (GRAPHQL_OPERATION_TIMEOUT_S): "
        "ask for fewer rows or fields."
    )


async def _cancel_statement(db: BaseDatabaseWrapper) -> None:
    raw = db.connection
    if raw is None:
        return
    try:
        await asyncio.to_thread(raw.cancel_safe)
    except psycopg.Error:
        logger.warning("Could not cancel the statement of a stopped GraphQL operation")


# CSRF is checked by ``authenticate`` for session callers only (token callers are exempt).
@method_decorator(csrf_exempt, name="dispatch")
class GraphQLView(AsyncGraphQLView[Context, None]):
    async def dispatch(  # type: ignore[override]
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        refusal = await authenticate(request)
        if refusal is not None:
            if (
                refusal.status_code == 401
                and _wants_html(request)
                and not request.headers.get("Authorization")
            ):
                return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
            return refusal
        if (
            request.method == "GET"
            and not uses_token(request)
            and not self.should_render_graphql_ide(self.request_adapter_class(request))
        ):
            return json_error(405, MSG_GET_NEEDS_TOKEN, Allow="POST")
        user_id = request.user.pk
        limit = settings.GRAPHQL_MAX_IN_FLIGHT_PER_USER
        if _in_flight[user_id] >= limit:
            return json_error(429, MSG_TOO_MANY.format(limit=limit), **{"Retry-After": "1"})
        _in_flight[user_id] += 1
        try:
            with replica_reads():
                return await self.run(request=request)
        except HTTPException as error:
            # strawberry answers these in text/plain; every refusal here is JSON.
            return json_error(error.status_code, error.reason)
        except RequestDataTooBig:
            return json_error(413, MSG_BODY_TOO_LARGE)
        finally:
            _in_flight[user_id] -= 1
            if not _in_flight[user_id]:
                del _in_flight[user_id]

    def decode_json(self, data: str | bytes) -> object:
        # orjson refuses invalid UTF-8 and nesting beyond 1,024 levels with a
        # JSONDecodeError, where json.loads raised UnicodeDecodeError / RecursionError (500s).
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise HTTPException(400, MSG_BAD_JSON) from error
        # A request body, and the variables / extensions of a GET, are JSON objects; a list
        # is a batch, which strawberry refuses itself.
        if not isinstance(decoded, dict | list):
            raise HTTPException(400, MSG_NOT_AN_OBJECT.format(kind=type(decoded).__name__))
        return decoded

    async def execute_operation(  # type: ignore[override]
        self,
        request: HttpRequest,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: TemporalHttpResponse,
    ) -> Any:
        seconds = settings.GRAPHQL_OPERATION_TIMEOUT_S
        # The request's database work all runs on one thread (Django's per-request
        # thread-sensitive executor), with that thread's connection. A statement still
        # running at the cap must be cancelled in PostgreSQL too: it holds that thread, and
        # the middleware that runs there would hold the response until it finished.
        # The reads' connection: the replica's when one is configured (campus_core/db_router).
        db = await thread_connection(read_alias())
        try:
            return await bounded(
                super().execute_operation(
                    request, request_adapter, request_data, context, root_value, sub_response
                ),
                seconds,
            )
        except (TimeoutError, ResultTooLarge) as stopped:
            message = str(stopped) or timeout_message(seconds)
            logger.warning("GraphQL operation stopped: %s", message)
            await _cancel_statement(db)
            return ExecutionResult(data=None, errors=[GraphQLError(message)])

    def encode_json(self, data: object) -> str | bytes:
        # A 1,000-span trace is half a megabyte of JSON: orjson writes it ~10x faster.
        try:
            return orjson.dumps(data)
        except TypeError:  # e.g. an integer beyond 64 bits in a span attribute
            return super().encode_json(data)

    async def get_context(self, request: HttpRequest, response: HttpResponse) -> Context:  # type: ignore[override]
        return build_context(request, response)

    @property
    def graphql_ide_html(self) -> str:  # type: ignore[override]
        # The same files strawberry pins (same SRI hashes), served from our static folder:
        # GraphiQL must work where unpkg is unreachable.
        return super().graphql_ide_html.replace(UNPKG, static("graphql_api/graphiql/"))

    async def render_graphql_ide(self, request: HttpRequest) -> HttpResponse:
        get_token(request)  # sets the csrftoken cookie GraphiQL sends back as X-CSRFToken
        return await super().render_graphql_ide(request)
