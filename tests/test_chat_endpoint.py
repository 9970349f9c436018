"""POST /get_chatbot_response/ through the real ASGI server (uvicorn + OpenTelemetryMiddleware
+ Django), with httpx: trace isolation between requests on one keep-alive connection, and
bad input refused with a 400 before anything is written."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from campus_core.chat.chat_service import MAX_QUESTION_CHARS
from campus_core.chat.models import Conversation, Message
from tracing.conventions import attributes as A
from tracing.models import OTelSpan, OTelTrace

CHAT_URL = "/get_chatbot_response/"
QUESTION = "What is 6 * 7?"
# Above uvicorn's 64 KiB flow-control limit: reading such a body pauses and resumes the
# socket, the path on which asyncio carried the old request's context into the next one.
BIG = 70_000

pytestmark = pytest.mark.django_db(transaction=True)


def _connection(response: httpx.Response) -> Any:
    """The client-side address of the TCP connection a response came over."""
    return response.extensions["network_stream"].get_extra_info("client_addr")


def _turn(client: httpx.Client, **body: Any) -> tuple[httpx.Response, list[dict[str, Any]]]:
    response = client.post(CHAT_URL, json={"message": QUESTION, **body})
    assert response.status_code == 200, response.text
    return response, [json.loads(line) for line in response.text.splitlines() if line]


def _big_post(client: httpx.Client, **headers: str) -> httpx.Response:
    """A chat POST with an oversized message and the client's headers, some replaced."""
    request = client.build_request("POST", CHAT_URL, json={"message": "x" * BIG})
    request.headers.update(headers)
    return client.send(request)


# Each kind of request the stack refuses, with a body large enough to pause the socket.
REJECTED: dict[str, tuple[Callable[[httpx.Client], httpx.Response], int]] = {
    "too_large": (lambda c: c.post(CHAT_URL, json={"message": "x" * BIG}), 400),
    "bad_json": (
        lambda c: c.post(
            CHAT_URL, content=b"{" + b"x" * BIG, headers={"Content-Type": "application/json"}
        ),
        400,
    ),
    "bad_input": (lambda c: c.post(CHAT_URL, json={"message": " " * BIG}), 400),
    "unauthenticated": (
        lambda c: _big_post(c, Cookie=f"csrftoken={c.cookies['csrftoken']}"),
        401,
    ),
    "csrf_failure": (lambda c: _big_post(c, **{"X-CSRFToken": "wrong"}), 403),
    "wrong_method": (lambda c: c.put(CHAT_URL, json={"message": "x" * BIG}), 405),
}


@pytest.mark.parametrize("kind", sorted(REJECTED))
def test_each_agent_run_gets_its_own_trace_after_a_rejected_request_on_the_same_connection(
    kind: str, logged_in: tuple[httpx.Client, Any], flush: Callable[[], None]
) -> None:
    client, _ = logged_in
    reject, status = REJECTED[kind]

    # given a refused request on a keep-alive connection
    refused = reject(client)
    assert refused.status_code == status, refused.text
    assert "X-Trace-Id" not in refused.headers

    # when two turns of two new conversations follow on the same connection
    first, first_events = _turn(client)
    second, second_events = _turn(client)
    assert _connection(refused) == _connection(first) == _connection(second)
    flush()

    # then each turn is a trace of its own, holding exactly its one agent run
    runs = [(first, first_events), (second, second_events)]
    trace_ids = [response.headers["X-Trace-Id"] for response, _ in runs]
    assert len(set(trace_ids)) == 2
    for (_, events), trace_id in zip(runs, trace_ids, strict=True):
        assert events[-1]["type"] == "final" and events[-1]["trace_id"] == trace_id
        stored = OTelTrace.objects.get(pk=uuid.UUID(trace_id))
        agent_roots = OTelSpan.objects.filter(
            trace_id=stored.pk, name__startswith=A.SPAN_INVOKE_AGENT_PREFIX
        )
        assert agent_roots.count() == 1
        assert agent_roots.get().span_id == stored.root_span_id
        assert stored.conversation_id == events[-1]["conversation_id"]
    assert first_events[-1]["conversation_id"] != second_events[-1]["conversation_id"]
    assert OTelTrace.objects.count() == 2


