"""``migrate`` converts an installation whose spans sit in the unpartitioned table (and
back): seeded rows survive byte for byte, land in their day partitions (or the DEFAULT one
when older than a year), the id sequence continues, and the new key still rejects a
re-sent span."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import import_module

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.spans import agent_run_spans
from tracing import partitions
from tracing.export import PostgresSpanExporter
from tracing.management.commands import seed_traces
from tracing.models import SPAN_COLUMNS, OTelSpan

pytestmark = pytest.mark.django_db(transaction=True)

PARTITIONING = import_module("tracing.migrations.0007_partition_spans_by_day").Migration
# The state just before partitioning, whatever other migrations it follows.
BEFORE = [dep for dep in PARTITIONING.dependencies if dep[0] == "tracing"]
_COLUMNS = ", ".join(("id", *SPAN_COLUMNS))


def _migrate(targets: list[tuple[str, str]] | None = None) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    connection.close()  # the next statements see the new table, not cached plans


def _snapshot() -> tuple[int, str]:
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.trace_id, t.span_id)) "
            f"FROM (SELECT {_COLUMNS} FROM tracing_otelspan) t"
        )
        count, digest = cur.fetchone()
    return count, digest


def _kind() -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT relkind FROM pg_class WHERE oid = 'tracing_otelspan'::regclass")
        return str(cur.fetchone()[0])


def test_migrate_partitions_existing_spans_without_losing_a_row() -> None:
    _migrate(BEFORE)
    assert _kind() == "r"
    now = datetime.now(UTC)
    # Recent days (own partitions) and two years back (the DEFAULT partition).
    seed_traces.seed(traces=120, days=4, end=now, vacuum=False, writers=1, chunk_size=50)
    seed_traces.seed(
        traces=30,
        days=2,
        end=now - timedelta(days=730),
        seed=5,
        vacuum=False,
        writers=1,
        chunk_size=50,
    )
    before = _snapshot()
    assert before[0] > 1000

    _migrate()
    assert _kind() == "p"
    assert _snapshot() == before
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM tracing_otelspan_default "
            "WHERE started_at >= now() - interval '366 days'"
        )
        assert cur.fetchone()[0] == 0  # recent days have partitions of their own
        cur.execute("SELECT count(*) FROM tracing_otelspan_default")
        assert cur.fetchone()[0] > 0  # two years back does not
        names = {p.name for p in partitions.day_partitions(cur)}
        assert partitions.partition_name(now.date()) in names
        # The new key still deduplicates.
        cur.execute(
            f"INSERT INTO tracing_otelspan ({_COLUMNS}) SELECT {_COLUMNS} FROM tracing_otelspan "
            "ORDER BY id LIMIT 5 ON CONFLICT (trace_id, span_id, started_at) DO NOTHING"
        )
        assert cur.rowcount == 0
        cur.execute("SELECT max(id) FROM tracing_otelspan")
        last_seeded = cur.fetchone()[0]

    exporter = PostgresSpanExporter(keep_untagged=True)
    try:
        exporter.export(agent_run_spans())
    finally:
        exporter.shutdown()
    assert OTelSpan.objects.filter(id__gt=last_seeded).count() == len(agent_run_spans())

    # And back, for an installation that has to downgrade.
    after = _snapshot()
    _migrate(BEFORE)
    assert _kind() == "r"
    assert _snapshot() == after
    _migrate()
    assert _kind() == "p"
    assert _snapshot() == after
