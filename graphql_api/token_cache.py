"""The API tokens this server process has recently accepted, so that a token's request
costs no query (and no hop to the request's thread): the token lookup was most of a small
request's server time (benchmarks/RESULTS.md, "Where the floor's time went").

Revocation stays immediate. What can make an accepted token unacceptable — the token
revoked, re-scoped or deleted, its user deactivated, losing staff or deleted — fires a
statement trigger in PostgreSQL (migration ``0003``) that notifies ``CHANNEL`` when the
change commits, however it was made (ORM, admin, ``create_api_token --revoke``, raw SQL,
another server process). Each process listens on its own connection (``Listener``) and
forgets every cached token on each notification. Within the process that made the change
it is forgotten at commit already (``forget_on_commit``), before the notification arrives.

Correctness does not depend on timing:

* nothing is cached unless the listener is listening, and everything is forgotten when it
  stops (a lost connection) and when it starts listening again (notifications missed);
* a lookup notes the cache's generation before reading the database and caches its
  result only if no notification came meanwhile (a revocation committed after the read
  cannot be overwritten by the read's older answer);
* an entry is used for at most ``MAX_AGE_S``, a bound should the trigger ever be dropped.

``last_used_at`` keeps its rule (written at most once per ``LAST_USED_EVERY`` per token):
a cached token's request writes it when it is due, and only then hops to a thread.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone
from opentelemetry.instrumentation.utils import suppress_instrumentation

from graphql_api.models import LAST_USED_EVERY, ApiToken, digest

logger = logging.getLogger(__name__)

CHANNEL = "api_token_changed"
LISTENER_NAME = "api-token-listener"  # its connection's application_name
MAX_AGE_S = 60.0
MAX_ENTRIES = 1024
# How long the listener waits for a notification before checking its connection.
POLL_S = 5.0
RETRY_S = 1.0


@dataclass(frozen=True)
class Grant:
    """What an accepted token grants: its scope and its user (copied for each request)."""

    token_pk: int
    scope: str
    user: Any
    last_used_at: datetime | None
    read_at: float  # time.monotonic() of the database read


class TokenCache:
    """Accepted tokens by digest, usable only while ``listening``."""

    def __init__(self, clock: Callable[[], datetime] = timezone.now) -> None:
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.generation = 0  # bumped by every invalidation
        self.listening = False
        self.clock = clock  # for last_used_at (tests move it)

    def get(self, key: str) -> Grant | None:
        grant = self._grants.get(key)
        if grant is None or not self.listening:
            return None
        if time.monotonic() - grant.read_at > MAX_AGE_S:
            self._grants.pop(key, None)
            return None
        return grant

    def put(self, key: str, grant: Grant, generation: int) -> None:
        """Cache ``grant``, read from the database after ``generation`` was noted, unless
        something was invalidated since."""
        with self._lock:
            if not self.listening or generation != self.generation:
                return
            if len(self._grants) >= MAX_ENTRIES:
                self._grants.clear()
            self._grants[key] = grant

    def touched(self, key: str, grant: Grant, when: datetime) -> None:
        """``grant``'s token has ``last_used_at = when`` now (if it is still cached as is)."""
        with self._lock:
            if self._grants.get(key) is grant:
                self._grants[key] = replace(grant, last_used_at=when)

    def invalidate(self, listening: bool | None = None) -> None:
        """Forget every token; with ``listening``, also say whether caching may go on."""
        with self._lock:
            self._grants.clear()
            self.generation += 1
            if listening is not None:
                self.listening = listening
            self._changed.notify_all()

    def wait_past(self, generation: int, timeout: float) -> bool:
        """Block until an invalidation after ``generation`` (or ``timeout``): for tests and
        callers that changed a token through another connection."""
        with self._lock:
            return self._changed.wait_for(lambda: self.generation > generation, timeout)


cache = TokenCache()


def forget_on_commit() -> None:
    """Forget the cached tokens in this process when the current transaction commits (at
    once outside one): for the code paths here that revoke or change tokens and users."""
    transaction.on_commit(cache.invalidate)


class Listener(threading.Thread):
    """Listens on ``CHANNEL`` and invalidates ``cache`` on every notification; caching is
    allowed only while it listens."""

    def __init__(self, conninfo: Callable[[], str], tokens: TokenCache) -> None:
        super().__init__(daemon=True, name=LISTENER_NAME)
        self._conninfo = conninfo
        self._cache = tokens
        self.stopping = threading.Event()

    def run(self) -> None:
        # Its LISTEN and keep-alive statements are no one's request: with psycopg
        # instrumented they would each be a trace of their own, every POLL_S.
        with suppress_instrumentation():
            self._listen()

    def _listen(self) -> None:
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self._conninfo(), autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Whatever changed before LISTEN took effect was not announced here.
                    self._cache.invalidate(listening=True)
                    while not self.stopping.is_set():
                        for _ in conn.notifies(timeout=POLL_S, stop_after=1):
                            self._cache.invalidate()
                        conn.execute("SELECT 1")  # a dead connection raises here
            except Exception:
                if not self.stopping.is_set():
                    logger.warning("API token listener lost its connection; tokens uncached")
            self._cache.invalidate(listening=False)
            self.stopping.wait(RETRY_S)


_listener_started = threading.Lock()
_listener: Listener | None = None


def start_listener() -> None:
    """Start the process's listener once (the first token request does)."""
    global _listener
    if _listener is not None:
        return
    with _listener_started:
        if _listener is None:
            from tracing.export import conninfo_for

            def conninfo() -> str:
                return psycopg.conninfo.make_conninfo(
                    conninfo_for(), application_name=LISTENER_NAME
                )

            _listener = Listener(conninfo, cache)
            _listener.start()


def stop_listener() -> None:
    """Stop listening (and caching) and close the listener's connection: before the
    database it listens to is dropped (the test session's end)."""
    global _listener
    with _listener_started:
        listener, _listener = _listener, None
    if listener is not None:
        listener.stopping.set()
        listener.join(timeout=POLL_S + 5)


def _lookup(secret: str) -> ApiToken | None:
    return ApiToken.objects.authenticate(secret)


def _touch(token_pk: int, when: datetime) -> None:
    ApiToken.objects.filter(pk=token_pk).update(last_used_at=when)


async def accepted(secret: str) -> tuple[str, Any] | None:
    """(scope, user) of the active token of an active staff user with this secret, else
    None: from the cache when it holds the token, else from the database (then cached).
    The user is this request's own copy."""
    start_listener()
    key = digest(secret)
    grant = cache.get(key)
    if grant is None:
        generation = cache.generation
        token = await sync_to_async(_lookup)(secret)
        if token is None:
            return None
        user = token.user
        cache.put(
            key,
            Grant(token.pk, token.scope, copy.copy(user), token.last_used_at, time.monotonic()),
            generation,
        )
        return token.scope, user
    now = cache.clock()
    if grant.last_used_at is None or now - grant.last_used_at > LAST_USED_EVERY:
        await sync_to_async(_touch)(grant.token_pk, now)
        cache.touched(key, grant, now)
    return grant.scope, copy.copy(grant.user)
