"""POST /get_chatbot_response/: one chat turn, streamed as NDJSON events.

Every input is checked before anything is written (no conversation, message or trace comes
of a rejected request); a rejection is a 4xx JSON ``{"error": ...}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_POST
from opentelemetry import trace

from campus_core.chat.chat_service import (
    ChatService,
    ConversationNotFound,
    InvalidQuestion,
    clean_question,
)

# A form field carries the id as text: ASCII digits only (str.isdigit() also takes "²").
_FORM_ID = re.compile(r"[0-9]{1,20}", re.ASCII)


class BadTurn(ValueError):
    """A request the view refuses with 400; the text is shown to the caller."""


def _bad_request(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _payload(request: HttpRequest) -> tuple[dict[str, Any], bool]:
    """The body as a dict, and whether it came as JSON (else a form)."""
    try:
        if request.content_type != "application/json":
            return request.POST.dict(), False
        body = request.body
    except RequestDataTooBig:
        # Django's own answer is an HTML page and an ERROR log line with a traceback. (A
        # form body is parsed earlier, by CsrfViewMiddleware, and gets Django's answer.)
        raise BadTurn(f"body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes") from None
    try:
        payload = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8 too; RecursionError is a body nested too deep to parse.
        raise BadTurn("body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadTurn("body must be a JSON object")
    return payload, True


def _conversation_id(raw: object, *, is_json: bool) -> int | None:
    """None for a new conversation; else an integer: a JSON number without fraction (not a
    boolean, not a float) or, in a form, a string of digits. Anything else is refused
    rather than coerced, so ``1.9`` or ``true`` never continue conversation 1."""
    if raw is None or (not is_json and raw == ""):
        return None
    if is_json and type(raw) is int:
        return raw
    if not is_json and isinstance(raw, str) and _FORM_ID.fullmatch(raw):
        return int(raw)
    raise BadTurn("'conversation_id' must be an integer")


@require_POST
async def get_chatbot_response(request: HttpRequest) -> HttpResponseBase:
    user = await request.auser()
    if not user.is_authenticated:
        return _bad_request("authentication required", status=401)
    try:
        payload, is_json = _payload(request)
        question = clean_question(payload.get("message"))
        conversation_id = _conversation_id(payload.get("conversation_id"), is_json=is_json)
    except (BadTurn, InvalidQuestion) as exc:
        return _bad_request(str(exc))
    service = ChatService()
    try:
        conversation = await service.get_conversation(conversation_id, user)
    except ConversationNotFound as exc:
        return _bad_request(str(exc), status=404)

    async def stream() -> AsyncIterator[bytes]:
        events: AsyncIterator[dict[str, Any]] = service.generate_response(conversation, question)
        async for event in events:
            yield (json.dumps(event, default=str) + "\n").encode()

    response = StreamingHttpResponse(stream(), content_type="application/x-ndjson")
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        response["X-Trace-Id"] = format(context.trace_id, "032x")
    response["Cache-Control"] = "no-cache"
    return response
