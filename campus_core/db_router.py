"""Which database serves what: with ``DATABASE_REPLICA_URL`` set, GraphQL reads go to the
read replica and everything else (every write, and every read outside GraphQL) to the
primary.

Only GraphQL's reads move: a read right after a write elsewhere (a login then its session,
a chat turn then its history) must see that write, and a streaming replica may lag. The
GraphQL view marks its execution with ``replica_reads()``; a context variable carries the
mark into the sync resolvers (asgiref copies the context). Writes never follow the mark:
the exporter and the OTLP ingest write through their own connections to ``default``, and
sessions and API tokens' ``last_used_at`` are written by the ORM, routed here to
``default`` too (a write reaching the replica would fail loudly: it is read-only).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import connections

REPLICA = "replica"
_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


@contextmanager
def replica_reads() -> Iterator[None]:
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


def read_alias() -> str:
    """The alias reads go to here and now (raw-SQL readers use it)."""
    if _replica_reads.get() and REPLICA in connections.settings:
        return REPLICA
    return "default"


class ReplicaRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str:
        return read_alias()

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # one database, two servers

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == "default"
