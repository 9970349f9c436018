"""The write path's last step: agent spans → OTelSpan rows and OTelTrace summaries.

``exporter`` (the SpanExporter API, buffer and retry), ``rows`` (span → storable row),
``summary`` (the one per-trace summary rule set and its SQL), ``writer`` (one batch into
PostgreSQL), ``drops`` (the one count of spans lost on the way).
"""

from tracing.export.exporter import ExporterStats, PostgresSpanExporter
from tracing.export.rows import TRUNCATION_MARKER
from tracing.export.writer import conninfo_for

__all__ = ["TRUNCATION_MARKER", "ExporterStats", "PostgresSpanExporter", "conninfo_for"]
