#!/usr/bin/env python
"""Ingest benchmark: spans/s through PostgresSpanExporter vs raw COPY, in the same run.

1. Realistic agent runs (``tracing.synthetic``) are recorded by a real TracerProvider with
   the production ``AgentRunTaggerProcessor`` (so every span is tagged) and an in-memory
   collecting processor: ``invoke_agent`` → ``knowledge_routing``, ``iteration_N`` →
   ``token_management``, ``chat <model>`` (httpx ``POST`` child), ``execute_tool <name>``
   (psycopg ``SELECT`` child for the knowledge search), with the attributes the agent
   writes (JSON prompts of a few KB on ``chat`` spans).
2. Exporter phase: ``exporter.export(batch)`` over batches of the BatchSpanProcessor's
   size, then ``force_flush()``; tables truncated before each repetition.
3. COPY phase: exactly the rows the exporter stored (dumped with ``COPY ... TO STDOUT``,
   so they are pre-serialized) are COPYed straight into ``tracing_otelspan`` after the
   same trace rows exist — the ceiling for this table, its indexes and this server.
4. Then the agent overhead benchmark (``bench_overhead.py``) unless ``--skip-overhead``.

Runs in its own database ``<DB name>_ingestbench`` on the configured server (created and
migrated here, dropped at the end unless ``--keep-db``): it truncates tables freely and
must never touch the product's data.

    make bench-ingest                 # or: .venv/bin/python benchmarks/bench_ingest.py
    .venv/bin/python benchmarks/bench_ingest.py --spans 150000 --batch 512 4096 --skip-overhead
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> None:
    """Django without the process-wide tracing pipeline: the benchmarks build their own
    providers, and auto-instrumentation would put spans around the benchmark's own SQL."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "campus_core.settings")
    os.environ["OTEL_SDK_DISABLED"] = "true"
    import django

    django.setup()
    # The OTel SDK reads the same variable and would hand out no-op tracers to the
    # benchmark's own providers; settings keep the value they read.
    del os.environ["OTEL_SDK_DISABLED"]
    import logging

    # The agent logs two INFO lines per run; thousands of them would flood the report.
    logging.getLogger("campus_core").setLevel(logging.WARNING)


@contextmanager
def bench_database(keep: bool, suffix: str = "ingestbench") -> Iterator[str]:
    """A migrated database of our own next to the configured one (``<name>_<suffix>``);
    yields its conninfo."""
    from django.db import connection

    from tracing.export import conninfo_for

    settings_dict = connection.settings_dict
    settings_dict.setdefault("TEST", {})
    settings_dict["TEST"]["NAME"] = f"{settings_dict['NAME']}_{suffix}"
    old_name = connection.creation.create_test_db(verbosity=0, keepdb=True, serialize=False)
    try:
        yield conninfo_for("default")
    finally:
        if keep:
            connection.close()
        else:
            connection.creation.destroy_test_db(old_name, verbosity=0, keepdb=False)


def machine_line(conninfo: str) -> str:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    version = row[0] if row else "?"
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, "
        f"{mem_gib:.0f} GiB RAM; PostgreSQL {version}; Python {platform.python_version()}"
    )


# --- realistic agent traces --------------------------------------------------------------


def realistic_runs(rng: random.Random, spans_per_trace: float = 30.0) -> Iterator[Any]:
    """Current-generation agent runs as ``AgentCore`` records them: the conversation on every
    chat span (kilobytes) and three documents in each knowledge search result."""
    from campus_core.chat.knowledge import SAMPLE_DOCUMENTS
    from tracing.synthetic import world

    picker = world.RunPicker(rng, spans_per_trace)
    while True:
        run = picker.pick(1.0, world.question(rng), None)
        run.messages = True
        for iteration in run.iterations:
            for call in iteration.tools:
                if call.name == "search_knowledge" and call.ok:
                    docs = rng.sample(SAMPLE_DOCUMENTS, 3)
                    call.result = json.dumps(
                        {
                            "results": [
                                {"folder": f, "title": t, "content": c, "rank": 0.1}
                                for f, t, c in docs
                            ]
                        }
                    )
        yield run


