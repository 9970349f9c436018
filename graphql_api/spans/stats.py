"""``spanStats(filters)``: aggregates over the spans matching a ``SpanFilter``.

Every number is computed by PostgreSQL (``tracing.read.span_stats``) on the promoted span
columns, or from the span rollups for the whole hours and days they hold when every filter
given is one they are keyed by (``rollup_filter``; ``tracing.read.span_rollups``). The
headline numbers share one call; each group and the time series is one more, only when
asked. The result types are those of ``traceStats`` (``graphql_api.stats``).
"""

from __future__ import annotations

from typing import Any

import strawberry
from asgiref.sync import sync_to_async
from opentelemetry.trace import StatusCode
from strawberry import Info
from strawberry.types.base import get_object_definition
from strawberry_django.filters import apply as apply_filters

from graphql_api.errors import given
from graphql_api.permissions import staff_only
from graphql_api.spans.filters import SpanFilter
from graphql_api.stats import StatsGroup, headline_stats, time_series_field
from tracing.conventions.semconv import SpanCategory
from tracing.models import OTelSpan
from tracing.read import span_stats as reads
from tracing.read.span_rollups import RollupFilter, SpanSelection

# Any: mypy cannot follow a base class built at import time.
_SpanHeadline: Any = headline_stats(
    reads.span_summary,
    errors_doc="Spans whose status is ERROR.",
    error_rate_doc="errors / count (0 when there are no spans).",
    duration_doc="Percentiles of the span duration.",
    input_tokens_doc="Input tokens of the LLM spans among them.",
    output_tokens_doc="Output tokens of the LLM spans among them.",
)


@strawberry.type(name="SpanStats", description="Aggregates over the spans matching the filters.")
class SpanStats(_SpanHeadline):
    async def _groups(self, column: str) -> list[StatsGroup]:
        rows = await sync_to_async(reads.span_groups)(self.rows, column)
        return [StatsGroup.of(row) for row in rows]

    @strawberry.field(description="Per model (spans with a model), most frequent first.")
    async def by_model(self) -> list[StatsGroup]:
        return await self._groups("model")

    @strawberry.field(description="Per tool (tool spans), most frequent first.")
    async def by_tool(self) -> list[StatsGroup]:
        return await self._groups("tool_name")

    @strawberry.field(description="Per span name, most frequent first.")
    async def by_name(self) -> list[StatsGroup]:
        return await self._groups("name")

    time_series = time_series_field("Spans", reads.span_time_series)


@strawberry.type
class Query:
    @strawberry.field(
        description="Aggregates over the spans matching the filters (all spans without filters).",
        extensions=staff_only(),
    )
    async def span_stats(
        self, info: Info, filters: SpanFilter | None = strawberry.UNSET
    ) -> SpanStats:
        filters = None if filters is strawberry.UNSET else filters
        # Building the queryset checks the filters; it runs no query.
        spans = apply_filters(filters, OTelSpan.objects.all(), info)
        return SpanStats(rows=SpanSelection(spans, rollup_filter(filters)), filters=filters)


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
