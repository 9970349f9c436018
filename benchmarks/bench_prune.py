"""The prune, as in the working tree against a git revision, on copies of one database.

What it owns: the before/after figures of the prune in benchmarks/RESULTS.md ("Months of
traces"). ``bench_months.py`` measures the prune once, against ``DELETE``, while ingest
runs; this compares two versions of ``tracing.retention`` on the same rows. Each round
copies ``--template`` (a seeded database with its day partitions, e.g. one
``bench_months.py --keep-db`` left) with ``CREATE DATABASE … TEMPLATE`` for each version,
alternating which goes first, and times ``prune`` and each of its steps (the partition
drop, the trace rows, the DEFAULT partition), then drops the copy. Nothing else should
use the template meanwhile (PostgreSQL copies only an unused database).

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/campus .venv/bin/python \\
        benchmarks/bench_prune.py --template campus_monthsbench --compare-with main \\
        --keep-days 30 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_ingest import _git_show, _load_at, machine_line, setup_django  # noqa: E402

STEPS = ("_drop_partitions", "_delete_traces", "_delete_default_rows")


def retention_at(revision: str | None) -> Any:
    if revision is None:
        from tracing import retention

        return retention
    source = _git_show(revision, "tracing/retention.py")
    if source is None:
        raise SystemExit(f"no tracing/retention.py at {revision}")
    return _load_at(revision, f"retention_at_{revision}", source, "tracing/retention.py")


def timed_prune(module: Any, conninfo: str, now: datetime, days: int) -> dict[str, Any]:
    """``module.prune`` with each step timed (the steps are module functions it calls)."""
    times: dict[str, float] = {}
    originals = {name: getattr(module, name) for name in STEPS}

    def timer(name: str, step: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return step(*args, **kwargs)
            finally:
                times[name] = times.get(name, 0.0) + time.perf_counter() - began

        return run

    for name, step in originals.items():
        setattr(module, name, timer(name, step))
    try:
        began = time.perf_counter()
        report = module.prune(conninfo, now, days)
        total = time.perf_counter() - began
    finally:
        for name, step in originals.items():
            setattr(module, name, step)
    return {
        "seconds": total,
        "steps": times,
        "partitions": len(report.partitions),
        "partition_spans": report.partition_spans,
        "loose_spans": report.loose_spans,
        "traces": report.traces,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--template", required=True, help="seeded database to copy")
    parser.add_argument("--compare-with", metavar="REV", required=True)
    parser.add_argument("--keep-days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    setup_django()
    import logging

    import psycopg
    from psycopg import sql

    from tracing.export import conninfo_for

    logging.getLogger("tracing.retention").setLevel(logging.WARNING)
    admin = conninfo_for("default")
    versions = {
        "working tree": retention_at(None),
        args.compare_with: retention_at(args.compare_with),
    }
    now = datetime.now(UTC)
    results: dict[str, Any] = {"machine": machine_line(admin), "runs": {v: [] for v in versions}}
    print(results["machine"], flush=True)
    copy = f"{args.template}_prunecopy"
    for round_no in range(args.rounds):
        order = list(versions) if round_no % 2 == 0 else list(reversed(versions))
        for label in order:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(copy)))
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(copy), sql.Identifier(args.template)
                    )
                )
            target = psycopg.conninfo.make_conninfo(admin, dbname=copy)
            with psycopg.connect(target, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE tracing_oteltrace")  # alike for both
            run = timed_prune(versions[label], target, now, args.keep_days)
            run["load_average"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
            results["runs"][label].append(run)
            print(round_no, label, json.dumps(run), flush=True)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(copy)))
    for label, runs in results["runs"].items():
        medians = {
            "seconds": statistics.median(r["seconds"] for r in runs),
            **{step: statistics.median(r["steps"].get(step, 0.0) for r in runs) for step in STEPS},
        }
        results.setdefault("medians", {})[label] = medians
        print(label, "median", json.dumps(medians), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
