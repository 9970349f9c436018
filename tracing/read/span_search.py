"""Span search: attribute conditions across naming generations, and keyset pages of spans.

``AttributeCondition`` is one checked condition on one attribute key; ``attribute_q`` turns
it into SQL that holds when the span carries the value under ANY naming of the key, the
names coming from the one alias table (``tracing.conventions.semconv.ALIASES``): a
condition on ``llm.model`` matches spans stored with ``gen_ai.request.model`` and the
reverse. ``spans_having`` is the same for a run ("the run has a span matching each").

``span_page`` reads one keyset page in one query whatever its size: the filters, the
"after the cursor" condition (with a bound on the leading key, so the page starts in the
index where the cursor points) and ``LIMIT size + 1`` to learn whether more follow; a
newest-first page first from the window the rollups say holds it (a fixed number of
queries more, ``span_page``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import reduce
from operator import and_, or_
from typing import Any

from django.db import connections, transaction
from django.db.models import BooleanField, Exists, F, Func, OuterRef, Q, QuerySet, Value

from tracing.conventions import semconv
from tracing.conventions.semconv import Concept
from tracing.models import OTelSpan
from tracing.read.span_rollups import RollupFilter
from tracing.read.span_window import window_for
from tracing.read.spans import SpanRecord, keyed_span_records, within_traces

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Operator(StrEnum):
    EQUALS = "equals"
    IN = "in"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    EXISTS = "exists"
    CONTAINS = "contains"


_JSONPATH_COMPARISON = {
    Operator.GT: ">",
    Operator.GTE: ">=",
    Operator.LT: "<",
    Operator.LTE: "<=",
}


@dataclass(frozen=True)
class AttributeCondition:
    """One condition on one attribute key (checked by the caller: one operator, a value of
    the operator's type; ``IN`` a non-empty list)."""

    key: str
    operator: Operator
    value: Any


def key_names(key: str) -> tuple[str, ...]:
    """``key`` and its names in the other naming generations (the alias table's row), the
    key itself first; just ``key`` when the table does not know it."""
    concept = semconv.concept_of(key)
    if concept is None:
        return (key,)
    return tuple(dict.fromkeys((key, *semconv.ALIASES[concept].all())))


class _Sql(Func):
    """A boolean SQL fragment over the ``attributes`` column and literal parameters:
    ``template`` receives the compiled column and each parameter placeholder in order."""

    output_field = BooleanField()

    def __init__(self, template: str, *params: Any) -> None:
        self._template = template
        super().__init__(F("attributes"), *(Value(p) for p in params))

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra: Any
    ) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        for expression in self.get_source_expressions():
            sql, expression_params = compiler.compile(expression)
            parts.append(sql)
            params.extend(expression_params)
        return self._template.format(*parts), params


def _jsonpath_key(key: str) -> str:
    # A JSON string literal is a valid jsonpath string literal (same escapes).
    return "$." + json.dumps(key)


def _one_name(name: str, condition: AttributeCondition) -> Q:
    op, value = condition.operator, condition.value
    if op is Operator.EQUALS:
        if isinstance(value, dict | list):
            # Containment would accept a superset: structured values compare whole.
            return Q(_Sql("({0} -> {1}) = {2}::jsonb", name, json.dumps(value)))
        # jsonb containment of one scalar is its equality (1 equals 1.0); GIN-indexable.
        return Q(attributes__contains={name: value})
    if op is Operator.IN:
        return reduce(
            or_, (_one_name(name, AttributeCondition(name, Operator.EQUALS, v)) for v in value)
        )
    if op is Operator.EXISTS:
        return Q(attributes__has_key=name)
    if op is Operator.CONTAINS:
        # like_regex with flag "q": the text is a literal, not a pattern; "i": any case.
        # Lax mode skips non-string values (and searches the strings of an array).
        path = f'{_jsonpath_key(name)} ? (@ like_regex {json.dumps(value)} flag "iq")'
        return Q(_Sql("jsonb_path_exists({0}, {1}::jsonpath)", path))
    # Numeric comparison: non-numeric values simply do not match (lax jsonpath).
    path = f"{_jsonpath_key(name)} ? (@ {_JSONPATH_COMPARISON[op]} {float(value)!r})"
    return Q(_Sql("jsonb_path_exists({0}, {1}::jsonpath)", path))