def generate_spans(target_spans: int, seed: int = 7) -> list[Any]:
    """Finished ReadableSpans of whole agent runs (``tracing.synthetic``), made by a real
    TracerProvider with the production tagger, so every span is tagged."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

    from tracing.pipeline.tagger import AgentRunTaggerProcessor
    from tracing.synthetic import run as synthetic

    class Collector(SpanProcessor):
        def __init__(self) -> None:
            self.spans: list[ReadableSpan] = []

        def on_end(self, span: ReadableSpan) -> None:
            self.spans.append(span)

    collector = Collector()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "campus-core"}))
    provider.add_span_processor(AgentRunTaggerProcessor())
    provider.add_span_processor(collector)
    rng = random.Random(seed)
    clock = 1_760_000_000 * 10**6  # microseconds; explicit timestamps, realistic durations
    runs = realistic_runs(rng)
    while len(collector.spans) < target_spans:
        built = synthetic.build(next(runs), rng, clock)
        synthetic.emit(built, provider.get_tracer)
        clock = max(s.end_us for s in built.spans) + rng.randint(10**3, 10**6)
    provider.shutdown()
    return collector.spans


# --- the two phases -------------------------------------------------------------------------


def span_cols() -> str:
    """The exporter's span columns (``tracing.models.SPAN_COLUMNS``), for the COPY phase."""
    from tracing.models import SPAN_COLUMNS

    return ", ".join(SPAN_COLUMNS)


def truncate(conninfo: str) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE tracing_otelspan, tracing_oteltrace, tracing_otelresource")
        # Start each phase from a clean WAL position so one phase's checkpoint does not
        # land in the other's timing.
        conn.execute("CHECKPOINT")


_OLD_EXPORTER_PATHS = ("tracing/export/exporter.py", "tracing/exporter.py")


def _git_show(revision: str, path: str) -> str | None:
    shown = subprocess.run(
        ["git", "show", f"{revision}:{path}"], cwd=ROOT, capture_output=True, text=True
    )
    return shown.stdout if shown.returncode == 0 else None


def _load_at(revision: str, module_name: str, source: str, path: str) -> types.ModuleType:
    """Execute ``source`` as ``module_name``, first loading (as of ``revision``) every
    ``tracing`` module it imports that the working tree no longer has (a layout change)."""
    import importlib.util
    import re

    for dependency in re.findall(r"^from (tracing(?:\.\w+)*) import ([\w, ]+)", source, re.M):
        package, names = dependency
        for name in [package] + [
            f"{package}.{n.split(' as ')[0].strip()}" for n in names.split(",")
        ]:
            if name in sys.modules:
                continue
            try:
                if importlib.util.find_spec(name) is not None:
                    continue
            except ModuleNotFoundError:
                pass
            dep_path = name.replace(".", "/") + ".py"
            dep_source = _git_show(revision, dep_path)
            if dep_source is not None:
                _load_at(revision, name, dep_source, dep_path)
    module = types.ModuleType(module_name)
    sys.modules[module_name] = module  # dataclasses look their module up there
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
    return module


def exporter_class(revision: str | None) -> Any:
    """``PostgresSpanExporter`` as in the working tree, or as of a git revision (loaded from
    ``git show``, so an optimisation can be measured against its predecessor in one run;
    modules of an older layout that it imports are loaded from the same revision)."""
    if revision is None:
        from tracing.export import PostgresSpanExporter

        return PostgresSpanExporter
    for path in _OLD_EXPORTER_PATHS:
        source = _git_show(revision, path)
        if source is not None:
            module = _load_at(revision, f"exporter_at_{revision}", source, path)
            return module.PostgresSpanExporter
    raise SystemExit(f"no exporter at {revision} ({' or '.join(_OLD_EXPORTER_PATHS)})")


def run_exporter(
    conninfo: str, spans: Sequence[Any], batch: int, exporter_cls: Any
) -> tuple[float, dict[str, int]]:
    """Seconds to export every span in batches and flush; plus what landed."""
    import psycopg

    truncate(conninfo)
    exporter = exporter_cls(conninfo=conninfo, max_buffered_spans=len(spans) + 1)
    started = time.perf_counter()
    for i in range(0, len(spans), batch):
        exporter.export(spans[i : i + batch])
    flushed = exporter.force_flush()
    elapsed = time.perf_counter() - started
    exporter.shutdown()
    assert flushed, "the exporter could not flush"
    stats = exporter.stats
    assert stats.spans_written == len(spans) and stats.spans_lost == 0, stats
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*), sum(span_count), count(*) FILTER (WHERE root_span_id <> '') "
            "FROM tracing_oteltrace"
        ).fetchone()
        assert row is not None
    landed = {"traces": row[0], "spans_in_summaries": row[1], "traces_with_root": row[2]}
    assert landed["spans_in_summaries"] == len(spans), landed
    assert landed["traces_with_root"] == landed["traces"], landed
    return elapsed, landed


