"""Agent traces: the OpenTelemetry pipeline that writes them and the models that hold them.

``init_tracing`` / ``shutdown_tracing`` / ``get_tracer`` are the public entry points.
"""

from tracing.tracer import get_tracer, init_tracing, shutdown_tracing

__all__ = ["get_tracer", "init_tracing", "shutdown_tracing"]
