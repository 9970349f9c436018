"""The ``/graphql/`` endpoint: strawberry's AsyncGraphQLView behind ``authenticate``.

GraphiQL is served to staff who open the URL in a browser; anonymous browsers are sent to
the admin login first.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.csrf import get_token
from django.templatetags.static import static
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import AsyncGraphQLView

from campus_core.db_router import replica_reads
from graphql_api.context import Context, build_context
from graphql_api.permissions import authenticate

UNPKG = "https://unpkg.com/"


def _wants_html(request: HttpRequest) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


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
        with replica_reads():
            return await super().dispatch(request, *args, **kwargs)

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
