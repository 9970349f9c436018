"""URLs of the staff trace viewer.

Included from campus_core/urls.py before ``admin/``, so these paths win over the admin
site's catch-all (which would otherwise answer /admin/agent-traces/ with a 404).
"""

from django.urls import path, re_path

from trace_viewer import views as viewer

urlpatterns = [
    path("admin/agent-traces/", viewer.trace_list_view, name="agent_traces"),
    path("admin/agent-traces/spans/", viewer.span_list_view, name="agent_spans"),
    re_path(
        r"^admin/agent-traces/(?P<trace_id>[0-9a-fA-F]{32})/$",
        viewer.trace_detail_view,
        name="agent_trace_detail",
    ),
]
