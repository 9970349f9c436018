"""ChatService: one chat turn — persist the question, run the agent, persist the answer."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from django.contrib.auth.models import AnonymousUser, User

from campus_core.chat.agent_core import AgentCore
from campus_core.chat.llm import LLMProvider
from campus_core.chat.models import Conversation, Message
from campus_core.observability.metrics import metrics
from campus_core.text import unstorable_text

logger = logging.getLogger(__name__)


MAX_QUESTION_CHARS = 8000
_MAX_ID = 2**63 - 1


class ConversationNotFound(LookupError):
    pass


class InvalidQuestion(ValueError):
    """The question cannot be stored as a message; the text says why, for the caller."""


def clean_question(value: object) -> str:
    """The question a turn stores (stripped), or InvalidQuestion. Checked before anything
    is written: text PostgreSQL cannot store would fail the INSERT mid-stream and leave an
    empty conversation behind."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidQuestion("'message' must be a non-empty string")
    if len(value) > MAX_QUESTION_CHARS:
        raise InvalidQuestion(f"'message' is longer than {MAX_QUESTION_CHARS} characters")
    problem = unstorable_text(value)
    if problem is not None:
        raise InvalidQuestion(f"'message' must not contain {problem}")
    return value.strip()


class ChatService:
    def __init__(self, provider: LLMProvider | None = None, agent: AgentCore | None = None):
        self._provider = provider
        self._agent = agent

    async def get_conversation(
        self, conversation_id: int | None, user: User | AnonymousUser | None
    ) -> Conversation:
        if conversation_id is None:
            owner = user if user is not None and user.is_authenticated else None
            return await Conversation.objects.acreate(user=owner)
        if not 1 <= conversation_id <= _MAX_ID:
            # Not an id any row can have (bigint primary key): no query, the same answer.
            raise ConversationNotFound(f"conversation {conversation_id} does not exist")
        queryset = Conversation.objects.all()
        if user is not None and user.is_authenticated and not user.is_staff:
            queryset = queryset.filter(user=user)
        conversation = await queryset.filter(pk=conversation_id).afirst()
        if conversation is None:
            raise ConversationNotFound(f"conversation {conversation_id} does not exist")
        return conversation

    async def generate_response(
        self, conversation: Conversation, question: str
    ) -> AsyncIterator[dict[str, Any]]:
        started = time.perf_counter()
        metrics.increment("chat.request.count")
        history = [
            (m.role, m.content)
            async for m in Message.objects.filter(conversation=conversation).order_by(
                "created_at", "id"
            )
        ]
        user_message = await Message.objects.acreate(
            conversation=conversation, role=Message.Role.USER, content=question
        )
        if not conversation.title:
            conversation.title = question[:200]
            await conversation.asave(update_fields=["title"])

        async def store_answer(answer: str, status: str) -> int:
            message = await Message.objects.acreate(
                conversation=conversation, role=Message.Role.ASSISTANT, content=answer
            )
            return message.pk

        agent = self._agent or AgentCore(self._provider)
        final: dict[str, Any] | None = None
        steps = 0
        tools_used: set[str] = set()
        try:
            async for event in agent.run(
                question,
                history=history,
                conversation_id=conversation.pk,
                user_message_id=user_message.pk,
                on_answer=store_answer,
            ):
                if event["type"] in {"llm", "tool_call"}:
                    steps += 1
                if event["type"] == "tool_call":
                    tools_used.add(event["name"])
                if event["type"] in {"final", "error"}:
                    final = event
                yield {**event, "conversation_id": conversation.pk}
        finally:
            metrics.record("chat.request.duration_ms", (time.perf_counter() - started) * 1000)
            if final is None or final["type"] == "error":
                metrics.increment("chat.request.error_count")
            else:
                metrics.record("chat.steps_per_response", steps)
                metrics.record("chat.tools_used_per_response", len(tools_used))
