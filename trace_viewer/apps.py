"""The trace viewer app's configuration."""

from django.apps import AppConfig


class TraceViewerConfig(AppConfig):
    name = "trace_viewer"
    verbose_name = "Agent trace viewer"
