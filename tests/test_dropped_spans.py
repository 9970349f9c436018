"""Spans lost on the write path are counted in one metric and logged with their number.

A burst larger than a small queue goes through the production pipeline
(``tracing.pipeline.build_provider``) into PostgreSQL; what the test sent minus what was
stored is exactly what ``tracing.spans.dropped`` and the log lines report.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.metric_support import counter_by
from tests.pg_proxy import PostgresProxy
from tests.spans import agent_run_spans
from tracing.export import PostgresSpanExporter
from tracing.export.drops import METRIC
from tracing.models import OTelSpan
from tracing.pipeline import build_provider
from tracing.pipeline.tagger import enter_agent_run, exit_agent_run

pytestmark = pytest.mark.django_db(transaction=True)

_DROPPED = re.compile(r"tracing dropped (\d+) spans \(reason=(\w+)\)")


def _logged(caplog: pytest.LogCaptureFixture) -> dict[str, int]:
    totals: dict[str, int] = {}
    for record in caplog.records:
        if match := _DROPPED.match(record.getMessage()):
            totals[match[2]] = totals.get(match[2], 0) + int(match[1])
    return totals


def test_a_burst_beyond_the_queue_is_counted_exactly(
    settings: Any, reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    settings.TRACING_MAX_QUEUE_SIZE = 64
    settings.TRACING_MAX_EXPORT_BATCH_SIZE = 64
    provider = build_provider(PostgresSpanExporter())
    tracer = provider.get_tracer("tests")
    sent = 2_000
    with caplog.at_level(logging.ERROR, logger="tracing.export.drops"):
        token = enter_agent_run()
        try:
            for i in range(sent):
                tracer.start_span(f"invoke_agent burst{i}").end()
        finally:
            exit_agent_run(token)
        assert provider.force_flush()
        provider.shutdown()

    lost = sent - OTelSpan.objects.count()
    assert lost > 0, "the burst should overflow a 64-span queue"
    assert counter_by(reader, METRIC, "reason") == {"queue_full": lost}
    assert _logged(caplog) == {"queue_full": lost}


def test_spans_outside_agent_runs_never_take_room_in_the_queue(
    settings: Any, reader: InMemoryMetricReader
) -> None:
    settings.TRACING_MAX_QUEUE_SIZE = 8
    settings.TRACING_MAX_EXPORT_BATCH_SIZE = 8
    provider = build_provider(PostgresSpanExporter())
    tracer = provider.get_tracer("tests")
    for i in range(500):
        tracer.start_span(f"GET /static/{i}").end()
    assert provider.force_flush()
    provider.shutdown()
    assert OTelSpan.objects.count() == 0
    assert counter_by(reader, METRIC, "reason") == {}


def test_the_exporter_buffer_overflow_lands_in_the_same_metric(
    proxy: PostgresProxy, reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = PostgresSpanExporter(
        conninfo=proxy.conninfo,
        keep_untagged=True,
        max_buffered_spans=5,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.1,
        connect_timeout_seconds=1,
    )
    proxy.down()
    spans = agent_run_spans()
    with caplog.at_level(logging.ERROR, logger="tracing.export.drops"):
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        proxy.up()
        assert exporter.force_flush(10_000)
        exporter.shutdown()
    lost = len(spans) - OTelSpan.objects.count()
    assert lost == len(spans) - 5
    assert counter_by(reader, METRIC, "reason") == {"buffer_full": lost}
    assert _logged(caplog) == {"buffer_full": lost}
