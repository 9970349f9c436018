"""Months of traces: partitioning, conversion, retention and compression, in one run.

What it owns: the figures of benchmarks/RESULTS.md, "Months of traces". In a database of
its own (``<name>_monthsbench``, created and dropped again; ``--keep-db`` keeps it):

1. migrates to the last unpartitioned state (tracing 0004) and seeds ``--days`` days of
   traces with ``seed_traces`` (COPY), so the installation looks like one that predates
   partitioning; measures bytes per span and, with ``--query-requests``, runs
   ``bench_query.py`` against it;
2. copies span and trace tables (same indexes) for the ``DELETE`` comparison;
3. times ``migrate`` converting the table (seconds per million spans); measures bytes per
   span again and ``bench_query.py`` on the partitioned table (``--explain`` keeps plans);
4. measures ingest (the real exporter, batches of 512) alone, then while ``prune`` removes
   everything older than ``--keep-days``, then while ``DELETE`` removes the same rows
   from the copies; sizes before and after;
5. compares pglz and lz4 on one day of spans (size and insert time).

``--flat-twin NAME`` (with a database kept by ``--keep-db``) instead makes database NAME: a
copy of it whose span table is one unpartitioned table with the same columns, primary key
and indexes, for ``bench_query.py --compare-db`` (the same code and data, partitioned
against not).

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/campus .venv/bin/python \\
        benchmarks/bench_months.py --traces 3000000 --days 90 --keep-days 30 \\
        --query-requests 30 --explain months-plans.md --json months.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_ingest import bench_database, generate_spans, machine_line, setup_django  # noqa: E402

BEFORE = "0006_span_search_columns"
COPY_SPANS = "months_delete_spans"
COPY_TRACES = "months_delete_traces"


def sql_value(conninfo: str, statement: str, params: Any = None) -> Any:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(statement, params).fetchone()
    return row[0] if row else None


def span_table_bytes(conninfo: str, table: str = "tracing_otelspan") -> dict[str, int]:
    """Heap, TOAST and index bytes of a table, summed over its partitions if any."""
    return {
        k: int(v or 0)
        for k, v in zip(
            ("heap", "toast", "indexes", "total"),
            _one(
                conninfo,
                """
            WITH rels AS (
              SELECT c.oid, c.reltoastrelid FROM pg_class c
              WHERE c.oid = %(t)s::regclass OR c.oid IN (
                SELECT relid FROM pg_partition_tree(%(t)s::regclass)))
            SELECT sum(pg_relation_size(oid)),
                   sum(CASE WHEN reltoastrelid <> 0 THEN pg_total_relation_size(reltoastrelid)
                       ELSE 0 END),
                   sum(pg_indexes_size(oid)),
                   sum(pg_total_relation_size(oid))
            FROM rels""",
                {"t": table},
            ),
            strict=True,
        )
    }


def _one(conninfo: str, statement: str, params: Any = None) -> tuple[Any, ...]:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(statement, params).fetchone()
    assert row is not None
    return tuple(row)


def query_bench(
    conninfo_url: str, traces: int, requests: int, out: Path, explain: Path | None
) -> dict[str, Any]:
    args = [
        sys.executable, str(ROOT / "benchmarks" / "bench_query.py"), "--traces", str(traces),
        "--requests", str(requests), "--warmup", "3", "--json", str(out),
    ]  # fmt: skip
    if explain:
        args += ["--explain", str(explain)]
    subprocess.run(args, check=True, env={**os.environ, "DATABASE_URL": conninfo_url})
    return dict(json.loads(out.read_text()))


class Ingest(threading.Thread):
    """The real exporter writing fresh agent runs (batches of 512) until stopped."""

    def __init__(self, conninfo: str, spans: list[Any]) -> None:
        super().__init__(daemon=True)
        from tracing.export import PostgresSpanExporter

        self.exporter = PostgresSpanExporter(conninfo=conninfo, keep_untagged=True)
        self.spans = spans
        self.stop = threading.Event()
        self.written = 0
        self.seconds = 0.0

    def run(self) -> None:
        began = time.perf_counter()
        for i in range(0, len(self.spans), 512):
            if self.stop.is_set():
                break
            batch = self.spans[i : i + 512]
            self.exporter.export(batch)
            self.written += len(batch)
        self.seconds = time.perf_counter() - began
        self.exporter.shutdown()

    @property
    def rate(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0


def recent(spans: list[Any]) -> list[Any]:
    """``generate_spans``' runs moved to the last minutes (it dates them in 2025), so ingest
    writes into today's partition as in production, not into the DEFAULT one."""
    from tracing.synthetic.moved import moved_to

    return moved_to(spans, time.time_ns() - 60 * 10**9)


