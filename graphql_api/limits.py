"""What one GraphQL document may cost, and the extension that refuses it before anything
expensive runs.

A document is bounded three ways. The parser stops at ``MAX_QUERY_CHARS`` code points or
``MAX_TOKENS`` tokens. ``document_cost`` then measures the document with its fragments
expanded — selections, aliases and depth — visiting each fragment definition once and
multiplying by its spreads, so ``fragment L1 { ...L0 ...L0 } … fragment L30 { ...L29
...L29 }`` costs thirty small steps to measure and is refused for its 2^30 selections.
Only a document within ``MAX_SELECTIONS``, ``MAX_ALIASES`` and ``MAX_DEPTH`` reaches the
specification's validation rules, which then run on a worker thread so that no document
holds the event loop that serves the other requests, their one quadratic rule
(OverlappingFieldsCanBeMerged) held to ``OVERLAP_BUDGET``. Execution is bounded by
``graphql_api.execution`` (wall clock, result size, turns of the event loop).

Once a document is within those limits, the objects its result can hold are estimated
(``graphql_api.result_cost``) before anything runs; above ``MAX_RESULT_COST`` the operation
is refused with its cost and the budget, below, the cost is reported in the response's
``extensions`` (as GitHub's and Shopify's APIs do).

Depth and alias counts keep the semantics of strawberry's ``QueryDepthLimiter`` and
``MaxAliasesLimiter``, which this replaces because they re-walk every fragment at every
spread (exponential time on the document above): depth counts nested fields, not
fragments, and stops at introspection fields (``__schema``, ``__type``); aliases are
counted once per expanded occurrence.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OverlappingFieldsCanBeMergedRule,
    SelectionSetNode,
    ValidationContext,
)
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from graphql_api.documents import CheckedDocument, documents
from graphql_api.result_cost import LIST_BOUND, MAX_RESULT_COST, SPANS_PER_TRACE

# Deep enough for trace → spans → children → children → genAi, and for introspection.
MAX_DEPTH = 12
MAX_ALIASES = 30
# GraphiQL's introspection query is ~700 tokens and 3,000 characters.
MAX_TOKENS = 2000
MAX_QUERY_CHARS = 100_000
# Selections once every fragment spread is replaced by its fragment: GraphiQL's
# introspection query has ~300, the admin viewer's largest query ~40.
MAX_SELECTIONS = 5000
# Work units graphql-core's OverlappingFieldsCanBeMerged may spend comparing same-named
# fields (its default, 500,000, is ~1 s of CPU for 180 copies of one nested field); the
# admin viewer's queries and GraphiQL's introspection spend under 10.
OVERLAP_BUDGET = 10_000

MSG_ABORTED = (
    "Validation aborted: the document is too costly to check (many fields of the same name "
    "in one selection set, or too many errors); simplify it."
)


@dataclass
class Cost:
    """A selection set's cost with its fragments expanded."""

    selections: int = 0
    aliases: int = 0
    # The largest number of enclosing (non-introspection) fields of any selection inside.
    depth: int = 0


@dataclass
class _Local:
    """A selection set's own cost, and the spreads it leaves to expand."""

    cost: Cost = field(default_factory=Cost)
    # (fragment name, depth of the spread); depth None under an introspection field.
    spreads: list[tuple[str, int | None]] = field(default_factory=list)


def _local(selection_set: SelectionSetNode) -> _Local:
    local = _Local()
    # Iterative, so a deeply nested document cannot exhaust the interpreter's stack.
    stack: list[tuple[SelectionSetNode, int | None]] = [(selection_set, 0)]
    while stack:
        current, depth = stack.pop()
        for selection in current.selections:
            local.cost.selections += 1
            if depth is not None:
                local.cost.depth = max(local.cost.depth, depth)
            if isinstance(selection, FragmentSpreadNode):
                local.spreads.append((selection.name.value, depth))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, depth))
            elif isinstance(selection, FieldNode):
                if selection.alias is not None:
                    local.cost.aliases += 1
                if selection.selection_set is not None:
                    introspection = selection.name.value.startswith("__")
                    inner = None if depth is None or introspection else depth + 1
                    stack.append((selection.selection_set, inner))
    return local


def _expand(local: _Local, expanded: dict[str, Cost]) -> Cost:
    cost = Cost(local.cost.selections, local.cost.aliases, local.cost.depth)
    for name, depth in local.spreads:
        # Unknown fragments and the spread closing a cycle add nothing here; the
        # specification's rules report both.
        inner = expanded.get(name)
        if inner is None:
            continue
        cost.selections += inner.selections
        cost.aliases += inner.aliases
        if depth is not None:
            cost.depth = max(cost.depth, depth + inner.depth)
    return cost


