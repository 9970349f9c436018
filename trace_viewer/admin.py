"""Admin integration of the trace viewer.

Agent traces are browsed in the viewer (/admin/agent-traces/), which reads them through
GraphQL. Registering OTelTrace here only gives it its usual place in the admin index and
app list; its changelist and change pages forward to the viewer rather than offering a
second, ORM-backed way to read (or edit) what the exporter owns.
"""

from __future__ import annotations

import re

from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from tracing.models import OTelTrace


@admin.register(OTelTrace)
class OTelTraceAdmin(admin.ModelAdmin):
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, object] | None = None
    ) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("agent_traces"))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, object] | None = None,
    ) -> HttpResponseRedirect:
        # The admin quotes primary keys; a UUID has nothing to quote, so its hex is the id.
        trace_id = object_id.replace("-", "").lower()
        if not re.fullmatch(r"[0-9a-f]{32}", trace_id):
            return HttpResponseRedirect(reverse("agent_traces"))
        return HttpResponseRedirect(reverse("agent_trace_detail", args=[trace_id]))

    # Traces are written by the exporter only.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False
