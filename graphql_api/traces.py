"""The ``Trace`` type, its filter and ordering inputs, and ``traces`` / ``trace(id)``.

Lists are keyset-paginated by strawberry-django's ``DjangoCursorConnection`` (the cursor
carries the ordering values, never an offset); the optimizer turns nested
``conversation`` / ``userMessage`` / ``aiMessage`` into joins; spans and root spans come
from the per-request loaders. A page therefore costs the same number of queries whatever
its size.
"""

from __future__ import annotations

import inspect
import json
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
import strawberry_django
from django.db.models import F, OrderBy, Q, QuerySet, Value
from django.db.models.lookups import GreaterThanOrEqual, IsNull, LessThanOrEqual
from strawberry import Info, Parent
from strawberry.relay import from_base64
from strawberry_django.relay import (
    DjangoCursorConnection,
    DjangoCursorEdge,
    OrderedCollectionCursor,
)
from strawberry_django.relay.cursor_connection import annotate_ordering_fields

from campus_core.text import unstorable_text
from graphql_api.context import loaders
from graphql_api.permissions import staff_only
from graphql_api.span_views import lone_view
from graphql_api.spans import SpanColumnsType, SpanType, trace_loader
from tracing import selectors
from tracing.models import OTelTrace

if TYPE_CHECKING:
    from graphql_api.conversations import ConversationType, MessageType

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class BadArgument(ValueError):
    """A client error in the arguments: reported as a GraphQL error, nothing is queried."""


def parse_trace_id(value: str) -> uuid.UUID:
    uid = selectors.parse_trace_id(value)
    if uid is None:
        raise BadArgument(f"Invalid trace id {value!r}: expected 32 hexadecimal characters.")
    return uid


