"""With a read replica configured, GraphQL reads are served by the replica and every write
goes to the primary — shown on a real streaming replica of the test database: while the
replica's replay is paused, a run the exporter just wrote to the primary is invisible to
GraphQL, although the same request's API-token write (``last_used_at``) succeeds (on the
read-only replica it would fail); once replay resumes, the run appears."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from campus_core.db_router import REPLICA, read_alias, replica_reads
from graphql_api.models import ApiToken
from tests import replica as pg_replica
from tests.spans import agent_run_spans
from tracing.export import PostgresSpanExporter, conninfo_for

pytestmark = pytest.mark.django_db(transaction=True)

QUERY = {"query": "{ traces(first: 50) { edges { node { id spans { id } } } } }"}


@pytest.fixture
def replica(
    transactional_db: None,
    live_server_url: str,
    monkeypatch: pytest.MonkeyPatch,
    django_db_blocker: Any,
) -> Iterator[pg_replica.StreamingReplica]:
    primary_settings = connections["default"].settings_dict
    reason = pg_replica.unavailable(primary_settings)
    if reason:
        pytest.skip(f"no streaming replica: {reason}")
    port = int(primary_settings["PORT"] or 5432)
    with psycopg.connect(conninfo_for(), autocommit=True) as primary:
        reason = pg_replica.allow_replication(primary, port)
        if reason:
            pytest.skip(f"no streaming replica: {reason}")
        server = pg_replica.StreamingReplica(primary, port)
        try:
            server.start()
            connections.settings[REPLICA] = {
                **primary_settings,
                "PORT": server.port,
                "TEST": {"MIRROR": "default"},
            }
            # Django's test case refuses connections to aliases the test did not declare,
            # and this alias only exists once the replica runs: let it through.
            guarded = BaseDatabaseWrapper.ensure_connection
            unguarded = django_db_blocker._real_ensure_connection

            def ensure_connection(self: BaseDatabaseWrapper) -> None:
                if self.alias == REPLICA:
                    return unguarded(self)  # type: ignore[no-any-return]
                return guarded(self)

            monkeypatch.setattr(BaseDatabaseWrapper, "ensure_connection", ensure_connection)
            yield server
        finally:
            connections.settings.pop(REPLICA, None)
            server.stop()


def _export_run() -> str:
    spans = agent_run_spans()
    exporter = PostgresSpanExporter(keep_untagged=True)
    try:
        exporter.export(spans)
    finally:
        exporter.shutdown()
    return format(spans[0].context.trace_id, "032x")


def _listed(http: httpx.Client, secret: str) -> dict[str, int]:
    response = http.post("/graphql/", json=QUERY, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return {e["node"]["id"]: len(e["node"]["spans"]) for e in body["data"]["traces"]["edges"]}


def test_graphql_reads_come_from_the_replica_and_writes_go_to_the_primary(
    replica: pg_replica.StreamingReplica, live_server_url: str
) -> None:
    dbname = connections["default"].settings_dict["NAME"]
    get_user_model().objects.create_user("dashboard", is_staff=True)
    out = io.StringIO()
    call_command("create_api_token", "dashboard", stdout=out, stderr=io.StringIO())
    secret = out.getvalue().strip()
    first = _export_run()
    replica.caught_up(dbname)

    with replica_reads():
        assert read_alias() == REPLICA
        with connections[REPLICA].cursor() as cur:
            cur.execute("SELECT inet_server_port(), pg_is_in_recovery()")
            assert cur.fetchone() == (replica.port, True)
    assert read_alias() == "default"  # outside GraphQL, reads stay on the primary

    with psycopg.connect(replica.conninfo(dbname), autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        second = _export_run()
        with httpx.Client(base_url=live_server_url, timeout=30) as http:
            seen = _listed(http, secret)
            assert first in seen and seen[first] == len(agent_run_spans())
            assert second not in seen  # on the primary, not yet on the paused replica
            # The request's own write (the token's last use) went to the primary.
            assert ApiToken.objects.get().last_used_at is not None

            standby.execute("SELECT pg_wal_replay_resume()")
            replica.caught_up(dbname)
            assert second in _listed(http, secret)


# --- the one change the replica test makes to the machine: pg_hba.conf -----------------


def test_the_replication_line_is_appended_once_and_never_to_an_absent_file(
    tmp_path: Path,
) -> None:
    hba = tmp_path / "pg_hba.conf"
    hba.write_text("local all all peer")  # no final newline
    for _ in range(2):
        assert pg_replica.append_once(hba, pg_replica.HBA_LINE, "why") is None
    assert hba.read_text() == f"local all all peer\n\n# why\n{pg_replica.HBA_LINE}\n"

    absent = tmp_path / "absent" / "pg_hba.conf"
    reason = pg_replica.append_once(absent, pg_replica.HBA_LINE, "why")
    assert reason is not None and "cannot be read" in reason
    assert not absent.exists() and not absent.parent.exists()

    unwritable = tmp_path / "a-directory"  # opening it for writing fails, even for root
    unwritable.mkdir()
    assert pg_replica.append_once(unwritable, pg_replica.HBA_LINE, "why") is not None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files")
def test_a_read_only_hba_file_is_left_as_it_is(tmp_path: Path) -> None:
    hba = tmp_path / "pg_hba.conf"
    hba.write_text("local all all peer\n")
    hba.chmod(0o444)
    reason = pg_replica.append_once(hba, pg_replica.HBA_LINE, "why")
    assert reason is not None and "cannot be written" in reason
    assert hba.read_text() == "local all all peer\n"
