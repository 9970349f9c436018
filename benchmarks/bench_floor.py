"""Where the floor's time goes: ``{ __typename }`` with a bearer token, split by layer.

What it owns: the breakdown of one do-nothing GraphQL request's end-to-end time into the
client's share, the HTTP server's, and the app's. It serves, each in its own uvicorn
process started as ``bench_query`` starts its server (one worker, uvicorn's defaults):

* ``app``: the real ASGI app (``campus_core.asgi``), wrapped in a timer that notes each
  request's wall time inside the app (from the call to the return after the last send) and
  its thread CPU on the event loop;
* ``bare``: a minimal ASGI app answering the same status, headers and body bytes as the
  real one did, with no Django, GraphQL, database or OTel in it;

and sends ``--requests`` sequential requests to each after ``--warmup``, interleaved (one
to each in turn, so all see the same machine load; ``--blocks``: one server and client at
a time, so no other server finishes a request meanwhile), from two clients:

* ``httpx``: ``httpx.Client`` as ``bench_query`` uses it (JSON body, response parsed);
* ``socket``: one keep-alive socket, the request's bytes prebuilt, the response read up to
  its ``Content-Length`` (the least a Python client can do per request).

``--compare-with DIR`` also serves another checkout's real app (its own ``.venv``) the same
way: both apps' figures then come from the same run.

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/campus_qbench \\
        .venv/bin/python benchmarks/bench_floor.py [--requests 500] [--compare-with ../main]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_query import ProcessCpu, _free_port, issue_token, pct, wait_listening  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "campus_core.settings")

QUERY = "{ __typename }"
TIMING_PATH = "/__floor_timing"  # served by the timer only: the app's own samples
CLIENT_HEADER = b"x-floor-client"  # which client sent a request


# --- server side -------------------------------------------------------------------------


class Timed:
    """ASGI wrapper noting each request's wall and event-loop-thread CPU time in the app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        # By client (its CLIENT_HEADER): "answered", until the response's last byte is
        # handed to uvicorn; "wall", until the app returns (what it does after included);
        # "cpu", the event-loop thread's CPU meanwhile.
        self.samples: dict[str, dict[str, list[float]]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == TIMING_PATH:
            body = json.dumps(self.samples).encode()
            self.samples = {}
            await _answer(send, 200, [(b"content-type", b"application/json")], body)
            return
        client = dict(scope.get("headers", [])).get(CLIENT_HEADER, b"").decode()
        mine = self.samples.setdefault(client, {"answered": [], "wall": [], "cpu": []})
        started, cpu = time.perf_counter(), time.thread_time()

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                mine["answered"].append((time.perf_counter() - started) * 1000)

        await self.app(scope, receive, timed_send)
        mine["wall"].append((time.perf_counter() - started) * 1000)
        mine["cpu"].append((time.thread_time() - cpu) * 1000)


async def _answer(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Bare:
    """The same answer as the real app's, with nothing behind it."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.answer = (status, headers, body)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await _answer(send, *self.answer)


def serve(port: int, kind: str) -> None:
    import uvicorn

    app: Any
    if kind == "bare":
        answer = json.loads(os.environ["FLOOR_BARE_ANSWER"])
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer["headers"]]
        app = Timed(Bare(answer["status"], headers, answer["body"].encode()))
    else:
        from campus_core.asgi import application

        app = Timed(application)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextlib.contextmanager
def server(kind: str, root: Path = ROOT, env: dict[str, str] | None = None) -> Iterator[Any]:
    port = _free_port()
    python = root / ".venv/bin/python"
    # Another checkout's app is served by this script too, run with that checkout's venv
    # and its code first on the path (``--serve`` puts FLOOR_ROOT there).
    proc = subprocess.Popen(
        [str(python), str(ROOT / "benchmarks/bench_floor.py"), "--serve", str(port), kind],
        env={**os.environ, **(env or {}), "FLOOR_ROOT": str(root)},
        cwd=root,
    )
    try:
        wait_listening(proc, port)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=15)


# --- client side -------------------------------------------------------------------------


class SocketClient:
    """One keep-alive connection; each request's bytes built once."""

    def __init__(self, port: int, secret: str) -> None:
        body = json.dumps({"query": QUERY, "variables": {}}).encode()
        self.request = (
            f"POST /graphql/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
            "X-Floor-Client: socket\r\n"
            f"Accept: */*\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.port = port
        self.sock = self._connect()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def post(self) -> bytes:
        try:
            self.sock.sendall(self.request)
            data = self._recv()
        except OSError:  # closed while idle (uvicorn's keep-alive timeout): connect again
            self.sock.close()
            self.sock = self._connect()
            self.sock.sendall(self.request)
            data = self._recv()
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += self._recv()
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode("latin-1"))
        return body

    def close(self) -> None:
        self.sock.close()


class HttpxClient:
    def __init__(self, port: int, secret: str) -> None:
        import httpx

        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {secret}", "X-Floor-Client": "httpx"},
            timeout=120,
        )

    def post(self) -> bytes:
        response = self.client.post("/graphql/", json={"query": QUERY, "variables": {}})
        response.raise_for_status()
        response.json()
        return response.content

    def close(self) -> None:
        self.client.close()


def real_answer(port: int, secret: str) -> dict[str, Any]:
    """The real app's answer to the floor, as the bare app will repeat it."""
    import httpx

    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql/",
        json={"query": QUERY, "variables": {}},
        headers={"Authorization": f"Bearer {secret}"},
    )
    skip = {"date", "server", "content-length", "x-request-id"}
    return {
        "status": response.status_code,
        "headers": [(k, v) for k, v in response.headers.items() if k not in skip],
        "body": response.text,
    }


