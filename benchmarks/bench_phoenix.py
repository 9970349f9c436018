#!/usr/bin/env python
"""Side by side with Arize Phoenix: the five questions of issue 13 on 10,000 runs of 16 spans.

What it owns: the "Against Phoenix" figures of benchmarks/RESULTS.md. Issue 13 gave
Phoenix's p50 on 10,000 agent runs of 16 spans, measured elsewhere: newest 50 runs 90 ms,
failed runs longer than 8 s 49 ms, one 16-span trace 34 ms, run statistics 230 ms, the
LLM spans of one model 138 ms; kept in the table as a column of their own. With
``--phoenix PYTHON`` (the python of a venv holding ``arize-phoenix``) the real Phoenix is
measured in the same run instead (``phoenix_peer``, which says what each Phoenix query
asks): it is started on a store of its own (``--phoenix-store``, default the PostgreSQL
database ``phoenix_bench``; dropped after unless ``--keep-db``), gets the same spans over
OTLP/HTTP, and answers its version of each question interleaved with ours, request by
request. This script builds the store and asks the five questions:

1. 10,000 runs x 16 spans from a real TracerProvider (``bench_otlp.generate_runs``: the
   OTLP benchmark's runs, here with three models, every 10th run failed and every 7th
   slow, ~9.6 s instead of ~1.2 s), written by the in-process exporter into a database of
   its own (``<DB name>_phoenixbench``; dropped after unless ``--keep-db``), and the same
   spans sent to Phoenix (batches of 512, the stock ``OTLPSpanExporter``) until its store
   holds them all; a store that already holds the runs (``--keep-db``) is reused only when
   both do, so both always hold the same spans;
2. the real ASGI app under uvicorn (``bench_query.running_server``), a staff token, one
   request per question to each side to count the rows of the answers (printed; they must
   agree), then ``--requests`` sequential POSTs per question after a warm-up
   (``bench_query.measure``), ours and Phoenix's taking turns;
3. p50 / p95 / server CPU per question for both, the ratio measured now, and the issue's
   fixed figure.

    python3.11 -m venv /work/phoenix-venv && /work/phoenix-venv/bin/pip install 'arize-phoenix[pg]'
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/campus .venv/bin/python \\
        benchmarks/bench_phoenix.py --requests 200 --phoenix /work/phoenix-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import phoenix_peer
from bench_ingest import bench_database, machine_line, setup_django
from bench_otlp import SPANS_PER_RUN, generate_runs

MODELS = ("gpt-4o-mini", "gpt-4o", "claude-haiku-4-5")
TOOLS = ("search_knowledge",)  # the one tool generate_runs calls
# p50 ms of Arize Phoenix measured elsewhere, not on this machine (issue 13's fixed figures)
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


def our_rows(data: dict[str, Any]) -> int:
    """Rows of one of our answers: runs or spans listed, a trace's spans, runs counted."""
    from bench_query import _rows

    return int(data["traceStats"]["count"]) if "traceStats" in data else _rows(data)


