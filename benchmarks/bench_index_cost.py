#!/usr/bin/env python
"""Write cost of candidate span index sets, in SQL only (no exporter work).

The same stored span rows (the first ``--rows`` by start of an existing, seeded database)
are INSERTed into a fresh copy of the span table under each index set, the sets alternated
over ``--rounds`` rounds, with a CHECKPOINT before each insert (as after a checkpoint in
production, each first touch of an index page writes a full-page image). Prints each set's
median time against the schema before migration 0005. Used to choose 0005's index set (see
benchmarks/RESULTS.md, "Span search").

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/campus_spans_bench \\
        .venv/bin/python benchmarks/bench_index_cost.py --rows 200000 --rounds 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg

COLUMNS = (
    "trace_id, span_id, parent_span_id, name, span_kind, started_at, ended_at, duration_ms, "
    "status_code, status_message, attributes, events, scope, kind, model, tool_name, "
    "input_tokens, output_tokens"
)
BASE = ["CREATE UNIQUE INDEX ON idxcost (trace_id, span_id)"]
TRACE_START = "CREATE INDEX ON idxcost (trace_id, started_at)"
COVERING = (
    "CREATE INDEX ON idxcost (started_at DESC, id DESC) INCLUDE (duration_ms, status_code, "
    "input_tokens, output_tokens, kind, model, tool_name, name)"
)
PLAIN = "CREATE INDEX ON idxcost (started_at DESC, id DESC)"
KIND = "CREATE INDEX ON idxcost (kind, started_at DESC, id DESC)"
MODEL = "CREATE INDEX ON idxcost (model, started_at DESC, id DESC) WHERE model IS NOT NULL"
TOOL = "CREATE INDEX ON idxcost (tool_name, started_at DESC, id DESC) WHERE tool_name IS NOT NULL"
DURATION = "CREATE INDEX ON idxcost (duration_ms, id)"
ERROR = "CREATE INDEX ON idxcost (started_at DESC, id DESC) WHERE status_code = 'ERROR'"
BEFORE = "before 0005 (pk, unique, trace+start)"
SETS = {
    BEFORE: [*BASE, TRACE_START],
    "0005: covering + model + tool + error": [*BASE, COVERING, MODEL, TOOL, ERROR],
    "plain started + model + tool + error": [*BASE, PLAIN, MODEL, TOOL, ERROR],
    "  ... + duration": [*BASE, PLAIN, MODEL, TOOL, ERROR, DURATION],
    "covering + model + tool + error + duration": [*BASE, COVERING, MODEL, TOOL, ERROR, DURATION],
    "covering + kind + duration + model + tool + error": [
        *BASE,
        COVERING,
        KIND,
        DURATION,
        MODEL,
        TOOL,
        ERROR,
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS idxcost_src")
        conn.execute(
            f"CREATE TABLE idxcost_src AS SELECT {COLUMNS} FROM tracing_otelspan "
            "ORDER BY started_at LIMIT %s",
            (args.rows,),
        )
        times: dict[str, list[float]] = {label: [] for label in SETS}
        try:
            for round_ in range(args.rounds):
                for label, ddl in SETS.items():
                    conn.execute("DROP TABLE IF EXISTS idxcost")
                    conn.execute(
                        "CREATE TABLE idxcost (LIKE tracing_otelspan INCLUDING DEFAULTS "
                        "INCLUDING IDENTITY)"
                    )
                    conn.execute("ALTER TABLE idxcost ADD PRIMARY KEY (id)")
                    for statement in ddl:
                        conn.execute(statement)
                    conn.execute("CHECKPOINT")
                    started = time.perf_counter()
                    conn.execute(
                        f"INSERT INTO idxcost ({COLUMNS}) SELECT {COLUMNS} FROM idxcost_src"
                    )
                    times[label].append(time.perf_counter() - started)
                    print(f"round {round_ + 1} {label:52s} {times[label][-1]:6.2f}s", flush=True)
        finally:
            conn.execute("DROP TABLE IF EXISTS idxcost")
            conn.execute("DROP TABLE IF EXISTS idxcost_src")
    base = statistics.median(times[BEFORE])
    print(f"\n{args.rows:,} rows, median of {args.rounds} rounds, load {os.getloadavg()[0]:.1f}")
    for label, samples in times.items():
        median = statistics.median(samples)
        print(f"  {label:52s} {median:6.2f}s  {median / base - 1:+.0%}")


if __name__ == "__main__":
    main()
