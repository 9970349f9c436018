"""PostgresSpanExporter against a real PostgreSQL: idempotence, multi-batch exactness,
legacy names, bad values, outages, overflow, shutdown and no feedback loop."""

from __future__ import annotations

import logging
import math
import threading
import uuid
from typing import Any

import psycopg
import pytest
from django.conf import settings
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from tests.graphql_support import T0, SpanWriter
from tests.other_services import PHOENIX_SERVICE, service
from tests.pg_proxy import PostgresProxy
from tests.spans import agent_run_spans, recording_provider
from tests.waiting import wait_for
from tracing.conventions import attributes as A
from tracing.export import TRUNCATION_MARKER, PostgresSpanExporter, conninfo_for
from tracing.export.rows import span_to_row
from tracing.export.summary import INSERT_FRESH_TRACES, delta_params, summarize
from tracing.export.writer import StagedWriter, copy_spans, write_rows
from tracing.models import SUMMARY_COLUMNS, AgentStatus, OTelSpan, OTelTrace
from tracing.pipeline.tagger import AgentRunTaggerProcessor, enter_agent_run, exit_agent_run

pytestmark = pytest.mark.django_db(transaction=True)


def summary(trace_id: Any, fields: tuple[str, ...] = SUMMARY_COLUMNS) -> dict[str, Any]:
    return OTelTrace.objects.values(*fields).get(pk=trace_id)


def trace_id_of(spans: list[ReadableSpan]) -> Any:
    import uuid

    return uuid.UUID(int=spans[0].context.trace_id)


def root_of(spans: list[ReadableSpan]) -> ReadableSpan:
    return next(s for s in spans if s.parent is None)


def test_all_at_once_summary_is_exact(db_exporter: PostgresSpanExporter) -> None:
    spans = agent_run_spans(tokens=((100, 10), (50, 5), (7, 3)), tools=("b_tool", "a_tool"))
    assert db_exporter.export(spans) is SpanExportResult.SUCCESS

    got = summary(trace_id_of(spans))
    root = root_of(spans)
    assert got["query"] == "When does the library open?"
    assert got["status"] == "completed"
    assert got["model"] == "gpt-test"
    assert got["total_input_tokens"] == 157 and got["total_output_tokens"] == 18
    assert got["iteration_count"] == 3
    assert got["tool_call_count"] == 2
    assert got["tools_used"] == ["a_tool", "b_tool"]
    assert got["span_count"] == len(spans) == OTelSpan.objects.count()
    assert got["root_span_id"] == format(root.context.span_id, "016x")
    assert root.end_time is not None and root.start_time is not None
    assert got["total_duration_ms"] == pytest.approx((root.end_time - root.start_time) / 1e6)
    assert db_exporter.stats.spans_written == len(spans)


@pytest.mark.parametrize("order", ["root_last", "reversed", "interleaved"])
def test_multi_batch_gives_the_same_summary(db_exporter: PostgresSpanExporter, order: str) -> None:
    spans = agent_run_spans()
    tid = trace_id_of(spans)
    db_exporter.export(spans)
    expected = summary(tid)
    OTelTrace.objects.all().delete()

    root = root_of(spans)
    rest = [s for s in spans if s is not root]
    if order == "root_last":
        batches = [rest[:3], rest[3:7], rest[7:], [root]]
    elif order == "reversed":
        batches = [[s] for s in reversed(spans)]
    else:
        batches = [rest[1::2], [root], rest[0::2]]
    for batch in batches:
        assert db_exporter.export(batch) is SpanExportResult.SUCCESS
    assert summary(tid) == expected


def test_two_writers_starting_the_same_trace_at_once_give_the_same_summary(
    db_exporter: PostgresSpanExporter,
) -> None:
    # given one run's summary written at once
    spans = agent_run_spans()
    tid = trace_id_of(spans)
    db_exporter.export(spans)
    expected = summary(tid)
    OTelTrace.objects.all().delete()
    OTelSpan.objects.all().delete()
    cap = settings.TRACING_MAX_ATTRIBUTE_BYTES
    root = root_of(spans)
    first = [span_to_row(s, cap) for s in spans if s is not root]
    second = [span_to_row(root, cap)]
    # when a first writer has inserted the new trace but not committed yet
    with psycopg.connect(conninfo_for()) as holder, psycopg.connect(conninfo_for()) as other:
        with holder.cursor() as cur:
            copy_spans(cur, first)
            cur.execute(INSERT_FRESH_TRACES, delta_params(summarize(first)))
        # and a second writer writes the rest of the trace: it waits on the first's row
        done: list[list[Any]] = []
        writer = threading.Thread(
            target=lambda: done.append(write_rows(other, second, StagedWriter()))
        )
        writer.start()
        pid = other.info.backend_pid

        def waiting_on_the_lock() -> bool:
            with psycopg.connect(conninfo_for()) as conn:
                row = conn.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone()
            return row is not None and row[0] == "Lock"

        wait_for(waiting_on_the_lock, "the second writer to wait on the first's trace row")
        holder.commit()
        writer.join(60)
    # then the second writer advanced the row the first inserted: the same summary
    assert done == [second]
    assert summary(tid) == expected


