"""Log correlation: the request context every log line carries, and the JSON line format.

``RequestIdFilter`` stamps each record with ``trace_id`` / ``span_id`` (from the current
OpenTelemetry span, so the same id as the admin's trace and Sentry's trace field),
``request_id`` and ``user_id`` (from context variables the request middleware sets).
``json_formatter`` builds the python-json-logger formatter the ``LOGGING`` setting uses.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# Set per request by campus_core.observability.middleware; context variables, so each
# ASGI request task (and what it awaits, streaming included) sees its own values.
request_id_var: ContextVar[str | None] = ContextVar("campuscore_request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("campuscore_user_id", default=None)

CONTEXT_FIELDS = ("trace_id", "span_id", "request_id", "user_id")
JSON_FIELDS = ("levelname", "name", "message", *CONTEXT_FIELDS)
# The OTel logging instrumentation adds these too; our own fields already say the same.
_DUPLICATE_ATTRS = ("otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName", "taskName")


def bind_request(request_id: str | None, user_id: str | None) -> tuple[Token, Token]:
    return request_id_var.set(request_id), user_id_var.set(user_id)


def unbind_request(tokens: tuple[Token, Token]) -> None:
    request_id_var.reset(tokens[0])
    user_id_var.reset(tokens[1])


class RequestIdFilter(logging.Filter):
    """Adds the correlation fields to every record; never drops one.

    Values a caller passed explicitly (``extra={"trace_id": ...}``) are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            trace_id: str | None = format(context.trace_id, "032x")
            span_id: str | None = format(context.span_id, "016x")
        else:
            trace_id = span_id = None
        values = {
            "trace_id": trace_id,
            "span_id": span_id,
            "request_id": request_id_var.get(),
            "user_id": user_id_var.get(),
        }
        for key, value in values.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def json_formatter() -> JsonFormatter:
    """One JSON object a line: timestamp, level, logger, message, the correlation fields,
    then whatever ``extra`` the call passed."""
    return JsonFormatter(
        list(JSON_FIELDS),
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
        reserved_attrs=[*RESERVED_ATTRS, *_DUPLICATE_ATTRS],
    )
