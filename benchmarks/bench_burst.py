#!/usr/bin/env python
"""Burst benchmark: how many agent spans the in-process queue must hold, by measurement.

Agent runs (``tracing.synthetic``, with the conversation on chat spans as ``AgentCore``
writes it) are built and recorded back to back through the production pipeline
(``tracing.pipeline.build_provider``: tagger → counting BatchSpanProcessor → PostgreSQL):

1. memory per queued span: the runs' finished spans held in memory (``tracemalloc``), per
   span — what a full queue costs;
2. for each ``--queue`` size: the burst's span rate, what the exporter stored, what was
   dropped (``tracing.export.drops``, the same count as the ``tracing.spans.dropped``
   metric), and the exporter's sustained rate (spans stored per second of the burst and
   the drain after it).

A queue absorbs a burst of S spans arriving at rate E while the exporter drains at rate D
when it holds S x (1 - D/E). Runs in its own database ``<DB name>_burstbench``.

    .venv/bin/python benchmarks/bench_burst.py --runs 10000 --queue 8192 65536 262144
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import bench_database, machine_line, realistic_runs, setup_django


def bytes_per_span(runs: int, seed: int) -> tuple[float, int]:
    """Traced memory of finished spans held in a list (a full queue holds them so)."""
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

    from tracing.pipeline.tagger import AgentRunTaggerProcessor
    from tracing.synthetic import run as synthetic

    class Hold(SpanProcessor):
        def __init__(self) -> None:
            self.spans: list[ReadableSpan] = []

        def on_end(self, span: ReadableSpan) -> None:
            self.spans.append(span)

    rng = random.Random(seed)
    built = [
        synthetic.build(run, rng, 1_760_000_000 * 10**6)
        for run, _ in zip(realistic_runs(rng, 16.0), range(runs), strict=False)
    ]
    provider = TracerProvider()
    provider.add_span_processor(AgentRunTaggerProcessor())
    held = Hold()
    provider.add_span_processor(held)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for run in built:
        synthetic.emit(run, provider.get_tracer)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / len(held.spans), len(held.spans)


def burst(conninfo: str, runs: int, queue: int, seed: int) -> dict[str, Any]:
    import psycopg
    from django.conf import settings

    from tracing.export import PostgresSpanExporter
    from tracing.export.drops import drops
    from tracing.pipeline import build_provider
    from tracing.synthetic import run as synthetic

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE tracing_otelspan, tracing_oteltrace")
    settings.TRACING_MAX_QUEUE_SIZE = queue
    settings.TRACING_MAX_EXPORT_BATCH_SIZE = min(512, queue)
    provider = build_provider(PostgresSpanExporter(conninfo=conninfo))
    dropped_before = drops.total["queue_full"]
    rng = random.Random(seed)
    sent = 0
    clock = 1_760_000_000 * 10**6
    started = time.perf_counter()
    for run, _ in zip(realistic_runs(rng, 16.0), range(runs), strict=False):
        built = synthetic.build(run, rng, clock)
        synthetic.emit(built, provider.get_tracer)
        sent += len(built.spans)
        clock += 2_000_000
    burst_s = time.perf_counter() - started
    provider.force_flush(600_000)
    total_s = time.perf_counter() - started
    provider.shutdown()
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM tracing_otelspan").fetchone()
    stored = int(row[0]) if row else 0
    return {
        "queue": queue,
        "sent": sent,
        "stored": stored,
        "dropped": drops.total["queue_full"] - dropped_before,
        "emit_rate": sent / burst_s,
        "store_rate": stored / total_s,
        "burst_s": burst_s,
        "total_s": total_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--queue", type=int, nargs="+", default=[8192, 65_536, 262_144])
    parser.add_argument("--memory-runs", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    setup_django()
    import logging

    logging.getLogger("tracing").setLevel(logging.CRITICAL)  # the drops are reported below
    per_span, held = bytes_per_span(args.memory_runs, args.seed)
    print(
        f"memory: {per_span:,.0f} B per finished span ({held:,} spans of {args.memory_runs:,} runs)"
    )
    with bench_database(args.keep_db, "burstbench") as conninfo:
        print(machine_line(conninfo))
        for queue in args.queue:
            r = burst(conninfo, args.runs, queue, args.seed)
            lost = r["sent"] - r["stored"]
            assert lost == r["dropped"], r
            print(
                f"queue {queue:>7,} (~{queue * per_span / 2**20:,.0f} MiB full): "
                f"{args.runs:,} runs, "
                f"{r['sent']:,} spans in {r['burst_s']:.1f}s ({r['emit_rate']:,.0f} spans/s); "
                f"stored {r['stored']:,} in {r['total_s']:.1f}s ({r['store_rate']:,.0f} spans/s); "
                f"dropped {r['dropped']:,} ({r['dropped'] / r['sent']:.0%})"
            )


if __name__ == "__main__":
    main()
