"""``spanStats(filters)``: aggregates over the spans matching a ``SpanFilter``.

Every number is computed by PostgreSQL (``tracing.read.span_stats``) on the promoted span
columns, or from the span rollups for the whole hours and days they hold when every filter
given is one they are keyed by (``rollup_filter``; ``tracing.read.span_rollups``). From the
rollups, every part (headline, groups, the time series over the filter's window) comes
from one call, shared: the query's ``timeSeries`` selections are looked at first
(``series_units``), so that call reads periods narrow enough for them. A time series over
another window, and every part when the rollups cannot answer, is one more call each.
The result types are those of ``traceStats`` (``graphql_api.stats``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import strawberry
from asgiref.sync import sync_to_async
from strawberry import Info
from strawberry.types.nodes import SelectedField, Selection
from strawberry_django.filters import apply as apply_filters

from graphql_api.errors import BadArgument, given
from graphql_api.permissions import staff_only
from graphql_api.spans.filters import SpanFilter, rollup_filter
from graphql_api.stats import StatsGroup, bucket_range, headline_stats, time_series_field
from tracing.models import OTelSpan
from tracing.read import span_stats as reads
from tracing.read.span_rollups import SERIES_WIDTH, SpanSelection
from tracing.read.span_stats import RolledStats
from tracing.read.stats import Bucket

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
    _rolled: strawberry.Private[asyncio.Future[RolledStats | None] | None] = None

    async def rolled(self) -> RolledStats | None:
        """Every part from the rollups, one call for all (None: they cannot answer)."""
        if self.rows.rollup is None:
            return None
        if self._rolled is None:
            self._rolled = asyncio.ensure_future(sync_to_async(reads.rolled_stats)(self.rows))
        return await self._rolled

    async def summary(self) -> dict[str, Any]:
        rolled = await self.rolled()
        return rolled.summary if rolled is not None else await super().summary()

    async def _groups(self, column: str) -> list[StatsGroup]:
        rolled = await self.rolled()
        if rolled is not None:
            rows = rolled.groups[column]
        else:
            rows = await sync_to_async(reads.span_groups)(self.rows, column)
        return [StatsGroup.of(row) for row in rows]

    async def _held_series(
        self, bucket: Bucket, start: datetime, end: datetime
    ) -> list[Any] | None:
        if bucket.value not in self.rows.series:
            return None
        rolled = await self.rolled()
        return None if rolled is None else rolled.time_series(bucket, start, end)

    @strawberry.field(description="Per model (spans with a model), most frequent first.")
    async def by_model(self) -> list[StatsGroup]:
        return await self._groups("model")

    @strawberry.field(description="Per tool (tool spans), most frequent first.")
    async def by_tool(self) -> list[StatsGroup]:
        return await self._groups("tool_name")

    @strawberry.field(description="Per span name, most frequent first.")
    async def by_name(self) -> list[StatsGroup]:
        return await self._groups("name")

    time_series = time_series_field("Spans", reads.span_time_series, _held_series)


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
        rollup = rollup_filter(filters)
        series = frozenset() if rollup is None else series_units(info, filters)
        return SpanStats(rows=SpanSelection(spans, rollup, series), filters=filters)


def series_units(info: Info, filters: SpanFilter | None) -> frozenset[str]:
    """The units of the ``timeSeries`` the query asks over the filter's own window (its
    startedAfter/startedBefore, both given; ``from``/``to`` absent or the same), that
    rollups can answer: the shared rollup call reads periods narrow enough for them. Only
    a plan: each series still checks, with its checked range, that it is one of these."""
    after, before = given(filters, "started_after"), given(filters, "started_before")
    if after is None or before is None:
        return frozenset()
    units = set()
    for field in _fields(info.selected_fields):
        for sub in _fields(field.selections):
            args = sub.arguments
            if sub.name != "timeSeries" or not (
                _same(args.get("from"), after) and _same(args.get("to"), before)
            ):
                continue
            bucket = _bucket(args.get("bucket"))
            if bucket is None or bucket.value not in SERIES_WIDTH:
                continue
            try:
                bucket_range(bucket, None, None, filters)
            except BadArgument:  # the field will say so; no need to read for it
                continue
            units.add(bucket.value)
    return frozenset(units)


def _fields(selections: Sequence[Selection]) -> list[SelectedField]:
    """The fields of ``selections``, those of fragments included."""
    out: list[SelectedField] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            out.append(selection)
        else:
            out.extend(_fields(selection.selections))
    return out


def _same(value: object, bound: datetime) -> bool:
    """Whether a ``from``/``to`` argument, as written (a literal's text) or coerced (a
    datetime), is absent or ``bound``."""
    if value is None:
        return True
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return False
    return value == bound


def _bucket(value: object) -> Bucket | None:
    """A ``TimeBucketSize`` argument as written (a literal's name) or coerced (a member)."""
    if isinstance(value, Bucket):
        return value
    if isinstance(value, str):
        for name in (value, value.upper()):
            if name in Bucket.__members__:
                return Bucket[name]
    return None
