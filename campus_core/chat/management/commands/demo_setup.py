"""make demo: seed the knowledge base, create a local staff login, run sample questions."""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from campus_core.chat.chat_service import ChatService
from campus_core.chat.knowledge import seed_documents
from tracing.pipeline import force_flush, init_telemetry

DEMO_QUESTIONS = [
    "When does the library open on weekends?",
    "How do I request an official transcript?",
    "What is the FAFSA priority deadline?",
    "What is 1250 * 4 + 35?",
    "What is 10 / 0?",
    "Where can I reset my Wi-Fi password?",
]


class Command(BaseCommand):
    help = "Prepare the local demo: documents, a staff login, and a few traced agent runs."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default=os.environ.get("DEMO_USERNAME", "staff"))
        parser.add_argument("--password", default=os.environ.get("DEMO_PASSWORD", ""))
        parser.add_argument("--skip-questions", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        init_telemetry()
        created = seed_documents()
        if created:
            self.stdout.write(f"seeded {created} campus documents")
        password = options["password"] or secrets.token_urlsafe(9)
        user, _ = get_user_model().objects.get_or_create(username=options["username"])
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        if not options["skip_questions"]:
            asyncio.run(self._ask_all())
            force_flush()
        self.stdout.write(
            self.style.SUCCESS(
                "\nDemo ready. Serving on http://127.0.0.1:8000/\n"
                f"  staff login:   {user.get_username()} / {password}   (local use only)\n"
                "  trace viewer:  http://127.0.0.1:8000/admin/agent-traces/\n"
                "  GraphiQL:      http://127.0.0.1:8000/graphql/\n"
            )
        )

    async def _ask_all(self) -> None:
        service = ChatService()
        conversation = await service.get_conversation(None, None)
        for question in DEMO_QUESTIONS:
            async for event in service.generate_response(conversation, question):
                if event["type"] in {"final", "error"}:
                    self.stdout.write(
                        f"  [{event['status']}] {question}  trace {event['trace_id']}"
                    )
