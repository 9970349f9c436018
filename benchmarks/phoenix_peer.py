"""Arize Phoenix as the peer of ``bench_phoenix.py``: its server, its ingest, its questions.

What it owns: the real Phoenix (installed in a venv of its own, never in our lock) run as a
subprocess on a free loopback port with its telemetry and external resources off, on a
store of its own (a PostgreSQL database, or an SQLite file); sending it spans over
OTLP/HTTP protobuf with the stock ``OTLPSpanExporter`` and waiting until its store holds
them all; the Phoenix GraphQL equivalents of the five questions; and ``PeerClient``, which
lets ``bench_query.measure`` ask Phoenix its version of each question interleaved with ours.

The five questions in Phoenix's own GraphQL API (the one its UI uses; every question goes
through ``node(id: <project>) { ... on Project }``, the one project ``default`` the spans
land in). Phoenix 20.x turns the ``gen_ai.*`` attributes into OpenInference ones when it
ingests (``phoenix.trace.gen_ai.conversion``): the agent span becomes kind AGENT with
``llm.model_name``, chat spans LLM with token counts, the tool span TOOL; a run is a
trace, its ``invoke_agent`` span the root.

1. newest 50 runs: ``spans(first: 50, sort: {col: startTime, dir: desc}, filterCondition:
   "parent_id is None")`` (root spans = runs, as its traces table asks them), each with id,
   spanId, name, statusCode, startTime, latencyMs, cumulative prompt / completion tokens,
   input value and ``trace { traceId numSpans }``; its table also asks annotations and 50
   descendants per run, left out here (ours has neither), so Phoenix answers less.
2. failed runs longer than 8 s: the same with ``"parent_id is None and status_code ==
   'ERROR' and latency_ms > 8000"``.
3. one 16-span trace: ``trace(traceId:)`` with traceId, startTime, latencyMs, numSpans,
   rootSpan name + status, and ``spans(first: 1000)`` with what its trace view asks of each
   (id, spanId, parentId, name, spanKind, statusCode, startTime, latencyMs, prompt /
   completion tokens; no annotation summaries). Model and tool name have no field of
   their own in Phoenix (the span name carries them).
4. run statistics: ``traceCount``; failed runs (root ``status_code == 'ERROR'``);
   ``tokenCountPrompt`` / ``tokenCountCompletion``; ``latencyMsQuantile`` 0.5 / 0.95 /
   0.99; per model: runs, failed runs and p95 (``traceCount`` / ``latencyMsQuantile`` with
   ``llm.model_name == M`` on the root); per status (OK / ERROR / UNSET) a ``traceCount``;
   per tool the runs with a TOOL span of that ``tool.name``. 20 fields, one filtered
   aggregate each: what our one ``traceStats`` answers.
5. LLM spans of one model: ``spans(first: 50, sort: startTime desc, filterCondition:
   "span_kind == 'LLM' and llm.model_name == 'gpt-4o'")`` with id, traceId, name, kind,
   status, startTime, latencyMs and token counts.

With PostgreSQL Phoenix keeps no results between requests; with SQLite it caches counts,
quantiles and token sums across requests (``CacheForDataLoaders``), so question 4 is then
mostly answered from memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_STORE = "postgresql://postgres@127.0.0.1:5432/phoenix_bench"
ROOT = "parent_id is None"


# --- the store ---------------------------------------------------------------------------


def _sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _admin_and_name(url: str) -> tuple[str, str]:
    """The conninfo of the server's ``postgres`` database, and the store's database name."""
    import psycopg

    params = psycopg.conninfo.conninfo_to_dict(url.replace("postgresql+asyncpg", "postgresql"))
    name = str(params.pop("dbname"))
    return psycopg.conninfo.make_conninfo("", **{**params, "dbname": "postgres"}), name


def stored_spans(url: str) -> int:
    """Spans in Phoenix's store (0 when it has no ``spans`` table yet)."""
    path = _sqlite_path(url)
    if path is not None:
        import sqlite3

        if not path.exists():
            return 0
        with sqlite3.connect(path) as db:
            try:
                return int(db.execute("SELECT count(*) FROM spans").fetchone()[0])
            except sqlite3.OperationalError:
                return 0
    import psycopg

    admin, name = _admin_and_name(url)
    with psycopg.connect(admin) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return 0
    with psycopg.connect(url) as conn:
        if not conn.execute("SELECT to_regclass('public.spans')").fetchone()[0]:  # type: ignore[index]
            return 0
        row = conn.execute("SELECT count(*) FROM spans").fetchone()
        return int(row[0]) if row else 0