def _json(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": {"Content-Type": "application/json"}}


BAD_INPUT: dict[str, tuple[dict[str, Any], str]] = {
    "nul_json": (_json('{"message": "hello\\u0000world"}'), "NUL"),
    "nul_form": ({"data": {"message": "hello\x00world"}}, "NUL"),
    "lone_surrogate": (_json('{"message": "x\\ud800y"}'), "surrogate"),
    "empty": ({"json": {"message": ""}}, "non-empty string"),
    "whitespace_only": ({"json": {"message": " \t\n "}}, "non-empty string"),
    "missing": ({"json": {}}, "non-empty string"),
    "too_long": ({"json": {"message": "x" * (MAX_QUESTION_CHARS + 1)}}, "longer than"),
    "number": ({"json": {"message": 42}}, "non-empty string"),
    "list": ({"json": {"message": ["hi"]}}, "non-empty string"),
    "null": ({"json": {"message": None}}, "non-empty string"),
    "not_an_object": ({"json": ["hi"]}, "JSON object"),
    "invalid_json": (_json('{"message": '), "not valid JSON"),
    "invalid_utf8": ({"content": b'{"message": "\xff"}', "headers": _json("")["headers"]}, "JSON"),
    "nested_too_deep": (
        _json('{"message": "hi", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        "JSON",
    ),
    "body_over_upload_limit": (
        {"json": {"message": "hi", "pad": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}},
        "larger than",
    ),
    "conversation_float": ({"json": {"message": "hi", "conversation_id": 1.9}}, "integer"),
    "conversation_true": ({"json": {"message": "hi", "conversation_id": True}}, "integer"),
    "conversation_json_string": ({"json": {"message": "hi", "conversation_id": "1"}}, "integer"),
    "conversation_list": ({"json": {"message": "hi", "conversation_id": [1]}}, "integer"),
    "conversation_form_float": ({"data": {"message": "hi", "conversation_id": "1.9"}}, "integer"),
    "conversation_form_true": ({"data": {"message": "hi", "conversation_id": "true"}}, "integer"),
    "conversation_form_negative": ({"data": {"message": "hi", "conversation_id": "-1"}}, "integer"),
    "conversation_form_fullwidth": (
        {"data": {"message": "hi", "conversation_id": "\uff11"}},
        "integer",
    ),
    "conversation_form_spaces": ({"data": {"message": "hi", "conversation_id": " 1"}}, "integer"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_refused_before_anything_is_written(
    case: str, logged_in: tuple[httpx.Client, Any], flush: Callable[[], None]
) -> None:
    client, _ = logged_in
    # conversation 1 exists, so a coerced id would have continued it
    existing = Conversation.objects.create(pk=1, title="existing")
    request, reason = BAD_INPUT[case]

    response = client.post(CHAT_URL, **request)
    flush()

    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]
    assert list(Conversation.objects.all()) == [existing]
    assert Message.objects.count() == 0
    assert OTelTrace.objects.count() == 0 and OTelSpan.objects.count() == 0


def test_conversation_id_accepts_a_json_integer_or_form_digits(
    logged_in: tuple[httpx.Client, Any],
) -> None:
    client, _ = logged_in
    _, first = _turn(client)
    conversation_id = first[-1]["conversation_id"]

    _, again = _turn(client, conversation_id=conversation_id)
    form = client.post(
        CHAT_URL, data={"message": QUESTION, "conversation_id": str(conversation_id)}
    )

    assert form.status_code == 200
    assert again[-1]["conversation_id"] == conversation_id
    assert json.loads(form.text.splitlines()[-1])["conversation_id"] == conversation_id
    assert Conversation.objects.count() == 1
    assert Message.objects.filter(conversation_id=conversation_id).count() == 6


@pytest.mark.parametrize("conversation_id", [999_999, 0, -1, 2**63, 2**70])
def test_unknown_conversation_is_a_404_and_writes_nothing(
    conversation_id: int, logged_in: tuple[httpx.Client, Any]
) -> None:
    client, _ = logged_in
    response = client.post(CHAT_URL, json={"message": "hi", "conversation_id": conversation_id})

    assert response.status_code == 404
    assert response.json() == {"error": f"conversation {conversation_id} does not exist"}
    assert Conversation.objects.count() == 0 and Message.objects.count() == 0


def test_another_users_conversation_is_a_404(logged_in: tuple[httpx.Client, Any]) -> None:
    client, _ = logged_in
    other = get_user_model().objects.create_user("mallory", password="pw")
    foreign = Conversation.objects.create(user=other, title="not yours")

    response = client.post(CHAT_URL, json={"message": "hi", "conversation_id": foreign.pk})

    assert response.status_code == 404
    assert Message.objects.count() == 0
