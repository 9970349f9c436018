"""``seed_traces`` writes consistent traces: what the exporter would have written itself.

Run against a real PostgreSQL (DATABASE_URL); the command commits through its own
connection, hence ``transactional_db``.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from campus_core.chat.models import Conversation, Message
from tracing.conventions import attributes as A
from tracing.conventions import semconv
from tracing.conventions.semconv import Concept, SpanCategory
from tracing.export import PostgresSpanExporter, summary
from tracing.models import SPAN_COLUMNS, SUMMARY_COLUMNS, OTelSpan, OTelTrace
from tracing.pipeline import service_resource
from tracing.synthetic import chunks

pytestmark = pytest.mark.django_db(transaction=True)

TRACES = 400
LARGE_SPANS = 150
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _seed(**extra: Any) -> None:
    args = ["--traces", str(TRACES), "--seed", "11", "--chunk-size", "150", "--no-vacuum"]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    call_command("seed_traces", *args)


def _ns(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1) * 1000


def _as_readable(span: OTelSpan, trace_id: int) -> ReadableSpan:
    """A stored span turned back into the SDK object the exporter receives."""
    parent = (
        SpanContext(trace_id, int(span.parent_span_id, 16), is_remote=False)
        if span.parent_span_id
        else None
    )
    status = (
        Status(StatusCode.ERROR, span.status_message or None)
        if span.status_code == "ERROR"
        else Status(StatusCode[span.status_code])
    )
    return ReadableSpan(
        name=span.name,
        context=SpanContext(
            trace_id, int(span.span_id, 16), is_remote=False, trace_flags=TraceFlags(1)
        ),
        parent=parent,
        attributes=span.attributes,
        events=[
            Event(
                e["name"],
                e["attributes"],
                timestamp=_ns(datetime.fromisoformat(e["timestamp"])),
            )
            for e in span.events
        ],
        kind=SpanKind[span.span_kind],
        status=status,
        start_time=_ns(span.started_at),
        end_time=_ns(span.ended_at),
        instrumentation_scope=InstrumentationScope(span.scope),
        resource=service_resource(),
    )


def test_seeded_summaries_match_their_spans() -> None:
    _seed()

    traces = {t.id: t for t in OTelTrace.objects.all()}
    assert len(traces) == TRACES
    spans_by_trace: dict[uuid.UUID, list[OTelSpan]] = {}
    for span in OTelSpan.objects.order_by("trace_id", "started_at"):
        spans_by_trace.setdefault(span.trace_id, []).append(span)
    assert set(spans_by_trace) == set(traces)
    # About ten spans per trace, the shape of a real run.
    assert 8 <= sum(len(s) for s in spans_by_trace.values()) / TRACES <= 13

    generations: Counter[str] = Counter()
    for trace_id, trace in traces.items():
        spans = spans_by_trace[trace_id]
        facts = [(s, semconv.span_facts(s.name, s.attributes, s.span_kind)) for s in spans]
        roots = [(s, f) for s, f in facts if f.category is SpanCategory.AGENT]
        assert len(roots) == 1, trace_id
        root, root_facts = roots[0]
        assert root.parent_span_id == ""
        span_ids = {s.span_id for s in spans}
        assert all(s.parent_span_id in span_ids for s in spans if s is not root)

        assert trace.span_count == len(spans)
        assert trace.root_span_id == root.span_id
        assert trace.started_at == min(s.started_at for s in spans) == root.started_at
        assert trace.ended_at == max(s.ended_at for s in spans)
        assert trace.total_duration_ms == root.duration_ms
        assert all(
            s.duration_ms == (s.ended_at - s.started_at) / timedelta(milliseconds=1) for s in spans
        )
        categories = Counter(f.category for _, f in facts)
        assert trace.iteration_count == categories[SpanCategory.ITERATION]
        assert trace.tool_call_count == categories[SpanCategory.TOOL]
        assert trace.tools_used == sorted({f.tool_name for _, f in facts if f.tool_name})
        assert trace.total_input_tokens == sum(f.input_tokens for _, f in facts)
        assert trace.total_output_tokens == sum(f.output_tokens for _, f in facts)
        assert trace.model == root_facts.model
        assert trace.status == semconv.agent_status(root.attributes, root.status_code)
        assert trace.query == semconv.prompt_text(semconv.get(root.attributes, Concept.PROMPT))
        conversation = semconv.as_int(semconv.get(root.attributes, Concept.CONVERSATION_ID))
        assert trace.conversation_id == (conversation or None)

        if root.name == A.LEGACY_SPAN_AGENT_RUN:
            generations["legacy"] += 1
        elif A.GEN_AI_PROMPT in root.attributes:
            generations["earlier"] += 1
        else:
            generations["current"] += 1

    # The mix the benchmark relies on: every naming generation, status, several models
    # and tools, conversations with their messages.
    assert set(generations) == {"legacy", "earlier", "current"}
    statuses = Counter(t.status for t in traces.values())
    assert statuses["completed"] > statuses["error"] > 0
    assert statuses["max_iterations"] > 0
    assert len({t.model for t in traces.values()}) >= 4
    assert len({tool for t in traces.values() for tool in t.tools_used}) >= 4
    in_conversation = [t for t in traces.values() if t.conversation_id]
    assert 0.2 * TRACES < len(in_conversation) < 0.6 * TRACES
    assert Conversation.objects.count() < len(in_conversation)  # several turns each
    for trace in in_conversation:
        if trace.user_message_id:
            assert Message.objects.get(pk=trace.user_message_id).content == trace.query
    durations = sorted(t.total_duration_ms or 0 for t in traces.values())
    assert durations[int(0.99 * TRACES)] > 3 * durations[TRACES // 2]  # a long tail


def test_the_exporter_writes_the_same_summary_from_the_same_spans() -> None:
    """Replay seeded spans through the real exporter under a fresh trace id and compare."""
    _seed(large_traces=1, large_trace_spans=LARGE_SPANS)

    large = OTelTrace.objects.get(span_count=LARGE_SPANS)
    assert large.iteration_count == 5 and large.status == "max_iterations"
    # One trace of each kind: naming generation x status x in a conversation or not.
    picked = {large.id}
    kinds: set[tuple[bool, str, bool]] = set()
    for trace in OTelTrace.objects.exclude(id=large.id).order_by("started_at"):
        root_name = OTelSpan.objects.get(trace=trace, span_id=trace.root_span_id).name
        kind = (root_name == A.LEGACY_SPAN_AGENT_RUN, trace.status, bool(trace.conversation_id))
        if kind not in kinds:
            kinds.add(kind)
            picked.add(trace.id)
    assert len(picked) >= 8

    exporter = PostgresSpanExporter(keep_untagged=True)
    try:
        for seeded_id in picked:
            spans = list(OTelSpan.objects.filter(trace_id=seeded_id))
            replay_id = uuid.uuid4()
            exporter.export([_as_readable(s, replay_id.int) for s in spans])
            assert exporter.force_flush()
            seeded = OTelTrace.objects.values(*SUMMARY_COLUMNS).get(id=seeded_id)
            replayed = OTelTrace.objects.values(*SUMMARY_COLUMNS).get(id=replay_id)
            assert replayed == seeded, seeded_id
    finally:
        exporter.shutdown()


def test_sequences_move_past_seeded_ids() -> None:
    _seed()
    conversation = Conversation.objects.create(title="after seeding")
    message = Message.objects.create(conversation=conversation, role="user", content="hi")
    assert conversation.pk > max(
        Conversation.objects.exclude(pk=conversation.pk).values_list("pk", flat=True)
    )
    assert message.pk > max(Message.objects.exclude(pk=message.pk).values_list("pk", flat=True))


_DAY_US = 86_400 * 1_000_000
_TRACE_TIME_KEYS = ("started_at", "ended_at", "llm_model_started_at", "root_started_at")
_TRACE_TIME_COLUMNS = tuple(
    i for i, (name, _) in enumerate(summary.DELTA_COLUMNS) if name in _TRACE_TIME_KEYS
)
_TRACE_STARTED = [name for name, _ in summary.DELTA_COLUMNS].index("started_at")
_SPAN_TIME_COLUMNS = (SPAN_COLUMNS.index("started_at"), SPAN_COLUMNS.index("ended_at"))
_EVENT_TIME = re.compile(r'"timestamp":"[^"]*"')


def _us(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def _generated(seed: int, window_end: datetime) -> tuple[list[list[str]], list[list[str]]]:
    """Trace summaries and span rows of a 30-day window ending at ``window_end``, as text."""
    end_us = _us(window_end)
    traces: list[list[str]] = []
    spans: list[list[str]] = []
    for chunk in chunks.generate_chunks(
        traces=300,
        spans_per_trace=10,
        seed=seed,
        chunk_size=100,
        window_start_us=end_us - 30 * _DAY_US,
        window_end_us=end_us,
        reserved=chunks.Reserved(next_conversation=1, next_message=1),
    ):
        traces += [[str(v) for v in d.values(tid).values()] for tid, d in chunk.traces.items()]
        spans += [[str(v) for v in row.values] for row in chunk.rows]
    return traces, spans


def _contents(lines: list[list[str]], time_columns: tuple[int, ...]) -> list[list[str]]:
    """Every column but the instants (durations are kept: they do not depend on the window)."""
    return [
        [_EVENT_TIME.sub("", v) for i, v in enumerate(line) if i not in time_columns]
        for line in lines
    ]


# Fixed instants, never the clock: the hour the old test failed at, either side of midnight
# UTC, month and year ends, a leap day.
_WINDOW_ENDS = [
    datetime(2026, 12, 1, 10, 40, tzinfo=UTC),
    datetime(2026, 12, 1, 3, 40, tzinfo=UTC),
    datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC),
    datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 1, 31, 23, 30, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2028, 2, 29, 12, 0, tzinfo=UTC),
]


@pytest.mark.parametrize("window_end", _WINDOW_ENDS[1:], ids=lambda d: d.isoformat())
def test_same_seed_same_traces_whatever_the_window(window_end: datetime) -> None:
    reference_traces, reference_spans = _generated(3, _WINDOW_ENDS[0])
    traces, spans = _generated(3, window_end)
    assert _contents(traces, _TRACE_TIME_COLUMNS) == _contents(
        reference_traces, _TRACE_TIME_COLUMNS
    )
    assert _contents(spans, _SPAN_TIME_COLUMNS) == _contents(reference_spans, _SPAN_TIME_COLUMNS)
    # What may depend on the window, and only that: the instants, all inside it.
    lo, hi = window_end - timedelta(days=30), window_end
    starts = [datetime.fromisoformat(line[_TRACE_STARTED]) for line in traces]
    assert all(lo <= at < hi + timedelta(hours=1) for at in starts)
    assert starts[0] < lo + timedelta(days=1) and starts[-1] > hi - timedelta(days=1)


def test_another_seed_other_traces() -> None:
    assert _generated(3, _WINDOW_ENDS[0])[0] != _generated(4, _WINDOW_ENDS[0])[0]


def test_bad_arguments_change_nothing() -> None:
    with pytest.raises(CommandError):
        call_command("seed_traces", "--traces", "-1")
    with pytest.raises(CommandError):
        call_command("seed_traces", "--traces", "5", "--large-trace-spans", "3")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tracing_oteltrace")
        assert cursor.fetchone() == (0,)
