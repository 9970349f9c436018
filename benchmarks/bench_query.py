"""Query benchmark (``make bench-query``): latency of ``/graphql/`` over a seeded database.

What it owns: seeding when needed, serving the real ASGI app, timing real HTTP requests.

1. Seeds the database with ``seed_traces`` until it holds ``--traces`` traces (an existing
   database with that many is reused; one with fewer is topped up; nothing is deleted),
   plus a few traces of ``--large-trace-spans`` spans for the trace-detail case.
2. Starts the real app (``campus_core.asgi``, OTel middleware included) under uvicorn in a
   subprocess on a loopback port, and issues a staff API token.
3. For every case (each trace filter alone, a few combinations, a deep page, trace detail),
   sends ``--requests`` sequential POSTs with httpx after a warm-up and reports p50/p95/max.
   List cases run twice: without and with ``totalCount``, so what the count adds shows.
   One client, one request at a time: the time measured is the server's time plus a
   loopback round trip (well under a millisecond), not queueing.
4. ``--explain`` also captures the SQL each case runs (a hook in the server process) and
   prints ``EXPLAIN (ANALYZE, BUFFERS)`` of every statement, to check the plans.
5. ``--compare-with DIR`` also serves another checkout of the project (DIR, with its own
   ``.venv``) over the same database and sends every request to both servers in turn, so
   both see the same machine load; the report puts both side by side. The database must be
   at a schema both checkouts read (migrate it to the older one's migrations).
6. ``--compare-db URL`` serves this checkout a second time over another database (a copy
   of the same data laid out differently, e.g. the span table unpartitioned) and measures
   both interleaved in the same way; the staff user and token are copied into it.

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/campus_qbench \\
        .venv/bin/python benchmarks/bench_query.py --traces 1000000 [--explain]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import pickle
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from span_cases import span_cases, span_verdict  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "campus_core.settings")

SQL_LOG_ENV = "QBENCH_SQL_LOG"
LIST_FIELDS = """
      edges { node { id query status model startedAt totalDurationMs totalInputTokens
                     totalOutputTokens iterationCount toolCallCount toolsUsed spanCount } }
      pageInfo { hasNextPage endCursor }"""
LIST_QUERY = (
    "query Q($f: TraceFilter, $o: [TraceOrder!]! = [], $after: String) {"
    " traces(filters: $f, ordering: $o, first: 50, after: $after) {%s%s } }"
)
# What a waterfall view needs, and everything a span offers (attributes, events, genAi).
WATERFALL_QUERY = """
query W($id: ID!) {
  trace(id: $id) {
    id query status startedAt totalDurationMs spanCount
    spans { id parentId name kind startedAt durationMs offsetMs depth status }
  }
}"""
# The same waterfall column by column (one list per field): what the admin viewer uses.
COLUMNS_QUERY = """
query C($id: ID!) {
  trace(id: $id) {
    id query status startedAt totalDurationMs spanCount
    spanColumns { ids parentIds names kinds offsetsMs durationsMs depths statuses }
  }
}"""
DETAIL_QUERY = """
query D($id: ID!) {
  trace(id: $id) {
    id query status model startedAt totalDurationMs spanCount toolsUsed
    conversation { id }
    rootSpan { id name }
    spans {
      id parentId name kind op startedAt durationMs offsetMs selfDurationMs depth status
      statusMessage attributes events
      genAi { operation model provider inputTokens outputTokens toolName toolSuccess }
    }
  }
}"""


# --- server side -------------------------------------------------------------------------


def setup_as_served() -> None:
    """``django.setup()`` for a server process, with the settings ``campus_core.asgi`` gives
    a deployed server: it turns the connection pool on, but only while the settings are
    not loaded yet, and a benchmark's server loads them first. Without the pool every
    request opened a PostgreSQL connection (RESULTS.md, "Where the floor's time went")."""
    os.environ.setdefault("DATABASE_POOL", "true")
    import django

    django.setup()


def serve(port: int) -> None:
    """Run the ASGI app under uvicorn; with QBENCH_SQL_LOG set, log every SQL statement."""
    setup_as_served()
    log_path = os.environ.get(SQL_LOG_ENV)
    if log_path:
        from django.db.backends.signals import connection_created

        def capture(
            execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any
        ) -> Any:
            with open(log_path, "ab") as out:
                pickle.dump((sql, params), out)
            return execute(sql, params, many, ctx)

        def install(sender: Any, connection: Any, **kwargs: Any) -> None:
            # once per thread's wrapper: it outlives its connection, and a reconnect (a
            # connection past CONN_MAX_AGE, or broken) would log every statement twice
            if capture not in connection.execute_wrappers:
                connection.execute_wrappers.append(capture)

        connection_created.connect(install, weak=False)

    import uvicorn

    from campus_core.asgi import application

    if os.environ.get("QBENCH_GC_FREEZE"):
        # Diagnosis only: keep the long-lived startup objects out of every GC pass.
        import gc

        gc.collect()
        gc.freeze()

    uvicorn.run(
        application,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(proc: subprocess.Popen[bytes], port: int, seconds: float = 60) -> None:
    """Return once something accepts connections on ``port``; fail if ``proc`` exits or
    ``seconds`` pass first (a server subprocess starting)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {port} did not start") from None
            time.sleep(0.1)


