"""What text PostgreSQL can store: the one rule input validation checks before a write or a
query, so the driver never fails on it mid-request.

PostgreSQL ``text`` cannot hold NUL, and psycopg encodes parameters as UTF-8, which cannot
carry a lone surrogate (JSON's ``"\\ud800"`` decodes to one). The exporter, which must keep
every span, repairs such values instead (``tracing/export/rows.py``); inputs are refused.
"""

from __future__ import annotations


def unstorable_text(value: str) -> str | None:
    """What makes ``value`` unstorable ("NUL characters" / "lone surrogates"), or None."""
    if "\x00" in value:
        return "NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "lone surrogates"
    return None
