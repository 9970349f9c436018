"""A real streaming replica of the test database's PostgreSQL 15 cluster, for the router
test: ``pg_basebackup -R`` into a temp dir and a second postmaster on a free port, both
run as the ``postgres`` OS user. ``unavailable()`` and ``allow_replication()`` say why it
cannot be made here (the embedded server, other binaries, no way to become ``postgres``,
replication refused and no right to change that); the test then skips with that reason.

The one change to the machine: when the local PostgreSQL 15 service refuses ``postgres``
a replication connection over 127.0.0.1, ``allow_replication`` appends ``HBA_LINE`` (a
``trust`` rule for that user and address only) to the service's pg_hba.conf and reloads
it. It does so once (the line is looked for first), never creates the file, and skips
the test instead when the file is absent or cannot be written, or when the server still
refuses after the reload."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.waiting import wait_for

BIN = Path("/usr/lib/postgresql/15/bin")
HBA_LINE = "host replication postgres 127.0.0.1/32 trust"
NEWLINE = "\n"
SLOT_PREFIX = "campus_test_replica_"
# Settings a hot standby must have at least as high as its primary.
_AT_LEAST_PRIMARY = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def _as_postgres(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", *map(str, cmd)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode:
        raise subprocess.CalledProcessError(done.returncode, cmd, done.stdout, done.stderr)
    return done


def unavailable(primary: dict[str, Any]) -> str | None:
    """Why no replica can be made of the server in ``primary`` (Django settings), or None."""
    if str(primary.get("HOST")) not in ("127.0.0.1", "localhost"):
        return "the test database is not the local PostgreSQL 15 service (embedded server?)"
    if not (BIN / "pg_basebackup").exists():
        return f"no PostgreSQL 15 binaries in {BIN}"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres OS user"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "cannot run commands as the postgres OS user (not root, or no runuser)"
    return None


def replication_refused(conninfo: str) -> str | None:
    """Why the server refuses ``conninfo`` a replication connection (what pg_basebackup
    opens), or None when it lets it in."""
    try:
        with psycopg.connect(conninfo, replication="true", autocommit=True, connect_timeout=10):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[-1]


def append_once(path: Path, line: str, comment: str) -> str | None:
    """Append ``line`` (after ``# comment``) to the text file at ``path`` unless a line of
    it already equals it; the reason it cannot (absent, unreadable, unwritable), or None.
    Never creates the file."""
    try:
        text = path.read_text()
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc})"
    if line in text.splitlines():
        return None
    try:
        with path.open("r+") as f:  # r+: an absent file is an error, not created
            f.seek(0, os.SEEK_END)
            f.write(
                f"{'' if not text or text.endswith(NEWLINE) else NEWLINE}\n# {comment}\n{line}\n"
            )
    except OSError as exc:
        return f"{path} cannot be written ({exc.strerror or exc})"
    return None


def allow_replication(conn: psycopg.Connection[Any], port: int) -> str | None:
    """Make sure the server on ``port`` lets postgres replicate over 127.0.0.1 (as
    pg_basebackup will); the reason it cannot, or None.

    Nothing is changed when the server already allows it. Otherwise HBA_LINE is appended
    to the server's pg_hba.conf (once: ``append_once``; never when the file is absent or
    cannot be written) and the configuration reloaded; when the server still refuses (an
    earlier rule of the file asks for a password, or the path is not this server's file,
    e.g. a server in a container), the reason is returned and the test skips."""
    conninfo = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    try:
        row = conn.execute("SHOW server_version_num").fetchone()
        if not row or int(row[0]) // 10000 != 15:
            return "the server is not PostgreSQL 15 (the replica's binaries are 15)"
        refused = replication_refused(conninfo)
        if refused is None:
            return None
        hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        cannot = append_once(
            hba, HBA_LINE, "streaming replica for the test suite (tests/replica.py)"
        )
        if cannot:
            return f"replication refused ({refused}) and {cannot}"
        conn.execute("SELECT pg_reload_conf()")
        try:  # the postmaster re-reads pg_hba.conf on SIGHUP, soon after
            wait_for(lambda: replication_refused(conninfo) is None, "replication", seconds=15)
        except AssertionError:
            still = replication_refused(conninfo)
            return f"replication still refused with {HBA_LINE!r} in {hba}: {still}"
        return None
    except psycopg.Error as exc:  # e.g. not allowed to read the settings
        return f"cannot check the server's replication access: {exc}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StreamingReplica:
    def __init__(self, primary: psycopg.Connection[Any], primary_port: int) -> None:
        self.primary = primary
        self.primary_port = primary_port
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="campus-replica-"))
        self.data = self.dir / "data"
        # A slot keeps the primary's WAL from being recycled before the replica streams it
        # (the shared server writes a lot); dropped in stop(), stale ones of earlier
        # interrupted runs too.
        self.slot = f"{SLOT_PREFIX}{os.getpid()}_{self.port}"
        shutil.chown(self.dir, "postgres", "postgres")

    def start(self) -> None:
        self._drop_slots(stale_only=True)
        self._base_backup()
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )
        (self.data / "pg_ident.conf").write_text("")
        # Debian keeps the primary's configuration outside its data directory.
        (self.data / "postgresql.conf").write_text("")
        for name in ("pg_hba.conf", "pg_ident.conf", "postgresql.conf"):
            shutil.chown(self.data / name, "postgres", "postgres")
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.dir}",
            f"-c hba_file={self.data / 'pg_hba.conf'}",
            f"-c ident_file={self.data / 'pg_ident.conf'}",
            "-c hot_standby=on",
            "-c shared_buffers=32MB",
            "-c logging_collector=off",
        ]
        for name in _AT_LEAST_PRIMARY:
            row = self.primary.execute(f"SHOW {name}").fetchone()
            options.append(f"-c {name}={row[0]}")  # type: ignore[index]
        try:
            _as_postgres(
                BIN / "pg_ctl", "-D", self.data, "-l", self.dir / "log", "-w", "-t", "120",
                "-o", " ".join(options), "start",
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            log = (self.dir / "log").read_text() if (self.dir / "log").exists() else ""
            raise RuntimeError(f"the replica did not start: {exc.stderr}\n{log}") from exc

    def _base_backup(self, attempts: int = 3) -> None:
        """Copy the primary into ``self.data``, streaming its WAL through ``self.slot``.

        The slot is made first, with its WAL reserved at once: a slot that pg_basebackup
        makes itself (``-C``) can be invalidated by a checkpoint running at the same moment
        when the shared server writes a lot (seen on PostgreSQL 15: "invalidating slot ...
        because its restart_lsn exceeds max_slot_wal_keep_size" with the setting at -1).
        Set-up, not the subject of the test: it is tried again from scratch on failure."""
        for attempt in range(1, attempts + 1):
            self._drop_slots(stale_only=False)
            self.primary.execute(
                "SELECT pg_create_physical_replication_slot(%s, true)", (self.slot,)
            )
            try:
                _as_postgres(
                    BIN / "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port),
                    "-U", "postgres", "-D", self.data, "-R", "-X", "stream", "-c", "fast",
                    "--no-sync", "-S", self.slot,
                )  # fmt: skip
                return
            except subprocess.CalledProcessError as exc:
                shutil.rmtree(self.data, ignore_errors=True)
                if attempt == attempts:
                    raise RuntimeError(f"pg_basebackup failed: {exc.stderr}") from exc

    def conninfo(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def caught_up(self, dbname: str, timeout: float = 300) -> None:
        """Wait until the replica has replayed everything the primary committed so far (the
        replica replays the whole cluster's WAL, other databases' included)."""
        target = self.primary.execute("SELECT pg_current_wal_flush_lsn()").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.conninfo(dbname), autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()
                if row and row[0]:
                    return
                if time.monotonic() > deadline:
                    state = conn.execute(
                        "SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), "
                        "pg_is_wal_replay_paused()"
                    ).fetchone()
                    log = (self.dir / "log").read_text()[-2000:]
                    raise TimeoutError(f"the replica did not reach {target}: {state}\n{log}")
                time.sleep(0.05)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # never started
            _as_postgres(BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
        self._drop_slots(stale_only=False)

    def _drop_slots(self, stale_only: bool) -> None:
        """Drop this replica's slot, or (``stale_only``) the slots of test processes that
        are gone: a slot nobody reads makes the primary keep WAL forever."""
        rows = self.primary.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s AND NOT active",
            (SLOT_PREFIX + "%",),
        ).fetchall()
        for (name,) in rows:
            pid = name[len(SLOT_PREFIX) :].split("_")[0]
            stale = not Path(f"/proc/{pid}").exists()
            if stale if stale_only else name == self.slot:
                self.primary.execute("SELECT pg_drop_replication_slot(%s)", (name,))
