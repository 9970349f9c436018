"""The GraphQL schema: one root merging the per-concept Query types, with the optimizer,
the request limits (``graphql_api.limits``), error masking and error logging.

Export with ``python manage.py export_schema graphql_api.schema --path schema.graphql``.
"""

from __future__ import annotations

import logging

import strawberry
from django.core.exceptions import PermissionDenied
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext
from strawberry_django.optimizer import DjangoOptimizerExtension

from graphql_api import conversations, pagination, retention, stats
from graphql_api.column_fields import read_columns_directly
from graphql_api.execution import YieldingExecutor
from graphql_api.limits import DocumentLimits
from graphql_api.spans import schema as spans
from graphql_api.spans import search as span_search
from graphql_api.spans import stats as span_stats
from graphql_api.traces import schema as traces

logger = logging.getLogger(__name__)


def is_internal(error: GraphQLError) -> bool:
    """Errors of the server itself (a database failure, a bug) reach clients as
    "Unexpected error." and stay in the server log; errors about the request (syntax,
    validation, limits, bad arguments, permissions) keep their message."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return False
    # Client errors: our BadArgument and strawberry-django's cursor / page-size checks are
    # ValueErrors; IsStaff raises PermissionDenied.
    return not isinstance(original, ValueError | PermissionDenied)


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # strawberry logs every error at ERROR with its traceback. A bad cursor or a refused
        # document is the client's mistake: one WARNING line for the request, no traceback.
        client: list[str] = []
        for error in errors:
            if is_internal(error):
                logger.error(
                    "GraphQL server error at %s: %s",
                    ".".join(map(str, error.path or ())) or "(document)",
                    error.message,
                    exc_info=error.original_error,
                )
            elif error.message not in client:
                client.append(error.message)
        if client:
            more = f" (+{len(client) - 3} more)" if len(client) > 3 else ""
            logger.warning("GraphQL request error: %s%s", " | ".join(client[:3]), more)


class QuerysetOptimizer(DjangoOptimizerExtension):
    """strawberry-django's optimizer without its per-field hook. The hook wraps every
    field's resolver to optimize a queryset a resolver might return unoptimized; every
    queryset this schema returns comes from a strawberry-django field, which optimizes it
    itself (``StrawberryDjangoField.get_queryset``), so the hook only added a layer of calls
    to each of the thousand fields of a page (the query-count tests pin the joins)."""

    resolve = SchemaExtension.resolve  # type: ignore[assignment]


Query = merge_types(
    "Query",
    (
        traces.Query,
        spans.Query,
        span_search.Query,
        conversations.Query,
        stats.Query,
        span_stats.Query,
        retention.Query,
    ),
)

schema = Schema(
    query=Query,
    config=StrawberryConfig(
        relay_max_results=pagination.MAX_PAGE_SIZE, scalar_map={stats.BigInt: stats.BIG_INT}
    ),
    execution_context_class=YieldingExecutor,
    extensions=[
        # Joins and prefetches, yes; column pruning (only()), no: keyset cursors read the
        # ordering columns from each row, and pruned columns would be fetched one row at a
        # time (and fail in async code) on nested connections. Trace rows are narrow.
        lambda: QuerysetOptimizer(enable_only_optimization=False),
        DocumentLimits,
        lambda: MaskErrors(should_mask_error=is_internal),
    ],
)

# Plain column fields read the loaded row directly (graphql_api/column_fields.py).
COLUMN_FIELDS = read_columns_directly(schema)
