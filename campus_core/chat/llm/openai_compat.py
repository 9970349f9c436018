"""OpenAI-compatible chat completions over httpx (OpenAI, vLLM, Ollama, the offline responder)."""

from __future__ import annotations

import json
from typing import Any

from campus_core.chat.llm.base import LLMError, LLMResponse, ToolCall, ToolSpec, post_json


class OpenAICompatibleProvider:
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout: float = 60.0,
        provider_name: str = "openai",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.provider_name = provider_name
        self._api_key = api_key
        self._timeout = timeout

    async def complete(self, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> LLMResponse:
        payload: dict[str, Any] = {"model": self.model, "messages": messages}
        if tools:
            payload["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in tools
            ]
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        body = await post_json(f"{self.base_url}/chat/completions", payload, headers, self._timeout)
        try:
            choice = body["choices"][0]
            message = choice["message"]
            calls = [
                ToolCall(
                    id=c["id"],
                    name=c["function"]["name"],
                    arguments=json.loads(c["function"].get("arguments") or "{}"),
                )
                for c in message.get("tool_calls") or []
            ]
            usage = body.get("usage") or {}
            return LLMResponse(
                content=message.get("content") or "",
                tool_calls=calls,
                finish_reason=choice.get("finish_reason") or "stop",
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
                model=body.get("model", self.model),
                response_id=body.get("id", ""),
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise LLMError(f"malformed chat completion: {exc}") from exc
