"""ASGI entry point: the Django app wrapped in OpenTelemetryMiddleware, and OTLP ingest.

``POST /v1/traces`` (tracing/ingest/) is routed before the middleware: ingest is not a
Django view and does not trace itself.

The request span is opened here, in the async context, so every coroutine below it
(async views, streaming generators, the agent loop) sees it as current. DjangoInstrumentor
is deliberately not used: its sync middleware loses the span across sync_to_async.
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "campus_core.settings")
# A long-running server reuses pooled connections (see DATABASE_POOL in settings).
os.environ.setdefault("DATABASE_POOL", "true")

import django
from asgiref.sync import sync_to_async
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousFileOperation
from django.core.handlers.exception import response_for_exception
from django.http import Http404, HttpRequest, HttpResponseBase
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

django.setup(set_prefix=False)

from campus_core.middleware import ASGIHandler  # noqa: E402

# Django's ASGI handler, with its middleware's non-blocking hooks run on the event loop.
django_application = ASGIHandler()


class StaticFiles(ASGIStaticFilesHandler):
    """Django's static file handler, answering a path that climbs out of the static
    folders (``/static/..%2f..%2fsettings.py``) with a 404 like any other missing file:
    Django's handler lets SuspiciousFileOperation escape as a 500."""

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        try:
            return await super().get_response_async(request)
        except SuspiciousFileOperation:
            return await sync_to_async(response_for_exception, thread_sensitive=False)(
                request, Http404("No such static file.")
            )


from campus_core.observability.request_context import FreshContextPerRequest  # noqa: E402
from campus_core.request_threads import (  # noqa: E402
    RequestThreads,
    start_requests_without_a_hop,
)
from tracing.ingest.app import OtlpRouter  # noqa: E402
from tracing.pipeline import init_telemetry  # noqa: E402

init_telemetry()

from tracing.export import conninfo_for  # noqa: E402
from tracing.retention import MaintenanceThread  # noqa: E402

# The coming days' span partitions now and every hour, and the retention prune (at most
# hourly, unless TRACE_PRUNE_SCHEDULE=off): no separate scheduler to run.
MaintenanceThread(conninfo_for()).start()
# Each Django request starts from an empty context, so no span, agent-run mark or log
# binding of an earlier request on the same connection can become its parent. OTLP ingest
# sits in front: it opens no span and binds nothing. The request's server span only: the
# middleware would also open an internal span for every ASGI message received or sent
# ("http receive", "http send"; three for a small request, one per chunk of a streamed
# answer), which no reader uses. A request's sync code runs on a thread kept from earlier
# requests, not on a new one, and the request-started signal does not hop to it
# (campus_core/request_threads.py).
start_requests_without_a_hop()
application = OtlpRouter(
    FreshContextPerRequest(
        OpenTelemetryMiddleware(
            RequestThreads(StaticFiles(django_application)), exclude_spans=["receive", "send"]
        )
    )
)

# Everything imported so far lives as long as the process: moving it out of the collector's
# generations keeps full collections short (they showed as p95 spikes of ~55 ms per request).
gc.freeze()
