"""Fields that show one column of a row (or one attribute of an object), resolved by
reading it directly.

A strawberry-django field without a resolver of its own (``status``, ``totalDurationMs``,
...) goes through five layers for every value: strawberry's resolver (a new ``Info``),
its argument and field-extension machinery, strawberry-django's ``get_result`` and its
cache check. For a page of 50 traces with a dozen columns that is most of the request's
Python. ``read_columns_directly`` gives each such field, once the schema is built, a
resolver that takes the value from the row as loaded; when the row does not hold it
(a deferred column, or something other than a model instance), the field's own resolver
runs, as before. The value is the same one strawberry-django would return: the raw
attribute, serialized by the field's scalar.

Only fields with no resolver, no arguments, no field extensions (permissions), over a
concrete non-relational column of the type's model, are touched; and, on the plain
strawberry types (``Span``, ``GenAi``, edges), the "basic" fields, which strawberry already
resolves with ``getattr``: for both, ``graphql_api.execution`` completes a scalar value
without building the field's resolve info.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from django.db.models.query_utils import DeferredAttribute
from graphql import GraphQLObjectType
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField
from strawberry_django.fields.base import StrawberryDjangoFieldBase

Resolver = Callable[..., Any]


def _column(attname: str, fallback: Resolver) -> Resolver:
    def resolve(source: Any, info: Any, **kwargs: Any) -> Any:
        try:
            return source.__dict__[attname]
        except (AttributeError, KeyError):
            return fallback(source, info, **kwargs)

    resolve.column = attname  # type: ignore[attr-defined]
    return resolve


def column_of(resolver: Resolver | None) -> str | None:
    """The row attribute a direct column resolver reads (None for any other resolver):
    ``graphql_api.execution`` completes such a field without building its ``info``."""
    return getattr(resolver, "column", None)


def _column_attname(definition: StrawberryDjangoFieldBase) -> str | None:
    """The row attribute a plain column field shows, or None for any other field."""
    django_type = definition.origin_django_type
    if (
        django_type is None
        or definition.base_resolver is not None
        or definition.arguments
        or definition.extensions
    ):
        return None
    name = definition.django_name or definition.python_name
    descriptor = getattr(django_type.model, name, None)
    if not isinstance(descriptor, DeferredAttribute) or descriptor.field.is_relation:
        return None
    return str(descriptor.field.attname)


def _attribute_name(definition: StrawberryField) -> str | None:
    """The attribute a basic field of a plain strawberry type shows, or None."""
    if (
        isinstance(definition, StrawberryDjangoFieldBase)
        or not definition.is_basic_field
        or definition.extensions
    ):
        return None
    return definition.python_name


def read_columns_directly(schema: strawberry.Schema) -> list[str]:
    """Gives every plain column (or attribute) field of ``schema`` the direct resolver;
    returns their names (``Type.field``)."""
    changed = []
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        for name, field in graphql_type.fields.items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(definition, StrawberryField) or field.args:
                continue
            if isinstance(definition, StrawberryDjangoFieldBase):
                attname = _column_attname(definition)
            else:
                attname = _attribute_name(definition)
            if attname is None or field.resolve is None:
                continue
            field.resolve = _column(attname, field.resolve)
            changed.append(f"{graphql_type.name}.{name}")
    return changed
