"""``spanStats(filters)``: aggregates over the spans matching a ``SpanFilter``.

Every number is computed by PostgreSQL (``tracing.read.span_stats``) on the promoted span
columns. The headline numbers share one query; each group and the time series is one more,
only when asked. The result types are those of ``traceStats`` (``graphql_api.stats``).
"""

from __future__ import annotations

from typing import Any

import strawberry
from asgiref.sync import sync_to_async
from strawberry import Info
from strawberry_django.filters import apply as apply_filters

from graphql_api.permissions import staff_only
from graphql_api.spans.filters import SpanFilter
from graphql_api.stats import StatsGroup, headline_stats, time_series_field
from tracing.models import OTelSpan
from tracing.read import span_stats as reads

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
        return SpanStats(rows=spans, filters=filters)
