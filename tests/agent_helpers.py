"""Run real agent turns from synchronous tests."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

from campus_core.chat.agent_core import AgentCore
from campus_core.chat.chat_service import ChatService
from campus_core.chat.llm import LLMProvider
from campus_core.chat.models import Conversation


def run_turn(
    question: str,
    provider: LLMProvider,
    conversation: Conversation | None = None,
    **agent_options: Any,
) -> list[dict[str, Any]]:
    """One chat turn through ChatService → AgentCore; returns the events it yielded."""

    async def go() -> list[dict[str, Any]]:
        service = ChatService(agent=AgentCore(provider, **agent_options))
        conv = conversation or await service.get_conversation(None, None)
        return [event async for event in service.generate_response(conv, question)]

    return async_to_sync(go)()
