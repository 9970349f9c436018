"""Parsed and checked GraphQL documents, cached by their text.

Dashboards send the same few documents again and again; parsing one, measuring it against
the limits (``graphql_api.limits``) and running the specification's validation rules cost
more than executing a small query. ``CheckedDocuments`` keeps, for each of the last
``MAX_ENTRIES`` document texts (up to ``MAX_TEXT_CHARS`` each), the parsed document and
what is known about it independently of any request:

- its limit errors (depth, aliases, selections: the document alone decides them);
- its result-cost estimate, when that estimate read no variable (``first: $n`` makes it
  depend on the request: such a document is estimated again for every request);
- the validation errors, once it has been validated (validation never reads variables).

A document is refused or accepted exactly as without the cache: the same checks, in the
same order, with the per-request ones (cost with variables) made for every request. Only
the event loop reads and writes the cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema

from graphql_api.result_cost import estimate

# Distinct documents kept: what a few dashboards and the admin viewer send, many times over.
MAX_ENTRIES = 256
# Longer texts are not kept (a document has at most limits.MAX_TOKENS tokens, so its tree
# is small; its text, with comments and whitespace, need not be).
MAX_TEXT_CHARS = 20_000

Rules = tuple[type[ASTValidationRule], ...]
Validate = Callable[[GraphQLSchema, DocumentNode, Rules], Awaitable[list[GraphQLError]]]


@dataclass
class CheckedDocument:
    """One parsed document and the request-independent outcome of its checks."""

    document: DocumentNode
    limit_errors: list[GraphQLError]
    # The result-cost estimate, once estimated, when it read no variable.
    fixed_cost: int | None = None
    # The rules validated with and the errors found, once validated.
    validated: tuple[Rules, list[GraphQLError]] | None = None

    def cost(self, schema: GraphQLSchema, variables: dict[str, Any] | None) -> int:
        """The result-cost estimate for this request's variables."""
        if self.fixed_cost is not None:
            return self.fixed_cost
        cost, read_variables = estimate(schema, self.document, variables)
        if not read_variables:
            self.fixed_cost = cost
        return cost

    async def validation_errors(
        self, schema: GraphQLSchema, rules: Rules, validate: Validate
    ) -> list[GraphQLError]:
        if self.validated is not None and self.validated[0] == rules:
            return self.validated[1]
        errors = await validate(schema, self.document, rules)
        self.validated = (rules, errors)
        return errors


class CheckedDocuments:
    """A bounded LRU of ``CheckedDocument`` by document text."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, CheckedDocument] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, text: str | None) -> CheckedDocument | None:
        entry = self._entries.get(text) if text else None
        if entry is not None:
            self._entries.move_to_end(text)  # type: ignore[arg-type]
        return entry

    def add(self, text: str | None, entry: CheckedDocument) -> CheckedDocument:
        """Keep ``entry`` for ``text`` (unless the text is too long to keep)."""
        if text and len(text) <= MAX_TEXT_CHARS:
            self._entries[text] = entry
            self._entries.move_to_end(text)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return entry

    def clear(self) -> None:
        self._entries.clear()


# The process's cache, shared by every request (DocumentLimits reads and fills it).
documents = CheckedDocuments()
