"""``seed_traces``: fill the database with realistic synthetic agent traces, fast.

What it owns: loading synthetic data for the query benchmark (``make bench-query``). What a
run looks like is ``tracing.synthetic``'s; what its rows and its trace summary are is the
exporter's own code (``tracing.export.rows``, ``tracing.export.summary``), so seeded rows
are exactly what live ingestion would store (``tests/test_seed_traces.py`` also replays
seeded spans through the real exporter and compares).

* Rows go in with PostgreSQL ``COPY`` (binary spans, text conversations and messages) and
  one ``INSERT ... SELECT FROM unnest(...)`` of trace summaries per chunk, never through
  the ORM: a million traces (~10M spans) take minutes, not hours.
* Older traces use the earlier GenAI (Sentry era) and the legacy attribute names, as
  stored data really does.
* Traces are written in ``started_at`` order, as live ingestion writes them, so the heap's
  physical order correlates with time the way it does in production.

Worker processes (``--writers``, 2 by default) each build a chunk
(``tracing.synthetic.chunks``) and COPY it through their own connection; chunks are
self-contained, so they are built, written and committed independently.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from tracing.export.summary import INSERT_NEW_TRACES, delta_params
from tracing.export.writer import INSERT_RESOURCES, conninfo_for, copy_spans, resource_params
from tracing.rollups import DIRTY_TABLE, MARK_DIRTY, dirty_params
from tracing.synthetic import world
from tracing.synthetic.chunks import (
    MAX_ITERATIONS,
    Chunk,
    ChunkPlan,
    Reserved,
    make_chunk,
    plan_chunks,
)


@dataclass
class SeedResult:
    traces: int
    spans: int
    conversations: int
    seconds: float
    generate_seconds: float = 0.0

    @property
    def spans_per_second(self) -> float:
        return self.spans / self.seconds if self.seconds else 0.0


def _reserve(cur: psycopg.Cursor[Any], table: str, count: int) -> int:
    """First of ``count`` ids set aside in ``table``'s id sequence.

    Moving the sequence past the range means later ORM inserts never collide with seeded
    rows. Not safe against inserts running at the same moment: seed a quiet database.
    """
    cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,))
    row = cur.fetchone()
    assert row is not None and row[0]
    sequence = row[0]
    cur.execute(
        f"SELECT GREATEST((SELECT last_value FROM {sequence}), "
        f"(SELECT COALESCE(MAX(id), 0) FROM {table}))"
    )
    row = cur.fetchone()
    assert row is not None
    first = int(row[0]) + 1
    cur.execute("SELECT setval(%s, %s)", (sequence, first + count))
    return first


_writer: psycopg.Connection[Any] | None = None
# Whether the database has the span rollups' dirty marks (tracing/rollups.py): one migrated
# to before them (a migration test seeds such a one) has none, and the migration that adds
# them marks every stored hour itself.
_marks_dirty = False


def _open_writer(conninfo: str) -> None:
    """Pool initializer: this process's own connection, closed when the process ends."""
    global _writer, _marks_dirty
    _writer = psycopg.connect(conninfo, autocommit=False)
    row = _writer.execute("SELECT to_regclass(%s) IS NOT NULL", (DIRTY_TABLE,)).fetchone()
    _marks_dirty = bool(row and row[0])
    _writer.commit()
    multiprocessing.util.Finalize(None, _writer.close, exitpriority=10)


def _build_and_write(plan: ChunkPlan) -> tuple[int, int, int, float]:
    started = time.perf_counter()
    chunk = make_chunk(plan)
    built = time.perf_counter() - started
    assert _writer is not None
    _write_chunk(_writer, chunk)
    return chunk.trace_count, chunk.span_count, len(chunk.conversations), built


