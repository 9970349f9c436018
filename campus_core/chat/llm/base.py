"""The one small interface every LLM provider implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class LLMResponse:
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    response_id: str = ""


class LLMError(RuntimeError):
    """The provider failed or answered something unusable."""


async def post_json(
    url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float
) -> Any:
    """POST a JSON body with httpx (so the call is a real, instrumented HTTP span) and
    return the decoded answer; any transport failure or non-200 answer is an LLMError."""
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(url, json=payload, headers=headers)
    except httpx.HTTPError as exc:
        raise LLMError(f"LLM request failed: {exc}") from exc
    if response.status_code != 200:
        raise LLMError(f"LLM returned HTTP {response.status_code}: {response.text[:500]}")
    try:
        return response.json()
    except ValueError as exc:
        raise LLMError(f"LLM answer is not JSON: {response.text[:200]}") from exc


class LLMProvider(Protocol):
    # gen_ai.provider.name of this provider ("openai", "anthropic", "offline").
    provider_name: str
    model: str

    async def complete(self, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> LLMResponse:
        """One chat completion. ``messages`` use the OpenAI chat shape (role, content,
        tool_calls, tool_call_id); each provider converts to its own wire format."""
        ...
