"""Client errors in arguments, and the helpers that parse arguments into them.

``BadArgument`` is a ``ValueError``: ``schema.is_internal`` keeps its message for the client
(as it does for strawberry-django's own page-size and cursor checks). Each helper raises
it before any SQL runs.
"""

from __future__ import annotations

import uuid
from typing import Any

import strawberry

from tracing.read.spans import parse_trace_id as read_trace_id


class BadArgument(ValueError):
    """A client error in the arguments: reported as a GraphQL error, nothing is queried."""


def parse_trace_id(value: str) -> uuid.UUID:
    uid = read_trace_id(value)
    if uid is None:
        raise BadArgument(f"Invalid trace id {value!r}: expected 32 hexadecimal characters.")
    return uid


def parse_int_id(value: str, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise BadArgument(f"Invalid {what} id {value!r}: expected an integer.") from None
    if not 0 < number < 2**63:
        raise BadArgument(f"Invalid {what} id {value!r}: expected a positive 64-bit integer.")
    return number


def given(obj: object | None, name: str) -> Any:
    """An input field's value, None when not given."""
    value = getattr(obj, name, None) if obj is not None else None
    return None if value is strawberry.UNSET else value
