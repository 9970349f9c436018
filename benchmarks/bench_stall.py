"""Stall benchmark: how long a tiny request waits while heavy GraphQL documents run.

What it owns: serving the real ASGI app in a subprocess (optionally with other garbage
collector settings), sending heavy documents and a steady probe of ``{ __typename }``
beside them, and reporting the probe's latencies, the heavy requests' times, and (from
inside the server) the longest pause of the event loop and of the garbage collector.

Each configuration runs ``--rounds`` times, interleaved (A, B, A, B, ...) so the
machine's load hits every configuration alike; compare figures of one run only.

Usage (a seeded database: ``manage.py seed_traces --traces 2000 --spans-per-trace 40
--large-traces 10 --large-trace-spans 2000``)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/campus_h3 \\
        .venv/bin/python benchmarks/bench_stall.py --rounds 3 --gc default,t50000-20-100

A mode is ``default``, ``off`` (collector disabled, diagnosis only) or ``tA-B-C``
(``gc.set_threshold(A, B, C)``), optionally followed by ``/sN`` (``SLICE_OBJECTS = N``) and ``/iS``
(``sys.setswitchinterval(S)``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "campus_core.settings")
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_query import setup_as_served, wait_listening  # noqa: E402

STATS_ENV = "STALL_STATS_FILE"
GC_ENV = "STALL_GC"


def _span_tree(levels: int) -> str:
    inner = "id name kind durationMs"
    for _ in range(levels):
        inner = f"id name kind durationMs children {{ {inner} }}"
    return inner


def heavy_documents(large_trace: str) -> dict[str, str]:
    """The heaviest documents the limits let through, one per shape: a page of traces with
    their span trees (estimated just under the cost budget), and thirty aliases of the
    largest trace (estimated low: the estimate counts 100 spans a trace)."""
    page = (
        "{ traces(first: 100) { edges { node { id query "
        "spans { id name kind durationMs children { id name } } } } } }"
    )
    detail = (
        "{ "
        + " ".join(
            f'a{i}: trace(id: "{large_trace}") {{ id spans {{ id name kind durationMs '
            "children { id name children { id } } } }"
            for i in range(30)
        )
        + " }"
    )
    return {"pages": page, "detail": detail}


# --- server side -------------------------------------------------------------------------


def serve(port: int) -> None:
    setup_as_served()
    import asyncio
    import gc

    import uvicorn

    from campus_core.asgi import application

    stats_path = os.environ[STATS_ENV]
    gc_pauses: list[float] = []
    started: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started["t"] = time.perf_counter()
        elif "t" in started:
            gc_pauses.append(time.perf_counter() - started.pop("t"))

    gc.callbacks.append(on_gc)
    mode, _, switch = os.environ.get(GC_ENV, "default").partition("/i")
    if switch:  # e.g. default/i0.001: sys.setswitchinterval(0.001)
        sys.setswitchinterval(float(switch))
    mode, _, slice_objects = mode.partition("/s")
    if slice_objects:  # e.g. default/s500: complete 500 objects a turn of the loop
        from graphql_api import execution

        execution.SLICE_OBJECTS = int(slice_objects)
    if mode == "off":  # diagnosis only
        gc.disable()
    elif mode.startswith("t"):  # e.g. t50000-20-10: gc.set_threshold(50000, 20, 10)
        gc.set_threshold(*map(int, mode[1:].split("-")))
    lags: list[float] = []

    async def monitor() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    def dump() -> None:
        with open(stats_path, "w") as out:
            json.dump({"lags": lags, "gc": gc_pauses}, out)

    monitoring: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if not monitoring:
            monitoring.append(asyncio.ensure_future(monitor()))
        if scope["type"] == "http" and scope["path"] == "/__stall_stats__":
            dump()
            lags.clear()
            gc_pauses.clear()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await application(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextmanager
def running_server(gc_mode: str, stats_path: str) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = dict(os.environ, **{STATS_ENV: stats_path, GC_ENV: gc_mode})
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env, cwd=ROOT)
    try:
        wait_listening(proc, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


# --- client side -------------------------------------------------------------------------


def issue_token() -> str:
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from graphql_api.models import ApiToken

    user, _ = get_user_model().objects.update_or_create(
        username="bench-stall", defaults={"is_staff": True, "is_active": True}
    )
    _, secret = ApiToken.issue(user, name="bench-stall")
    return secret


def one_round(url: str, token: str, document: str, heavy: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    probes: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            while not stop.is_set():
                t = time.perf_counter()
                body = client.post("/graphql/", json={"query": "{ __typename }"}).json()
                probes.append(time.perf_counter() - t)
                assert body["data"] == {"__typename": "Query"}, body
                time.sleep(0.02)

    def send_heavy() -> tuple[float, str]:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            t = time.perf_counter()
            body = client.post("/graphql/", json={"query": document}).json()
            seconds = time.perf_counter() - t
        errors = body.get("errors") or []
        return seconds, (errors[0]["message"][:60] if errors else "ok")

    with httpx.Client(base_url=url, timeout=30) as client:  # warm up, reset the stats
        client.post("/graphql/", json={"query": "{ __typename }"}, headers=headers)
        client.get("/__stall_stats__")
    prober = threading.Thread(target=probe)
    prober.start()
    with ThreadPoolExecutor(max_workers=heavy) as pool:
        outcomes = list(pool.map(lambda _: send_heavy(), range(heavy)))
    stop.set()
    prober.join()
    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/__stall_stats__")
    return {"probes": probes, "heavy": outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--heavy", type=int, default=2, help="heavy requests at once")
    parser.add_argument("--gc", default="default", help="comma-separated STALL_GC modes")
    parser.add_argument("--shape", default="pages,detail")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    token = issue_token()
    from tracing.models import OTelTrace

    large = OTelTrace.objects.order_by("-span_count").values_list("id", flat=True).first()
    assert large is not None, "seed the database first"
    documents = heavy_documents(large.hex)
    modes = args.gc.split(",")
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for mode in modes:
                stats_path = f"{tmp}/{mode.replace('/', '_')}.json"
                with running_server(mode, stats_path) as url:
                    for shape in args.shape.split(","):
                        result = one_round(url, token, documents[shape], args.heavy)
                        result.update(json.loads(Path(stats_path).read_text()))
                        rows.setdefault((mode, shape), []).append(result)
    for (mode, shape), results in rows.items():
        worst_probe = [max(r["probes"]) for r in results]
        worst_lag = [max(r["lags"], default=0) for r in results]
        worst_gc = [max(r["gc"], default=0) for r in results]
        gc_total = [sum(r["gc"]) for r in results]
        heavy = [s for r in results for s, _ in r["heavy"]]
        outcomes = sorted({o for r in results for _, o in r["heavy"]})
        print(
            f"{mode:>10} {shape:>7}: probe max median {statistics.median(worst_probe):.2f}s "
            f"(runs {', '.join(f'{x:.2f}' for x in worst_probe)}); loop lag max median "
            f"{statistics.median(worst_lag):.2f}s; gc pause max median "
            f"{statistics.median(worst_gc):.3f}s, gc total median "
            f"{statistics.median(gc_total):.2f}s; heavy {min(heavy):.1f}-{max(heavy):.1f}s "
            f"{outcomes}",
            flush=True,
        )


if __name__ == "__main__":
    main()
