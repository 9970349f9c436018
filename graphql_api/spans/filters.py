"""``SpanFilter`` and ``SpanOrder``: the filters and orderings of span search, checked
before any SQL runs. Shared by ``spans`` and ``spanStats`` (the same filters select the
spans aggregated). Every filter is a condition on a promoted, indexed span column
(``tracing.models.OTelSpan``), except ``attributes`` (``tracing.read.span_search``) and
``trace`` (the run's ``TraceFilter``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import strawberry
import strawberry_django
from django.db.models import Q, QuerySet
from opentelemetry.trace import StatusCode
from strawberry import Info

from campus_core.text import unstorable_text
from graphql_api.errors import BadArgument, given, parse_trace_id
from graphql_api.spans.attributes import AttributeFilter, conditions
from graphql_api.spans.types import SpanKind, SpanStatus
from graphql_api.traces.filters import TraceFilter
from tracing.conventions.semconv import SpanCategory
from tracing.models import OTelSpan
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
        self.validate()
        return strawberry_django.process_filters(
            self,  # type: ignore[arg-type]
            queryset,
            info,
            prefix,
            skip_object_filter_method=True,
        )

    def validate(self) -> None:
        """Arguments that cannot describe any span are errors, not empty pages."""
        lo, hi = given(self, "min_duration_ms"), given(self, "max_duration_ms")
        for name, value in (("minDurationMs", lo), ("maxDurationMs", hi)):
            if value is not None and (value < 0 or value != value):
                raise BadArgument(f"{name} must be a non-negative number, got {value}.")
        if lo is not None and hi is not None and lo > hi:
            raise BadArgument(f"minDurationMs ({lo}) is greater than maxDurationMs ({hi}).")
        after, before = given(self, "started_after"), given(self, "started_before")
        if after is not None and before is not None and after >= before:
            raise BadArgument(
                f"startedAfter ({after.isoformat()}) must be before "
                f"startedBefore ({before.isoformat()})."
            )
        for name, value in (
            ("name", given(self, "name")),
            ("model", given(self, "model")),
            ("toolName", given(self, "tool_name")),
        ):
            for text in value or ():
                problem = unstorable_text(text)
                if problem is not None:
                    raise BadArgument(f"{name} must not contain {problem}.")


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
