"""Keyset pagination of the root connections: page caps and cursor checks.

strawberry-django's ``DjangoCursorConnection`` carries the ordering values in the cursor,
never an offset; ``BoundedPageMixin`` adds a default and a maximum page size, rejects
cursors this API did not hand out, and bounds the leading ordering key so a deep page
starts where its cursor points in the index.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from django.db.models import Q, QuerySet, Value
from django.db.models.lookups import GreaterThanOrEqual, IsNull, LessThanOrEqual
from strawberry import Info
from strawberry.relay import from_base64, to_base64
from strawberry_django.relay import DjangoCursorEdge, OrderedCollectionCursor
from strawberry_django.relay.cursor_connection import annotate_ordering_fields

from graphql_api.errors import BadArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def page_window(first: int | None, last: int | None) -> tuple[int | None, int | None]:
    """Checked page sizes; a missing page size means the default page, never the whole table."""
    for name, value in (("first", first), ("last", last)):
        if value is not None and value < 0:
            raise BadArgument(f"Argument '{name}' must be a non-negative integer, got {value}.")
        if value is not None and value > MAX_PAGE_SIZE:
            raise BadArgument(
                f"Argument '{name}' cannot be higher than {MAX_PAGE_SIZE} (got {value}); "
                "page through the results with 'after'."
            )
    if first is None and last is None:
        first = DEFAULT_PAGE_SIZE
    return first, last


def check_cursor(name: str, cursor: str) -> None:
    """A cursor must be one this API handed out; the connection then checks its values."""
    try:
        prefix, payload = from_base64(cursor)
        values = json.loads(payload)
    except (ValueError, TypeError):
        values = prefix = None
    if prefix != DjangoCursorEdge.CURSOR_PREFIX or not isinstance(values, list):
        raise BadArgument(
            f"Invalid cursor in '{name}': pass back a cursor or pageInfo.endCursor unchanged."
        )


def cursor_values(name: str, cursor: str) -> list[Any]:
    """The keyset values a cursor carries (checked as ``check_cursor`` does); for the
    connections paged by hand in the same cursor format (``spans``)."""
    check_cursor(name, cursor)
    values: list[Any] = json.loads(from_base64(cursor)[1])
    return values


def make_cursor(values: list[Any]) -> str:
    """A cursor carrying keyset ``values``, in strawberry-django's cursor format."""
    return to_base64(DjangoCursorEdge.CURSOR_PREFIX, json.dumps(values))


def with_leading_bound(nodes: QuerySet, cursor: str, *, before: bool) -> QuerySet:
    """Add ``first_key <= value`` (or ``>=``) to the keyset condition.

    strawberry-django expresses "after the cursor" as ``a < v OR (a = v AND id < x)``,
    which PostgreSQL can only apply as a filter while walking the index from the top: a
    deep page would cost its depth. The redundant bound on the leading key, implied by that
    condition, becomes an index condition, so every page starts where the cursor points.
    """
    _, descriptors, _ = annotate_ordering_fields(nodes)
    lead = descriptors[0]
    value = OrderedCollectionCursor.from_cursor(cursor, descriptors).field_values[0]
    if value is None:
        return nodes
    # The leading key as ordered: a column, or an expression such as input + output tokens
    # (which has its own index, trace_total_tokens_idx).
    key: Any = lead.order_by.expression  # resolved by the compiler: never a bare F
    upper = lead.order_by.descending != before
    compare = LessThanOrEqual if upper else GreaterThanOrEqual
    bound = Q(compare(key, Value(value, output_field=key.output_field)))
    nulls_follow = bool(lead.order_by.nulls_first) == before
    if lead.maybe_null and nulls_follow:
        bound |= Q(IsNull(key, True))
    return nodes.filter(bound)


class BoundedPageMixin:
    """Put before ``DjangoCursorConnection``: its keyset pagination, with a default and a
    maximum page size."""

    @classmethod
    def resolve_connection(  # type: ignore[override]
        cls,
        nodes: Any,
        *,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        **kwargs: Any,
    ) -> Any:
        first, last = page_window(first, last)
        page_nodes = nodes
        for name, cursor in (("after", kwargs.get("after")), ("before", kwargs.get("before"))):
            if cursor is not None:
                check_cursor(name, cursor)
                page_nodes = with_leading_bound(page_nodes, cursor, before=name == "before")
        result = super().resolve_connection(  # type: ignore[misc]
            page_nodes, info=info, first=first, last=last, **kwargs
        )

        # totalCount counts the whole filtered set, not what lies past the cursor.
        def count_all(connection: Any) -> Any:
            connection.total_count_qs = nodes
            return connection

        if inspect.isawaitable(result):
            awaitable = result

            async def resolved() -> Any:
                return count_all(await awaitable)

            return resolved()
        return count_all(result)
