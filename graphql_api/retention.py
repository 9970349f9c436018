"""``retention``: the retention window the viewer shows above the trace list.

The policy is ``TRACE_RETENTION_DAYS`` (tracing/retention.py owns the rule); the oldest
run still stored comes from the trace list's own index (``trace_started_idx``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from asgiref.sync import sync_to_async
from django.db.models import Min

from graphql_api.permissions import staff_only
from tracing import retention
from tracing.models import OTelTrace


@strawberry.type(name="Retention", description="How long agent runs are kept.")
class RetentionWindow:
    days: int | None = strawberry.field(
        description="TRACE_RETENTION_DAYS; null when every run is kept."
    )
    cutoff: datetime | None = strawberry.field(
        description="Runs that started before this instant are removed by the next prune "
        "(UTC midnight `days` days ago); null when every run is kept."
    )
    oldest_kept: datetime | None = strawberry.field(
        description="When the oldest stored run started; null when none is stored."
    )


def _window() -> RetentionWindow:
    oldest = OTelTrace.objects.aggregate(oldest=Min("started_at"))["oldest"]
    w = retention.window(datetime.now(UTC), oldest)
    return RetentionWindow(days=w.days, cutoff=w.cutoff, oldest_kept=w.oldest_kept)


@strawberry.type
class Query:
    @strawberry.field(description="The retention policy and window.", extensions=staff_only())
    async def retention(self) -> RetentionWindow:
        return await sync_to_async(_window)()