def attribute_q(condition: AttributeCondition) -> Q:
    """Spans whose value under any naming of ``condition.key`` satisfies it (``exists:
    false``: the key under none of its names)."""
    names = key_names(condition.key)
    if condition.operator is Operator.EXISTS:
        present = Q(attributes__has_any_keys=list(names))
        return present if condition.value else ~present
    q = reduce(or_, (_one_name(name, condition) for name in names))
    return q & _promoted_narrowing(condition)


def _promoted_narrowing(condition: AttributeCondition) -> Q:
    """An implied condition on the promoted ``model`` column, so that the model index finds
    the candidates: a span whose model attribute (any generation) is X has model = X."""
    if semconv.concept_of(condition.key) is not Concept.MODEL:
        return Q()
    if condition.operator is Operator.EQUALS:
        values = [condition.value]
    elif condition.operator is Operator.IN:
        values = list(condition.value)
    else:
        return Q()
    if not all(isinstance(v, str) and 0 < len(v) <= 200 for v in values):
        return Q()
    return Q(model__in=values)


def spans_having(conditions: Sequence[AttributeCondition], trace_ref: str) -> Q:
    """Runs (the outer query's ``trace_ref`` column is the trace id) that have, for each
    condition, a span satisfying it."""
    return reduce(
        and_,
        (
            Q(Exists(OTelSpan.objects.filter(attribute_q(c), trace_id=OuterRef(trace_ref))))
            for c in conditions
        ),
        Q(),
    )


# --- keyset pages --------------------------------------------------------------------------


class SortKey(StrEnum):
    """The span columns a page may be ordered by."""

    STARTED_AT = "started_at"
    DURATION_MS = "duration_ms"


@dataclass(frozen=True)
class SortOrder:
    key: SortKey
    descending: bool


NEWEST_FIRST = (SortOrder(SortKey.STARTED_AT, descending=True),)


class BadCursor(ValueError):
    """A cursor whose values do not fit the ordering it is used with."""


