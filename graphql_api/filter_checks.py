"""What ``TraceFilter`` and ``SpanFilter`` share: their ``filter`` method (check, then
strawberry-django's own processing) and the argument checks both make, so a run's and a
span's filters refuse the same bad input with the same words."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import strawberry_django
from django.db.models import Q, QuerySet
from strawberry import Info

from campus_core.text import unstorable_text
from graphql_api.errors import BadArgument, given


class _Checked(Protocol):
    def validate(self) -> None: ...


def checked_filters(
    filters: _Checked, info: Info, queryset: QuerySet, prefix: str
) -> tuple[QuerySet, Q]:
    """The body of a filter type's ``filter`` method: its checks, then the fields' Q."""
    filters.validate()
    return strawberry_django.process_filters(
        filters,  # type: ignore[arg-type]
        queryset,
        info,
        prefix,
        skip_object_filter_method=True,
    )


def check_duration_and_window(filters: object) -> None:
    """``minDurationMs``/``maxDurationMs`` non-negative and in order; ``startedAfter``
    before ``startedBefore``: otherwise no row could match, an error rather than an empty
    page."""
    lo, hi = given(filters, "min_duration_ms"), given(filters, "max_duration_ms")
    for name, value in (("minDurationMs", lo), ("maxDurationMs", hi)):
        if value is not None and (value < 0 or value != value):
            raise BadArgument(f"{name} must be a non-negative number, got {value}.")
    if lo is not None and hi is not None and lo > hi:
        raise BadArgument(f"minDurationMs ({lo}) is greater than maxDurationMs ({hi}).")
    after, before = given(filters, "started_after"), given(filters, "started_before")
    if after is not None and before is not None and after >= before:
        raise BadArgument(
            f"startedAfter ({after.isoformat()}) must be before "
            f"startedBefore ({before.isoformat()})."
        )


def check_storable_texts(arguments: Iterable[tuple[str, Any]]) -> None:
    """Each (argument name, text or list of texts or None): say what PostgreSQL cannot
    store instead of failing in the database driver."""
    for name, value in arguments:
        texts = value if isinstance(value, list) else [value]
        for text in texts:
            problem = unstorable_text(text) if text is not None else None
            if problem is not None:
                raise BadArgument(f"{name} must not contain {problem}.")