@contextmanager
def running_server(
    sql_log: str | None = None, root: Path = ROOT, database_url: str | None = None
) -> Iterator[tuple[str, int]]:
    """The server's base URL and process id; ``root``: the checkout served (its own venv);
    ``database_url``: another database than ``DATABASE_URL``'s."""
    port = _free_port()
    env = dict(os.environ)
    if database_url:
        env["DATABASE_URL"] = database_url
    if sql_log:
        env[SQL_LOG_ENV] = sql_log
    python = root / ".venv/bin/python" if root != ROOT else Path(sys.executable)
    script = root / "benchmarks/bench_query.py"
    proc = subprocess.Popen([str(python), str(script), "--serve", str(port)], env=env, cwd=root)
    try:
        wait_listening(proc, port)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=15)


# --- data --------------------------------------------------------------------------------


def ensure_seeded(traces: int, large_spans: int, seed: int) -> None:
    from tracing.management.commands.seed_traces import seed as seed_traces
    from tracing.models import OTelTrace

    have = OTelTrace.objects.filter(span_count__lt=large_spans).count()
    if have < traces:
        missing = traces - have
        print(f"seeding {missing:,} traces ({have:,} there already)…", flush=True)
        result = seed_traces(traces=missing, seed=seed + have, progress=None)
        print(
            f"  {result.traces:,} traces, {result.spans:,} spans in {result.seconds:.0f}s "
            f"({result.spans_per_second:,.0f} spans/s, VACUUM ANALYZE included)",
            flush=True,
        )
    elif have > traces:
        print(f"note: the database holds {have:,} traces (more than --traces); measuring those")
    if not OTelTrace.objects.filter(span_count__gte=large_spans).exists():
        print(f"adding 3 traces of {large_spans} spans…", flush=True)
        seed_traces(traces=0, large_traces=3, large_trace_spans=large_spans, seed=seed)


def issue_token() -> tuple[str, Callable[[], None]]:
    from django.contrib.auth import get_user_model

    from graphql_api.models import ApiToken

    user, _ = get_user_model().objects.update_or_create(
        username="bench-query", defaults={"is_staff": True, "is_active": True}
    )
    token, secret = ApiToken.issue(user, name="bench-query")
    return secret, token.revoke


def copy_token(database_url: str) -> None:
    """Copy the bench user and its tokens (rows as they are) into the database at
    ``database_url``, replacing what it holds for that user: the same bearer secret then
    works against a server over that database."""
    import psycopg
    from django.db import connection

    tables = (("auth_user", "username = %s"), ("graphql_api_apitoken", "user_id IN "
              "(SELECT id FROM auth_user WHERE username = %s)"))  # fmt: skip
    # One transaction in the other database (committed when the block ends).
    with connection.cursor() as cur, psycopg.connect(database_url) as other:
        for table, where in reversed(tables):
            other.execute(f"DELETE FROM {table} WHERE {where}", ["bench-query"])
        for table, where in tables:
            cur.execute(f"SELECT * FROM {table} WHERE {where}", ["bench-query"])
            columns = ", ".join(c[0] for c in cur.description)
            marks = ", ".join(["%s"] * len(cur.description))
            for row in cur.fetchall():
                other.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", row)