def parse_int_id(value: str, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise BadArgument(f"Invalid {what} id {value!r}: expected an integer.") from None
    if not 0 < number < 2**63:
        raise BadArgument(f"Invalid {what} id {value!r}: expected a positive 64-bit integer.")
    return number


@strawberry_django.filter_type(
    OTelTrace,
    name="TraceFilter",
    description="Filters on agent runs; every filter given must hold (they combine with AND).",
)
class TraceFilter:
    @strawberry_django.filter_field(
        description="Any of these agent-run statuses (completed, error, max_iterations, running)."
    )
    def status(self, value: list[str], prefix: str) -> Q:
        return Q(**{f"{prefix}status__in": value})

    @strawberry_django.filter_field(description="Any of these models (the run's first LLM model).")
    def model(self, value: list[str], prefix: str) -> Q:
        return Q(**{f"{prefix}model__in": value})

    @strawberry_django.filter_field(
        description="Whole agent run (trace) lasted at least this many milliseconds."
    )
    def min_duration_ms(self, value: float, prefix: str) -> Q:
        return Q(**{f"{prefix}total_duration_ms__gte": value})

    @strawberry_django.filter_field(
        description="Whole agent run (trace) lasted at most this many milliseconds."
    )
    def max_duration_ms(self, value: float, prefix: str) -> Q:
        return Q(**{f"{prefix}total_duration_ms__lte": value})

    @strawberry_django.filter_field(
        description=(
            "Runs in which any span called this tool (exact tool name; matched against "
            "the trace's toolsUsed array)."
        )
    )
    def tool_used(self, value: str, prefix: str) -> Q:
        return Q(**{f"{prefix}tools_used__contains": [value]})

    @strawberry_django.filter_field(description="Runs started at or after this instant.")
    def started_after(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}started_at__gte": value})

    @strawberry_django.filter_field(description="Runs started strictly before this instant.")
    def started_before(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}started_at__lt": value})

    @strawberry_django.filter_field(description="Runs of this conversation.")
    def conversation_id(self, value: strawberry.ID, prefix: str) -> Q:
        return Q(**{f"{prefix}conversation_id": parse_int_id(value, "conversation")})

    @strawberry_django.filter_field(
        description="Case-insensitive substring of the user's query text."
    )
    def search(self, value: str, prefix: str) -> Q:
        return Q(**{f"{prefix}query__icontains": value})

    @strawberry_django.filter_field
    def filter(self, info: Info, queryset: QuerySet, prefix: str) -> tuple[QuerySet, Q]:
        self.validate()
        return strawberry_django.process_filters(
            self,  # type: ignore[arg-type]
            queryset,
            info,
            prefix,
            skip_object_filter_method=True,
        )

    def validate(self) -> None:
        """Arguments that cannot describe any trace are errors, not empty pages."""
        lo, hi = given(self, "min_duration_ms"), given(self, "max_duration_ms")
        for name, value in (("minDurationMs", lo), ("maxDurationMs", hi)):
            if value is not None and (value < 0 or value != value):
                raise BadArgument(f"{name} must be a non-negative number, got {value}.")
        if lo is not None and hi is not None and lo > hi:
            raise BadArgument(f"minDurationMs ({lo}) is greater than maxDurationMs ({hi}).")
        after, before = given(self, "started_after"), given(self, "started_before")
        if after is not None and before is not None and after >= before:
            raise BadArgument(
                f"startedAfter ({after.isoformat()}) must be before "
                f"startedBefore ({before.isoformat()})."
            )
        search = given(self, "search")
        if search is not None and not search.strip():
            raise BadArgument("search must not be empty.")
        for name, value in (
            ("search", search),
            ("toolUsed", given(self, "tool_used")),
            ("status", given(self, "status")),
            ("model", given(self, "model")),
        ):
            texts = value if isinstance(value, list) else [value]
            for text in texts:
                # Say so instead of failing in the database driver.
                problem = unstorable_text(text) if text is not None else None
                if problem is not None:
                    raise BadArgument(f"{name} must not contain {problem}.")


def given(obj: object | None, name: str) -> Any:
    """An input field's value, None when not given."""
    value = getattr(obj, name, None) if obj is not None else None
    return None if value is strawberry.UNSET else value


@strawberry_django.order_type(
    OTelTrace,
    name="TraceOrder",
    description="One ordering key per item; later items break ties. Ties end on trace id.",
)
class TraceOrder:
    @strawberry_django.order_field(description="Start of the run.")
    def started_at(self, value: strawberry_django.Ordering, prefix: str) -> list[OrderBy]:
        return [order_by(F(f"{prefix}started_at"), value)]

    @strawberry_django.order_field(description="Duration of the whole run.")
    def total_duration_ms(self, value: strawberry_django.Ordering, prefix: str) -> list[OrderBy]:
        return [order_by(F(f"{prefix}total_duration_ms"), value)]

    total_input_tokens: strawberry_django.Ordering | None = strawberry_django.order_field()
    total_output_tokens: strawberry_django.Ordering | None = strawberry_django.order_field()

    @strawberry_django.order_field(description="Input plus output tokens of the run.")
    def total_tokens(self, value: strawberry_django.Ordering, prefix: str) -> list[OrderBy]:
        total = F(f"{prefix}total_input_tokens") + F(f"{prefix}total_output_tokens")
        return [order_by(total, value)]


def order_by(expression: Any, value: strawberry_django.Ordering) -> OrderBy:
    """``value`` applied to ``expression`` with the place of NULLs always spelled out
    (PostgreSQL's own default when not asked: last ascending, first descending). The keyset
    cursor reads it to decide whether NULL rows come before or after a cursor."""
    descending = value.name.startswith("DESC")
    nulls_first = "NULLS_FIRST" in value.name or (descending and "NULLS_LAST" not in value.name)
    nulls: dict[str, bool] = {"nulls_first": True} if nulls_first else {"nulls_last": True}
    return expression.desc(**nulls) if descending else expression.asc(**nulls)


@strawberry_django.type(
    OTelTrace,
    name="Trace",
    description="One agent run, recorded as one OpenTelemetry trace.",
    filters=TraceFilter,
    ordering=TraceOrder,
)
class TraceType:
    @strawberry_django.field(description="OTel trace id, 32 hex characters.")
    def id(self, root: Parent[OTelTrace]) -> strawberry.ID:
        return strawberry.ID(root.id.hex)

    agent_name: str
    query: str = strawberry_django.field(description="The user's question.")
    status: str = strawberry_django.field(
        description="completed | error | max_iterations, or running until the agent span arrives."
    )
    model: str = strawberry_django.field(description="The model of the run ('' when none).")
    started_at: datetime | None
    ended_at: datetime | None
    total_duration_ms: float | None = strawberry_django.field(
        description="Duration of the whole agent run (the agent span), in milliseconds."
    )
    total_input_tokens: int
    total_output_tokens: int
    iteration_count: int
    tool_call_count: int
    tools_used: list[str] = strawberry_django.field(
        description="Distinct names of the tools any span of the run called."
    )
    span_count: int
    conversation: Annotated[ConversationType, strawberry.lazy("graphql_api.conversations")] | None
    user_message: Annotated[MessageType, strawberry.lazy("graphql_api.conversations")] | None
    ai_message: Annotated[MessageType, strawberry.lazy("graphql_api.conversations")] | None

    @strawberry_django.field(
        description=(
            "The agent span (invoke_agent / agent_run); when it is missing, the first span "
            "whose parent never arrived."
        ),
    )
    async def root_span(self, root: Parent[OTelTrace], info: Info) -> SpanType | None:
        span = await loaders(info).root_span.load(
            (root.id, root.root_span_id, root.started_at, root.ended_at)
        )
        return lone_view(span, trace_loader(info)) if span is not None else None  # type: ignore[return-value]

    @classmethod
    def get_queryset(
        cls, queryset: QuerySet[OTelTrace], info: Info, **kwargs: Any
    ) -> QuerySet[OTelTrace]:
        return ordered_traces(queryset)

    @classmethod
    def resolve_id_attr(cls) -> str:
        # strawberry-django's root connection resolver asks the type for its id column
        # (a relay.Node method). Trace ids are OTel ids, not relay global ids, so the
        # type answers that one question without becoming a Node.
        return "id"

    @strawberry_django.field(
        description="Every span of the run, flat, ordered by start (with depth and offsetMs).",
    )
    async def spans(self, root: Parent[OTelTrace], info: Info) -> list[SpanType]:
        return (await loaders(info).trace_spans.load(root.id)).ordered  # type: ignore[return-value]

    @strawberry_django.field(
        description=(
            "The same spans column by column (see SpanColumns): the fast way to draw a "
            "waterfall of thousands of spans."
        ),
    )
    async def span_columns(self, root: Parent[OTelTrace], info: Info) -> SpanColumnsType:
        return SpanColumnsType.of(await loaders(info).trace_spans.load(root.id))


def page_window(first: int | None, last: int | None) -> tuple[int | None, int | None]:
    """Checked page sizes; a missing page size means the default page, never the whole table."""
    for name, value in (("first", first), ("last", last)):
        if value is not None and value < 0:
            raise BadArgument(f"Argument '{name}' must be a non-negative integer, got {value}.")
        if value is not None and value > MAX_PAGE_SIZE:
            raise BadArgument(
                f"Argument '{name}' cannot be higher than {MAX_PAGE_SIZE} (got {value}); "
                "page through the results with 'after'."
            )
    if first is None and last is None:
        first = DEFAULT_PAGE_SIZE
    return first, last


def check_cursor(name: str, cursor: str) -> None:
    """A cursor must be one this API handed out; the connection then checks its values."""
    try:
        prefix, payload = from_base64(cursor)
        values = json.loads(payload)
    except (ValueError, TypeError):
        values = prefix = None
    if prefix != DjangoCursorEdge.CURSOR_PREFIX or not isinstance(values, list):
        raise BadArgument(
            f"Invalid cursor in '{name}': pass back a cursor or pageInfo.endCursor unchanged."
        )


def with_leading_bound(nodes: QuerySet, cursor: str, *, before: bool) -> QuerySet:
    """Add ``first_key <= value`` (or ``>=``) to the keyset condition.

    strawberry-django expresses "after the cursor" as ``a < v OR (a = v AND id < x)``,
    which PostgreSQL can only apply as a filter while walking the index from the top: a
    deep page would cost its depth. The redundant bound on the leading key, implied by that
    condition, becomes an index condition, so every page starts where the cursor points.
    """
    _, descriptors, _ = annotate_ordering_fields(nodes)
    lead = descriptors[0]
    value = OrderedCollectionCursor.from_cursor(cursor, descriptors).field_values[0]
    if value is None:
        return nodes
    # The leading key as ordered: a column, or an expression such as input + output tokens
    # (which has its own index, trace_total_tokens_idx).
    key: Any = lead.order_by.expression  # resolved by the compiler: never a bare F
    upper = lead.order_by.descending != before
    compare = LessThanOrEqual if upper else GreaterThanOrEqual
    bound = Q(compare(key, Value(value, output_field=key.output_field)))
    nulls_follow = bool(lead.order_by.nulls_first) == before
    if lead.maybe_null and nulls_follow:
        bound |= Q(IsNull(key, True))
    return nodes.filter(bound)


class BoundedPageMixin:
    """Put before ``DjangoCursorConnection``: its keyset pagination, with a default and a
    maximum page size."""

    @classmethod
    def resolve_connection(  # type: ignore[override]
        cls,
        nodes: Any,
        *,
        info: Info,
        first: int | None = None,
        last: int | None = None,
        **kwargs: Any,
    ) -> Any:
        first, last = page_window(first, last)
        page_nodes = nodes
        for name, cursor in (("after", kwargs.get("after")), ("before", kwargs.get("before"))):
            if cursor is not None:
                check_cursor(name, cursor)
                page_nodes = with_leading_bound(page_nodes, cursor, before=name == "before")
        result = super().resolve_connection(  # type: ignore[misc]
            page_nodes, info=info, first=first, last=last, **kwargs
        )

        # totalCount counts the whole filtered set, not what lies past the cursor.
        def count_all(connection: Any) -> Any:
            connection.total_count_qs = nodes
            return connection

        if inspect.isawaitable(result):
            awaitable = result

            async def resolved() -> Any:
                return count_all(await awaitable)

            return resolved()
        return count_all(result)


@strawberry.type(name="TraceConnection", description="A page of traces.")
class TraceConnection(BoundedPageMixin, DjangoCursorConnection[TraceType]):  # type: ignore[type-var]
    pass


def ordered_traces(queryset: QuerySet[OTelTrace]) -> QuerySet[OTelTrace]:
    # The default order is the trace_started_idx index's (DESC puts NULLs first in
    # PostgreSQL, said explicitly for the cursor); an ``ordering`` argument replaces it.
    return queryset.order_by(F("started_at").desc(nulls_first=True), F("id").desc())


@strawberry.type
class Query:
    traces: TraceConnection = strawberry_django.connection(
        description=(
            "Agent runs, newest first unless ordered otherwise; keyset-paginated "
            f"({DEFAULT_PAGE_SIZE} by default, at most {MAX_PAGE_SIZE} per page)."
        ),
        extensions=staff_only(),
    )

    @strawberry_django.field(
        description=(
            "One agent run by OTel trace id (32 hex characters); null when unknown, an "
            "error when malformed."
        ),
        extensions=staff_only(),
    )
    def trace(self, id: strawberry.ID) -> TraceType | None:
        return OTelTrace.objects.filter(pk=parse_trace_id(str(id)))  # type: ignore[return-value]
