"""The Anthropic Messages provider against a loopback peer speaking Anthropic's protocol:
a real agent turn, its wire format, and the trace it leaves."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from campus_core.chat.llm.anthropic import ANTHROPIC_VERSION, AnthropicProvider
from tests.agent_helpers import run_turn
from tracing.models import OTelTrace

pytestmark = pytest.mark.django_db(transaction=True)


class AnthropicPeer(ThreadingHTTPServer):
    """Answers POST /v1/messages: a tool_use first, then text built from the tool result."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                peer.requests.append((dict(self.headers), body))
                last = body["messages"][-1]
                if (
                    isinstance(last["content"], list)
                    and last["content"][0]["type"] == "tool_result"
                ):
                    result = json.loads(last["content"][0]["content"])
                    content: list[dict[str, Any]] = [
                        {"type": "text", "text": f"It is {result['value']}."}
                    ]
                    stop = "end_turn"
                else:
                    content = [
                        {"type": "text", "text": "Let me calculate."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "calculate",
                            "input": {"expression": "6 * 7"},
                        },
                    ]
                    stop = "tool_use"
                reply = {
                    "id": f"msg_{len(peer.requests)}",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": content,
                    "stop_reason": stop,
                    "usage": {"input_tokens": 100 * len(peer.requests), "output_tokens": 7},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def anthropic_peer() -> Iterator[AnthropicPeer]:
    peer = AnthropicPeer()
    yield peer
    peer.shutdown()
    peer.server_close()


def test_agent_turn_through_the_anthropic_messages_api(
    anthropic_peer: AnthropicPeer, flush: Callable[[], None]
) -> None:
    host, port = anthropic_peer.server_address[:2]
    provider = AnthropicProvider(
        base_url=f"http://{host!s}:{port}", model="claude-test", api_key="sk-test"
    )
    final = run_turn("What is 6 * 7?", provider)[-1]
    flush()

    assert final["status"] == "completed" and final["content"] == "It is 42.0."
    (headers, first), (_, second) = anthropic_peer.requests
    assert headers["x-api-key"] == "sk-test"
    assert headers["anthropic-version"] == ANTHROPIC_VERSION
    assert first["system"].startswith("You are CampusCore")
    assert {t["name"] for t in first["tools"]} == {"search_knowledge", "calculate"}
    assert "input_schema" in first["tools"][0]
    # The tool call and its result went back in Anthropic's shape.
    assert second["messages"][-2]["content"][-1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "calculate",
        "input": {"expression": "6 * 7"},
    }
    assert second["messages"][-1]["content"][0]["tool_use_id"] == "toolu_1"

    trace = OTelTrace.objects.get(pk=uuid.UUID(final["trace_id"]))
    assert (trace.model, trace.tools_used) == ("claude-test", ["calculate"])
    assert (trace.total_input_tokens, trace.total_output_tokens) == (100 + 200, 14)
    chat = trace.spans.filter(name="chat claude-test").order_by("started_at").first()
    assert chat is not None
    assert chat.attributes["gen_ai.provider.name"] == "anthropic"
    assert chat.attributes["gen_ai.response.finish_reasons"] == ["tool_use"]