@dataclass
class Case:
    name: str
    query: str
    variables: list[dict[str, Any]]  # request i uses variables[i % len]
    count_variant: bool = True  # also measure with totalCount
    after_pages: int = 0  # start after this many pages (cursor taken from the API)
    note: str = ""


@dataclass
class Result:
    name: str
    samples: list[float]
    rows: int
    note: str = ""
    with_count: list[float] = field(default_factory=list)
    total: int | None = None
    # CPU the server process spent per request: unlike wall time, barely affected by
    # other work on the machine (PostgreSQL's share is in the EXPLAIN figures instead).
    cpu_ms: float = 0.0
    # A request hit the server's time cap: no figures, the case reports "capped".
    capped: bool = False


def _list_query(with_count: bool) -> str:
    return LIST_QUERY % (LIST_FIELDS, " totalCount" if with_count else "")


def build_cases(large_spans: int) -> list[Case]:
    from django.db import connection

    from tracing.models import OTelTrace

    def one(sql: str, *params: Any) -> Any:
        with connection.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return row[0] if row else None

    traces = OTelTrace.objects.filter(span_count__lt=large_spans)
    total = traces.count()
    lo = one("SELECT min(started_at) FROM tracing_oteltrace")
    hi = one("SELECT max(started_at) FROM tracing_oteltrace")
    mid = lo + (hi - lo) / 2
    p50 = one(
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY total_duration_ms) "
        "FROM tracing_oteltrace"
    )
    p99 = one(
        "SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY total_duration_ms) "
        "FROM tracing_oteltrace"
    )
    conversations = [
        str(c)
        for c in traces.filter(conversation__isnull=False)
        .order_by("-started_at")
        .values_list("conversation_id", flat=True)[:200:10]
    ]
    sample_ids = [
        t.hex for t in traces.order_by("-started_at").values_list("id", flat=True)[:2000:100]
    ]
    large_ids = [
        t.hex
        for t in OTelTrace.objects.filter(span_count__gte=large_spans).values_list("id", flat=True)
    ]
    q = _list_query(False)

    def filters(*fs: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"f": f} for f in fs]

    days = [mid + timedelta(days=k) for k in range(-3, 4)]
    cases = [
        Case(
            "floor: { __typename }",
            "{ __typename }",
            [{}],
            count_variant=False,
            note="auth + HTTP + GraphQL, no trace query",
        ),
        Case("no filter (newest first)", q, [{}], note=f"{total:,} traces"),
        Case("no filter, page 21 (after cursor)", q, [], after_pages=20),
        Case("no filter, page 201 (after cursor)", q, [], after_pages=200),
        Case("status: error", q, filters({"status": ["error"]})),
        Case("status: max_iterations", q, filters({"status": ["max_iterations"]})),
        Case("model: claude-haiku-4-5", q, filters({"model": ["claude-haiku-4-5"]})),
        Case("model: offline-campus", q, filters({"model": ["offline-campus"]})),
        Case("minDurationMs: p50", q, filters({"minDurationMs": p50}), note=f"≥ {p50:.0f} ms"),
        Case("minDurationMs: p99", q, filters({"minDurationMs": p99}), note=f"≥ {p99:.0f} ms"),
        Case("toolUsed: search_knowledge", q, filters({"toolUsed": "search_knowledge"})),
        Case("toolUsed: get_dining_menu", q, filters({"toolUsed": "get_dining_menu"})),
        Case(
            "startedAfter/Before: one day",
            q,
            filters(
                *(
                    {
                        "startedAfter": d.isoformat(),
                        "startedBefore": (d + timedelta(days=1)).isoformat(),
                    }
                    for d in days
                )
            ),
            note="7 different days",
        ),
        Case(
            "startedAfter: last hour",
            q,
            filters({"startedAfter": (hi - timedelta(hours=1)).isoformat()}),
        ),
        Case(
            "conversationId",
            q,
            filters(*({"conversationId": c} for c in conversations)),
            note=f"{len(conversations)} conversations",
        ),
        Case("search: 'scholarship'", q, filters({"search": "scholarship"})),
        Case("search: 'wifi in maple'", q, filters({"search": "wifi in maple"})),
        Case("search: student id 'S4821'", q, filters({"search": "S4821"}), note="rare"),
        Case(
            "status error + model gpt-4o + toolUsed calculate",
            q,
            filters({"status": ["error"], "model": ["gpt-4o"], "toolUsed": "calculate"}),
        ),
        Case("ordering: totalDurationMs DESC", q, [{"o": [{"totalDurationMs": "DESC"}]}]),
        Case("ordering: totalTokens DESC", q, [{"o": [{"totalTokens": "DESC"}]}]),
        Case("ordering: totalInputTokens DESC", q, [{"o": [{"totalInputTokens": "DESC"}]}]),
        Case(
            "status: error, ordering: totalDurationMs DESC",
            q,
            [{"f": {"status": ["error"]}, "o": [{"totalDurationMs": "DESC"}]}],
        ),
    ]
    for label, query in (
        ("waterfall fields", WATERFALL_QUERY),
        ("spanColumns", COLUMNS_QUERY),
        ("all fields", DETAIL_QUERY),
    ):
        cases.append(
            Case(
                f"trace detail, ~10 spans, {label}",
                query,
                [{"id": i} for i in sample_ids],
                count_variant=False,
                note=f"{len(sample_ids)} different traces",
            )
        )
        cases.append(
            Case(
                f"trace detail, {large_spans:,} spans, {label}",
                query,
                [{"id": i} for i in large_ids],
                count_variant=False,
            )
        )
    return cases + span_cases(Case, sample_ids)


