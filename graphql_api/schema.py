"""The GraphQL schema: one root merging the per-concept Query types, with the optimizer
and the request limits (depth, aliases, tokens).

Export with ``python manage.py export_schema graphql_api.schema --path schema.graphql``.
"""

from __future__ import annotations

import strawberry
from django.core.exceptions import PermissionDenied
from graphql import GraphQLError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry_django.optimizer import DjangoOptimizerExtension

from graphql_api import conversations, retention, spans, stats, traces

# Deep enough for trace → spans → children → children → genAi, and for introspection.
MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 2000


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


Query = merge_types(
    "Query", (traces.Query, spans.Query, conversations.Query, stats.Query, retention.Query)
)

schema = strawberry.Schema(
    query=Query,
    config=StrawberryConfig(
        relay_max_results=traces.MAX_PAGE_SIZE, scalar_map={stats.BigInt: stats.BIG_INT}
    ),
    extensions=[
        # Joins and prefetches, yes; column pruning (only()), no: keyset cursors read the
        # ordering columns from each row, and pruned columns would be fetched one row at a
        # time (and fail in async code) on nested connections. Trace rows are narrow.
        lambda: DjangoOptimizerExtension(enable_only_optimization=False),
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaskErrors(should_mask_error=is_internal),
    ],
)
