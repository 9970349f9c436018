"""API tokens accepted from the process's cache (graphql_api/token_cache.py), over real
HTTP: revocation takes effect at once in this process and on the database's notification
from any other connection; nothing is cached while the listener is not listening;
``last_used_at`` is still written once per ``LAST_USED_EVERY``, and only then."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import httpx
import psycopg
import pytest
from django.core.management import call_command
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from graphql_api import token_cache
from graphql_api.models import LAST_USED_EVERY, ApiToken, digest
from tests.graphql_support import api_token, make_user
from tests.waiting import wait_for
from tracing.export import conninfo_for

pytestmark = pytest.mark.django_db(transaction=True)

FLOOR = {"query": "{ __typename }"}


def _ask(http: httpx.Client, secret: str) -> int:
    response = http.post("/graphql/", json=FLOOR, headers={"Authorization": f"Bearer {secret}"})
    return response.status_code


def _accepted_and_cached(http: httpx.Client, secret: str) -> None:
    """Ask with ``secret`` until the cache holds it: a notification of an earlier change
    (this test's set-up, the last test's flush) arriving during the lookup rightly keeps
    that lookup's answer out of the cache."""
    token_cache.start_listener()  # the server's first token request starts it too
    wait_for(lambda: token_cache.cache.listening, "the token listener to listen")

    def cached() -> bool:
        assert _ask(http, secret) == 200
        return token_cache.cache.get(digest(secret)) is not None

    wait_for(cached, "the token to be cached")


def _cached_token(http: httpx.Client) -> str:
    """A staff user's token, accepted over HTTP and now held by the cache."""
    make_user("dashboard", staff=True)
    secret = api_token("dashboard")
    _accepted_and_cached(http, secret)
    return secret


def _elsewhere(sql: str) -> None:
    """Run ``sql`` on a connection of its own, as another server process or a DBA would:
    no Django signal, no code of this process sees it."""
    with psycopg.connect(conninfo_for(), autocommit=True) as conn:
        conn.execute(sql)


def test_a_cached_token_revoked_here_is_refused_at_once(http: httpx.Client) -> None:
    secret = _cached_token(http)
    call_command("create_api_token", "dashboard", "--revoke", secret[:12], stdout=io.StringIO())
    assert _ask(http, secret) == 401


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE graphql_api_apitoken SET revoked_at = now()",
        "UPDATE graphql_api_apitoken SET scope = 'ingest'",
        "DELETE FROM graphql_api_apitoken",
        "UPDATE auth_user SET is_staff = false WHERE username = 'dashboard'",
        "UPDATE auth_user SET is_active = false WHERE username = 'dashboard'",
    ],
)
def test_a_change_made_elsewhere_is_announced_and_the_cached_token_forgotten(
    http: httpx.Client, change: str
) -> None:
    # Given a cached token
    secret = _cached_token(http)
    generation = token_cache.cache.generation
    # When another connection changes it or its user
    _elsewhere(change)
    # Then the notification makes this process forget it, and the next request is refused
    assert token_cache.cache.wait_past(generation, timeout=60), "no notification came"
    assert token_cache.cache.get(digest(secret)) is None
    assert _ask(http, secret) in (401, 403)


def test_only_changes_that_can_refuse_a_token_are_announced() -> None:
    # Its own writes of last_used_at, and a user's last_login, leave every cached token in
    # place. Heard on a listening connection of the test's own, which gets exactly what
    # commits after its LISTEN.
    make_user("dashboard", staff=True)
    api_token("dashboard")
    with psycopg.connect(conninfo_for(), autocommit=True) as listening:
        listening.execute(f"LISTEN {token_cache.CHANNEL}")
        _elsewhere("UPDATE graphql_api_apitoken SET last_used_at = now()")
        _elsewhere("UPDATE auth_user SET last_login = now()")
        _elsewhere("UPDATE graphql_api_apitoken SET revoked_at = now()")  # announced
        heard = list(listening.notifies(timeout=60, stop_after=1))
        heard += list(listening.notifies(timeout=0.5))  # anything else already there
    assert len(heard) == 1


def test_nothing_is_cached_while_the_listener_is_not_listening(http: httpx.Client) -> None:
    secret = _cached_token(http)
    # When the listener's connection is cut
    _elsewhere(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE application_name = '{token_cache.LISTENER_NAME}'"
    )
    wait_for(lambda: not token_cache.cache.listening, "the listener to notice")
    # Then tokens are read from the database on every request: a revocation made now, with
    # no one listening for it, still takes effect at once
    assert token_cache.cache.get(digest(secret)) is None
    assert _ask(http, secret) == 200
    assert token_cache.cache.get(digest(secret)) is None
    _elsewhere("UPDATE graphql_api_apitoken SET revoked_at = now()")
    assert _ask(http, secret) == 401
    # And once it listens again, accepted tokens are cached again
    wait_for(lambda: token_cache.cache.listening, "the listener to reconnect")
    _accepted_and_cached(http, api_token("dashboard"))


def test_last_used_at_is_written_once_per_interval_from_the_cache(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a cached token whose first use was written
    secret = _cached_token(http)
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    clock: list[datetime] = [first]
    monkeypatch.setattr(token_cache.cache, "clock", lambda: clock[0])

    def used_at_after(moment: datetime) -> datetime | None:
        clock[0] = moment
        assert _ask(http, secret) == 200
        return ApiToken.objects.get().last_used_at

    # Within the interval, requests write nothing
    assert used_at_after(first + LAST_USED_EVERY / 2) == first
    assert used_at_after(first + LAST_USED_EVERY) == first
    # Past it, the next request writes its time, and the interval starts from there
    later = first + LAST_USED_EVERY + timedelta(seconds=1)
    assert used_at_after(later) == later
    assert used_at_after(later + LAST_USED_EVERY / 2) == later
    assert used_at_after(later + LAST_USED_EVERY * 2) == later + LAST_USED_EVERY * 2


def test_the_listener_makes_no_spans(
    instrumented: bool, recorded_spans: InMemorySpanExporter
) -> None:
    # Given psycopg instrumented, and a listener connected since
    assert instrumented
    token_cache.stop_listener()
    first = len(recorded_spans.get_finished_spans())
    token_cache.start_listener()
    wait_for(lambda: token_cache.cache.listening, "the token listener to listen")
    # When it hears two notifications (it runs its keep-alive statement after each one)
    for _ in range(2):
        generation = token_cache.cache.generation
        _elsewhere(f"NOTIFY {token_cache.CHANNEL}")
        assert token_cache.cache.wait_past(generation, timeout=60), "no notification came"
    # Then neither its LISTEN nor its keep-alive became a span (a trace of its own each)
    statements = [
        str((span.attributes or {}).get("db.statement", ""))
        for span in recorded_spans.get_finished_spans()[first:]
    ]
    assert any(s.startswith("NOTIFY") for s in statements), "psycopg is not instrumented"
    assert not [s for s in statements if s.startswith("LISTEN") or s == "SELECT 1"]