def cursor_values(order: Sequence[SortOrder], pk: int, span: SpanRecord) -> list[Any]:
    """The keyset values of one span, as JSON-able values: the ordering keys, then the id."""
    values: list[Any] = []
    for item in order:
        if item.key is SortKey.STARTED_AT:
            values.append((span.started_at - _EPOCH) // timedelta(microseconds=1))
        else:
            values.append(span.duration_ms)
    return [*values, pk]


def _decoded(order: Sequence[SortOrder], values: Sequence[Any]) -> list[Any]:
    if len(values) != len(order) + 1:
        raise BadCursor("the cursor does not belong to this ordering")
    out: list[Any] = []
    for item, value in zip(order, values, strict=False):
        if item.key is SortKey.STARTED_AT:
            if not isinstance(value, int) or isinstance(value, bool):
                raise BadCursor("the cursor does not belong to this ordering")
            try:
                out.append(_EPOCH + timedelta(microseconds=value))
            except OverflowError:
                raise BadCursor("the cursor's start time is out of range") from None
        else:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise BadCursor("the cursor does not belong to this ordering")
            out.append(float(value))
    pk = values[-1]
    if not isinstance(pk, int) or isinstance(pk, bool) or not 0 <= pk < 2**63:
        raise BadCursor("the cursor's span id is not valid")
    return [*out, pk]


def ordered(spans: QuerySet[OTelSpan], order: Sequence[SortOrder]) -> QuerySet[OTelSpan]:
    """``spans`` in ``order``, ties broken by id in the last key's direction (so one index
    on (key, id) serves the page either way)."""
    last_descending = order[-1].descending
    return spans.order_by(
        *(F(item.key.value).desc() if item.descending else F(item.key.value) for item in order),
        F("id").desc() if last_descending else F("id"),
    )


def _after(order: Sequence[SortOrder], values: Sequence[Any]) -> Q:
    keys = [(item.key.value, item.descending) for item in order]
    keys.append(("id", order[-1].descending))
    alternatives = []
    for i, (column, descending) in enumerate(keys):
        equal = {keys[j][0]: values[j] for j in range(i)}
        alternatives.append(Q(**equal, **{f"{column}__{'lt' if descending else 'gt'}": values[i]}))
    lead, lead_descending = keys[0]
    # Implied by the alternatives; as an index condition it starts the scan at the cursor.
    bound = Q(**{f"{lead}__{'lte' if lead_descending else 'gte'}": values[0]})
    return reduce(or_, alternatives) & bound


@dataclass(frozen=True)
class SpanPage:
    spans: list[tuple[list[Any], SpanRecord]]  # (cursor values, record)
    has_next: bool


# Spans (of any kind) the windows tried in turn must hold when the filters are not rollup
# keys (duration, attribute, trace): enough for a page of 50 under a filter that keeps 1 in
# 400 of them, then 1 in 8,000 (about a day of this benchmark's store), then no bound.
WIDE_NEEDS = (20_000, 400_000)


def span_page(
    spans: QuerySet[OTelSpan],
    order: Sequence[SortOrder],
    after: Sequence[Any] | None,
    size: int,
    keys: RollupFilter | None = None,
    widen: bool = False,
    trace: uuid.UUID | None = None,
) -> SpanPage:
    """One page of ``spans`` in ``order`` after the cursor ``after`` (its values): one
    query. A newest-first page is read from the newest window the rollups say holds it
    (``span_window``: one small query more, kept a minute; the page read again unbounded
    should the window fall short): with ``keys`` (the filters as rollup keys, when they
    all are) a window holding the page's matching spans; with ``widen`` instead, windows
    holding ``WIDE_NEEDS`` spans of any kind, tried in turn, each read walking the
    start-time index (``walking_the_index``). ``trace``: the one trace the
    filters ask for, whose row bounds the read to the day partitions its spans are in
    (one small query)."""
    order = order or NEWEST_FIRST
    if trace is not None:
        spans = spans.filter(within_traces([trace]))
    if (keys is not None or widen) and list(order) == list(NEWEST_FIRST):
        cursor = _decoded(order, after)[0] if after is not None else None
        bounds = (cursor, keys.before if keys is not None else None)
        before = min((t for t in bounds if t is not None), default=None)
        tried = (
            [(keys, size + 1)] if keys is not None else [(RollupFilter(), n) for n in WIDE_NEEDS]
        )
        for window_keys, need in tried:
            since = window_for(window_keys, before, need)
            if since is None:
                break
            # Filters on the rollup keys are columns with statistics: the planner's own
            # plan serves them, without the hint's three statements.
            with walking_the_index(spans.db) if keys is None else nullcontext():
                bounded = _page(spans.filter(started_at__gte=since), order, after, size)
            if bounded.has_next:
                return bounded
    return _page(spans, order, after, size)


@contextmanager
def walking_the_index(alias: str) -> Iterator[None]:
    """The page read inside runs with sequential and bitmap scans off (for its own
    transaction only): PostgreSQL then walks the start-time index newest first and stops
    at the page's LIMIT (three statements more: BEGIN, the settings, COMMIT). Used for the
    wide windows of filters that are not rollup keys: the window was chosen to hold the
    page, but the planner, guessing few rows match an attribute condition, scanned today's
    whole partition and sorted it instead (5x the time, where the same cost model walks the
    index on one unpartitioned table: benchmarks/RESULTS.md, "Months of traces"). Inside a
    caller's transaction (or without autocommit) the read is left to the planner, as the
    settings would outlive it."""
    connection = connections[alias]
    if connection.in_atomic_block or not connection.get_autocommit():
        yield
        return
    with transaction.atomic(using=alias):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('enable_seqscan', 'off', true), "
                "set_config('enable_bitmapscan', 'off', true)"
            )
        yield


def _page(
    spans: QuerySet[OTelSpan], order: Sequence[SortOrder], after: Sequence[Any] | None, size: int
) -> SpanPage:
    page = spans
    if after is not None:
        page = page.filter(_after(order, _decoded(order, after)))
    rows = keyed_span_records(ordered(page, order)[: size + 1])
    return SpanPage(
        spans=[(cursor_values(order, pk, record), record) for pk, record in rows[:size]],
        has_next=len(rows) > size,
    )


def check_cursor_values(order: Sequence[SortOrder], values: Sequence[Any]) -> None:
    """Raise ``BadCursor`` unless ``values`` fit ``order`` (no query)."""
    _decoded(order or NEWEST_FIRST, values)
