"""``SpanFilter`` and ``SpanOrder``: the filters and orderings of span search, checked
before any SQL runs. Shared by ``spans`` and ``spanStats`` (the same filters select the
spans aggregated). Every filter is a condition on a promoted, indexed span column
(``tracing.models.OTelSpan``), except ``attributes`` (``tracing.read.span_search``) and
``trace`` (the run's ``TraceFilter``). ``rollup_filter``: the filters as the span
rollups' keys, when they all are (``spanStats`` from the rollups, ``spans``' windows).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import strawberry
import strawberry_django
from django.db.models import Q, QuerySet
from opentelemetry.trace import StatusCode
from strawberry import Info
from strawberry.types.base import get_object_definition

from graphql_api.errors import BadArgument, given, parse_trace_id
from graphql_api.filter_checks import (
    check_duration_and_window,
    check_storable_texts,
    checked_filters,
)
from graphql_api.spans.attributes import AttributeFilter, conditions
from graphql_api.spans.types import SpanKind, SpanStatus
from graphql_api.traces.filters import TraceFilter
from tracing.conventions.semconv import SpanCategory
from tracing.models import OTelSpan
from tracing.read.span_rollups import RollupFilter
from tracing.read.span_search import SortKey, SortOrder, attribute_q


@strawberry_django.filter_type(
    OTelSpan,
    name="SpanFilter",
    description="Filters on spans; every filter given must hold (they combine with AND).",
)
class SpanFilter:
    @strawberry_django.filter_field(description="Any of these kinds (the classifier's).")
    def kind(self, value: list[SpanKind], prefix: str) -> Q:  # type: ignore[valid-type]
        return Q(**{f"{prefix}kind__in": [SpanCategory(v).value for v in value]})

    @strawberry_django.filter_field(description="Any of these exact span names.")
    def name(self, value: list[str], prefix: str) -> Q:
        return Q(**{f"{prefix}name__in": value})

    @strawberry_django.filter_field(
        description=(
            "Any of these models, resolved across naming generations (gen_ai.request.model, "
            "llm.model, ...)."
        )
    )
    def model(self, value: list[str], prefix: str) -> Q:
        return Q(**{f"{prefix}model__in": value})

    @strawberry_django.filter_field(
        description="Tool spans calling any of these tools (resolved across generations)."
    )
    def tool_name(self, value: list[str], prefix: str) -> Q:
        return Q(**{f"{prefix}tool_name__in": value})

    @strawberry_django.filter_field(description="Any of these OpenTelemetry status codes.")
    def status(self, value: list[SpanStatus], prefix: str) -> Q:  # type: ignore[valid-type]
        return Q(**{f"{prefix}status_code__in": [StatusCode(v).name for v in value]})

    @strawberry_django.filter_field(description="The span lasted at least this many ms.")
    def min_duration_ms(self, value: float, prefix: str) -> Q:
        return Q(**{f"{prefix}duration_ms__gte": value})

    @strawberry_django.filter_field(description="The span lasted at most this many ms.")
    def max_duration_ms(self, value: float, prefix: str) -> Q:
        return Q(**{f"{prefix}duration_ms__lte": value})

    @strawberry_django.filter_field(description="Spans started at or after this instant.")
    def started_after(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}started_at__gte": value})

    @strawberry_django.filter_field(description="Spans started strictly before this instant.")
    def started_before(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}started_at__lt": value})

    @strawberry_django.filter_field(description="Spans of this run (OTel trace id, 32 hex).")
    def trace_id(self, value: strawberry.ID, prefix: str) -> Q:
        return Q(**{f"{prefix}trace_id": parse_trace_id(str(value))})

    @strawberry_django.filter_field(
        description=(
            "Each must hold; a key resolves across naming generations (a filter on "
            "llm.model finds spans stored as gen_ai.request.model and the reverse)."
        )
    )
    def attributes(self, value: list[AttributeFilter], prefix: str) -> Q:
        q = Q()
        for item in conditions(value):
            q &= attribute_q(item)
        return q

    trace: TraceFilter | None = strawberry_django.filter_field(
        description="The span's run must match this."
    )

    @strawberry_django.filter_field
    def filter(self, info: Info, queryset: QuerySet, prefix: str) -> tuple[QuerySet, Q]:
        return checked_filters(self, info, queryset, prefix)

    def validate(self) -> None:
        """Arguments that cannot describe any span are errors, not empty pages."""
        check_duration_and_window(self)
        check_storable_texts(
            (
                ("name", given(self, "name")),
                ("model", given(self, "model")),
                ("toolName", given(self, "tool_name")),
            )
        )


@strawberry_django.order_type(
    OTelSpan,
    name="SpanOrder",
    description="One ordering key per item; later items break ties. Ties end on span id.",
)
class SpanOrder:
    started_at: strawberry_django.Ordering | None = strawberry_django.order_field(
        description="Start of the span."
    )
    duration_ms: strawberry_django.Ordering | None = strawberry_django.order_field(
        description="Duration of the span."
    )


def sort_orders(ordering: Sequence[SpanOrder]) -> list[SortOrder]:
    """The ordering as span search's sort keys (an empty list: newest first). Both columns
    are never NULL, so the NULLS_* variants order as their direction does."""
    out: list[SortOrder] = []
    for item in ordering:
        for key in SortKey:
            value = getattr(item, key.value, None)
            if value is not None and value is not strawberry.UNSET:
                if any(o.key is key for o in out):
                    raise BadArgument(f"ordering names {key.value} twice.")
                out.append(SortOrder(key, descending=value.name.startswith("DESC")))
    return out


# The filters the rollups are keyed by; any other (durations, traceId, attributes, trace,
# AND/OR/NOT, or one added later) needs the spans themselves.
_ROLLUP_KEYS = frozenset(
    ("kind", "name", "model", "tool_name", "status", "started_after", "started_before")
)


def rollup_filter(filters: SpanFilter | None) -> RollupFilter | None:
    """``filters`` as the rollups' keys, or None when one of them needs the spans."""
    if filters is None:
        return RollupFilter()
    for field in get_object_definition(SpanFilter, strict=True).fields:
        if field.python_name not in _ROLLUP_KEYS and given(filters, field.python_name) is not None:
            return None
    kinds = given(filters, "kind")
    statuses = given(filters, "status")
    return RollupFilter(
        kinds=None if kinds is None else [SpanCategory(v).value for v in kinds],
        names=given(filters, "name"),
        models=given(filters, "model"),
        tools=given(filters, "tool_name"),
        statuses=None if statuses is None else [StatusCode(v).name for v in statuses],
        after=given(filters, "started_after"),
        before=given(filters, "started_before"),
    )
