"""Per-request DataLoaders, one per file: each batches every key asked for during one
GraphQL request into one query, so nested fields cost a constant number of queries
whatever the page size. Each load function de-duplicates its keys and returns results in
key order; ``Loaders`` is built fresh for each request, so nothing is cached across
requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strawberry.dataloader import DataLoader

from graphql_api.dataloaders import root_spans as root_span_loader
from graphql_api.dataloaders import trace_spans as trace_span_loader


@dataclass
class Loaders:
    """This request's loaders."""

    # Every span of a trace, placed in its tree (one query for all the traces asked).
    trace_spans: DataLoader[trace_span_loader.Key, trace_span_loader.Result] = field(
        default_factory=lambda: DataLoader(
            load_fn=trace_span_loader.load, cache_key_fn=trace_span_loader.trace_id_of
        )
    )
    # Only the root span, for lists of traces (does not read whole traces).
    root_span: DataLoader[root_span_loader.Key, root_span_loader.Result] = field(
        default_factory=lambda: DataLoader(load_fn=root_span_loader.load)
    )