COPY_FORMATS = ("text", "binary")


def dump_rows(conninfo: str, fmt: str) -> tuple[bytes, bytes]:
    """The stored rows as COPY data in ``fmt``: (traces, spans)."""
    import psycopg

    out: list[bytes] = []
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        for sql in (
            f"COPY tracing_oteltrace TO STDOUT (FORMAT {fmt})",
            f"COPY (SELECT {span_cols()} FROM tracing_otelspan ORDER BY id) "
            f"TO STDOUT (FORMAT {fmt})",
        ):
            with cur.copy(sql) as copy:
                out.append(b"".join(bytes(chunk) for chunk in copy))
    return out[0], out[1]


def run_copy(conninfo: str, fmt: str, data: tuple[bytes, bytes], expected: int) -> float:
    """Seconds to COPY the pre-serialized span rows, in one transaction (trace rows are
    written first, untimed, as the foreign key needs them)."""
    import psycopg

    truncate(conninfo)
    with psycopg.connect(conninfo) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY tracing_oteltrace FROM STDIN (FORMAT {fmt})") as copy,
        ):
            copy.write(data[0])
        conn.commit()
        view = memoryview(data[1])
        chunk = 1 << 20
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY tracing_otelspan ({span_cols()}) FROM STDIN (FORMAT {fmt})") as copy,
        ):
            for i in range(0, len(view), chunk):
                copy.write(view[i : i + chunk])
        conn.commit()
        elapsed = time.perf_counter() - started
        row = conn.execute("SELECT count(*) FROM tracing_otelspan").fetchone()
        assert row is not None and row[0] == expected, row
    return elapsed


