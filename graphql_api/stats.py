"""Dashboard aggregates: ``traceStats(filters)`` and ``filterOptions``.

Every number is computed by PostgreSQL (``tracing.read.stats``): percentiles with
``percentile_cont``, tools with ``unnest``, time buckets with ``date_trunc`` joined to
``generate_series``. Each requested part is one query; the headline numbers share one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, NewType

import strawberry
from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from django.utils import timezone
from strawberry import Info
from strawberry_django.filters import apply as apply_filters

from graphql_api.errors import BadArgument, given
from graphql_api.permissions import staff_only
from graphql_api.traces.filters import TraceFilter, agent_runs_by_default
from tracing.models import OTelTrace
from tracing.read import stats as reads

# An integer that may exceed 32 bits (token sums); its GraphQL scalar is in schema.py.
BigInt = NewType("BigInt", int)
BIG_INT = strawberry.scalar(
    name="BigInt",
    description="An integer that may exceed 32 bits (token sums), serialized as a JSON number.",
    serialize=int,
    parse_value=int,
)

TimeBucketSize = strawberry.enum(reads.Bucket, name="TimeBucketSize")

TIME_SERIES_DESCRIPTION = (
    "per time bucket over [from, to), every bucket present. `from`/`to` default to the "
    "filter's startedAfter/startedBefore, else to now and 60 buckets back. "
    f"At most {reads.MAX_BUCKETS} buckets."
)


def bucket_range(
    size: reads.Bucket, from_: datetime | None, to: datetime | None, filters: object | None
) -> tuple[datetime, datetime]:
    """The checked [start, end) of a time series (see ``TIME_SERIES_DESCRIPTION``)."""
    end = to or given(filters, "started_before") or timezone.now()
    start = from_ or given(filters, "started_after") or end - size.width * 60
    if start >= end:
        raise BadArgument(f"from ({start.isoformat()}) must be before to ({end.isoformat()}).")
    if (end - start) / size.width > reads.MAX_BUCKETS:
        raise BadArgument(
            f"The range holds more than {reads.MAX_BUCKETS} {size.value} buckets; "
            "use a larger bucket or a shorter range."
        )
    return start, end


@strawberry.type(description="Duration percentiles of agent runs (or spans), in milliseconds.")
class DurationPercentiles:
    p50: float | None
    p95: float | None
    p99: float | None


@strawberry.type(
    name="StatsGroup", description="Aggregates of the runs (or spans) sharing one key."
)
class StatsGroup:
    key: str
    count: int
    errors: int
    p50_duration_ms: float | None
    p95_duration_ms: float | None
    input_tokens: BigInt
    output_tokens: BigInt

    @strawberry.field(description="errors / count (0 when count is 0).")
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    @classmethod
    def of(cls, row: dict[str, Any]) -> StatsGroup:
        return cls(
            key=row["key"],
            count=row["count"],
            errors=row["errors"],
            p50_duration_ms=row["p50"],
            p95_duration_ms=row["p95"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
        )


@strawberry.type(
    description="Aggregates of the runs (or spans) started in [start, start + bucket)."
)
class TimeBucket:
    start: datetime
    count: int
    errors: int
    p95_duration_ms: float | None
    input_tokens: BigInt
    output_tokens: BigInt

    @classmethod
    def of(cls, row: dict[str, Any]) -> TimeBucket:
        return cls(
            start=row["start"],
            count=row["count"],
            errors=row["errors"],
            p95_duration_ms=row["p95"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
        )


def headline_stats(
    read: Callable[[Any], dict[str, Any]],
    *,
    errors_doc: str,
    error_rate_doc: str,
    duration_doc: str,
    input_tokens_doc: str | None = None,
    output_tokens_doc: str | None = None,
) -> type:
    """The base of ``TraceStats`` and ``SpanStats``: the selected ``rows`` (a queryset, or
    what ``read`` takes), their ``filters`` and the headline fields, which share the one
    call ``read`` (a summary row:
    count, errors, p50/p95/p99, input_tokens, output_tokens). The descriptions name what is
    counted (runs or spans)."""

    @strawberry.type
    class Headline:
        rows: strawberry.Private[Any]
        filters: strawberry.Private[Any]
        _summary: strawberry.Private[asyncio.Future[dict[str, Any]] | None] = None

        async def summary(self) -> dict[str, Any]:
            # Several fields share one aggregate query.
            if self._summary is None:
                self._summary = asyncio.ensure_future(sync_to_async(read)(self.rows))
            return await self._summary

        @strawberry.field
        async def count(self) -> int:
            return int((await self.summary())["count"])

        @strawberry.field(description=errors_doc)
        async def errors(self) -> int:
            return int((await self.summary())["errors"])

        @strawberry.field(description=error_rate_doc)
        async def error_rate(self) -> float:
            row = await self.summary()
            return row["errors"] / row["count"] if row["count"] else 0.0

        @strawberry.field(description=duration_doc)
        async def duration_ms(self) -> DurationPercentiles:
            row = await self.summary()
            return DurationPercentiles(p50=row["p50"], p95=row["p95"], p99=row["p99"])

        @strawberry.field(description=input_tokens_doc)
        async def input_tokens(self) -> BigInt:
            return (await self.summary())["input_tokens"]

        @strawberry.field(description=output_tokens_doc)
        async def output_tokens(self) -> BigInt:
            return (await self.summary())["output_tokens"]

    return Headline


def time_series_field(
    what: str,
    read: Callable[[Any, reads.Bucket, datetime, datetime], list[Any]],
    held: Callable[[Any, reads.Bucket, datetime, datetime], Awaitable[list[Any] | None]]
    | None = None,
) -> Any:
    """The ``timeSeries`` field of a ``headline_stats`` type: ``read`` per bucket over the
    checked range (``bucket_range``), unless ``held`` (the object, the range) gives the
    rows the object computed already; ``what`` (Runs, Spans) begins the description."""

    async def time_series(
        self: Any,
        bucket: TimeBucketSize,  # type: ignore[valid-type]
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> list[TimeBucket]:
        size = reads.Bucket(bucket)
        start, end = bucket_range(size, from_, to, self.filters)
        rows = None if held is None else await held(self, size, start, end)
        if rows is None:
            rows = await sync_to_async(read)(self.rows, size, start, end)
        return [TimeBucket.of(row) for row in rows]

    return strawberry.field(resolver=time_series, description=f"{what} {TIME_SERIES_DESCRIPTION}")


# Any: mypy cannot follow a base class built at import time.
_RunHeadline: Any = headline_stats(
    reads.trace_summary,
    errors_doc="Runs whose status is error.",
    error_rate_doc="errors / count (0 when there are no runs).",
    duration_doc="Percentiles of the whole-run duration.",
)


@strawberry.type(
    name="TraceStats",
    description="Aggregates over the agent runs matching the filters.",
)
class TraceStats(_RunHeadline):
    @strawberry.field(description="Per model, most frequent first.")
    async def by_model(self) -> list[StatsGroup]:
        rows = await sync_to_async(reads.breakdown_by_model)(self.rows)
        return [StatsGroup.of(row) for row in rows]

    @strawberry.field(description="Per status, most frequent first.")
    async def by_status(self) -> list[StatsGroup]:
        rows = await sync_to_async(reads.breakdown_by_status)(self.rows)
        return [StatsGroup.of(row) for row in rows]

    @strawberry.field(
        description="Per tool: the runs in which any span called it (a run counts once per tool)."
    )
    async def by_tool(self) -> list[StatsGroup]:
        rows = await sync_to_async(reads.breakdown_by_tool)(self.rows)
        return [StatsGroup.of(row) for row in rows]

    time_series = time_series_field("Runs", reads.time_series)


@strawberry.type(description="Distinct values for the filter dropdowns.")
class FilterOptions:
    @strawberry.field
    async def statuses(self) -> list[str]:
        return await sync_to_async(reads.distinct_statuses)()

    @strawberry.field
    async def models(self) -> list[str]:
        return await sync_to_async(reads.distinct_models)()

    @strawberry.field
    async def tools(self) -> list[str]:
        return await sync_to_async(reads.distinct_tools)()

    @strawberry.field(description="Distinct service names of stored traces, sorted.")
    async def services(self) -> list[str]:
        return await sync_to_async(reads.distinct_services)()


def _filtered(filters: TraceFilter | None, info: Info) -> QuerySet[OTelTrace]:
    return apply_filters(filters, agent_runs_by_default(OTelTrace.objects.all(), filters), info)


@strawberry.type
class Query:
    @strawberry.field(
        description=(
            "Aggregates over the runs matching the filters (all agent runs without filters)."
        ),
        extensions=staff_only(),
    )
    async def trace_stats(self, info: Info, filters: TraceFilter | None = None) -> TraceStats:
        # Building the queryset validates the filters; it runs no query.
        traces = _filtered(filters, info)
        return TraceStats(rows=traces, filters=filters)

    @strawberry.field(
        description="Distinct statuses, models, tools and services.", extensions=staff_only()
    )
    def filter_options(self) -> FilterOptions:
        return FilterOptions()
