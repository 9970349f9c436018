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
concrete non-relational column of the type's model, are touched, and those whose resolver
is marked ``reads_no_database`` (a function of the row alone, e.g. ``Trace.id``); and, on the plain
strawberry types (``Span``, ``GenAi``, edges), the "basic" fields, which strawberry already
resolves with ``getattr``: for both, ``graphql_api.execution`` completes a scalar value
without building the field's resolve info.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import strawberry
from django.db.models.query_utils import DeferredAttribute
from graphql import GraphQLObjectType
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField
from strawberry_django.fields.base import StrawberryDjangoFieldBase

Resolver = Callable[..., Any]


ResolverT = TypeVar("ResolverT", bound=Callable[..., Any])


def reads_no_database(resolver: ResolverT) -> ResolverT:
    """Marks a sync resolver ``(self, root)`` that only reads what the row already holds.
    strawberry-django runs any other sync resolver on a worker thread, in case it queries:
    one thread hop per row of a page (50 of them for a page of traces' ``id``); and
    ``read_columns_directly`` reads such a field like a column, from the row."""
    resolver.is_async_safe = True  # type: ignore[attr-defined]
    resolver.reads_row = True  # type: ignore[attr-defined]
    return resolver


def _direct(read: Callable[[Any], Any], fallback: Resolver) -> Resolver:
    def resolve(source: Any, info: Any, **kwargs: Any) -> Any:
        try:
            return read(source)
        except (AttributeError, KeyError):
            return fallback(source, info, **kwargs)

    resolve.read = read  # type: ignore[attr-defined]
    return resolve


def _column(attname: str, fallback: Resolver) -> Resolver:
    def read(source: Any) -> Any:
        return source.__dict__[attname]

    return _direct(read, fallback)


def _of_row(function: Callable[[Any, Any], Any], fallback: Resolver) -> Resolver:
    def read(source: Any) -> Any:
        return function(source, source)  # (self, root): strawberry-django passes the row

    return _direct(read, fallback)


def row_reader(resolver: Resolver | None) -> Callable[[Any], Any] | None:
    """How a direct resolver reads its value from the row (None for any other resolver;
    raises AttributeError or KeyError when the row does not hold it):
    ``graphql_api.execution`` completes such a field without building its ``info``."""
    return getattr(resolver, "read", None)


def _row_function(definition: StrawberryDjangoFieldBase) -> Callable[[Any, Any], Any] | None:
    """The resolver of a field marked ``reads_no_database``, without arguments or
    extensions; None for any other field."""
    resolver = definition.base_resolver
    if resolver is None or definition.arguments or definition.extensions:
        return None
    function = resolver.wrapped_func
    if not callable(function) or not getattr(function, "reads_row", False):
        return None
    parameters = list(inspect.signature(function).parameters)
    if resolver.is_async or len(parameters) != 2:
        raise TypeError(f"reads_no_database resolvers take (self, root): {function!r}")
    return function


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
            if field.resolve is None:
                continue
            if isinstance(definition, StrawberryDjangoFieldBase):
                function = _row_function(definition)
                if function is not None:
                    field.resolve = _of_row(function, field.resolve)
                    changed.append(f"{graphql_type.name}.{name}")
                    continue
                attname = _column_attname(definition)
            else:
                attname = _attribute_name(definition)
            if attname is None:
                continue
            field.resolve = _column(attname, field.resolve)
            changed.append(f"{graphql_type.name}.{name}")
    return changed
