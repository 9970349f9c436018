"""``spanStats(filters)``: aggregates over the spans matching a ``SpanFilter``.

Every number is computed by PostgreSQL (``tracing.read.span_stats``) on the promoted span
columns. The headline numbers share one query; each group and the time series is one more,
only when asked. The result types are those of ``traceStats`` (``graphql_api.stats``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

import strawberry
from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from strawberry import Info
from strawberry_django.filters import apply as apply_filters

from graphql_api.permissions import staff_only
from graphql_api.spans.filters import SpanFilter
from graphql_api.stats import (
    TIME_SERIES_DESCRIPTION,
    BigInt,
    DurationPercentiles,
    StatsGroup,
    TimeBucket,
    TimeBucketSize,
    bucket_range,
)
from tracing.models import OTelSpan
from tracing.read import span_stats as reads
from tracing.read.stats import Bucket


@strawberry.type(name="SpanStats", description="Aggregates over the spans matching the filters.")
class SpanStats:
    spans: strawberry.Private[QuerySet[OTelSpan]]
    filters: strawberry.Private[SpanFilter | None]
    _summary: strawberry.Private[asyncio.Future[dict[str, Any]] | None] = None

    async def summary(self) -> dict[str, Any]:
        # Several fields share one aggregate query.
        if self._summary is None:
            self._summary = asyncio.ensure_future(sync_to_async(reads.span_summary)(self.spans))
        return await self._summary

    @strawberry.field
    async def count(self) -> int:
        return int((await self.summary())["count"])

    @strawberry.field(description="Spans whose status is ERROR.")
    async def errors(self) -> int:
        return int((await self.summary())["errors"])

    @strawberry.field(description="errors / count (0 when there are no spans).")
    async def error_rate(self) -> float:
        row = await self.summary()
        return row["errors"] / row["count"] if row["count"] else 0.0

    @strawberry.field(description="Percentiles of the span duration.")
    async def duration_ms(self) -> DurationPercentiles:
        row = await self.summary()
        return DurationPercentiles(p50=row["p50"], p95=row["p95"], p99=row["p99"])

    @strawberry.field(description="Input tokens of the LLM spans among them.")
    async def input_tokens(self) -> BigInt:
        return (await self.summary())["input_tokens"]

    @strawberry.field(description="Output tokens of the LLM spans among them.")
    async def output_tokens(self) -> BigInt:
        return (await self.summary())["output_tokens"]

    async def _groups(self, column: str) -> list[StatsGroup]:
        rows = await sync_to_async(reads.span_groups)(self.spans, column)
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

    @strawberry.field(description="Spans " + TIME_SERIES_DESCRIPTION)
    async def time_series(
        self,
        bucket: TimeBucketSize,  # type: ignore[valid-type]
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> list[TimeBucket]:
        size = Bucket(bucket)
        start, end = bucket_range(size, from_, to, self.filters)
        rows = await sync_to_async(reads.span_time_series)(self.spans, size, start, end)
        return [TimeBucket.of(row) for row in rows]


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
        return SpanStats(spans=spans, filters=filters)
