#!/usr/bin/env python
"""OTLP ingest benchmark: a burst of agent runs through POST /v1/traces, under uvicorn.

1. 10,000 agent runs x 16 spans (``invoke_agent`` → ``knowledge_routing``, 3 x
   ``iteration_N`` → ``token_management``, ``chat <model>`` with its ``POST``, one
   ``execute_tool`` with its ``SELECT``) are made by a real TracerProvider, before timing.
2. The server: ``uvicorn campus_core.asgi:application`` (``--workers N``, default one per
   core as deployed) in a subprocess,
   on a database of its own (``<DB name>_otlpbench``, created, migrated and dropped like
   bench_ingest's), an ingest token from ``create_api_token --scope ingest``.
3. The burst: client threads (``--threads`` in each of ``--client-processes`` forked
   processes), each with the stock ``OTLPSpanExporter`` (OTLP/HTTP protobuf), send
   batches of 512 (the BatchSpanProcessor's size) from the shared list; the stock exporter
   retries 503s after Retry-After by itself. The clock stops when the
   last export returns: a 2xx means committed, so that is the last span committed. Then
   PostgreSQL is asked what it holds: spans stored must equal spans sent.
4. The in-process exporter (``PostgresSpanExporter.export`` in batches of 512 and
   ``force_flush``) writes the same spans into the emptied tables, for comparison.

``--compare-with REV`` also serves git REV's code (``git archive``, same database and
settings) and interleaves its bursts with this code's, for a before/after in one run.

    make bench-otlp
    .venv/bin/python benchmarks/bench_otlp.py --runs 10000 --threads 4 --workers 2
    .venv/bin/python benchmarks/bench_otlp.py --repeat 2 --compare-with main --skip-in-process
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import bench_database, machine_line, setup_django, truncate  # noqa: E402
from otlp_burst import send_burst  # noqa: E402

PHOENIX_RATE = 179  # spans/s: Arize Phoenix 20.26 on this kind of machine (issue 12)
TARGET = 100 * PHOENIX_RATE
SPANS_PER_RUN = 16


def generate_runs(
    runs: int,
    models: Sequence[str] = ("gpt-4o-mini",),
    error_every: int = 0,
    slow_every: int = 0,
    start_s: int = 1_760_000_000,
) -> list[Any]:
    """Finished ReadableSpans of ``runs`` agent runs of 16 spans, in end order. Run n uses
    ``models[n % len(models)]``; every ``error_every``-th run fails (its agent span has
    status ERROR, ``agent.status`` "error") and every ``slow_every``-th takes ~9.6 s instead
    of ~1.2 s (slower LLM calls); 0: none. Runs start 5 s apart from ``start_s``."""
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.trace import SpanKind, StatusCode

    from tracing.conventions import attributes as A

    class Collector(SpanProcessor):
        def __init__(self) -> None:
            self.spans: list[ReadableSpan] = []

        def on_end(self, span: ReadableSpan) -> None:
            self.spans.append(span)

    collector = Collector()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "remote-agent"}))
    provider.add_span_processor(collector)
    agent = provider.get_tracer("remote.agent")
    http = provider.get_tracer("opentelemetry.instrumentation.httpx")
    db = provider.get_tracer("opentelemetry.instrumentation.psycopg")
    clock = start_s * 10**9

    def child(tracer: Any, name: str, parent: Any, start: int, **kw: Any) -> Any:
        return tracer.start_span(
            name, context=trace.set_span_in_context(parent), start_time=start, **kw
        )

    for number in range(runs):
        t = clock + number * 5_000_000_000
        model = models[number % len(models)]
        failed = bool(error_every) and number % error_every == error_every - 1
        llm_ns = 3_200_000_000 if slow_every and number % slow_every == 0 else 400_000_000
        question = f"Question {number}: when does the library open on weekends?"
        root = agent.start_span(
            "invoke_agent remote_agent",
            context=Context(),
            start_time=t,
            attributes={
                A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
                A.GEN_AI_AGENT_NAME: "remote_agent",
                A.GEN_AI_PROVIDER_NAME: "openai",
                A.GEN_AI_REQUEST_MODEL: model,
                A.GEN_AI_INPUT_MESSAGES: json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": question}]}]
                ),
                A.AGENT_STATUS: "error" if failed else "completed",
            },
        )
        routing = child(agent, A.SPAN_KNOWLEDGE_ROUTING, root, t + 100_000)
        routing.set_attributes({A.ROUTING_FOLDER_COUNT: 1, A.ROUTING_FOLDERS: ["library"]})
        routing.end(t + 150_000)
        now = t + 200_000
        for it in range(1, 4):
            iteration = child(
                agent, f"iteration_{it}", root, now, attributes={A.ITERATION_NUMBER: it}
            )
            tm = child(agent, A.SPAN_TOKEN_MANAGEMENT, iteration, now)
            tm.set_attributes({A.TOKEN_MANAGEMENT_STRATEGY: "sliding_window"})
            tm.end(now + 20_000)
            chat = child(
                agent,
                f"chat {model}",
                iteration,
                now + 30_000,
                kind=SpanKind.CLIENT,
                attributes={
                    A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
                    A.GEN_AI_PROVIDER_NAME: "openai",
                    A.GEN_AI_REQUEST_MODEL: model,
                    A.GEN_AI_USAGE_INPUT_TOKENS: 900 + it * 150,
                    A.GEN_AI_USAGE_OUTPUT_TOKENS: 40 + it,
                    A.GEN_AI_RESPONSE_FINISH_REASONS: ["tool_calls" if it == 1 else "stop"],
                    A.GEN_AI_INPUT_MESSAGES: json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": question}]}] * it
                    ),
                },
            )
            post = child(
                http,
                "POST",
                chat,
                now + 40_000,
                kind=SpanKind.CLIENT,
                attributes={A.HTTP_REQUEST_METHOD: "POST", A.URL_FULL: "https://llm/v1/chat"},
            )
            post.end(now + llm_ns)
            chat.end(now + llm_ns + 1_000_000)
            now += llm_ns + 2_000_000
            if it == 1:
                tool = child(
                    agent,
                    "execute_tool search_knowledge",
                    iteration,
                    now,
                    attributes={
                        A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
                        A.GEN_AI_TOOL_NAME: "search_knowledge",
                        A.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"query": question}),
                        A.GEN_AI_TOOL_CALL_RESULT: "Library hours: 8am-10pm " * 10,
                    },
                )
                select = child(
                    db,
                    "SELECT",
                    tool,
                    now + 10_000,
                    kind=SpanKind.CLIENT,
                    attributes={A.DB_SYSTEM: "postgresql", A.DB_STATEMENT: "SELECT 1"},
                )
                select.end(now + 3_000_000)
                tool.end(now + 4_000_000)
                now += 4_100_000
            iteration.end(now)
        if failed:
            root.set_status(StatusCode.ERROR, "the agent failed")
        root.end(now + 1_000_000)
    return collector.spans


def start_server(
    conninfo: str, workers: int, port: int, env: dict[str, str], root: Path = ROOT
) -> Any:
    from urllib.parse import quote

    import httpx
    import psycopg

    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    # A Unix socket directory (the embedded PostgreSQL) travels percent-encoded in the host.
    host = quote(str(params.get("host") or "127.0.0.1"), safe="")
    url = (
        f"postgres://{params.get('user') or 'postgres'}@{host}:"
        f"{params.get('port') or 5432}/{params['dbname']}"
    )
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "campus_core.asgi:application"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
            *("--log-level", "warning", "--no-access-log"),
        ],
        cwd=root,
        env={**os.environ, "DATABASE_URL": url, **env},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/traces", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("uvicorn did not start")


def server_cpu_seconds(process: Any) -> float:
    """CPU time of the uvicorn process and its workers (user + system)."""
    import psutil

    parent = psutil.Process(process.pid)
    total = 0.0
    for proc in [parent, *parent.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def ingest_backend_cpu(conninfo: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the ingest (same machine)."""
    import psutil
    import psycopg

    with psycopg.connect(conninfo) as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'campuscore-otlp-ingest'"
        ).fetchall()
    cpu: dict[int, float] = {}
    for (pid,) in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        cpu[pid] = times.user + times.system
    return cpu


