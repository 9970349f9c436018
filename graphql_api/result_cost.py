"""What a GraphQL result can hold, estimated from the document before anything runs.

``result_cost`` counts objects (and lists of values) the way GitHub's and Shopify's APIs
estimate a query: a connection counts ``first``/``last`` (the default page when absent)
objects per edge list, a trace's ``spans`` ``SPANS_PER_TRACE``, a span's ``children``
``CHILDREN_PER_SPAN``, introspection lists the sizes of this schema, any other list
``LIST_BOUND``; counts multiply down the selection and add up over fields and aliases.
Lists that partition a whole (the spans of a trace, the fields of the schema) count, under
distinct parents, no more at each level than the whole holds: ``spans { children {
children } }`` is three times a trace's spans, not its cube. ``graphql_api.limits``
enforces the budget.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
)

from graphql_api.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

# Objects (and lists of values) one result may be estimated to hold. A page of 200 traces
# with conversation and root span is ~800, the admin viewer's largest query ~200, GraphiQL's
# introspection ~3,000; 200 traces with 100 spans each, 20,000.
MAX_RESULT_COST = 25_000
# What a trace's ``spans`` (and a span's ``children``) are counted as: the store caps no
# trace, but an agent run of this product is at most ~40 spans (AGENT_MAX_ITERATIONS 5).
# A trace holding more than the estimate is still stopped by graphql_api.execution.
SPANS_PER_TRACE = 100
# Any other list of objects (messages of a conversation, stats groups, ...).
LIST_BOUND = 100
# A span's direct children (an agent's iterations, an iteration's calls). Under the spans of
# a trace, each level of ``children`` is counted as the trace's spans at most.
CHILDREN_PER_SPAN = 10
LIST_BOUNDS = {("Trace", "spans"): SPANS_PER_TRACE, ("Span", "children"): CHILDREN_PER_SPAN}
# Lists whose items, under distinct parents, are distinct parts of one whole (the spans of
# one trace; the fields of one schema): at each level there are no more of them than the
# whole holds, however many parents ask. Names of the whole's type -> its lists.
PARTITIONS = {
    "Trace": {("Trace", "spans"), ("Span", "children")},
    "__Schema": {
        ("__Schema", "types"),
        ("__Type", "fields"),
        ("__Type", "inputFields"),
        ("__Type", "enumValues"),
        ("__Field", "args"),
        ("__Directive", "args"),
        ("__Schema", "directives"),
    },
}
# Single objects that are distinct for distinct parents (a parent's own node or root span);
# any other single object (a span's parent, a field's type) may repeat.
ONE_TO_ONE = {
    ("TraceCursorEdge", "node"),
    ("ConversationCursorEdge", "node"),
    ("Trace", "rootSpan"),
}


def _sizes(sizes: list[int]) -> tuple[int, int]:
    return max(sizes, default=0), sum(sizes)


@functools.cache
def _introspection_bounds(schema: GraphQLSchema) -> dict[tuple[str, str], tuple[int, int]]:
    """How long each introspection list can be: (for one parent, in the whole schema)."""
    types = list(schema.type_map.values())
    with_fields = [t for t in types if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)]
    inputs = [t for t in types if isinstance(t, GraphQLInputObjectType)]
    enums = [t for t in types if isinstance(t, GraphQLEnumType)]
    fields = [f for t in with_fields for f in t.fields.values()]
    everything = (len(types), len(types))
    return {
        ("__Schema", "types"): everything,
        ("__Schema", "directives"): (len(schema.directives), len(schema.directives)),
        ("__Type", "fields"): _sizes([len(t.fields) for t in with_fields]),
        ("__Type", "inputFields"): _sizes([len(t.fields) for t in inputs]),
        ("__Type", "enumValues"): _sizes([len(t.values) for t in enums]),
        ("__Type", "interfaces"): _sizes([len(t.interfaces) for t in with_fields]),
        ("__Type", "possibleTypes"): _sizes(
            [len(schema.get_possible_types(t)) for t in types if is_abstract_type(t)]
        ),
        ("__Field", "args"): _sizes([len(f.args) for f in fields]),
        ("__Directive", "args"): _sizes([len(d.args) for d in schema.directives]),
    }


@dataclass(frozen=True)
class _Objects:
    """Where the walk is: a selection set on ``type`` standing for ``copies`` objects of
    the result, distinct within each of the ``wholes`` enclosing ``whole`` objects (a
    trace, the schema) when ``distinct``; ``page`` is their page size if they are
    connections."""

    type: GraphQLObjectType | GraphQLInterfaceType
    copies: int
    distinct: bool
    whole: str
    wholes: int
    page: int | None = None


def _page(
    arguments: tuple[ArgumentNode, ...] | None, variables: dict[str, Any], read: list[str]
) -> int:
    """The page size a connection field asks for (the default page when not given); the
    names of the variables it read are appended to ``read``."""
    given = {a.name.value: a.value for a in arguments or ()}
    sizes = []
    for name in ("first", "last"):
        node = given.get(name)
        value: Any = None
        if isinstance(node, IntValueNode):
            value = int(node.value)
        elif isinstance(node, VariableNode):
            read.append(node.name.value)
            value = variables.get(node.name.value)
        if isinstance(value, int) and not isinstance(value, bool):
            # Out of range is refused when the field resolves; here it costs the most.
            sizes.append(min(max(value, 0), MAX_PAGE_SIZE))
    return max(sizes) if sizes else DEFAULT_PAGE_SIZE


class _CostWalk:
    """Counts what a result can hold, walking the document with its fragments expanded
    (``limit_errors`` has bounded that expansion to ``MAX_SELECTIONS``)."""

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any]
    ) -> None:
        self.schema = schema
        self.variables = variables
        # Variables the estimate read: without any, it holds for every request.
        self.read: list[str] = []
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.bounds = _introspection_bounds(schema)

    def selection_set(
        self, selection_set: SelectionSetNode, at: _Objects, path: frozenset[str]
    ) -> int:
        cost = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                cost += self.field(selection, at, path)
                continue
            inner_path = path
            if isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in path:  # reported by validation
                    continue
                inner = fragment.selection_set
                condition: NamedTypeNode | None = fragment.type_condition
                inner_path = path | {name}
            elif isinstance(selection, InlineFragmentNode):
                inner, condition = selection.selection_set, selection.type_condition
            else:
                continue
            typed = self.schema.get_type(condition.name.value) if condition else at.type
            inner_at = at
            if isinstance(typed, GraphQLObjectType | GraphQLInterfaceType):
                inner_at = _Objects(typed, at.copies, at.distinct, at.whole, at.wholes, at.page)
            cost += self.selection_set(inner, inner_at, inner_path)
        return cost

    def field(self, node: FieldNode, at: _Objects, path: frozenset[str]) -> int:
        name = node.name.value
        definition = at.type.fields.get(name)
        if name in ("__schema", "__type"):
            field_type: Any = self.schema.get_type("__Schema" if name == "__schema" else "__Type")
        elif definition is not None:
            field_type = definition.type
        else:
            return 0  # __typename, or an unknown field (reported by validation)
        key = (at.type.name, name)
        is_list = is_list_type(get_nullable_type(field_type))
        named = get_named_type(field_type)
        if is_leaf_type(named) or node.selection_set is None:
            return at.copies if is_list else 0  # a list of values costs one
        copies, distinct = at.copies, key in ONE_TO_ONE
        if is_list:
            if key in self.bounds:
                per_parent, in_whole = self.bounds[key]
            else:
                per_parent = at.page or LIST_BOUNDS.get(key, LIST_BOUND)
                # a trace holds SPANS_PER_TRACE spans, however they are parented
                in_whole = SPANS_PER_TRACE if key in PARTITIONS["Trace"] else per_parent
            copies = at.copies * per_parent
            # children of distinct spans are distinct spans of the same traces: each level
            # holds no more than the traces do (likewise the fields of distinct types)
            distinct = key in PARTITIONS.get(at.whole, ()) and (at.distinct or name == "spans")
            if distinct:
                copies = min(copies, at.wholes * in_whole)
        whole, wholes = at.whole, at.wholes
        if named.name in PARTITIONS or at.type is self.schema.query_type:
            whole = named.name if named.name in PARTITIONS else "Trace"
            wholes = copies
        page = None
        if definition is not None and "first" in definition.args:
            page = _page(node.arguments, self.variables, self.read)
        assert isinstance(named, GraphQLObjectType | GraphQLInterfaceType)
        inner = _Objects(named, copies, distinct or copies == 1, whole, wholes, page)
        return copies + self.selection_set(node.selection_set, inner, path)


def estimate(
    schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any] | None = None
) -> tuple[int, bool]:
    """What the result of ``document`` can hold, estimated before anything runs (see the
    module docstring), over all its operations; and whether the estimate read any variable
    (when not, it holds whatever the variables: ``graphql_api.documents`` keeps it)."""
    walk = _CostWalk(schema, document, variables or {})
    query = schema.query_type
    assert query is not None
    start = _Objects(query, 1, True, "Trace", 1)
    cost = sum(
        walk.selection_set(d.selection_set, start, frozenset())
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )
    return cost, bool(walk.read)


def result_cost(
    schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any] | None = None
) -> int:
    """What the result of ``document`` can hold with these variables (``estimate``)."""
    return estimate(schema, document, variables)[0]
