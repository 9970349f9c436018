"""The exporter's summary ``UPDATE`` (``tracing.export.summary.UPDATE_TRACES``), as in the
working tree against a git revision, on an existing database.

What it owns: the before/after figure of that statement in benchmarks/RESULTS.md ("Months
of traces"). One batch of fresh runs (``bench_ingest.generate_spans``, dated now) is made
into its summary delta once; then, in one transaction rolled back at the end (jit off, as
the writer runs it), its trace rows are inserted and each version's ``UPDATE`` runs
``--reps`` times, alternately, under ``EXPLAIN ANALYZE`` (planning and execution time as
PostgreSQL reports them). The revision compared must take the delta as one JSON parameter
(8863dd9 and later); the earlier figures in RESULTS were taken before that change.

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/campus .venv/bin/python \\
        benchmarks/bench_summary_update.py --compare-with main --reps 20
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_ingest import _git_show, generate_spans, machine_line, setup_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare-with", metavar="REV", required=True)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--spans", type=int, default=512, help="spans in the batch")
    args = parser.parse_args()

    setup_django()
    import psycopg
    from bench_months import recent

    from tracing.export import conninfo_for
    from tracing.export.rows import span_to_row
    from tracing.export.summary import (
        INSERT_FRESH_TRACES,
        NO_JIT,
        UPDATE_TRACES,
        delta_params,
        summarize,
    )

    source = _git_show(args.compare_with, "tracing/export/summary.py") or ""
    match = re.search(r'^UPDATE_TRACES = f"""(.*?)"""', source, re.M | re.S)
    if match is None:
        raise SystemExit(f"no UPDATE_TRACES in tracing/export/summary.py at {args.compare_with}")
    old = eval('f"""' + match.group(1) + '"""', vars(sys.modules["tracing.export.summary"]))
    versions = {"working tree": UPDATE_TRACES, args.compare_with: old}
    rows = [span_to_row(s, 65536) for s in recent(generate_spans(args.spans, seed=5))]
    deltas = summarize(rows)
    params = delta_params(deltas)
    conninfo = conninfo_for("default")
    print(machine_line(conninfo), flush=True)
    times: dict[str, dict[str, list[float]]] = {v: {"plan": [], "run": []} for v in versions}
    with psycopg.connect(conninfo) as conn:
        conn.execute(NO_JIT)
        conn.execute(INSERT_FRESH_TRACES, params)
        for rep in range(args.reps + 1):
            for label in versions if rep % 2 else reversed(versions):
                plan = "\n".join(
                    r[0] for r in conn.execute("EXPLAIN ANALYZE " + versions[label], params)
                )
                if rep:  # the first round warms the connection's caches
                    planned = re.search(r"Planning Time: ([\d.]+) ms", plan)
                    ran = re.search(r"Execution Time: ([\d.]+) ms", plan)
                    assert planned and ran
                    times[label]["plan"].append(float(planned.group(1)))
                    times[label]["run"].append(float(ran.group(1)))
        conn.rollback()
    print(f"{len(deltas)} traces, {len(rows)} spans; medians of {args.reps}:")
    for label, t in times.items():
        planning, execution = statistics.median(t["plan"]), statistics.median(t["run"])
        print(
            f"{label}: planning {planning:.1f} ms, execution {execution:.1f} ms, "
            f"total {planning + execution:.1f}"
        )


if __name__ == "__main__":
    main()
