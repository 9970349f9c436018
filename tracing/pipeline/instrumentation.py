"""OpenTelemetry auto-instrumentation of psycopg, httpx and stdlib logging.

Off under pytest unless ``OTEL_INSTRUMENT_IN_TESTS=1``: the psycopg instrumentor wraps every
cursor, which slows the suite. The exporter's own writes never produce spans either way
(it suppresses instrumentation around them).
"""

from __future__ import annotations

import logging
import os
import sys

from django.conf import settings

logger = logging.getLogger(__name__)
_instrumented = False


def running_under_pytest() -> bool:
    return "PYTEST_CURRENT_TEST" in os.environ or "pytest" in sys.modules


def enable_auto_instrumentation(force: bool = False) -> bool:
    """Instrument psycopg, httpx and logging once per process; returns whether it did."""
    global _instrumented
    if _instrumented:
        return True
    if running_under_pytest() and not (force or settings.OTEL_INSTRUMENT_IN_TESTS):
        return False
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.logging import LoggingInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    PsycopgInstrumentor().instrument(enable_commenter=False, skip_dep_check=True)
    HTTPXClientInstrumentor().instrument()
    # set_logging_format=False: our own logging config decides the format.
    LoggingInstrumentor().instrument(set_logging_format=False)
    _instrumented = True
    logger.debug("auto-instrumentation enabled (psycopg, httpx, logging)")
    return True