# --- client side -------------------------------------------------------------------------


class Capped(RuntimeError):
    """The server stopped the operation at its time cap (GRAPHQL_OPERATION_TIMEOUT_S)."""


CAP_SETTING = "GRAPHQL_OPERATION_TIMEOUT_S"  # named in the server's message when it stops


def _post(client: Any, query: str, variables: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.post("/graphql/", json={"query": query, "variables": variables})
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        if any(CAP_SETTING in str(e.get("message")) for e in body["errors"]):
            raise Capped(f"capped after {elapsed:.0f} ms: {body['errors'][0]['message']}")
        raise RuntimeError(f"GraphQL errors for {variables}: {body['errors']}")
    return elapsed, body["data"]


def _rows(data: dict[str, Any]) -> int:
    if "__typename" in data:
        return 0
    if "traces" in data:
        return len(data["traces"]["edges"])
    if "spans" in data:
        return len(data["spans"]["edges"])
    if "spanStats" in data:
        return int(data["spanStats"]["count"])
    trace = data.get("trace")
    if not trace:
        return 0
    return len(trace["spans"]) if "spans" in trace else len(trace["spanColumns"]["ids"])


def deep_cursor(client: Any, pages: int, query: str | None = None) -> str:
    after = None
    for _ in range(pages):
        _, data = _post(client, query or _list_query(False), {"after": after})
        after = (data.get("traces") or data["spans"])["pageInfo"]["endCursor"]
    assert after
    return after


class ProcessCpu:
    """CPU seconds (user + system, all threads) a process has used, from /proc (Linux)."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/stat")
        self.tick = os.sysconf("SC_CLK_TCK")

    def seconds(self) -> float:
        # Fields after the command name (which may hold spaces): utime, stime are 14 and 15.
        fields = self.path.read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / self.tick


def measure(
    targets: list[tuple[Any, ProcessCpu]], case: Case, requests: int, warmup: int
) -> list[Result]:
    """One result per (client, server) target; request i goes to every target in turn. A
    target whose server stops a request at its time cap is "capped" for the case and gets
    no more of its requests; the others go on."""
    cpu = [0.0] * len(targets)
    capped = [False] * len(targets)

    def run(query: str) -> list[tuple[list[float], int, dict[str, Any]]]:
        samples: list[list[float]] = [[] for _ in targets]
        rows = [0] * len(targets)
        data: list[dict[str, Any]] = [{} for _ in targets]
        before = [0.0] * len(targets)
        for i in range(warmup + requests):
            for t, (client, server) in enumerate(targets):
                if capped[t]:
                    continue
                if i == warmup:
                    before[t] = server.seconds()
                try:
                    elapsed, data[t] = _post(client, query, case.variables[i % len(case.variables)])
                except Capped as stopped:
                    print(f"{case.name} (server {t + 1}): {stopped}", flush=True)
                    capped[t] = True
                    samples[t] = []
                    continue
                rows[t] = max(rows[t], _rows(data[t]))
                if i >= warmup:
                    samples[t].append(elapsed)
        for t, (_, server) in enumerate(targets):
            if not capped[t]:
                cpu[t] = (server.seconds() - before[t]) * 1000 / requests
        return list(zip(samples, rows, data, strict=True))

    results = [
        Result(case.name, samples, rows, case.note, cpu_ms=cpu[t], capped=capped[t])
        for t, (samples, rows, _) in enumerate(run(case.query))
    ]
    if case.count_variant:
        counted = run(case.query.replace(" pageInfo", " totalCount pageInfo"))
        for result, (samples, _, data) in zip(results, counted, strict=True):
            if data:
                result.with_count = samples
                result.total = (data.get("traces") or data["spans"])["totalCount"]
    return results


def pct(samples: list[float], q: float) -> float:
    """The q-th percentile; infinite for a capped case (no samples)."""
    if not samples:
        return math.inf
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


PAGE_P95_TARGET_MS = 25.0
DETAIL_TARGET_MS = 50.0


def shown(samples: list[float], q: float, width: int = 0) -> str:
    """A percentile for the report: "capped" for a case stopped at the server's cap."""
    return f"{pct(samples, q):{width}.1f}" if samples else f"{'capped':>{width}}"


def verdict(cases: list[Case], results: list[Result], large_spans: int) -> list[str]:
    """The issue's targets: a page of 50 with any single filter p95 < 25 ms; trace detail
    of 1,000 spans < 50 ms (taken at p95 here)."""
    by_name = {r.name: r for r in results}
    lines = []
    single = [
        by_name[c.name]
        for c in cases
        if c.name in by_name
        and c.query.lstrip().startswith("query Q")  # the trace list (spans: span_verdict)
        and all(set(v) == {"f"} and len(v["f"]) == 1 for v in c.variables)
    ]
    if single:
        worst = max(single, key=lambda r: pct(r.samples, 95))
        p95 = pct(worst.samples, 95)
        lines.append(
            f"page of 50, single filter, p95 < {PAGE_P95_TARGET_MS:.0f} ms: worst p95 "
            f"{shown(worst.samples, 95)} ms ({worst.name}) -> "
            f"{'met' if p95 < PAGE_P95_TARGET_MS else 'MISSED'}"
        )
    for r in results:
        if r.name.startswith(f"trace detail, {large_spans:,} spans"):
            p95 = pct(r.samples, 95)
            lines.append(
                f"{r.name} < {DETAIL_TARGET_MS:.0f} ms: p50 {shown(r.samples, 50)}, p95 "
                f"{shown(r.samples, 95)} ms -> {'met' if p95 < DETAIL_TARGET_MS else 'MISSED'}"
            )
    return lines


def compare_report(results: list[Result], others: list[Result], other: str) -> str:
    """This checkout's figures beside ``other``'s, measured interleaved."""
    lines = [
        f"| case | p50 ms {other} | p50 ms here | here / {other} "
        f"| server CPU ms/req {other} | here |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r, o in zip(results, others, strict=True):
        mine, theirs = pct(r.samples, 50), pct(o.samples, 50)
        ratio = f"{mine / theirs:.2f}" if r.samples and o.samples else "-"
        lines.append(
            f"| {r.name} | {shown(o.samples, 50)} | {shown(r.samples, 50)} | {ratio} | "
            f"{o.cpu_ms:.1f} | {r.cpu_ms:.1f} |"
        )
    return "\n".join(lines)


def report(results: list[Result], header: dict[str, str]) -> str:
    lines = [f"- {k}: {v}" for k, v in header.items()]
    lines += [
        "",
        "| case | rows | p50 ms | p95 ms | min ms | server CPU ms/req "
        "| with totalCount p50 / p95 ms | totalCount | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        counted = (
            f"{pct(r.with_count, 50):.1f} / {pct(r.with_count, 95):.1f}" if r.with_count else "-"
        )
        lines.append(
            f"| {r.name} | {r.rows} | {shown(r.samples, 50)} | {shown(r.samples, 95)} | "
            f"{min(r.samples, default=math.inf):.1f} | {r.cpu_ms:.1f} | {counted} | "
            f"{'' if r.total is None else f'{r.total:,}'} | {r.note} |"
        )
    return "\n".join(lines)


# --- EXPLAIN -------------------------------------------------------------------------------


def _logged_statements(sql_log: Path) -> list[tuple[str, Any]]:
    statements: list[tuple[str, Any]] = []
    with sql_log.open("rb") as f:
        while True:
            try:
                statements.append(pickle.load(f))
            except EOFError:
                return statements


def explain(base_url: str, token: str, cases: list[Case], sql_log: Path) -> str:
    """EXPLAIN ANALYZE of every statement each case runs, with a summary table first."""
    import httpx
    from django.db import connection

    plans: list[str] = []
    summary = [
        "| case | SQL statements | page SQL ms | COUNT SQL ms |",
        "|---|---:|---:|---:|",
    ]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        for case in cases:
            timings = {"page": 0.0, "count": 0.0}
            statements_run = 0
            for with_count in (False, True) if case.count_variant else (False,):
                sql_log.write_bytes(b"")
                query = (
                    case.query.replace(" pageInfo", " totalCount pageInfo")
                    if with_count
                    else case.query
                )
                try:
                    _post(client, query, case.variables[0])
                except Capped as capped:
                    plans.append(f"\n## {case.name}: {capped}\n")
                    continue
                statements = _logged_statements(sql_log)
                title = case.name + (" + totalCount" if with_count else "")
                plans.append(f"\n## {title}  ({len(statements)} statements)\n")
                for sql, params in statements:
                    if "graphql_api_apitoken" in sql:
                        continue  # authentication: the same for every case
                    statements_run += not with_count
                    if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                        continue
                    # An aggregate query (spanStats) also starts with COUNT: only a list's
                    # count is the count variant.
                    is_count = case.count_variant and sql.lstrip().upper().startswith(
                        "SELECT COUNT("
                    )
                    if is_count != with_count:
                        continue  # the page statements are timed in the first variant
                    with connection.cursor() as cur:
                        for _ in range(2):  # the second run: caches as warm as in the bench
                            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                            plan = "\n".join(row[0] for row in cur.fetchall())
                        shown = cur.mogrify(sql, params) if hasattr(cur, "mogrify") else sql
                    ms = float(plan.rpartition("Execution Time: ")[2].split()[0])
                    timings["count" if is_count else "page"] += ms
                    plans.append(f"```sql\n{shown}\n```\n```\n{plan}\n```")
            count = f"{timings['count']:.2f}" if case.count_variant else "-"
            summary.append(f"| {case.name} | {statements_run} | {timings['page']:.2f} | {count} |")
    return "\n".join(summary) + "\n" + "\n".join(plans)


def code_version(root: Path = ROOT) -> str:
    """The commit measured, and whether the app's code had uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "campus_core", "graphql_api", "tracing")
    return commit + (" + uncommitted changes in the app" if dirty else "")


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=100_000, help="traces to measure against")
    parser.add_argument("--large-trace-spans", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=100, help="timed requests per case")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only",
        action="append",
        help="run only the cases whose name contains this text (repeatable: any of them)",
    )
    parser.add_argument(
        "--skip", action="append", help="leave out the cases whose name contains this text"
    )
    parser.add_argument(
        "--no-count", action="store_true", help="do not measure the totalCount variants"
    )
    parser.add_argument("--explain", type=Path, help="write EXPLAIN ANALYZE of every case here")
    parser.add_argument("--json", type=Path, help="also write the raw samples here")
    parser.add_argument(
        "--compare-with",
        type=Path,
        help="another checkout (with its .venv) to serve and measure interleaved with this one",
    )
    parser.add_argument(
        "--compare-db",
        help="another database (URL) with the same data, served by this checkout and "
        "measured interleaved with DATABASE_URL's",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    import django

    django.setup()
    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
    from django.db import connection

    ensure_seeded(args.traces, args.large_trace_spans, args.seed)
    cases = build_cases(args.large_trace_spans)
    if args.only:
        cases = [c for c in cases if any(text in c.name for text in args.only)]
    if args.skip:
        cases = [c for c in cases if not any(text in c.name for text in args.skip)]
    if args.no_count:
        for case in cases:
            case.count_variant = False
    secret, revoke = issue_token()
    if args.compare_db:
        copy_token(args.compare_db)
    with connection.cursor() as cur:
        cur.execute("SHOW server_version")
        server_version = cur.fetchone()[0]  # type: ignore[index]
        cur.execute("SELECT count(*), sum(span_count) FROM tracing_oteltrace")
        n_traces, n_spans = cur.fetchone()  # type: ignore[misc]
    connection.close()  # the server has the database to itself while measuring
    load_before = os.getloadavg()[0]
    try:
        sql_log = Path(tempfile.mkstemp(prefix="qbench-sql-")[1]) if args.explain else None
        others: list[Result] = []
        with contextlib.ExitStack() as stack:
            url, pid = stack.enter_context(running_server(str(sql_log) if sql_log else None))
            headers = {"Authorization": f"Bearer {secret}"}
            client = stack.enter_context(httpx.Client(base_url=url, headers=headers, timeout=120))
            targets = [(client, ProcessCpu(pid))]
            if args.compare_with:
                other_url, other_pid = stack.enter_context(
                    running_server(root=args.compare_with.resolve())
                )
                other_client = httpx.Client(base_url=other_url, headers=headers, timeout=120)
                targets.append((stack.enter_context(other_client), ProcessCpu(other_pid)))
            elif args.compare_db:
                other_url, other_pid = stack.enter_context(
                    running_server(database_url=args.compare_db)
                )
                other_client = httpx.Client(base_url=other_url, headers=headers, timeout=120)
                targets.append((stack.enter_context(other_client), ProcessCpu(other_pid)))
            results: list[Result] = []
            for case in cases:
                if case.after_pages:
                    case.variables = [{"after": deep_cursor(client, case.after_pages, case.query)}]
                if sql_log is None:
                    result, *other = measure(targets, case, args.requests, args.warmup)
                    results.append(result)
                    others.extend(other)
                    print(
                        f"{case.name:55s} p50 {shown(result.samples, 50, 7)} ms  "
                        f"p95 {shown(result.samples, 95, 7)} ms"
                        + (
                            f"   with totalCount p50 {pct(result.with_count, 50):7.1f} ms"
                            if result.with_count
                            else ""
                        ),
                        flush=True,
                    )
            if sql_log is not None:
                args.explain.write_text(explain(url, secret, cases, sql_log))
                print(f"plans written to {args.explain}")
                return
    finally:
        revoke()
    header = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}",
        "PostgreSQL": server_version,
        "code": code_version(),
        "data": f"{n_traces:,} traces, {n_spans:,} spans",
        "load average (1 min) before / after": f"{load_before:.1f} / {os.getloadavg()[0]:.1f}",
        "method": f"{args.requests} sequential requests per case after {args.warmup} warm-up, "
        "httpx → uvicorn (1 worker) on loopback, page of 50",
    }
    text = report(results, header)
    print()
    print(text)
    if args.compare_with or args.compare_db:
        print()
        label = code_version(args.compare_with) if args.compare_with else "other database"
        print(compare_report(results, others, label))
    print()
    for line in verdict(cases, results, args.large_trace_spans):
        print(line)
    for line in span_verdict(results, pct):
        print(line)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "header": header,
                    "results": [r.__dict__ for r in results],
                    "compared_with": [r.__dict__ for r in others],
                },
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