def stored(conninfo: str) -> tuple[int, int, int]:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        spans = conn.execute("SELECT count(*) FROM tracing_otelspan").fetchone()
        traces = conn.execute(
            "SELECT count(*), coalesce(sum(span_count), 0) FROM tracing_oteltrace"
        ).fetchone()
    assert spans is not None and traces is not None
    return int(spans[0]), int(traces[0]), int(traces[1])


def in_process_rate(conninfo: str, spans: list[Any], batch: int) -> float:
    from tracing.export import PostgresSpanExporter

    truncate(conninfo)
    exporter = PostgresSpanExporter(
        conninfo=conninfo, keep_untagged=True, max_buffered_spans=len(spans) + 1
    )
    started = time.perf_counter()
    for i in range(0, len(spans), batch):
        exporter.export(spans[i : i + batch])
    assert exporter.force_flush(), "the exporter could not flush"
    elapsed = time.perf_counter() - started
    exporter.shutdown()
    assert exporter.stats.spans_written == len(spans), exporter.stats
    return len(spans) / elapsed


def make_token(username: str = "otlp-bench") -> str:
    from django.contrib.auth import get_user_model

    from graphql_api.models import ApiToken

    user, _ = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": True})
    _, secret = ApiToken.issue(user, name="bench-otlp", scope="ingest")
    return secret


@contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """The project's files as of git ``revision`` in a temporary directory (``git archive``),
    to serve that revision's code next to this one; its migrations must be this one's, as
    both servers share the benchmark database."""
    changed = subprocess.run(
        ["git", "diff", "--name-only", revision, "--", "*/migrations/*"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if changed:
        raise SystemExit(f"--compare-with {revision}: its migrations differ ({changed})")
    with tempfile.TemporaryDirectory(prefix="bench-otlp-") as directory:
        archive = subprocess.run(
            ["git", "archive", revision], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
        yield Path(directory)


def run_burst(
    label: str, conninfo: str, server: Any, url: str, secret: str, spans: list[Any], args: Any
) -> None:
    truncate(conninfo)
    load = os.getloadavg()[0]
    cpu_before = server_cpu_seconds(server)
    pg_before = ingest_backend_cpu(conninfo)
    burst = send_burst(url, secret, spans, args.batch, args.threads, args.client_processes)
    server_cpu = server_cpu_seconds(server) - cpu_before
    pg_cpu = sum(t - pg_before.get(pid, 0.0) for pid, t in ingest_backend_cpu(conninfo).items())
    span_rows, traces, summed = stored(conninfo)
    rate = len(spans) / burst["seconds"]
    verdict = "OK" if rate >= TARGET and span_rows == len(spans) else "MISSED"
    print(
        f"  {label}: OTLP ingest, {args.workers} worker(s), {args.client_processes} client "
        f"process(es) x {args.threads} threads, batches of {args.batch}: "
        f"{burst['seconds']:.2f}s {rate:>9,.0f} spans/s; stored {span_rows:,} of "
        f"{len(spans):,} spans ({traces:,} traces, summaries count {summed:,}); "
        f"503s answered {burst['answered_503']}; failed batches "
        f"{burst['failed_batches']}  [>= {TARGET:,}/s and zero loss: {verdict}]\n"
        f"        CPU per span: server {server_cpu / len(spans) * 1e6:.0f} us, "
        f"client (encode + HTTP) {burst['client_cpu'] / len(spans) * 1e6:.0f} us, "
        f"PostgreSQL (the ingest's backends) {pg_cpu / len(spans) * 1e6:.0f} us; "
        f"load average before {load:.1f}, after {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--threads", type=int, default=4, help="client threads per process")
    parser.add_argument("--client-processes", type=int, default=1, help="client processes sending")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="uvicorn worker processes (default: one per core, as deployed)",
    )
    parser.add_argument(
        "--max-writes", type=int, default=None, help="OTLP_MAX_CONCURRENT_WRITES per worker"
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--compare-with",
        metavar="REV",
        help="also serve git REV's code (same settings), its bursts interleaved with this one's",
    )
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--keep-db", action="store_true", help="keep <db>_otlpbench")
    args = parser.parse_args(argv)
    setup_django()
    with ExitStack() as stack:
        conninfo = stack.enter_context(bench_database(args.keep_db, suffix="otlpbench"))
        print(machine_line(conninfo))
        started = time.perf_counter()
        spans = generate_runs(args.runs)
        print(
            f"generated {len(spans):,} spans in {args.runs:,} runs in "
            f"{time.perf_counter() - started:.1f}s (before timing)"
        )
        secret = make_token()
        env = {"OTEL_SERVICE_NAME": "otlp-bench-server"}
        if args.max_writes:
            env["OTLP_MAX_CONCURRENT_WRITES"] = str(args.max_writes)
        port = 18_000 + os.getpid() % 1000
        servers = [("this code", start_server(conninfo, args.workers, port, env), port)]
        stack.callback(_stop, servers)
        if args.compare_with:
            old_root = stack.enter_context(checkout(args.compare_with))
            old = start_server(conninfo, args.workers, port + 1, env, root=old_root)
            servers.append((f"@{args.compare_with}", old, port + 1))
        for rep in range(args.repeat):
            # Interleaved, the order alternating: both meet the same machine load.
            order = servers if rep % 2 == 0 else servers[::-1]
            for label, server, server_port in order:
                url = f"http://127.0.0.1:{server_port}"
                run_burst(f"rep {rep + 1} {label}", conninfo, server, url, secret, spans, args)
        _stop(servers)
        if not args.skip_in_process:
            load = os.getloadavg()[0]
            cpu_before = time.process_time()
            rate = in_process_rate(conninfo, spans, args.batch)
            cpu = (time.process_time() - cpu_before) / len(spans) * 1e6
            print(
                f"  in-process PostgresSpanExporter, batches of {args.batch}: {rate:,.0f} "
                f"spans/s; CPU per span {cpu:.0f} us; load average before {load:.1f}"
            )
        truncate(conninfo)


def _stop(servers: list[tuple[str, Any, int]]) -> None:
    for _, server, _ in servers:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