def while_ingesting(conninfo: str, spans: list[Any], work: Any) -> tuple[float, float, Any]:
    """Run ``work()`` while ingest runs; (work seconds, ingest spans/s meanwhile, result)."""
    ingest = Ingest(conninfo, spans)
    ingest.start()
    time.sleep(0.5)  # ingest under way first
    began = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - began
    written_at_end = ingest.written
    ingest.stop.set()
    ingest.join()
    # spans written while the work ran (the ingest thread started 0.5 s earlier)
    rate = written_at_end / (seconds + 0.5)
    return seconds, rate, result


def ingest_alone(conninfo: str, spans: list[Any]) -> float:
    ingest = Ingest(conninfo, spans)
    ingest.start()
    ingest.join()
    return ingest.rate


_SPAN_COLS = (
    "s.trace_id, s.span_id, s.parent_span_id, s.name, s.span_kind, s.started_at, s.ended_at, "
    "s.duration_ms, s.status_code, s.status_message, s.attributes, s.events, s.scope"
)


def span_reads(conninfo: str, reps: int) -> dict[str, Any]:
    """The span reads of the read path (tracing/read/), on the partitioned table and
    on the unpartitioned copy of the same rows, interleaved so machine load hits both alike;
    SQL as Django sends it (literal parameters, planned each time). p50/p95 ms per case."""
    import random
    import statistics

    import psycopg

    with psycopg.connect(conninfo, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        newest = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM tracing_oteltrace ORDER BY started_at DESC LIMIT 50"
            ).fetchall()
        ]
        spread = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM tracing_oteltrace WHERE status = 'error' "
                "ORDER BY total_duration_ms DESC LIMIT 50"
            ).fetchall()
        ]
        sample = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM tracing_oteltrace ORDER BY random() LIMIT 200"
            ).fetchall()
        ]
        large = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM tracing_oteltrace WHERE span_count >= 1000 LIMIT 1"
            ).fetchall()
        ]

        # The trace rows' start and end, as the request that shows a trace has read them
        # (the trace query) before it asks for the spans.
        extent = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                "SELECT id, started_at, ended_at FROM tracing_oteltrace WHERE id = ANY(%s)",
                (sample + large,),
            ).fetchall()
        }

        def detail(table: str, ids: list[Any], bounded: str) -> None:
            """bounded: "row" (the trace row's extent, known), "query" (looked up first,
            the read before the trace row's was passed down), "" (unpartitioned)."""
            where = ""
            if bounded == "row":
                lo = min(extent[i][0] for i in ids)
                hi = max(extent[i][1] for i in ids)
            elif bounded == "query":
                lo, hi = conn.execute(
                    "SELECT min(started_at), max(ended_at) FROM tracing_oteltrace "
                    "WHERE id = ANY(%s)",
                    (ids,),
                ).fetchone()  # type: ignore[misc]
            if bounded:
                where = " AND s.started_at >= %(lo)s AND s.started_at <= %(hi)s"
            conn.execute(
                f"SELECT {_SPAN_COLS} FROM {table} s WHERE s.trace_id = ANY(%(ids)s){where} "
                "ORDER BY s.trace_id, s.started_at, s.span_id",
                {"ids": ids, **({"lo": lo, "hi": hi} if bounded else {})},
            ).fetchall()

        def page_keys(ids: list[Any]) -> list[tuple[Any, ...]]:
            return [
                tuple(r)
                for r in conn.execute(
                    "SELECT id, root_span_id, started_at, ended_at FROM tracing_oteltrace "
                    "WHERE id = ANY(%s)",
                    (ids,),
                ).fetchall()
            ]

        # The list page holds its traces' root span id, start and end (root_spans gets them).
        page = {id(newest): page_keys(newest), id(spread): page_keys(spread)}

        def roots_sql(table: str, ids: list[Any], bounded: bool) -> tuple[str, Any]:
            if not bounded:  # the join the read path used before partitioning
                return (
                    f"SELECT {_SPAN_COLS} FROM {table} s JOIN tracing_oteltrace t "
                    "ON t.id = s.trace_id "
                    "WHERE s.trace_id = ANY(%s) AND s.span_id = t.root_span_id",
                    (ids,),
                )
            keys = page[id(ids)]
            return (
                f"SELECT {_SPAN_COLS} FROM unnest(%s::uuid[], %s::varchar[], %s::timestamptz[], "
                "%s::timestamptz[]) AS k(trace_id, span_id, lo, hi) CROSS JOIN LATERAL "
                f"(SELECT * FROM {table} s WHERE s.trace_id = k.trace_id "
                "AND s.span_id = k.span_id AND s.started_at >= k.lo AND s.started_at <= k.hi "
                "AND s.started_at >= %s AND s.started_at <= %s) AS s",
                [
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [k[2] for k in keys],
                    [k[3] for k in keys],
                    min(k[2] for k in keys),
                    max(k[3] for k in keys),
                ],
            )

        def roots(table: str, ids: list[Any], bounded: str) -> None:
            conn.execute(*roots_sql(table, ids, bool(bounded))).fetchall()

        cases = {
            "trace detail (~10 spans)": lambda table, b: detail(table, [random.choice(sample)], b),
            "trace detail (1,000 spans)": lambda table, b: detail(table, large, b),
            "list page: root spans, newest 50": lambda table, b: roots(table, newest, b),
            "list page: root spans, 50 over 90 days": lambda table, b: roots(table, spread, b),
        }
        # Untimed first: a connection's first read of a partition loads its catalog entries
        # (~10 ms), which a long-lived server connection has done long before; a random
        # trace would otherwise often be a first read, for whichever variant comes first.
        for trace_id in sample:
            detail("tracing_otelspan", [trace_id], "row")
            detail(COPY_SPANS, [trace_id], "")
        out: dict[str, Any] = {}
        for name, run in cases.items():
            if "1,000" in name and not large:
                continue
            variants = [
                ("partitioned", "tracing_otelspan", "row"),
                ("unpartitioned", COPY_SPANS, ""),
            ]
            if name.startswith("trace detail"):
                variants.insert(1, ("partitioned, bounds query first", "tracing_otelspan", "query"))
            samples: dict[str, list[float]] = {label: [] for label, _, _ in variants}
            for _, table, bounded in variants:
                run(table, bounded)  # untimed, as the sample's traces above
            # The order of the variants rotates.
            for rep in range(reps):
                for label, table, bounded in (
                    variants[rep % len(variants) :] + variants[: rep % len(variants)]
                ):
                    began = time.perf_counter()
                    run(table, bounded)
                    samples[label].append((time.perf_counter() - began) * 1000)
            out[name] = {
                label: {
                    "p50": statistics.median(v),
                    "p95": statistics.quantiles(v, n=20)[18] if len(v) >= 20 else max(v),
                }
                for label, v in samples.items()
            }
            print(name, out[name], flush=True)
        plans = {}
        for label, table, pruned in (
            ("partitioned", "tracing_otelspan", True),
            ("unpartitioned", COPY_SPANS, False),
        ):
            ids = [random.choice(sample)]
            lo, hi = conn.execute(
                "SELECT min(started_at), max(ended_at) FROM tracing_oteltrace WHERE id = ANY(%s)",
                (ids,),
            ).fetchone()  # type: ignore[misc]
            where = " AND s.started_at >= %(lo)s AND s.started_at <= %(hi)s" if pruned else ""
            plans[f"detail {label}"] = "\n".join(
                r[0]
                for r in conn.execute(
                    f"EXPLAIN (ANALYZE, BUFFERS) SELECT {_SPAN_COLS} FROM {table} s "
                    f"WHERE s.trace_id = ANY(%(ids)s){where} ORDER BY s.trace_id, s.started_at, "
                    "s.span_id",
                    {"ids": ids, "lo": lo, "hi": hi},
                ).fetchall()
            )
            statement, params = roots_sql(table, spread, pruned)
            plans[f"roots over 90 days {label}"] = "\n".join(
                r[0] for r in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
            )
            plans[f"time filter {label}"] = "\n".join(
                r[0]
                for r in conn.execute(
                    f"EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM {table} s "
                    "WHERE s.started_at >= now() - interval '1 day'"
                ).fetchall()
            )
        out["plans"] = plans
    return out