def seed(
    *,
    traces: int,
    spans_per_trace: float = 10.0,
    seed: int = 0,
    chunk_size: int = 20_000,
    days: float = 30.0,
    end: datetime | None = None,
    large_traces: int = 0,
    large_trace_spans: int = 1000,
    conninfo: str | None = None,
    vacuum: bool = True,
    writers: int = 2,
    progress: Callable[[str], None] | None = None,
) -> SeedResult:
    """Write ``traces`` synthetic traces (plus ``large_traces`` of ``large_trace_spans``)."""
    began = time.perf_counter()
    end = end or datetime.now(UTC)
    end_us = int(end.timestamp() * 1_000_000)
    start_us = end_us - int(days * 86_400 * 1_000_000)
    conn = psycopg.connect(conninfo or conninfo_for("default"), autocommit=False)
    result = SeedResult(traces=0, spans=0, conversations=0, seconds=0.0)
    try:
        with conn.cursor() as cur:
            reserved = Reserved(
                next_conversation=_reserve(cur, "chat_conversation", traces + 1),
                next_message=_reserve(cur, "chat_message", 2 * traces + 2),
            )
        conn.commit()

        plans = plan_chunks(
            traces=traces,
            spans_per_trace=spans_per_trace,
            seed=seed,
            chunk_size=chunk_size,
            window_start_us=start_us,
            window_end_us=end_us,
            reserved=reserved,
        )
        if large_traces:
            large = ChunkPlan(
                len(plans),
                large_traces,
                0,
                large_traces,
                end_us,
                end_us,
                0,
                0,
                seed,
                0.0,
                large_spans=large_trace_spans,
            )
            plans.append(large)
        # Chunks are independent (ids reserved above, every FK inside its own chunk), so
        # several processes build and COPY them at once, each through its own connection:
        # building rows is Python work, and threads would share one core.
        connections.close_all()  # no Django connection crosses the fork
        conn.close()
        gen_seconds = 0.0
        context = multiprocessing.get_context("fork")
        with context.Pool(writers, _open_writer, (conninfo or conninfo_for("default"),)) as pool:
            for counts in pool.imap_unordered(_build_and_write, plans):
                result.traces += counts[0]
                result.spans += counts[1]
                result.conversations += counts[2]
                gen_seconds += counts[3]
                if progress is not None:
                    elapsed = time.perf_counter() - began
                    progress(
                        f"{result.traces:,} traces, {result.spans:,} spans "
                        f"({result.spans / elapsed:,.0f} spans/s)"
                    )
        conn = psycopg.connect(conninfo or conninfo_for("default"), autocommit=False)
        result.generate_seconds = gen_seconds
        conn.autocommit = True
        with conn.cursor() as cur:
            # Fresh bulk rows have no visibility map and no hint bits yet; without this the
            # first readers pay for both, and the planner has no statistics.
            statement = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
            for table in (
                "chat_conversation",
                "chat_message",
                "tracing_oteltrace",
                "tracing_otelspan",
            ):
                cur.execute(f"{statement} {table}")
    finally:
        conn.close()
    result.seconds = time.perf_counter() - began
    return result


def _copy(cur: psycopg.Cursor[Any], table: str, columns: tuple[str, ...], lines: list[str]) -> None:
    if not lines:
        return
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        # Large writes keep per-call overhead negligible without holding a whole chunk twice.
        for i in range(0, len(lines), 5000):
            copy.write("".join(lines[i : i + 5000]))


def _write_chunk(conn: psycopg.Connection[Any], chunk: Chunk) -> None:
    with conn.transaction(), conn.cursor() as cur:
        _copy(
            cur, "chat_conversation", ("id", "user_id", "title", "created_at"), chunk.conversations
        )
        _copy(
            cur,
            "chat_message",
            ("id", "conversation_id", "role", "content", "created_at"),
            chunk.messages,
        )
        # Foreign keys are checked at commit: the spans can go before their traces.
        copy_spans(cur, chunk.rows)
        if _marks_dirty:
            cur.execute(MARK_DIRTY, dirty_params([row.started_at for row in chunk.rows]))
        if (resources := resource_params(chunk.rows)) is not None:
            cur.execute(INSERT_RESOURCES, resources)
        cur.execute(INSERT_NEW_TRACES, delta_params(chunk.traces))


class Command(BaseCommand):
    help = (
        "Fill the database with realistic synthetic agent traces (COPY, in time order), "
        "for benchmarks. Adds to what is there."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--traces", type=int, required=True, help="number of traces")
        parser.add_argument(
            "--spans-per-trace",
            type=float,
            default=10.0,
            help=f"average spans per trace (at least ~{world.natural_spans_per_trace():.1f}, "
            "the shape of a minimal run)",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=0,
            help="random seed: the same seed gives the same traces (times follow the window)",
        )
        parser.add_argument("--days", type=float, default=30.0, help="time window, ending now")
        parser.add_argument("--chunk-size", type=int, default=20_000, help="traces per COPY")
        parser.add_argument(
            "--large-traces", type=int, default=0, help="extra traces of --large-trace-spans spans"
        )
        parser.add_argument("--large-trace-spans", type=int, default=1000)
        parser.add_argument(
            "--no-vacuum", action="store_true", help="only ANALYZE at the end, no VACUUM"
        )
        parser.add_argument(
            "--writers",
            type=int,
            default=2,
            help="processes building and COPYing chunks",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        traces = options["traces"]
        if traces < 0 or options["large_traces"] < 0:
            raise CommandError("--traces and --large-traces must be >= 0")
        if options["chunk_size"] < 1 or options["writers"] < 1:
            raise CommandError("--chunk-size and --writers must be >= 1")
        if options["days"] <= 0:
            raise CommandError("--days must be > 0")
        if options["large_trace_spans"] < 2 + 4 * MAX_ITERATIONS:
            raise CommandError(f"--large-trace-spans must be >= {2 + 4 * MAX_ITERATIONS}")
        verbose = options["verbosity"] > 1
        result = seed(
            traces=traces,
            spans_per_trace=options["spans_per_trace"],
            seed=options["seed"],
            chunk_size=options["chunk_size"],
            days=options["days"],
            large_traces=options["large_traces"],
            large_trace_spans=options["large_trace_spans"],
            vacuum=not options["no_vacuum"],
            writers=options["writers"],
            progress=(lambda line: self.stdout.write(line)) if verbose else None,
        )
        self.stdout.write(
            f"seeded {result.traces:,} traces, {result.spans:,} spans, "
            f"{result.conversations:,} conversations in {result.seconds:.1f}s "
            f"({result.spans_per_second:,.0f} spans/s; building rows took "
            f"{result.generate_seconds:.1f}s of the writers' time)"
        )