def drop_store(url: str, create: bool = False) -> None:
    """Remove Phoenix's store (its database or file); ``create``: start an empty one."""
    path = _sqlite_path(url)
    if path is not None:
        for extra in ("", "-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
        return
    import psycopg
    from psycopg import sql

    admin, name = _admin_and_name(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def analyze(url: str) -> None:
    """VACUUM ANALYZE Phoenix's PostgreSQL store, as ours is after writing."""
    if _sqlite_path(url) is None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")


def version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import phoenix; print(phoenix.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


# --- the server --------------------------------------------------------------------------


@contextmanager
def running_phoenix(python: str, store: str) -> Iterator[tuple[str, int]]:
    """``phoenix serve`` on free loopback ports (HTTP and gRPC) over ``store``, its
    telemetry and external resources off, logging warnings only (no access log, like our
    server); yields its base URL and process id. Its working directory and output are
    temporary (the output is shown when it fails to start)."""
    from bench_query import _free_port, wait_listening

    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-") as workdir:
        env = {
            **os.environ,
            "PHOENIX_SQL_DATABASE_URL": store,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(_free_port()),
            "PHOENIX_WORKING_DIR": workdir,
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
            "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
            "PHOENIX_LOGGING_LEVEL": "warning",
            "PHOENIX_DB_LOGGING_LEVEL": "warning",
            "PHOENIX_LOG_MIGRATIONS": "false",
        }
        log_path = Path(workdir) / "phoenix.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [python, "-m", "phoenix.server.main", "serve"],
                env=env,
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                try:
                    wait_listening(proc, port, seconds=300)  # migrations first on a new store
                except RuntimeError:
                    print(log_path.read_text()[-3000:], flush=True)
                    raise
                yield f"http://127.0.0.1:{port}", proc.pid
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)


# --- ingest ------------------------------------------------------------------------------


def send_spans(
    base: str,
    spans: list[Any],
    count: Callable[[], int],
    batch: int = 512,
    backlog: int = 8192,
    stall_s: float = 600,
) -> float:
    """Send ``spans`` to Phoenix's ``/v1/traces`` in batches with the stock exporter (one
    client) and return the seconds until ``count()`` (spans in its store, empty before)
    reaches them all. Phoenix answers before it writes (a queue, 503 past 20,000 spans),
    so the sender keeps at most ``backlog`` spans sent but not stored."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=120)
    started = time.perf_counter()
    sent = stored = 0
    progress = time.monotonic()
    shown = 0.0

    def settle(limit: int) -> None:
        nonlocal stored, progress, shown
        while sent - stored > limit:
            time.sleep(0.5)
            now = count()
            if now > stored:
                stored, progress = now, time.monotonic()
            elif time.monotonic() - progress > stall_s:
                raise RuntimeError(f"Phoenix stored {stored:,} of {sent:,} spans, then stalled")
            if stored / len(spans) >= shown + 0.1:
                shown = stored / len(spans)
                elapsed = time.perf_counter() - started
                print(f"  Phoenix stored {stored:,} spans ({elapsed:.0f} s)", flush=True)

    for i in range(0, len(spans), batch):
        settle(backlog)
        chunk = spans[i : i + batch]
        if exporter.export(chunk) is not SpanExportResult.SUCCESS:
            raise RuntimeError(f"Phoenix refused the batch at span {i}")
        sent += len(chunk)
    settle(0)
    exporter.shutdown()
    return time.perf_counter() - started


# --- the questions -----------------------------------------------------------------------


@dataclass
class Question:
    """Phoenix's version of one of our questions: its query, one variables dict per
    variables dict of ours (request i asks ``variables[i % len]`` on both sides), and how
    many rows (runs, spans; for statistics: runs counted) an answer holds."""

    query: str
    variables: list[dict[str, Any]]
    rows: Callable[[dict[str, Any]], int]


def _project(data: dict[str, Any]) -> dict[str, Any]:
    return data["node"]  # type: ignore[no-any-return]


def _edges(data: dict[str, Any]) -> int:
    return len(_project(data)["spans"]["edges"])


RUNS_QUERY = """
query R($p: ID!, $filter: String!) { node(id: $p) { ... on Project {
  spans(first: 50, sort: {col: startTime, dir: desc}, filterCondition: $filter) {
    edges { node { id spanId name statusCode startTime latencyMs
                   cumulativeTokenCountPrompt cumulativeTokenCountCompletion
                   input { value } trace { traceId numSpans } } }
    pageInfo { hasNextPage endCursor } } } } }"""
TRACE_QUERY = """
query W($p: ID!, $id: ID!) { node(id: $p) { ... on Project { trace(traceId: $id) {
  traceId startTime latencyMs numSpans rootSpan { name statusCode }
  spans(first: 1000) { edges { node { id spanId parentId name spanKind statusCode startTime
                                      latencyMs tokenCountPrompt tokenCountCompletion } } }
} } } }"""
SPANS_QUERY = """
query S($p: ID!, $filter: String!) { node(id: $p) { ... on Project {
  spans(first: 50, sort: {col: startTime, dir: desc}, filterCondition: $filter) {
    edges { cursor node { id context { traceId } name spanKind statusCode startTime
                          latencyMs tokenCountPrompt tokenCountCompletion } }
    pageInfo { hasNextPage endCursor } } } } }"""


def stats_query(models: tuple[str, ...], tools: tuple[str, ...]) -> str:
    def f(condition: str) -> str:
        return json.dumps(condition)  # a GraphQL string literal

    error = "status_code == 'ERROR'"
    fields = [
        "count: traceCount",
        f"errors: traceCount(filterCondition: {f(f'{ROOT} and {error}')})",
        "inputTokens: tokenCountPrompt outputTokens: tokenCountCompletion",
        "p50: latencyMsQuantile(probability: 0.5)",
        "p95: latencyMsQuantile(probability: 0.95)",
        "p99: latencyMsQuantile(probability: 0.99)",
    ]
    for n, model in enumerate(models):
        of_model = f"{ROOT} and llm.model_name == '{model}'"
        fields += [
            f"model{n}: traceCount(filterCondition: {f(of_model)})",
            f"model{n}Errors: traceCount(filterCondition: {f(f'{of_model} and {error}')})",
            f"model{n}P95: latencyMsQuantile(probability: 0.95, filterCondition: {f(of_model)})",
        ]
    for status in ("OK", "ERROR", "UNSET"):
        fields.append(
            f"status{status}: traceCount(filterCondition: "
            f"{f(f'{ROOT} and status_code == {status!r}')})"
        )
    for n, tool in enumerate(tools):
        with_tool = f"span_kind == 'TOOL' and tool.name == '{tool}'"
        fields.append(f"tool{n}: traceCount(filterCondition: {f(with_tool)})")
    body = "\n  ".join(fields)
    return f"query T($p: ID!) {{ node(id: $p) {{ ... on Project {{\n  {body}\n}} }} }}"


def questions(
    project: str, trace_ids: list[str], models: tuple[str, ...], tools: tuple[str, ...]
) -> dict[str, Question]:
    """Phoenix's five questions by our question's name (``bench_phoenix.cases``)."""
    p = {"p": project}
    return {
        "newest 50 runs": Question(RUNS_QUERY, [{**p, "filter": ROOT}], _edges),
        "failed runs longer than 8 s": Question(
            RUNS_QUERY,
            [{**p, "filter": f"{ROOT} and status_code == 'ERROR' and latency_ms > 8000"}],
            _edges,
        ),
        "one 16-span trace": Question(
            TRACE_QUERY,
            [{**p, "id": t} for t in trace_ids],
            lambda d: len(_project(d)["trace"]["spans"]["edges"]),
        ),
        "run statistics": Question(
            stats_query(models, tools), [p], lambda d: int(_project(d)["count"])
        ),
        "LLM spans of one model": Question(
            SPANS_QUERY,
            [{**p, "filter": f"span_kind == 'LLM' and llm.model_name == '{models[1]}'"}],
            _edges,
        ),
    }


def project_id(client: Any, name: str = "default") -> str:
    query = "{ projects { edges { node { id name } } } }"
    response = client.post("/graphql", json={"query": query})
    response.raise_for_status()
    for edge in response.json()["data"]["projects"]["edges"]:
        if edge["node"]["name"] == name:
            return str(edge["node"]["id"])
    raise RuntimeError(f"Phoenix has no project {name!r}")


class PeerClient:
    """Stands in for the httpx client ``bench_query.measure`` posts our questions with:
    each POST of our question (``ours``: its variables list) goes to Phoenix's ``/graphql``
    as ``question``, with the variables at the same position."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.question: Question | None = None
        self.ours: list[dict[str, Any]] = []

    def ask(self, question: Question, ours: list[dict[str, Any]]) -> None:
        assert len(question.variables) == len(ours), "one Phoenix variables dict per ours"
        self.question, self.ours = question, ours

    def post(self, path: str, json: dict[str, Any]) -> Any:
        assert self.question is not None
        variables = self.question.variables[self.ours.index(json["variables"])]
        return self.client.post(
            "/graphql", json={"query": self.question.query, "variables": variables}
        )
