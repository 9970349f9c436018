"""Waiting for something another thread or process does: poll a condition until it holds.

The bound is generous on purpose: it only turns a hang into a failure and never decides
an outcome, so no test depends on how fast this machine is at the moment."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], object],
    what: str,
    seconds: float = 60,
    between: Callable[[], None] | None = None,
) -> None:
    """Return once ``condition()`` is truthy; ``between`` runs before each new look
    (e.g. a flush). Raises AssertionError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if between is not None:
            between()
        time.sleep(0.02)
