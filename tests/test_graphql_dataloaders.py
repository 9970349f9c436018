"""The per-request loaders answer in key order, once per distinct key, in one batch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from graphql_api.dataloaders import Loaders, root_spans, trace_spans
from tests.graphql_support import Built, committed_dataset
from tracing.models import OTelSpan, OTelTrace
from tracing.read.spans import TraceExtent

pytestmark = pytest.mark.django_db

UNKNOWN = uuid.UUID(int=1)


@pytest.fixture(scope="module")
def data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Built]:
    with committed_dataset(django_db_blocker) as built:
        yield built


def test_trace_spans_in_key_order_with_repeated_keys(
    data: Built, django_assert_num_queries: Any
) -> None:
    library, failed = uuid.UUID(data.ids["library"]), uuid.UUID(data.ids["failed"])
    # The traces' time bounds (partition pruning, tracing.read.spans.within_traces), spans.
    with django_assert_num_queries(2):
        results = async_to_sync(trace_spans.load)([failed, library, UNKNOWN, failed])
    assert [{span.trace_id for span in spans.values()} for spans in results] == [
        {failed.hex},
        {library.hex},
        set(),
        {failed.hex},
    ]
    # A repeated key is one tree, built once.
    assert results[0] is results[3]
    library_spans = list(results[1].values())
    assert len(library_spans) == OTelTrace.objects.get(pk=library).span_count
    assert [s.started_at for s in library_spans] == sorted(s.started_at for s in library_spans)


def test_trace_spans_by_extent_need_no_bounds_query(
    data: Built, django_assert_num_queries: Any
) -> None:
    library = OTelTrace.objects.get(pk=uuid.UUID(data.ids["library"]))
    failed = uuid.UUID(data.ids["failed"])

    async def load(keys: list[trace_spans.Key]) -> list[trace_spans.Result]:
        # A loader of its own (one request's), made in the loop that runs it.
        return await Loaders().trace_spans.load_many(keys)

    # The same trace by extent and by id is one load, bounded by the extent given.
    with django_assert_num_queries(1):
        by_extent, by_id = async_to_sync(load)([TraceExtent.of(library), library.id])
    assert by_extent is by_id
    assert len(by_extent) == library.span_count
    with django_assert_num_queries(2):  # an id alone: its row's bounds, then the spans
        [alone] = async_to_sync(load)([failed])
    assert {span.trace_id for span in alone.values()} == {failed.hex}


def test_root_spans_in_key_order_with_repeated_keys(
    data: Built, django_assert_num_queries: Any
) -> None:
    library = OTelTrace.objects.get(pk=uuid.UUID(data.ids["library"]))
    orphan = OTelTrace.objects.get(pk=uuid.UUID(data.ids["orphan"]))
    # The orphan run's agent span never arrived: its one span is found among candidates.
    assert library.root_span_id and not orphan.root_span_id
    [orphan_span] = OTelSpan.objects.filter(trace_id=orphan.id)
    keys = [
        (orphan.id, "", orphan.started_at, orphan.ended_at),
        (library.id, library.root_span_id, library.started_at, library.ended_at),
        (UNKNOWN, "", None, None),
        (orphan.id, "", orphan.started_at, orphan.ended_at),
    ]
    with django_assert_num_queries(2):  # the recorded root, then candidates for the rest
        results = async_to_sync(root_spans.load)(keys)
    assert [r.span_id if r is not None else None for r in results] == [
        orphan_span.span_id,
        library.root_span_id,
        None,
        orphan_span.span_id,
    ]
