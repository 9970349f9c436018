"""POST /get_chatbot_response/: one chat turn, streamed as NDJSON events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_POST
from opentelemetry import trace

from campus_core.chat.chat_service import ChatService, ConversationNotFound

MAX_MESSAGE_CHARS = 8000


def _bad_request(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@require_POST
async def get_chatbot_response(request: HttpRequest) -> HttpResponseBase:
    user = await request.auser()
    if not user.is_authenticated:
        return _bad_request("authentication required", status=401)
    try:
        if request.content_type == "application/json":
            payload = json.loads(request.body or b"{}")
        else:
            payload = request.POST.dict()
    except ValueError:
        return _bad_request("body is not valid JSON")
    if not isinstance(payload, dict):
        return _bad_request("body must be a JSON object")
    question = payload.get("message")
    if not isinstance(question, str) or not question.strip():
        return _bad_request("'message' must be a non-empty string")
    if len(question) > MAX_MESSAGE_CHARS:
        return _bad_request(f"'message' is longer than {MAX_MESSAGE_CHARS} characters")
    raw_conversation = payload.get("conversation_id")
    conversation_id: int | None = None
    if raw_conversation not in (None, ""):
        try:
            conversation_id = int(raw_conversation)
        except (TypeError, ValueError):
            return _bad_request("'conversation_id' must be an integer")
    service = ChatService()
    try:
        conversation = await service.get_conversation(conversation_id, user)
    except ConversationNotFound as exc:
        return _bad_request(str(exc), status=404)

    async def stream() -> AsyncIterator[bytes]:
        events: AsyncIterator[dict[str, Any]] = service.generate_response(
            conversation, question.strip()
        )
        async for event in events:
            yield (json.dumps(event, default=str) + "\n").encode()

    response = StreamingHttpResponse(stream(), content_type="application/x-ndjson")
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        response["X-Trace-Id"] = format(context.trace_id, "032x")
    response["Cache-Control"] = "no-cache"
    return response
