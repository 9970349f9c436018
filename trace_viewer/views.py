"""The staff trace viewer at /admin/agent-traces/ (runs, and the Spans tab at
/admin/agent-traces/spans/): page shells only.

These views render the admin chrome (header, breadcrumbs) and hand the browser the URLs
it needs; every trace, span and filter option is then read by the page's ES modules from
the GraphQL endpoint with the staff session, exactly as an external dashboard would. There
is deliberately no query of OTelTrace/OTelSpan here: one read path, one permission model.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from opentelemetry.trace import StatusCode

from tracing.conventions.semconv import SpanCategory

# The endpoint the GraphQL contract names; used if graphql_api gives its route no name.
GRAPHQL_PATH = "/graphql/"
# Admin URLs need an object id; the page substitutes the real one for this marker.
ID_PLACEHOLDER = "__id__"


def _graphql_url() -> str:
    try:
        return reverse("graphql")
    except NoReverseMatch:
        return GRAPHQL_PATH


def _page_context(request: HttpRequest, title: str) -> dict[str, object]:
    config = {
        "graphqlUrl": _graphql_url(),
        # The API checks CSRF on POST like any session-authenticated endpoint.
        "csrfToken": get_token(request),
        # The API answers 429 past this many requests in flight per user: a page opens
        # several queries at once (list, stats, options, ...), so it keeps below it.
        "maxInFlight": settings.GRAPHQL_MAX_IN_FLIGHT_PER_USER,
        "listUrl": reverse("agent_traces"),
        "spanListUrl": reverse("agent_spans"),
        "traceUrlTemplate": reverse("agent_trace_detail", args=["0" * 32]).replace(
            "0" * 32, ID_PLACEHOLDER
        ),
        "conversationUrlTemplate": reverse("admin:chat_conversation_change", args=[ID_PLACEHOLDER]),
        "messageUrlTemplate": reverse("admin:chat_message_change", args=[ID_PLACEHOLDER]),
        "idPlaceholder": ID_PLACEHOLDER,
    }
    return {**admin.site.each_context(request), "title": title, "viewer_config": config}


def trace_list(request: HttpRequest) -> HttpResponse:
    return TemplateResponse(
        request, "admin/agent_traces.html", _page_context(request, "Agent traces")
    )


def span_list(request: HttpRequest) -> HttpResponse:
    context = _page_context(request, "Agent spans")
    # The SpanKind and SpanStatus values of the schema, for the filter dropdowns.
    context["span_kinds"] = [category.name for category in SpanCategory]
    context["span_statuses"] = [code.name for code in StatusCode]
    return TemplateResponse(request, "admin/agent_spans.html", context)


def trace_detail(request: HttpRequest, trace_id: str) -> HttpResponse:
    # The URL pattern admits only 32 hex digits; the API spells ids in lowercase. Whether
    # the id names a stored trace is the page's to report, learnt from the API.
    trace_id = trace_id.lower()
    context = _page_context(request, f"Trace {trace_id}")
    context["trace_id"] = trace_id
    return TemplateResponse(request, "admin/agent_trace_detail.html", context)


# admin_view: staff only (others go to the admin login with ?next=), never cached, and the
# same CSRF handling as every other admin page.
trace_list_view = admin.site.admin_view(trace_list)
trace_detail_view = admin.site.admin_view(trace_detail)
span_list_view = admin.site.admin_view(span_list)