def test_exporting_twice_creates_no_duplicates(db_exporter: PostgresSpanExporter) -> None:
    spans = agent_run_spans()
    tid = trace_id_of(spans)
    db_exporter.export(spans)
    first = summary(tid)
    db_exporter.export(spans)
    db_exporter.export(spans[:4] + spans[:4])  # duplicates inside one batch too
    assert summary(tid) == first
    assert OTelSpan.objects.filter(trace_id=tid).count() == len(spans)
    assert db_exporter.stats.spans_duplicate == len(spans) + 8


def test_legacy_named_trace_gets_the_same_summary_as_its_genai_twin(
    db_exporter: PostgresSpanExporter,
) -> None:
    genai = agent_run_spans(legacy=False)
    legacy = agent_run_spans(legacy=True)
    db_exporter.export(genai)
    db_exporter.export(legacy)
    fields = (
        "query",
        "status",
        "model",
        "total_input_tokens",
        "total_output_tokens",
        "iteration_count",
        "tool_call_count",
        "tools_used",
        "span_count",
    )
    assert summary(trace_id_of(legacy), fields) == summary(trace_id_of(genai), fields)
    assert all(
        summary(trace_id_of(run), ("root_span_id",))["root_span_id"] for run in (genai, legacy)
    )
    assert summary(trace_id_of(legacy), ("tools_used",))["tools_used"] == [
        "calculate",
        "search_knowledge",
    ]


def test_untagged_spans_are_not_stored(transactional_db: None) -> None:
    exporter = PostgresSpanExporter()  # the production filter
    provider, memory = recording_provider()
    tracer = provider.get_tracer("tests")
    tracer.start_span("GET /healthz").end()  # outside any agent run
    token = enter_agent_run()
    tracer.start_span("invoke_agent a").end()
    exit_agent_run(token)
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
    assert list(OTelSpan.objects.values_list("name", flat=True)) == ["invoke_agent a"]
    assert exporter.stats.spans_ignored == 1
    exporter.shutdown()


def _span_with(attributes: dict[str, Any], name: str = "execute_tool weird") -> ReadableSpan:
    context = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))
    return ReadableSpan(
        name=name,
        context=context,
        attributes=attributes,
        start_time=1_700_000_000_000_000_000,
        end_time=1_700_000_000_500_000_000,
    )


def test_values_postgres_or_json_reject_are_made_storable(
    db_exporter: PostgresSpanExporter,
) -> None:
    huge = "x" * (70 * 1024)
    span = _span_with(
        {
            "nul": "a\x00b",
            "surrogate": "bad \ud800 char",
            "nan": math.nan,
            "inf": [1.0, math.inf],
            "bytes": b"\xffraw",
            "object": object(),
            "huge": huge,
            "gen_ai.tool.name": "weird",
        },
        name="execute_tool weird\x00",
    )
    assert db_exporter.export([span]) is SpanExportResult.SUCCESS
    stored = OTelSpan.objects.get()
    attrs = stored.attributes
    assert attrs["nul"] == "a\ufffdb"
    assert attrs["surrogate"] == "bad ? char"
    assert attrs["nan"] == "nan" and attrs["inf"] == [1.0, "inf"]
    assert attrs["bytes"] == "\ufffdraw"
    assert attrs["object"].startswith("<object object")
    assert attrs["huge"].startswith("x" * 1000)
    assert len(attrs["huge"].encode()) < 65 * 1024
    assert TRUNCATION_MARKER.format(n=len(huge) - 64 * 1024) in attrs["huge"]
    assert stored.name == "execute_tool weird\ufffd"
    assert db_exporter.stats.spans_lost == 0


def test_size_cap_is_configurable(transactional_db: None) -> None:
    exporter = PostgresSpanExporter(keep_untagged=True, max_attribute_bytes=100)
    exporter.export([_span_with({"prompt": "y" * 150, "small": "z" * 99})])
    attrs = OTelSpan.objects.get().attributes
    assert attrs["small"] == "z" * 99
    assert attrs["prompt"] == "y" * 100 + TRUNCATION_MARKER.format(n=50)
    exporter.shutdown()


def test_a_span_that_cannot_be_converted_is_counted_not_raised(
    db_exporter: PostgresSpanExporter,
) -> None:
    broken = ReadableSpan(name="invoke_agent x", context=None, attributes={})
    good = agent_run_spans()
    assert db_exporter.export([broken, *good]) is SpanExportResult.SUCCESS
    assert db_exporter.stats.spans_lost_unconverted == 1
    assert OTelSpan.objects.count() == len(good)


