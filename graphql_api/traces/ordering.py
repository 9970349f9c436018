"""``TraceOrder``: the orderings of agent runs, with the place of NULLs always spelled out
for the keyset cursor, and the default order (newest first)."""

from __future__ import annotations

from typing import Any

import strawberry_django
from django.db.models import F, OrderBy, QuerySet

from tracing.models import OTelTrace


@strawberry_django.order_type(
    OTelTrace,
    name="TraceOrder",
    description="One ordering key per item; later items break ties. Ties end on trace id.",
)
class TraceOrder:
    @strawberry_django.order_field(description="Start of the run.")
    def started_at(self, value: strawberry_django.Ordering, prefix: str) -> list[OrderBy]:
        return [order_by(F(f"{prefix}started_at"), value)]

    @strawberry_django.order_field(description="Duration of the whole run.")
    def total_duration_ms(self, value: strawberry_django.Ordering, prefix: str) -> list[OrderBy]:
        return [order_by(F(f"{prefix}total_duration_ms"), value)]

    total_input_tokens: strawberry_django.Ordering | None = strawberry_django.order_field()
    total_output_tokens: strawberry_django.Ordering | None = strawberry_django.order_field()

    @strawberry_django.order_field(description="Input plus output tokens of the run.")
    def total_tokens(self, value: strawberry_django.Ordering, prefix: str) -> list[OrderBy]:
        total = F(f"{prefix}total_input_tokens") + F(f"{prefix}total_output_tokens")
        return [order_by(total, value)]


def order_by(expression: Any, value: strawberry_django.Ordering) -> OrderBy:
    """``value`` applied to ``expression`` with the place of NULLs always spelled out
    (PostgreSQL's own default when not asked: last ascending, first descending). The keyset
    cursor reads it to decide whether NULL rows come before or after a cursor."""
    descending = value.name.startswith("DESC")
    nulls_first = "NULLS_FIRST" in value.name or (descending and "NULLS_LAST" not in value.name)
    nulls: dict[str, bool] = {"nulls_first": True} if nulls_first else {"nulls_last": True}
    return expression.desc(**nulls) if descending else expression.asc(**nulls)


def ordered_traces(queryset: QuerySet[OTelTrace]) -> QuerySet[OTelTrace]:
    # The default order is the trace_started_idx index's (DESC puts NULLs first in
    # PostgreSQL, said explicitly for the cursor); an ``ordering`` argument replaces it.
    return queryset.order_by(F("started_at").desc(nulls_first=True), F("id").desc())