def _fragment_costs(fragments: dict[str, FragmentDefinitionNode]) -> dict[str, Cost]:
    """Each fragment's expanded cost, every definition walked once (post-order, no
    recursion); a cycle is cut where it closes."""
    locals_ = {name: _local(fragment.selection_set) for name, fragment in fragments.items()}
    expanded: dict[str, Cost] = {}
    for root in locals_:
        if root in expanded:
            continue
        path: list[tuple[str, Iterator[tuple[str, int | None]]]] = [
            (root, iter(locals_[root].spreads))
        ]
        on_path = {root}
        while path:
            name, spreads = path[-1]
            for spread, _depth in spreads:
                if spread in locals_ and spread not in expanded and spread not in on_path:
                    path.append((spread, iter(locals_[spread].spreads)))
                    on_path.add(spread)
                    break
            else:
                path.pop()
                on_path.discard(name)
                expanded[name] = _expand(locals_[name], expanded)
    return expanded


def document_cost(document: DocumentNode) -> dict[str, Cost]:
    """The expanded cost of each operation of ``document``, by operation name
    ("anonymous" for the unnamed one). Linear in the size of the document."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    expanded = _fragment_costs(fragments)
    return {
        (d.name.value if d.name else "anonymous"): _expand(_local(d.selection_set), expanded)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    }


def limit_errors(document: DocumentNode) -> list[GraphQLError]:
    """Why ``document`` is refused, or nothing when it is within every limit."""
    costs = document_cost(document)
    operations = {
        (d.name.value if d.name else "anonymous"): d
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    }
    errors = [
        # strawberry's QueryDepthLimiter message, which clients may already match on
        GraphQLError(f"'{name}' exceeds maximum operation depth of {MAX_DEPTH}", operations[name])
        for name, cost in costs.items()
        if cost.depth > MAX_DEPTH
    ]
    aliases = sum(cost.aliases for cost in costs.values())
    if aliases > MAX_ALIASES:
        # strawberry's MaxAliasesLimiter message
        errors.append(GraphQLError(f"{aliases} aliases found. Allowed: {MAX_ALIASES}"))
    selections = sum(cost.selections for cost in costs.values())
    if selections > MAX_SELECTIONS:
        errors.append(
            GraphQLError(
                f"The document is too large: {selections:,} selections once its fragments "
                f"are expanded (allowed: {MAX_SELECTIONS:,})."
            )
        )
    return errors


def cost_message(cost: int) -> str:
    return (
        f"The query is too costly: its result could hold {cost:,} objects (estimated from "
        f"page sizes, {SPANS_PER_TRACE} spans a trace and {LIST_BOUND} items any other "
        f"list; allowed: {MAX_RESULT_COST:,}). Ask for fewer rows (first/last), nested "
        "lists or aliases."
    )


class BudgetedOverlappingFields(OverlappingFieldsCanBeMergedRule):
    """The specification's rule with ``OVERLAP_BUDGET`` for its pairwise comparisons."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = OVERLAP_BUDGET


def _budgeted(rules: tuple[type[ASTValidationRule], ...]) -> tuple[type[ASTValidationRule], ...]:
    return tuple(
        BudgetedOverlappingFields if rule is OverlappingFieldsCanBeMergedRule else rule
        for rule in rules
    )


def _explained(errors: list[GraphQLError]) -> list[GraphQLError]:
    return [
        GraphQLError(MSG_ABORTED) if isinstance(error, ValidationAbortedError) else error
        for error in errors
    ]


async def _validate_off_loop(
    schema: GraphQLSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
) -> list[GraphQLError]:
    return _explained(await asyncio.to_thread(validate_document, schema, document, rules))


class DocumentLimits(SchemaExtension):
    """Bounds parsing, checks ``limit_errors`` before any validation rule runs, then runs
    the specification's rules off the event loop. What a document's checks found that
    holds for every request is kept with the parsed document in ``documents`` (by its
    text): a document sent again is neither parsed nor validated again."""

    cost: int | None = None
    checked: CheckedDocument | None = None

    def get_results(self) -> dict[str, Any]:
        # Dashboards read what their queries cost (GitHub and Shopify answer the same way).
        if self.cost is None:
            return {}
        return {"cost": {"estimated": self.cost, "budget": MAX_RESULT_COST}}

    def on_operation(self) -> Iterator[None]:
        options = self.execution_context.parse_options
        options["max_tokens"] = MAX_TOKENS
        # graphql-core 3.3's option; strawberry's ParseOptions type does not list it yet.
        options["max_source_length"] = MAX_QUERY_CHARS  # type: ignore[typeddict-unknown-key]
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None:
            self.checked = documents.get(context.query)
            if self.checked is not None:
                context.graphql_document = self.checked.document  # strawberry skips parsing
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            checked = self.checked
            if checked is None or checked.document is not document:
                checked = documents.add(
                    context.query, CheckedDocument(document, limit_errors(document))
                )
            errors = checked.limit_errors
            if not errors:
                self.cost = checked.cost(context.schema._schema, context.variables)
                if self.cost > MAX_RESULT_COST:
                    errors = [GraphQLError(cost_message(self.cost))]
            if not errors:
                errors = await checked.validation_errors(
                    context.schema._schema,
                    _budgeted(tuple(context.validation_rules)),
                    _validate_off_loop,
                )
            # Set (even when empty), strawberry's own validation is skipped: it was done.
            context.pre_execution_errors = errors
        yield