def test_outage_buffers_spans_and_writes_them_after_recovery(proxy: PostgresProxy) -> None:
    exporter = PostgresSpanExporter(
        conninfo=proxy.conninfo,
        keep_untagged=True,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.2,
        connect_timeout_seconds=1,
    )
    first = agent_run_spans()
    exporter.export(first)  # healthy: written at once
    assert OTelSpan.objects.count() == len(first)

    proxy.down()
    second, third = agent_run_spans(), agent_run_spans(legacy=True)
    assert exporter.export(second) is SpanExportResult.SUCCESS
    assert exporter.export(third) is SpanExportResult.SUCCESS
    assert exporter.buffered == len(second) + len(third)
    assert not OTelTrace.objects.filter(pk=trace_id_of(second)).exists()
    assert exporter.stats.write_failures >= 1

    proxy.up()
    # No export call and no flush: the retry thread alone writes the buffer back.
    wait_for(lambda: exporter.buffered == 0, "the retry thread to write the buffer back")
    assert OTelSpan.objects.count() == len(first) + len(second) + len(third)
    assert summary(trace_id_of(third), ("tool_call_count",))["tool_call_count"] == 2
    assert exporter.stats.spans_lost == 0
    exporter.shutdown()


def test_buffer_overflow_is_counted_and_logged(
    proxy: PostgresProxy, caplog: pytest.LogCaptureFixture
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
    spans = agent_run_spans()  # more than 5 spans
    with caplog.at_level(logging.ERROR, logger="tracing.export.exporter"):
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.stats.spans_lost_overflow == len(spans) - 5
    assert any("dropped" in r.getMessage() for r in caplog.records)
    proxy.up()
    assert exporter.force_flush(10_000)
    assert OTelSpan.objects.count() == 5
    exporter.shutdown()


def test_shutdown_during_outage_counts_what_it_could_not_write(proxy: PostgresProxy) -> None:
    exporter = PostgresSpanExporter(
        conninfo=proxy.conninfo,
        keep_untagged=True,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.1,
        connect_timeout_seconds=1,
        shutdown_timeout_seconds=0.5,
    )
    proxy.down()
    spans = agent_run_spans()
    exporter.export(spans)
    exporter.shutdown()
    assert exporter.stats.spans_lost_shutdown == len(spans)
    assert exporter.export(spans) is SpanExportResult.FAILURE


def test_shutdown_flushes_pending_spans(transactional_db: None) -> None:
    exporter = PostgresSpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(AgentRunTaggerProcessor())
    # A long schedule delay: nothing is exported unless shutdown flushes it.
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=600_000))
    tracer = provider.get_tracer("tests")
    token = enter_agent_run()
    for i in range(3):
        tracer.start_span(f"invoke_agent run{i}").end()
    exit_agent_run(token)
    assert OTelSpan.objects.count() == 0
    provider.shutdown()
    assert OTelSpan.objects.count() == 3


def _statements_on_span_tables(spans: Any) -> list[str]:
    """SQL of recorded database spans that touch the exporter's tables (other threads, e.g.
    the pool configuring a new connection, may record unrelated queries meanwhile)."""
    statements = [str(s.attributes.get("db.statement", "")) for s in spans]
    return [q for q in statements if "tracing_otel" in q or "_span_stage" in q]


def test_exporter_writes_produce_no_spans(
    transactional_db: None, instrumented: bool, recorded_spans: Any
) -> None:
    assert instrumented
    recorded_spans.clear()
    # Control: with instrumentation on, a query on the span table does produce a span...
    assert OTelSpan.objects.count() == 0
    assert _statements_on_span_tables(recorded_spans.get_finished_spans())

    recorded_spans.clear()
    exporter = PostgresSpanExporter(keep_untagged=True)
    exporter.export(agent_run_spans())
    exporter.export(agent_run_spans()[:3] * 2)  # the staged (ON CONFLICT) path as well
    exporter.shutdown()
    during_export = list(recorded_spans.get_finished_spans())
    # ...but the exporter's own writes do not.
    assert exporter.stats.spans_written > 0 and exporter.stats.spans_duplicate > 0
    assert _statements_on_span_tables(during_export) == []


def test_a_trace_becomes_a_run_when_its_agent_work_arrives(
    db_exporter: PostgresSpanExporter,
) -> None:
    """Spans of one trace in separate exports, the agent span last: no_agent while only
    HTTP spans are stored, running once an LLM span is, the outcome once the agent is."""
    writer = SpanWriter(db_exporter, service(PHOENIX_SERVICE))
    root = writer.span("agent", T0, 500, attributes={A.OPENINFERENCE_SPAN_KIND: "AGENT"})
    llm = writer.span("llm", T0, 100, parent=root, attributes={A.OPENINFERENCE_SPAN_KIND: "LLM"})
    http = writer.span("POST", T0, 50, parent=llm, attributes={A.HTTP_REQUEST_METHOD: "POST"})
    trace_id = uuid.UUID(int=root.get_span_context().trace_id)

    def status() -> str:
        assert db_exporter.force_flush()
        return OTelTrace.objects.get(id=trace_id).status

    writer.end(http, T0, 50)
    assert status() == AgentStatus.NO_AGENT
    writer.end(llm, T0, 100)
    assert status() == AgentStatus.RUNNING
    writer.end(root, T0, 500)
    assert status() == AgentStatus.COMPLETED
    trace = OTelTrace.objects.get(id=trace_id)
    assert (trace.iteration_count, trace.span_count) == (1, 3)
    writer.shutdown()
