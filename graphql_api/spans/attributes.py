"""``AttributeFilter``: one condition on a span attribute, whose key resolves across naming
generations; checked here (exactly one operator, usable values) before any SQL runs, and
turned into ``tracing.read.span_search.AttributeCondition``. Used by ``SpanFilter`` and by
``TraceFilter`` ("the run has a span matching each")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from strawberry.scalars import JSON

from campus_core.text import unstorable_text
from graphql_api.errors import BadArgument
from tracing.read.span_search import AttributeCondition, Operator

_OPERATORS = tuple(Operator)
_JSON_SCALARS = (str, int, float, bool)


@strawberry.input(
    name="AttributeFilter",
    description=(
        "One condition on a span attribute: `key` and exactly one operator. The key "
        "resolves across naming generations (llm.model also finds gen_ai.request.model "
        "and the reverse): the condition holds when the value under any of the key's names "
        "satisfies it."
    ),
)
class AttributeFilter:
    key: str
    equals: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="The value equals this JSON value."
    )
    in_: list[JSON] | None = strawberry.field(
        name="in", default=strawberry.UNSET, description="The value equals one of these."
    )
    gt: float | None = strawberry.field(
        default=strawberry.UNSET, description="A numeric value greater than this."
    )
    gte: float | None = strawberry.field(default=strawberry.UNSET)
    lt: float | None = strawberry.field(default=strawberry.UNSET)
    lte: float | None = strawberry.field(default=strawberry.UNSET)
    exists: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="true: the span has the key (under any name); false: it has none.",
    )
    contains: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Case-insensitive substring of a string value.",
    )


def _check_text(what: str, text: str) -> None:
    problem = unstorable_text(text)
    if problem is not None:
        raise BadArgument(f"{what} must not contain {problem}.")


def _check_json(key: str, value: Any) -> None:
    if value is None:
        raise BadArgument(
            f"Attribute filter on {key!r}: null is not an attribute value; use exists: false."
        )
    if isinstance(value, str):
        _check_text(f"Attribute filter on {key!r}: the value", value)
    elif isinstance(value, list):
        for item in value:
            _check_json(key, item)
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_text(f"Attribute filter on {key!r}: a key", name)
            _check_json(key, item)
    elif not isinstance(value, _JSON_SCALARS):
        raise BadArgument(f"Attribute filter on {key!r}: unsupported value {value!r}.")


def condition(item: AttributeFilter) -> AttributeCondition:
    """``item`` checked: a usable key and exactly one operator with a usable value."""
    key = item.key
    if not key.strip():
        raise BadArgument("Attribute filter: key must not be empty.")
    _check_text("Attribute filter: key", key)
    given = [op for op in _OPERATORS if _value(item, op) is not strawberry.UNSET]
    if len(given) != 1:
        names = ", ".join(op.value for op in _OPERATORS)
        found = ", ".join(op.value for op in given) or "none"
        raise BadArgument(
            f"Attribute filter on {key!r} needs exactly one operator ({names}); got {found}."
        )
    op = given[0]
    value = _value(item, op)
    if op is Operator.IN:
        if value is None or not value:
            raise BadArgument(f"Attribute filter on {key!r}: 'in' needs at least one value.")
        for v in value:
            _check_json(key, v)
    elif op is Operator.EQUALS:
        _check_json(key, value)
    elif value is None:
        raise BadArgument(f"Attribute filter on {key!r}: {op.value} must not be null.")
    elif op is Operator.CONTAINS:
        if not value:
            raise BadArgument(f"Attribute filter on {key!r}: contains must not be empty.")
        _check_text(f"Attribute filter on {key!r}: contains", value)
    return AttributeCondition(key=key, operator=op, value=value)


def _value(item: AttributeFilter, op: Operator) -> Any:
    return getattr(item, "in_" if op is Operator.IN else op.value)


def conditions(items: Sequence[AttributeFilter]) -> list[AttributeCondition]:
    return [condition(item) for item in items]
