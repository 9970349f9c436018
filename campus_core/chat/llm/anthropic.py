"""Anthropic Messages API over httpx."""

from __future__ import annotations

import json
from typing import Any

from campus_core.chat.llm.base import LLMError, LLMResponse, ToolCall, ToolSpec, post_json

ANTHROPIC_VERSION = "2023-06-01"


def to_anthropic(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """OpenAI-shaped messages → (system prompt, Anthropic messages)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m["role"]
        if role == "system":
            system.append(m["content"])
        elif role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m["tool_call_id"],
                "content": m["content"],
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif role == "assistant" and m.get("tool_calls"):
            blocks: list[dict[str, Any]] = []
            if m.get("content"):
                blocks.append({"type": "text", "text": m["content"]})
            for call in m["tool_calls"]:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["function"]["name"],
                        "input": json.loads(call["function"]["arguments"] or "{}"),
                    }
                )
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": role, "content": m["content"]})
    return "\n\n".join(system), out


class AnthropicProvider:
    provider_name = "anthropic"

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str = "https://api.anthropic.com",
        timeout: float = 60.0,
        max_tokens: int = 1024,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._max_tokens = max_tokens

    async def complete(self, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> LLMResponse:
        system, converted = to_anthropic(messages)
        payload: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self._max_tokens,
            "messages": converted,
        }
        if system:
            payload["system"] = system
        if tools:
            payload["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in tools
            ]
        headers = {"x-api-key": self._api_key, "anthropic-version": ANTHROPIC_VERSION}
        body = await post_json(f"{self.base_url}/v1/messages", payload, headers, self._timeout)
        try:
            text = "".join(b["text"] for b in body["content"] if b["type"] == "text")
            calls = [
                ToolCall(id=b["id"], name=b["name"], arguments=b.get("input") or {})
                for b in body["content"]
                if b["type"] == "tool_use"
            ]
            usage = body.get("usage") or {}
            return LLMResponse(
                content=text,
                tool_calls=calls,
                finish_reason=body.get("stop_reason") or "end_turn",
                input_tokens=int(usage.get("input_tokens", 0)),
                output_tokens=int(usage.get("output_tokens", 0)),
                model=body.get("model", self.model),
                response_id=body.get("id", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LLMError(f"malformed Anthropic response: {exc}") from exc
