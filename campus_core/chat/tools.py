"""The agent's tools: knowledge search (PostgreSQL full-text search) and a calculator."""

from __future__ import annotations

import ast
import json
import operator
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async

from campus_core.chat import knowledge
from campus_core.chat.llm.base import ToolSpec
from campus_core.observability.metrics import metrics


@dataclass(frozen=True)
class ToolResult:
    success: bool
    output: dict[str, Any]

    def as_text(self) -> str:
        return json.dumps(self.output)


class ToolInputError(ValueError):
    """The arguments the LLM passed cannot be used; reported back to it as a failure."""


@dataclass(frozen=True)
class Tool:
    spec: ToolSpec
    run: Callable[[dict[str, Any]], Awaitable[ToolResult]]

    @property
    def name(self) -> str:
        return self.spec.name


def retrieve(
    query: str, folders: list[str] | None = None, limit: int = 3
) -> list[knowledge.SearchHit]:
    """Retrieval with its golden-signal metrics (duration, requests, results, empties, errors)."""
    started = time.perf_counter()
    metrics.increment("retrieval.request_count")
    try:
        hits = knowledge.search(query, folders, limit)
    except Exception:
        metrics.increment("retrieval.error_count")
        raise
    finally:
        metrics.record("retrieval.duration_ms", (time.perf_counter() - started) * 1000)
    metrics.record("retrieval.result_count", len(hits))
    if not hits:
        metrics.increment("retrieval.empty_result_count")
    return hits


async def search_knowledge(arguments: dict[str, Any]) -> ToolResult:
    query = arguments.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ToolInputError("search_knowledge needs a non-empty 'query' string")
    folders = arguments.get("folders") or None
    hits = await sync_to_async(retrieve)(query, folders)
    return ToolResult(
        success=True,
        output={
            "results": [
                {"folder": h.folder, "title": h.title, "content": h.content, "rank": h.rank}
                for h in hits
            ]
        },
    )


_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ToolInputError("exponent too large")
        return float(_OPERATORS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return float(_OPERATORS[type(node.op)](_evaluate(node.operand)))
    raise ToolInputError(f"unsupported expression element {type(node).__name__}")


async def calculate(arguments: dict[str, Any]) -> ToolResult:
    expression = arguments.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        raise ToolInputError("calculate needs an 'expression' string")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ToolInputError(f"not an arithmetic expression: {expression!r}") from exc
    # ZeroDivisionError propagates: an exception inside a tool, recorded as such.
    value = _evaluate(tree)
    return ToolResult(success=True, output={"expression": expression, "value": value})


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            ToolSpec(
                "search_knowledge",
                "Search the campus knowledge base (registrar, financial aid, housing, library, "
                "IT, dining) and return the best matching passages.",
                {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string"},
                        "folders": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["query"],
                },
            ),
            search_knowledge,
        ),
        Tool(
            ToolSpec(
                "calculate",
                "Evaluate an arithmetic expression (+ - * / % **).",
                {
                    "type": "object",
                    "properties": {"expression": {"type": "string"}},
                    "required": ["expression"],
                },
            ),
            calculate,
        ),
    )
}