def app_timing(port: int) -> dict[str, dict[str, list[float]]]:
    sock = SocketClient(port, "")
    sock.request = f"GET {TIMING_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    try:
        return json.loads(sock.post())  # type: ignore[no-any-return]
    finally:
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--compare-with", type=Path, help="another checkout with its .venv")
    parser.add_argument(
        "--blocks",
        action="store_true",
        help="each server and client's requests in one block, not interleaved",
    )
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        if os.environ.get("FLOOR_ROOT"):
            sys.path.insert(0, os.environ["FLOOR_ROOT"])
            os.chdir(os.environ["FLOOR_ROOT"])
        serve(int(args.serve[0]), args.serve[1])
        return

    import logging

    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
    from django.db import connection

    secret, revoke = issue_token()
    connection.close()
    servers: list[tuple[str, Path, str]] = [("app", ROOT, "app")]
    if args.compare_with:
        other = args.compare_with.resolve()
        servers.append((f"app ({other.name})", other, "app"))
    try:
        with contextlib.ExitStack() as stack:
            ports: dict[str, tuple[int, int]] = {}
            for name, root, kind in servers:
                ports[name] = stack.enter_context(server(kind, root))
            answer = real_answer(ports["app"][0], secret)
            ports["bare"] = stack.enter_context(
                server("bare", env={"FLOOR_BARE_ANSWER": json.dumps(answer)})
            )
            load = os.getloadavg()[0]
            rows = run(ports, secret, args.requests, args.warmup, load, args.blocks)
    finally:
        revoke()
    print(rows)


def run(
    ports: dict[str, tuple[int, int]],
    secret: str,
    requests: int,
    warmup: int,
    load: float,
    blocks: bool,
) -> str:
    clients = (HttpxClient, SocketClient)
    targets = [
        (name, kind, kind(port, secret), port)
        for name, (port, _) in ports.items()
        for kind in clients
    ]
    samples: list[list[float]] = [[] for _ in targets]
    for _ in range(warmup):
        for _, _, client, _ in targets:
            client.post()
    cpu_before: dict[str, float] = {}
    for name, (port, pid) in ports.items():  # the servers' own figures from here on
        app_timing(port)
        cpu_before[name] = ProcessCpu(pid).seconds()
    # Interleaved: request i to every target in turn. In blocks: all of one target's
    # requests, then the next target's (no other server busy meanwhile).
    order = (
        [(t, i) for t in range(len(targets)) for i in range(requests)]
        if blocks
        else [(t, i) for i in range(requests) for t in range(len(targets))]
    )
    for t, _ in order:
        client = targets[t][2]
        started = time.perf_counter()
        client.post()
        samples[t].append((time.perf_counter() - started) * 1000)
    cpu = {
        name: (ProcessCpu(pid).seconds() - cpu_before[name]) * 1000 / (len(clients) * requests)
        for name, (_, pid) in ports.items()
    }
    timing = {name: app_timing(port) for name, (port, _) in ports.items()}
    lines = [
        f"`{QUERY}` with a bearer token, {requests} requests per row after {warmup} warm-up, "
        f"{'in blocks' if blocks else 'interleaved'}; "
        f"load average (1 min) {load:.1f} before, {os.getloadavg()[0]:.1f} after",
        "",
        "| server | client | end to end p50 / p95 / min ms | in the app, to the answer p50 / p95 "
        "ms | in the app, to its return p50 ms | in the app, event-loop thread CPU p50 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for t, (name, kind, client, _) in enumerate(targets):
        client.close()
        s = samples[t]
        mine = timing[name][kind.__name__.removesuffix("Client").lower()]
        lines.append(
            f"| {name} | {kind.__name__.removesuffix('Client').lower()} "
            f"| {pct(s, 50):.2f} / {pct(s, 95):.2f} / {min(s):.2f} "
            f"| {pct(mine['answered'], 50):.2f} / {pct(mine['answered'], 95):.2f} "
            f"| {pct(mine['wall'], 50):.2f} | {pct(mine['cpu'], 50):.2f} |"
        )
    lines += ["", "| server | process CPU ms/req (all threads, both clients) |", "|---|---:|"]
    lines += [f"| {name} | {ms:.2f} |" for name, ms in cpu.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