def compression(conninfo: str) -> dict[str, Any]:
    """One day's spans copied into a pglz and an lz4 table: size and insert seconds."""
    import psycopg

    out: dict[str, Any] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        day = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'tracing_otelspan'::regclass AND c.relname <> "
            "'tracing_otelspan_default' ORDER BY pg_relation_size(c.oid) DESC LIMIT 1"
        ).fetchone()
        assert day is not None
        rows = conn.execute(f"SELECT count(*) FROM {day[0]}").fetchone()
        out["rows"] = rows[0] if rows else 0
        for method in ("pglz", "lz4"):
            table = f"months_compress_{method}"
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} (LIKE {day[0]} INCLUDING DEFAULTS)")
            for column in ("attributes", "events"):
                conn.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")
            # Through text, so the values are recompressed with this table's method.
            columns = ", ".join(
                f"{c}::text::jsonb" if c in ("attributes", "events") else c
                for (c,) in conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    (table,),
                ).fetchall()
            )
            began = time.perf_counter()
            conn.execute(f"INSERT INTO {table} SELECT {columns} FROM {day[0]}")
            insert_s = time.perf_counter() - began
            began = time.perf_counter()
            conn.execute(f"SELECT sum(length(attributes::text)) FROM {table}")
            read_s = time.perf_counter() - began
            size = conn.execute(f"SELECT pg_total_relation_size('{table}')").fetchone()
            out[method] = {"bytes": size[0] if size else 0, "insert_s": insert_s, "read_s": read_s}
            conn.execute(f"DROP TABLE {table}")
    return out


