#!/usr/bin/env python
"""Side by side with Arize Phoenix: the five questions of issue 13 on 10,000 runs of 16 spans.

What it owns: the "Against Phoenix" figures of benchmarks/RESULTS.md. Phoenix was measured
(by the issue's author, on this kind of machine) on 10,000 agent runs of 16 spans each:
newest 50 runs p50 90 ms, failed runs longer than 8 s 49 ms, one 16-span trace 34 ms,
run statistics 230 ms, the LLM spans of one model 138 ms. This script builds the same
kind of store and asks the same five questions through our GraphQL endpoint:

1. 10,000 runs x 16 spans from a real TracerProvider (``bench_otlp.generate_runs``: the
   OTLP benchmark's runs, here with three models, every 10th run failed and every 7th
   slow, ~9.6 s instead of ~1.2 s), written by the in-process exporter into a database of
   its own (``<DB name>_phoenixbench``; dropped after unless ``--keep-db``);
2. the real ASGI app under uvicorn (``bench_query.running_server``), a staff token, and
   ``--requests`` sequential POSTs per question after a warm-up (``bench_query.measure``);
3. p50 / p95 per question beside Phoenix's p50 and the ratio.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/campus .venv/bin/python \\
        benchmarks/bench_phoenix.py --requests 200
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import bench_database, machine_line, setup_django
from bench_otlp import generate_runs

MODELS = ("gpt-4o-mini", "gpt-4o", "claude-haiku-4-5")
# p50 ms of Arize Phoenix on the same kind of store and machine (issue 13)
PHOENIX_P50_MS = {
    "newest 50 runs": 90.0,
    "failed runs longer than 8 s": 49.0,
    "one 16-span trace": 34.0,
    "run statistics": 230.0,
    "LLM spans of one model": 138.0,
}
TRACE_QUERY = """
query W($id: ID!) {
  trace(id: $id) {
    id query status model startedAt totalDurationMs spanCount
    spans { id parentId name kind startedAt durationMs offsetMs depth status
            genAi { model inputTokens outputTokens toolName } }
  }
}"""
TRACE_STATS_QUERY = """
query T($f: TraceFilter) { traceStats(filters: $f) {
  count errors errorRate inputTokens outputTokens durationMs { p50 p95 p99 }
  byModel { key count errors p95DurationMs } byStatus { key count } byTool { key count } } }"""


def cases(trace_ids: list[str]) -> list[Any]:
    from bench_query import LIST_FIELDS, LIST_QUERY, Case
    from span_cases import SPANS_QUERY

    runs = LIST_QUERY % (LIST_FIELDS, "")
    return [
        Case("newest 50 runs", runs, [{}], count_variant=False),
        Case(
            "failed runs longer than 8 s",
            runs,
            [{"f": {"status": ["error"], "minDurationMs": 8000}}],
            count_variant=False,
        ),
        Case(
            "one 16-span trace",
            TRACE_QUERY,
            [{"id": t} for t in trace_ids],
            count_variant=False,
        ),
        Case("run statistics", TRACE_STATS_QUERY, [{}], count_variant=False),
        Case(
            "LLM spans of one model",
            SPANS_QUERY,
            [{"f": {"kind": ["LLM"], "model": ["gpt-4o"]}}],
            count_variant=False,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    setup_django()
    import logging

    import httpx
    import psycopg
    from bench_query import ProcessCpu, issue_token, measure, pct, running_server
    from django.db import connection

    from tracing.export import PostgresSpanExporter

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
    with bench_database(args.keep_db, suffix="phoenixbench") as conninfo:
        machine = machine_line(conninfo)
        print(machine, flush=True)
        with psycopg.connect(conninfo) as conn:
            have = conn.execute("SELECT count(*) FROM tracing_oteltrace").fetchone()
        if not have or have[0] != args.runs:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("TRUNCATE tracing_otelspan, tracing_oteltrace, tracing_otelresource")
            spans = generate_runs(args.runs, models=MODELS, error_every=10, slow_every=7)
            exporter = PostgresSpanExporter(conninfo=conninfo, keep_untagged=True)
            for i in range(0, len(spans), 512):
                exporter.export(spans[i : i + 512])
            exporter.shutdown()
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
        with psycopg.connect(conninfo) as conn:
            traces, stored = conn.execute(
                "SELECT count(*), sum(span_count) FROM tracing_oteltrace"
            ).fetchone() or (0, 0)
            sample = [
                str(r[0])
                for r in conn.execute(
                    "SELECT id FROM tracing_oteltrace ORDER BY md5(id::text) LIMIT 50"
                ).fetchall()
            ]
        print(f"{traces:,} runs, {stored:,} spans", flush=True)
        secret, revoke = issue_token()
        s = connection.settings_dict
        url = f"postgres://{s['USER']}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"
        connection.close()
        results = []
        try:
            with running_server(database_url=url) as (base, pid):
                headers = {"Authorization": f"Bearer {secret}"}
                with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
                    for case in cases(sample):
                        (result,) = measure(
                            [(client, ProcessCpu(pid))], case, args.requests, args.warmup
                        )
                        results.append(result)
        finally:
            revoke()
    lines = [
        f"- {machine}; {traces:,} runs, {stored:,} spans; {args.requests} sequential "
        f"requests per question after {args.warmup} warm-up, httpx -> uvicorn (1 worker)",
        "",
        "| question | rows | p50 ms | p95 ms | server CPU ms/req | Phoenix p50 ms | Phoenix / us |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        p50 = pct(r.samples, 50)
        lines.append(
            f"| {r.name} | {r.rows} | {p50:.1f} | {pct(r.samples, 95):.1f} | {r.cpu_ms:.1f} "
            f"| {PHOENIX_P50_MS[r.name]:.0f} | {PHOENIX_P50_MS[r.name] / p50:.1f}x |"
        )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1, default=str))


if __name__ == "__main__":
    main()