@contextmanager
def index_variant(conninfo: str, drop: Sequence[str], extra: str | None) -> Iterator[None]:
    """The span table with the indexes named in ``drop`` removed and the ``extra`` index
    (a CREATE INDEX statement) added, for one exporter run; put back as it was after. The
    table is empty between runs, so this costs nothing."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        definitions = []
        for name in drop:
            row = conn.execute(
                "SELECT pg_get_indexdef(%s::regclass)", (f"public.{name}",)
            ).fetchone()
            assert row is not None, name
            definitions.append(row[0])
            conn.execute(f'DROP INDEX "{name}"')
        if extra:
            conn.execute(extra)
    try:
        yield
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            if extra:
                name = extra.split(" ON ", 1)[0].split()[-1]
                conn.execute(f"DROP INDEX IF EXISTS {name}")
            for definition in definitions:
                conn.execute(definition)


def ingest(
    conninfo: str,
    n_spans: int,
    repeat: int,
    batches: Sequence[int],
    compare_with: str | None = None,
    without_indexes: Sequence[str] = (),
    extra_index: str | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    spans = generate_spans(n_spans)
    gen_s = time.perf_counter() - started
    traces = len({s.context.trace_id for s in spans})
    sample = spans[:20_000]
    attr_bytes = [len(json.dumps(dict(s.attributes or {}))) for s in sample]
    chat = [
        len(str((s.attributes or {}).get("gen_ai.input.messages", "")))
        for s in sample
        if s.name.startswith("chat ")
    ]
    print(
        f"generated {len(spans):,} spans in {traces:,} traces ({len(spans) / traces:.1f} "
        f"spans/trace) in {gen_s:.1f}s; attributes JSON median "
        f"{statistics.median(attr_bytes):,.0f} B; chat prompts median "
        f"{statistics.median(chat):,.0f} B, max {max(chat):,} B"
    )
    variants = {f"batch={b}": (exporter_class(None), b) for b in batches}
    if compare_with:
        old = exporter_class(compare_with)
        variants.update({f"batch={b} @{compare_with}": (old, b) for b in batches})
    # Schema variants of the same exporter: what the span indexes cost on the write path.
    # Both options together make one variant (e.g. the schema before a migration).
    schema_of: dict[str, tuple[Sequence[str], str | None]] = {}
    if without_indexes or extra_index:
        change = " ".join(
            part
            for part in (
                f"-{len(without_indexes)} idx" if without_indexes else "",
                "+1 idx" if extra_index else "",
            )
            if part
        )
        for b in batches:
            schema_of[f"batch={b} {change}"] = (without_indexes, extra_index)
    for label in schema_of:
        variants[label] = (exporter_class(None), int(label.split()[0].split("=")[1]))
    exporter_s: dict[str, list[float]] = {label: [] for label in variants}
    copy_s: dict[str, list[float]] = {fmt: [] for fmt in COPY_FORMATS}
    dumped: dict[str, tuple[bytes, bytes]] = {}
    for rep in range(repeat):
        for label, (cls, batch) in variants.items():
            drop, extra = schema_of.get(label, ((), None))
            with index_variant(conninfo, drop, extra):
                elapsed, landed = run_exporter(conninfo, spans, batch, cls)
            exporter_s[label].append(elapsed)
            print(
                f"  rep {rep + 1} exporter {label:<20}: {elapsed:6.2f}s "
                f"{len(spans) / elapsed:>9,.0f} spans/s  ({landed['traces']:,} traces)"
            )
            if not dumped:
                dumped = {fmt: dump_rows(conninfo, fmt) for fmt in COPY_FORMATS}
        for fmt in COPY_FORMATS:
            elapsed = run_copy(conninfo, fmt, dumped[fmt], len(spans))
            copy_s[fmt].append(elapsed)
            print(
                f"  rep {rep + 1} raw COPY {fmt:<20}: {elapsed:6.2f}s "
                f"{len(spans) / elapsed:>9,.0f} spans/s"
            )
    truncate(conninfo)
    copy_rates = {fmt: len(spans) / statistics.median(copy_s[fmt]) for fmt in COPY_FORMATS}
    copy_rate = max(copy_rates.values())  # the stricter baseline
    result: dict[str, Any] = {"spans": len(spans), "traces": traces, "copy_rate": copy_rate}
    print(
        f"\nINGEST ({len(spans):,} spans in {traces:,} traces, median of {repeat}; COPY payload "
        f"{len(dumped['text'][1]) / 2**20:,.0f} MiB as text)"
    )
    for fmt in COPY_FORMATS:
        print(f"  raw COPY {fmt:<6} (one transaction): {copy_rates[fmt]:>9,.0f} spans/s")
    # The machine is shared and noisy: each exporter run is compared with the faster COPY
    # of its own repetition, and the median of those ratios is reported.
    fastest_copy = [min(pair) for pair in zip(*copy_s.values(), strict=True)]
    print("  PostgresSpanExporter (ratio: median of per-repetition ratios to the faster COPY)")
    for label, times in exporter_s.items():
        rate = len(spans) / statistics.median(times)
        ratio = statistics.median(c / e for c, e in zip(fastest_copy, times, strict=True))
        result[f"exporter_rate {label}"] = rate
        result[f"exporter_ratio {label}"] = ratio
        target = (
            f"[>= 50,000/s: {'OK' if rate >= 50_000 else 'MISSED'}; "
            f">= 0.33 x COPY: {'OK' if ratio >= 1 / 3 else 'MISSED'}]"
            if "@" not in label and label not in schema_of
            else ""
        )
        print(f"    {label:<20}: {rate:>9,.0f} spans/s  {ratio:.2f} x COPY  {target}")
    return result


def _schema_for_older_exporters(conninfo: str) -> None:
    """Exporters before migration tracing/0004 also maintain ``has_root``; with the column
    back (unused by today's exporter) both run on one schema, in one run."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE tracing_oteltrace "
            "ADD COLUMN IF NOT EXISTS has_root boolean NOT NULL DEFAULT false"
        )
        # Exporters before migration tracing/0005 do not write the span's service.
        conn.execute("ALTER TABLE tracing_otelspan ALTER COLUMN service_name SET DEFAULT ''")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, nargs="+", default=[512, 4096])
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--only-overhead", action="store_true")
    parser.add_argument("--keep-db", action="store_true", help="keep <db>_ingestbench")
    parser.add_argument(
        "--compare-with", metavar="REV", help="also time the exporter as of git REV"
    )
    parser.add_argument(
        "--without-span-indexes",
        nargs="+",
        default=(),
        metavar="NAME",
        help="also time the exporter with these indexes dropped (same run, each repetition; "
        "with --extra-index, one variant doing both)",
    )
    parser.add_argument(
        "--extra-index",
        metavar="SQL",
        help="also time the exporter with this CREATE INDEX statement applied",
    )
    args = parser.parse_args(argv)
    setup_django()
    with bench_database(args.keep_db) as conninfo:
        print(machine_line(conninfo))
        if args.compare_with:
            _schema_for_older_exporters(conninfo)
        if not args.only_overhead:
            ingest(
                conninfo,
                args.spans,
                args.repeat,
                args.batch,
                args.compare_with,
                args.without_span_indexes,
                args.extra_index,
            )
        if not args.skip_overhead:
            import bench_overhead

            bench_overhead.overhead(conninfo)


if __name__ == "__main__":
    main()