@contextmanager
def kept_database(suffix: str) -> Iterator[str]:
    """The database a run kept (``<name>_<suffix>``) as it is: unlike ``bench_database``,
    no ``migrate`` (which would convert the seeded unpartitioned table untimed)."""
    from django.conf import settings
    from django.db import connection

    from tracing.export import conninfo_for

    name = f"{connection.settings_dict['NAME']}_{suffix}"
    connection.close()
    settings.DATABASES["default"]["NAME"] = connection.settings_dict["NAME"] = name
    yield conninfo_for("default")
    connection.close()


def delete_copies(conninfo: str, slim: bool) -> None:
    """The span and trace tables copied for the ``DELETE`` comparison, the spans'
    ``trace_id`` referencing the traces as before partitioning. ``slim``: the spans with
    the unpartitioned era's primary key ``(trace_id, span_id)`` only (a ``DELETE`` writes
    the heap, not the indexes: their cost comes with the ``VACUUM`` after)."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {COPY_TRACES} (LIKE tracing_oteltrace INCLUDING ALL)")
        conn.execute(f"INSERT INTO {COPY_TRACES} SELECT * FROM tracing_oteltrace")
        if slim:
            conn.execute(
                f"CREATE TABLE {COPY_SPANS} (LIKE tracing_otelspan INCLUDING DEFAULTS "
                "INCLUDING STORAGE INCLUDING COMPRESSION)"
            )
            conn.execute(f"INSERT INTO {COPY_SPANS} SELECT * FROM tracing_otelspan")
            conn.execute(f"ALTER TABLE {COPY_SPANS} ADD PRIMARY KEY (trace_id, span_id)")
        else:
            conn.execute(f"CREATE TABLE {COPY_SPANS} (LIKE tracing_otelspan INCLUDING ALL)")
            conn.execute(f"INSERT INTO {COPY_SPANS} SELECT * FROM tracing_otelspan")
        conn.execute(
            f"ALTER TABLE {COPY_SPANS} ADD FOREIGN KEY (trace_id) REFERENCES {COPY_TRACES} "
            "DEFERRABLE INITIALLY DEFERRED"
        )
        conn.execute(f"VACUUM ANALYZE {COPY_TRACES}")
        conn.execute(f"VACUUM ANALYZE {COPY_SPANS}")


def flat_twin(conninfo: str, twin: str) -> None:
    """Make database ``twin``: a copy of the one at ``conninfo`` whose span table is not
    partitioned (same columns, primary key, indexes; rows in the partitions' physical
    order)."""
    import psycopg
    from django.db import connection
    from psycopg import sql

    connection.close()  # CREATE DATABASE … TEMPLATE needs the source to itself
    with psycopg.connect(conninfo, autocommit=True) as conn:
        source = conn.info.dbname
    with psycopg.connect(conninfo, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(twin)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(twin), sql.Identifier(source)
            )
        )
    with psycopg.connect(conninfo, dbname=twin, autocommit=True) as conn:
        table = "tracing_otelspan"
        indexes = conn.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = "
            "%s::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
            "WHERE c.conindid = i.indexrelid)",
            (table,),
        ).fetchall()
        constraints = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'c')",
            (table,),
        ).fetchall()
        conn.execute(
            f"CREATE TABLE flat_span (LIKE {table} INCLUDING DEFAULTS INCLUDING GENERATED "
            "INCLUDING STORAGE INCLUDING COMPRESSION)"
        )
        # In the partitions' own physical order (day after day, each as ingest wrote it,
        # trace by trace): the layout one table fed by the same ingest has. Sorted by start
        # instead, the twin's newest-first scans read 1/4 of the pages the partitions' do
        # (a rare attribute: 2,035 buffers against 7,984), a layout no ingest produces.
        conn.execute(f"INSERT INTO flat_span SELECT * FROM {table}")
        conn.execute(f"DROP TABLE {table} CASCADE")
        conn.execute(f"ALTER TABLE flat_span RENAME TO {table}")
        for name, definition in constraints:
            conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
        for (definition,) in indexes:
            conn.execute(definition.replace(f" ON ONLY public.{table} ", f" ON public.{table} "))
        conn.execute(f"VACUUM ANALYZE {table}")
        print("flat twin", twin, span_table_bytes(conninfo.replace(source, twin)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=int, default=300_000)
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--keep-days", type=int, default=30)
    parser.add_argument("--ingest-spans", type=int, default=60_000)
    parser.add_argument("--query-requests", type=int, default=0, help="0: skip bench_query")
    parser.add_argument("--read-reps", type=int, default=200, help="span-read repetitions")
    parser.add_argument("--explain", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument(
        "--reads-only",
        action="store_true",
        help=f"only the span reads, in a database kept by --keep-db (with {COPY_SPANS})",
    )
    parser.add_argument(
        "--seeded",
        action="store_true",
        help="the kept database already holds the seeded, unpartitioned data (a run "
        "stopped after seeding): start from it",
    )
    parser.add_argument(
        "--slim-copy",
        action="store_true",
        help="make the DELETE copies after the conversion, the spans with their primary key "
        "only (about 60%% of the space: for when two full copies do not fit on the disk)",
    )
    parser.add_argument("--flat-twin", metavar="NAME", help="see the module docstring")
    args = parser.parse_args()

    setup_django()
    import psycopg
    from django.core.management import call_command
    from django.db import connection

    from tracing import retention
    from tracing.management.commands import seed_traces

    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    if args.flat_twin:
        with bench_database(True, suffix="monthsbench") as conninfo:
            flat_twin(conninfo, args.flat_twin)
        return
    if args.reads_only:
        with bench_database(True, suffix="monthsbench") as conninfo:
            results["machine"] = machine_line(conninfo)
            print(results["machine"], flush=True)
            results["span_reads"] = span_reads(conninfo, args.read_reps)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
        return
    database = kept_database("monthsbench") if args.seeded else None
    with database or bench_database(args.keep_db, suffix="monthsbench") as conninfo:
        results["machine"] = machine_line(conninfo)
        s = connection.settings_dict
        url = f"postgres://{s['USER']}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"
        print(results["machine"], flush=True)
        if args.seeded:
            spans = int(sql_value(conninfo, "SELECT count(*) FROM tracing_otelspan"))
            traces = int(sql_value(conninfo, "SELECT count(*) FROM tracing_oteltrace"))
            results["seed"] = {"traces": traces, "spans": spans, "seconds": None}
        else:
            call_command("migrate", "tracing", BEFORE, verbosity=0)
            connection.close()
            now = datetime.now(UTC)
            seeded = seed_traces.seed(traces=args.traces, days=args.days, end=now, writers=2)
            spans = int(sql_value(conninfo, "SELECT count(*) FROM tracing_otelspan"))
            results["seed"] = {"traces": seeded.traces, "spans": spans, "seconds": seeded.seconds}
        results["unpartitioned"] = span_table_bytes(conninfo)
        results["traces_bytes"] = int(
            sql_value(conninfo, "SELECT pg_total_relation_size('tracing_oteltrace')")
        )
        print("seeded", results["seed"], results["unpartitioned"], flush=True)
        work = Path(os.environ.get("TMPDIR", "/tmp"))
        if args.query_requests:
            results["query_unpartitioned"] = query_bench(
                url, args.traces, args.query_requests, work / "months_q_before.json", None
            )

        if not args.slim_copy:
            delete_copies(conninfo, slim=False)

        began = time.perf_counter()
        call_command("migrate", "tracing", verbosity=0)
        migrate_s = time.perf_counter() - began
        connection.close()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE tracing_otelspan")
        results["migrate"] = {"seconds": migrate_s, "s_per_million": migrate_s / spans * 1e6}
        results["partitioned"] = span_table_bytes(conninfo)
        print("migrated", results["migrate"], results["partitioned"], flush=True)
        if args.slim_copy:
            delete_copies(conninfo, slim=True)
        results["span_reads"] = span_reads(conninfo, args.read_reps)
        if args.query_requests:
            results["query_partitioned"] = query_bench(
                url, args.traces, args.query_requests, work / "months_q_after.json", args.explain
            )

        ingest_sets = [recent(generate_spans(args.ingest_spans, seed=n)) for n in range(3)]
        results["ingest_alone_spans_s"] = ingest_alone(conninfo, ingest_sets[0])
        cutoff = retention.cutoff_for(datetime.now(UTC), args.keep_days)
        results["cutoff"] = cutoff.isoformat()
        before_prune = span_table_bytes(conninfo)
        prune_s, prune_rate, report = while_ingesting(
            conninfo,
            ingest_sets[1],
            lambda: retention.prune(conninfo, datetime.now(UTC), args.keep_days),
        )
        results["prune"] = {
            "seconds": prune_s,
            "ingest_spans_s": prune_rate,
            "partitions": len(report.partitions),
            "partition_spans": report.partition_spans,
            "loose_spans": report.loose_spans,
            "traces": report.traces,
            "before": before_prune,
            "after": span_table_bytes(conninfo),
        }
        print("prune", results["prune"], flush=True)

        before_delete = span_table_bytes(conninfo, COPY_SPANS)

        def delete() -> tuple[int, int]:
            with psycopg.connect(conninfo) as conn:
                spans_deleted = conn.execute(
                    f"DELETE FROM {COPY_SPANS} WHERE trace_id IN (SELECT id FROM {COPY_TRACES} "
                    "WHERE started_at < %s)",
                    (cutoff,),
                ).rowcount
                traces_deleted = conn.execute(
                    f"DELETE FROM {COPY_TRACES} WHERE started_at < %s", (cutoff,)
                ).rowcount
                conn.commit()
            return spans_deleted, traces_deleted

        delete_s, delete_rate, deleted = while_ingesting(conninfo, ingest_sets[2], delete)
        after_delete = span_table_bytes(conninfo, COPY_SPANS)
        began = time.perf_counter()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"VACUUM {COPY_SPANS}")
        vacuum_s = time.perf_counter() - began
        results["delete"] = {
            "seconds": delete_s,
            "ingest_spans_s": delete_rate,
            "spans": deleted[0],
            "traces": deleted[1],
            "before": before_delete,
            "after": after_delete,
            "vacuum_seconds": vacuum_s,
            "after_vacuum": span_table_bytes(conninfo, COPY_SPANS),
        }
        print("delete", results["delete"], flush=True)
        results["compression"] = compression(conninfo)
        print("compression", results["compression"], flush=True)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {COPY_SPANS}, {COPY_TRACES}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
