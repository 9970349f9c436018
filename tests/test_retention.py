"""Retention against a real PostgreSQL: what ``prune`` removes (whole day partitions, old
DEFAULT-partition rows, runs straddling the cutoff whole) and what it never touches (newer
runs, conversations, messages); dry runs, idempotence, the advisory lock, the schedule
switch, ingest running meanwhile, the command, and the GraphQL window.

Every instant is fixed (2001, far behind any partition the app creates for today), so
nothing depends on the wall clock.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from campus_core.chat.models import Conversation, Message
from tests.graphql_support import SpanWriter, execute, genai_run
from tests.spans import agent_run_spans, started_at
from tracing import partitions, retention, rollups
from tracing.export import PostgresSpanExporter, conninfo_for
from tracing.models import (
    OTelSpan,
    OTelTrace,
    SpanRollup,
    SpanRollupDirty,
    SpanRollupRolled,
    SpanRollupSlot,
    SpanRollupSlotted,
)

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2001, 6, 15, 12, 0, tzinfo=UTC)
DAYS = 30
CUTOFF = datetime(2001, 5, 16, tzinfo=UTC)  # UTC midnight 30 days before NOW
DAYS_WITH_PARTITIONS = [date(2001, 5, 10) + timedelta(days=n) for n in range(11)]  # ..05-20


def _uid(hex_id: str) -> uuid.UUID:
    return uuid.UUID(hex=hex_id)


def _stored(trace_id: uuid.UUID) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    trace: dict[str, Any] = dict(OTelTrace.objects.values().get(pk=trace_id))
    spans = [
        dict(s) for s in OTelSpan.objects.filter(trace_id=trace_id).order_by("span_id").values()
    ]
    return trace, spans


@pytest.fixture
def runs(db_exporter: PostgresSpanExporter) -> dict[str, uuid.UUID]:
    with psycopg.connect(conninfo_for(), autocommit=True) as conn, conn.cursor() as cur:
        for day in DAYS_WITH_PARTITIONS:
            partitions.create_day(cur, day)
    conversation = Conversation.objects.create(title="kept")
    asked = Message.objects.create(conversation=conversation, role="user", content="q")
    w = SpanWriter(db_exporter)

    def run(started: datetime, **extra: Any) -> uuid.UUID:
        hex_id = genai_run(
            w, started=started, query="q", model="m", duration_ms=300, tools=["calc"], **extra
        )
        return _uid(hex_id)

    ids = {
        "old": run(
            datetime(2001, 5, 12, 10, tzinfo=UTC), conversation=conversation, user_message=asked
        ),
        "old_in_default": run(datetime(2000, 1, 1, tzinfo=UTC)),
        # Starts 50 ms before the cutoff; its tool span (+130 ms) starts after it.
        "straddling": run(CUTOFF - timedelta(milliseconds=50)),
        "new": run(CUTOFF + timedelta(seconds=1)),
        "new_in_default": run(datetime(2001, 6, 1, tzinfo=UTC)),
    }
    w.shutdown()
    return ids


def test_prune_removes_old_runs_whole_and_touches_nothing_newer(
    runs: dict[str, uuid.UUID], caplog: pytest.LogCaptureFixture
) -> None:
    straddler_spans = OTelSpan.objects.filter(trace_id=runs["straddling"])
    assert straddler_spans.filter(started_at__gte=CUTOFF).exists()
    assert straddler_spans.filter(started_at__lt=CUTOFF).exists()
    kept = {label: _stored(runs[label]) for label in ("new", "new_in_default")}
    spans_before = OTelSpan.objects.count()
    conversation = Conversation.objects.get()

    dry = retention.prune(conninfo_for(), NOW, DAYS, dry_run=True)
    assert dry.cutoff == CUTOFF
    assert dry.partitions == [partitions.partition_name(d) for d in DAYS_WITH_PARTITIONS[:6]]
    assert dry.traces == 3
    assert OTelSpan.objects.count() == spans_before  # a dry run changes nothing
    with connection.cursor() as cur:
        assert len(partitions.day_partitions(cur)) >= len(DAYS_WITH_PARTITIONS)

    with caplog.at_level(logging.INFO, logger="tracing.retention"):
        report = retention.prune(conninfo_for(), NOW, DAYS)
    assert report.partitions == dry.partitions
    assert (report.partition_spans, report.loose_spans, report.traces) == (
        dry.partition_spans,
        dry.loose_spans,
        dry.traces,
    )
    assert report.summary() in caplog.text
    for label in ("old", "old_in_default", "straddling"):
        assert not OTelTrace.objects.filter(pk=runs[label]).exists()
        assert not OTelSpan.objects.filter(trace_id=runs[label]).exists()
    assert {label: _stored(runs[label]) for label in kept} == kept
    assert OTelSpan.objects.count() == sum(len(spans) for _, spans in kept.values())
    assert report.partition_spans + report.loose_spans == spans_before - OTelSpan.objects.count()
    with connection.cursor() as cur:
        left = {p.day for p in partitions.day_partitions(cur)}
    assert not left & set(DAYS_WITH_PARTITIONS[:6])
    assert set(DAYS_WITH_PARTITIONS[6:]) <= left
    # The chat app's rows stay; only the link from the removed run is gone.
    assert Conversation.objects.get() == conversation
    assert Message.objects.filter(conversation=conversation).count() == 1

    again = retention.prune(conninfo_for(), NOW, DAYS)
    assert (again.partitions, again.loose_spans, again.traces) == ([], 0, 0)


def test_two_prunes_never_run_at_once(runs: dict[str, uuid.UUID]) -> None:
    with psycopg.connect(conninfo_for(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (retention.PRUNE_LOCK_KEY,))
        with pytest.raises(retention.PruneBusy):
            retention.prune(conninfo_for(), NOW, DAYS)
        with pytest.raises(CommandError, match="another process"):
            call_command("prune_traces", "--days", "30")
    assert OTelTrace.objects.filter(pk=runs["old"]).exists()


def test_prune_while_ingest_runs_loses_no_new_span(runs: dict[str, uuid.UUID]) -> None:
    exporter = PostgresSpanExporter(keep_untagged=True)
    sent: list[int] = []
    failures: list[BaseException] = []

    def ingest() -> None:
        try:
            for n in range(30):
                spans = started_at(agent_run_spans(), CUTOFF + timedelta(days=2, seconds=n))
                exporter.export(spans)
                sent.append(len(spans))
        except BaseException as exc:  # reported below
            failures.append(exc)

    new_before = OTelSpan.objects.filter(started_at__gte=CUTOFF).count()
    straddler_new = OTelSpan.objects.filter(
        trace_id=runs["straddling"], started_at__gte=CUTOFF
    ).count()
    writer = threading.Thread(target=ingest)
    writer.start()
    retention.prune(conninfo_for(), NOW, DAYS, batch=1)
    writer.join()
    exporter.shutdown()
    assert not failures
    assert exporter.stats.spans_lost == 0
    stored_new = OTelSpan.objects.filter(started_at__gte=CUTOFF).count()
    assert stored_new == new_before - straddler_new + sum(sent)


def test_the_command_dry_run_and_the_schedule_switch(
    runs: dict[str, uuid.UUID], capsys: pytest.CaptureFixture[str]
) -> None:
    # 2000-2001 is older than 30 days whenever this runs.
    call_command("prune_traces", "--dry-run", "--days", "30")
    assert "would remove" in capsys.readouterr().out
    assert OTelTrace.objects.filter(pk=runs["new"]).exists()

    with override_settings(TRACE_RETENTION_DAYS=None):
        call_command("prune_traces")
    assert "nothing to do" in capsys.readouterr().out

    maintenance = retention.MaintenanceThread(conninfo_for())
    with override_settings(TRACE_RETENTION_DAYS=30, TRACE_PRUNE_SCHEDULE="off"):
        maintenance.run_once()
    assert OTelTrace.objects.count() == len(runs)
    with override_settings(TRACE_RETENTION_DAYS=30, TRACE_PRUNE_SCHEDULE="hourly"):
        maintenance.run_once()
    assert OTelTrace.objects.count() == 0
    with connection.cursor() as cur:  # and the coming days' partitions exist
        names = {p.name for p in partitions.day_partitions(cur)}
    today = datetime.now(UTC).date()
    assert partitions.partition_name(today + timedelta(days=partitions.DAYS_AHEAD)) in names

    with pytest.raises(CommandError, match="positive"):
        call_command("prune_traces", "--days", "0")


RETENTION = "{ retention { days cutoff oldestKept } }"


def test_the_retention_window_in_graphql(runs: dict[str, uuid.UUID]) -> None:
    oldest = "2000-01-01T00:00:00+00:00"
    with override_settings(TRACE_RETENTION_DAYS=None):
        result = execute(RETENTION)
    assert result.errors is None
    assert result.data["retention"] == {"days": None, "cutoff": None, "oldestKept": oldest}
    with override_settings(TRACE_RETENTION_DAYS=7):
        got = execute(RETENTION).data["retention"]
    assert got["days"] == 7 and got["oldestKept"] == oldest
    cutoff = datetime.fromisoformat(got["cutoff"])
    assert cutoff.utcoffset() == timedelta(0) and cutoff.time() == datetime.min.time()


def test_spans_stored_while_the_trace_rows_go_are_swept_after(
    runs: dict[str, uuid.UUID],
) -> None:
    """Ingest may store spans of an old run while a prune deletes the trace rows (old-dated:
    the DEFAULT partition, its day partition being gone): the sweep of the DEFAULT
    partition comes after the trace rows, so they go too (a prune of the benchmark once
    left such spans behind)."""
    report = retention.PruneReport(cutoff=CUTOFF, dry_run=False)
    with psycopg.connect(conninfo_for(), autocommit=True) as conn:
        retention._delete_traces(conn, report, batch=2)
    for label in ("old", "old_in_default", "straddling"):
        assert not OTelTrace.objects.filter(pk=runs[label]).exists()
    # The straddler's newer spans went with its row; the old spans are still there, like
    # spans stored meanwhile.
    assert not OTelSpan.objects.filter(trace_id=runs["straddling"], started_at__gte=CUTOFF)
    assert OTelSpan.objects.filter(trace_id=runs["old_in_default"]).exists()
    kept = {label: _stored(runs[label]) for label in ("new", "new_in_default")}
    retention.prune(conninfo_for(), NOW, DAYS)
    for label in ("old", "old_in_default", "straddling"):
        assert not OTelSpan.objects.filter(trace_id=runs[label]).exists()
    assert {label: _stored(runs[label]) for label in kept} == kept


def test_trace_rows_go_in_batches_by_start_and_a_locked_one_is_left_for_later(
    runs: dict[str, uuid.UUID],
) -> None:
    """Batches of one row; a trace row the exporter holds is skipped, not waited for, and
    the next prune takes it."""
    with psycopg.connect(conninfo_for()) as holder:
        holder.execute("SELECT 1 FROM tracing_oteltrace WHERE id = %s FOR UPDATE", (runs["old"],))
        report = retention.prune(conninfo_for(), NOW, DAYS, batch=1)
        holder.rollback()
    assert report.traces == 2
    assert OTelTrace.objects.filter(pk=runs["old"]).exists()
    assert retention.prune(conninfo_for(), NOW, DAYS, batch=1).traces == 1
    assert not OTelTrace.objects.filter(started_at__lt=CUTOFF).exists()
    assert OTelTrace.objects.filter(pk=runs["new"]).exists()


def test_prune_removes_the_rollups_of_the_removed_days(runs: dict[str, uuid.UUID]) -> None:
    # Given every closed hour rolled up (tracing.rollups).
    with psycopg.connect(conninfo_for(), autocommit=True) as conn:
        rollups.refresh(conn, NOW)
    assert SpanRollup.objects.filter(start__lt=CUTOFF).exists()
    assert SpanRollupSlot.objects.filter(start__lt=CUTOFF).exists()
    assert SpanRollupSlotted.objects.filter(hour__lt=CUTOFF).exists()
    assert not SpanRollupDirty.objects.exists()

    retention.prune(conninfo_for(), NOW, DAYS)

    # Then nothing of the removed days is left in the rollups...
    assert not SpanRollup.objects.filter(start__lt=CUTOFF).exists()
    assert not SpanRollupRolled.objects.filter(start__lt=CUTOFF).exists()
    assert not SpanRollupSlot.objects.filter(start__lt=CUTOFF).exists()
    assert not SpanRollupSlotted.objects.filter(hour__lt=CUTOFF).exists()
    assert not SpanRollupDirty.objects.filter(hour__lt=CUTOFF).exists()
    # ...the hour the straddling run's later spans left is marked for the next refresh...
    assert SpanRollupDirty.objects.filter(hour=rollups.hour_of(CUTOFF)).exists()
    # ...and spanStats counts what is stored, before and after that refresh.
    for _ in range(2):
        result = execute("{ spanStats { count } }")
        assert result.errors is None, result.errors
        assert result.data["spanStats"]["count"] == OTelSpan.objects.count()
        with psycopg.connect(conninfo_for(), autocommit=True) as conn:
            rollups.refresh(conn, NOW)
    assert not SpanRollupDirty.objects.exists()
