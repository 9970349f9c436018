"""traces / trace / span over runs written by the real exporter: fields, filters,
ordering, keyset pagination and argument errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from campus_core.chat.models import Conversation
from tests.graphql_support import Built, build_dataset, execute
from tracing.exporter import PostgresSpanExporter
from tracing.models import OTelTrace

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Built]:
    """Written once per module through the real exporter (its own connection commits)."""
    with django_db_blocker.unblock():
        exporter = PostgresSpanExporter(keep_untagged=True)
        try:
            built = build_dataset(exporter)
        finally:
            exporter.shutdown()
    yield built
    with django_db_blocker.unblock():
        OTelTrace.objects.all().delete()
        Conversation.objects.all().delete()
        get_user_model().objects.all().delete()


TRACE_LIST = """
query($filters: TraceFilter, $ordering: [TraceOrder!]! = [], $first: Int, $after: String) {
  traces(filters: $filters, ordering: $ordering, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id query status model totalDurationMs toolsUsed } }
  }
}
"""


def test_smoke(data: Built) -> None:
    result = execute(TRACE_LIST, {"first": 10})
    assert result.errors is None, result.errors
    print(result.data)
    assert result.data["traces"]["totalCount"] == 6


DETAIL = """
query($id: ID!) {
  trace(id: $id) {
    id query status model spanCount conversation { id title } userMessage { content }
    rootSpan { id name kind }
    spans { id name kind op depth offsetMs durationMs selfDurationMs status parentId
            genAi { model inputTokens toolName toolInput prompt provider }
            attribute(key: "llm.model") children { id } parent { id } }
  }
}
"""


def test_smoke_detail(data: Built) -> None:
    for label in ("library", "legacy", "orphan", "earlier"):
        result = execute(DETAIL, {"id": data.ids[label]})
        assert result.errors is None, result.errors
        import json

        print(json.dumps(result.data, indent=1)[:3000])
