"""LLM providers behind one interface; ``get_provider()`` picks one from settings."""

from __future__ import annotations

from django.conf import settings

from campus_core.chat.llm.base import LLMError, LLMProvider, LLMResponse, ToolCall, ToolSpec

__all__ = ["LLMError", "LLMProvider", "LLMResponse", "ToolCall", "ToolSpec", "get_provider"]


def get_provider() -> LLMProvider:
    kind = settings.LLM_PROVIDER.lower()
    timeout = settings.LLM_TIMEOUT_SECONDS
    if kind == "openai":
        from campus_core.chat.llm.openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider(
            base_url=settings.LLM_BASE_URL or "https://api.openai.com/v1",
            model=settings.LLM_MODEL or "gpt-4o-mini",
            api_key=settings.LLM_API_KEY,
            timeout=timeout,
        )
    if kind == "anthropic":
        from campus_core.chat.llm.anthropic import AnthropicProvider

        return AnthropicProvider(
            base_url=settings.LLM_BASE_URL or "https://api.anthropic.com",
            model=settings.LLM_MODEL or "claude-sonnet-4-5",
            api_key=settings.LLM_API_KEY,
            timeout=timeout,
        )
    if kind == "offline":
        from campus_core.chat.llm.offline import OFFLINE_MODEL, default_server
        from campus_core.chat.llm.openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider(
            base_url=settings.LLM_BASE_URL or default_server().base_url,
            model=settings.LLM_MODEL or OFFLINE_MODEL,
            timeout=timeout,
            provider_name="offline",
        )
    raise ValueError(f"unknown LLM_PROVIDER {settings.LLM_PROVIDER!r}: offline, openai, anthropic")
