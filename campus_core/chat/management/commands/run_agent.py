"""python manage.py run_agent "question" [--conversation ID]: one agent turn from the shell."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from campus_core.chat.chat_service import (
    ChatService,
    ConversationNotFound,
    InvalidQuestion,
    clean_question,
)
from campus_core.chat.knowledge import seed_documents
from tracing.pipeline import force_flush, init_telemetry


class Command(BaseCommand):
    help = "Run one agent turn, print its events and the trace id (the trace lands in the DB)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("question")
        parser.add_argument("--conversation", type=int, default=None)
        parser.add_argument("--quiet", action="store_true", help="print only the trace id")

    def handle(self, *args: Any, **options: Any) -> None:
        init_telemetry()
        try:
            question = clean_question(options["question"])
        except InvalidQuestion as exc:
            raise CommandError(str(exc)) from exc
        seed_documents()
        final = asyncio.run(self._run(question, options["conversation"], options["quiet"]))
        # The BatchSpanProcessor flushes on a timer; make sure this run is stored now.
        force_flush()
        if final is None:
            raise CommandError("the agent produced no final event")
        self.stdout.write(
            f"trace_id={final['trace_id']} status={final['status']} "
            f"conversation={final['conversation_id']}"
        )

    async def _run(
        self, question: str, conversation_id: int | None, quiet: bool
    ) -> dict[str, Any] | None:
        service = ChatService()
        try:
            conversation = await service.get_conversation(conversation_id, None)
        except ConversationNotFound as exc:
            raise CommandError(str(exc)) from exc
        final = None
        async for event in service.generate_response(conversation, question):
            if not quiet:
                self.stdout.write(json.dumps(event, default=str))
            if event["type"] in {"final", "error"}:
                final = event
        return final