def fill(conninfo: str, runs: int, phoenix_store: str | None) -> list[Any] | None:
    """Make both stores hold the same ``runs`` runs: reuse them when each already holds
    that many, else empty both and write the runs into ours; returns the spans still to
    send to Phoenix (None when reused)."""
    import psycopg

    from tracing.export import PostgresSpanExporter

    with psycopg.connect(conninfo) as conn:
        have = conn.execute("SELECT count(*) FROM tracing_oteltrace").fetchone()
    theirs = phoenix_peer.stored_spans(phoenix_store) if phoenix_store else None
    if have and have[0] == runs and theirs in (None, runs * SPANS_PER_RUN):
        return None
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE tracing_otelspan, tracing_oteltrace, tracing_otelresource")
    if phoenix_store:
        phoenix_peer.drop_store(phoenix_store, create=True)
    spans = generate_runs(runs, models=MODELS, error_every=10, slow_every=7)
    exporter = PostgresSpanExporter(conninfo=conninfo, keep_untagged=True)
    for i in range(0, len(spans), 512):
        exporter.export(spans[i : i + 512])
    exporter.shutdown()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--keep-db", action="store_true", help="keep both stores for a rerun")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--phoenix", metavar="PYTHON", help="measure Arize Phoenix from this venv's python too"
    )
    parser.add_argument(
        "--phoenix-store",
        default=phoenix_peer.DEFAULT_STORE,
        help="Phoenix's store: a PostgreSQL URL (a database of its own) or sqlite:///FILE",
    )
    args = parser.parse_args()
    setup_django()
    import logging

    import httpx
    import psycopg
    from bench_query import ProcessCpu, issue_token, measure, running_server
    from django.db import connection

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
    store: str = args.phoenix_store
    notes: list[str] = []
    with bench_database(args.keep_db, suffix="phoenixbench") as conninfo:
        machine = machine_line(conninfo)
        print(machine, flush=True)
        spans = fill(conninfo, args.runs, store if args.phoenix else None)
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
        results: list[list[Any]] = []
        rows: list[list[int]] = []
        try:
            with ExitStack() as stack:
                if args.phoenix and not args.keep_db:
                    stack.callback(phoenix_peer.drop_store, store)  # after Phoenix stops
                base, pid = stack.enter_context(running_server(database_url=url))
                headers = {"Authorization": f"Bearer {secret}"}
                client = stack.enter_context(
                    httpx.Client(base_url=base, headers=headers, timeout=120)
                )
                targets: list[tuple[Any, Any]] = [(client, ProcessCpu(pid))]
                peer, theirs = None, {}
                if args.phoenix:
                    notes.append(f"Arize Phoenix {phoenix_peer.version(args.phoenix)} on {store}")
                    phoenix, phoenix_pid = stack.enter_context(
                        phoenix_peer.running_phoenix(args.phoenix, store)
                    )
                    if spans is not None:
                        seconds = phoenix_peer.send_spans(
                            phoenix, spans, lambda: phoenix_peer.stored_spans(store)
                        )
                        phoenix_peer.analyze(store)
                        notes.append(
                            f"Phoenix stored {len(spans):,} spans in {seconds:.0f} s "
                            f"({len(spans) / seconds:,.0f} spans/s; one client, batches of "
                            "512, at most 8,192 spans sent and not yet stored)"
                        )
                    http = stack.enter_context(httpx.Client(base_url=phoenix, timeout=120))
                    peer = phoenix_peer.PeerClient(http)
                    ids = [t.replace("-", "") for t in sample]
                    theirs = phoenix_peer.questions(
                        phoenix_peer.project_id(http), ids, MODELS, TOOLS
                    )
                    targets.append((peer, ProcessCpu(phoenix_pid)))
                loads = [os.getloadavg()[0]]
                for case in cases(sample):
                    counted = [our_rows(_ask(client, case.query, case.variables[0]))]
                    if peer:
                        question = theirs[case.name]
                        peer.ask(question, case.variables)
                        counted.append(question.rows(_ask(peer, case.query, case.variables[0])))
                    differ = "  (the answers differ!)" if len(set(counted)) > 1 else ""
                    print(f"{case.name}: rows {' / '.join(map(str, counted))}{differ}")
                    rows.append(counted)
                    results.append(measure(targets, case, args.requests, args.warmup))
                    loads.append(os.getloadavg()[0])
                notes.append(
                    "1-minute load average before each question and at the end: "
                    + ", ".join(f"{load:.2f}" for load in loads)
                )
        finally:
            revoke()
    print("\n".join(report(machine, traces, stored, args, notes, results, rows)))
    if args.json:
        dump = [[r.__dict__ for r in pair] for pair in results]
        args.json.write_text(json.dumps(dump, indent=1, default=str))


def _ask(client: Any, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    from bench_query import _post

    return _post(client, query, variables)[1]


def report(
    machine: str,
    traces: int,
    stored: int,
    args: Any,
    notes: list[str],
    results: list[list[Any]],
    rows: list[list[int]],
) -> list[str]:
    from bench_query import pct

    lines = [
        f"- {machine}; {traces:,} runs, {stored:,} spans; {args.requests} sequential "
        f"requests per question after {args.warmup} warm-up, httpx -> uvicorn (1 worker)"
        + (", ours and Phoenix's taking turns" if args.phoenix else ""),
        *(f"- {note}" for note in notes),
        "",
    ]
    if not args.phoenix:
        lines += [
            "| question | rows | p50 ms | p95 ms | server CPU ms/req | Phoenix p50 ms "
            "(issue 13, fixed) | Phoenix / us |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for (r,), (n,) in zip(results, rows, strict=True):
            p50, fixed = pct(r.samples, 50), PHOENIX_P50_MS[r.name]
            lines.append(
                f"| {r.name} | {n} | {p50:.1f} | {pct(r.samples, 95):.1f} | {r.cpu_ms:.1f} "
                f"| {fixed:.0f} | {fixed / p50:.1f}x |"
            )
        return lines
    lines += [
        "| question | rows us / Phoenix | p50 ms | p95 ms | server CPU ms/req | Phoenix p50 ms "
        "| Phoenix p95 ms | Phoenix server CPU ms/req | Phoenix / us (p50, this run) "
        "| Phoenix p50 ms (issue 13, fixed) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (ours, theirs), counted in zip(results, rows, strict=True):
        p50, their_p50 = pct(ours.samples, 50), pct(theirs.samples, 50)
        lines.append(
            f"| {ours.name} | {' / '.join(map(str, counted))} | {p50:.1f} "
            f"| {pct(ours.samples, 95):.1f} | {ours.cpu_ms:.1f} | {their_p50:.1f} "
            f"| {pct(theirs.samples, 95):.1f} | {theirs.cpu_ms:.1f} | {their_p50 / p50:.1f}x "
            f"| {PHOENIX_P50_MS[ours.name]:.0f} |"
        )
    return lines


if __name__ == "__main__":
    main()
