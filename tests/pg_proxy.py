"""A TCP proxy in front of the test PostgreSQL that can be cut and restored: a real
network outage for the exporter, with no mock of the database."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import psycopg


class PostgresProxy:
    def __init__(self, upstream_conninfo: str) -> None:
        params = psycopg.conninfo.conninfo_to_dict(upstream_conninfo)
        host = str(params.get("host") or "/var/run/postgresql")
        port = int(params.get("port") or 5432)
        if host.startswith("/"):
            self._upstream: tuple[int, object] = (
                socket.AF_UNIX,
                str(Path(host) / f".s.PGSQL.{port}"),
            )
        else:
            self._upstream = (socket.AF_INET, (host, port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        params.update(host="127.0.0.1", port=str(self.port))
        self.conninfo = psycopg.conninfo.make_conninfo("", **params)
        self._up = True
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        with self._lock:
            self._up = False
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def up(self) -> None:
        with self._lock:
            self._up = True

    def close(self) -> None:
        self.down()
        self._closed = True
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if not self._up:
                    client.close()
                    continue
                family, address = self._upstream
                upstream = socket.socket(family, socket.SOCK_STREAM)
                try:
                    upstream.connect(address)  # type: ignore[arg-type]
                except OSError:
                    client.close()
                    continue
                self._open += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown, not only close: the other pump may be blocked in recv() on the same
            # socket, and then close() alone sends no FIN (the kernel keeps the socket for
            # that call): PostgreSQL would wait for the rest of a COPY forever, holding its
            # locks.
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
