"""Where ``SECRET_KEY`` comes from: the environment, or, for local use only, a random key
generated once per installation into the git-ignored local folder.

Nothing secret is committed: without ``SECRET_KEY`` a deployment refuses to start. "Local
use" is decided by ``is_local_use``: DEBUG on, or a server that answers only to loopback
host names (the default ``ALLOWED_HOSTS``: a deployment must name its public host there,
or Django answers it with 400), or ``LOCAL_MODE`` set explicitly either way. So ``make
demo``, management commands and the test suite work on a fresh clone with no variables,
and every deployment needs its own key.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

from campus_core.database import LOCAL_DIR

LOCAL_KEY_FILE = LOCAL_DIR / "secret_key"
# Host names that only reach this machine ("testserver" is Django's test client).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", "testserver"})


def is_local_use(*, debug: bool, allowed_hosts: Iterable[str], explicit: bool | None) -> bool:
    if explicit is not None:
        return explicit
    return debug or set(allowed_hosts) <= LOOPBACK_HOSTS


def local_secret_key(path: Path = LOCAL_KEY_FILE) -> str:
    """The installation's key from ``path`` (mode 0600), generated on first use.

    Several processes may start at once (the demo server, a management command, pytest):
    the key is written to a private temporary file and linked into place, so a reader sees
    either no file or the whole key, and the first writer wins for everyone.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(get_random_secret_key())
            with contextlib.suppress(FileExistsError):  # another process was first
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it to generate a new local key")
    return key


def secret_key(*, local_use: bool) -> str:
    configured = os.environ.get("SECRET_KEY", "").strip()
    if configured:
        return configured
    if local_use:
        return local_secret_key()
    raise ImproperlyConfigured(
        "SECRET_KEY is not set, and this is not local use (DEBUG is off and ALLOWED_HOSTS "
        "names hosts beyond this machine, or LOCAL_MODE=false): set SECRET_KEY to a long "
        "random value (e.g. "
        "python -c 'from django.core.management.utils import get_random_secret_key as k; "
        "print(k())'). For local use only, set LOCAL_MODE=true to use a key generated "
        f"into {LOCAL_KEY_FILE}."
    )


@checks.register(checks.Tags.security, deploy=True)
def check_secret_key_is_configured(app_configs: Any = None, **kwargs: Any) -> list[checks.Warning]:
    """``check --deploy`` flags a deployment still running on the local generated key."""
    if os.environ.get("SECRET_KEY", "").strip():
        return []
    return [
        checks.Warning(
            f"SECRET_KEY is not set: the server uses the local key of {LOCAL_KEY_FILE}.",
            hint="Set SECRET_KEY in the environment of every deployment.",
            id="campus_core.W001",
        )
    ]
