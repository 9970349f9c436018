"""The offline default LLM: a scripted OpenAI-compatible responder served on loopback.

No key and no internet, yet every call goes through the same httpx client path as a real
vendor, so a real ``POST`` span appears under each ``chat`` span. The default policy
searches the knowledge base (or calls the calculator for arithmetic) and then answers
from the tool results. Tests start their own ``OfflineLLMServer`` with a scripted policy.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OFFLINE_MODEL = "campus-offline-1"

# A policy maps a chat-completions request body to (HTTP status, response body).
Policy = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]

_ids = itertools.count(1)
_ARITHMETIC = re.compile(r"(-?\d+(?:\.\d+)?\s*[-+*/%]\s*)+-?\d+(?:\.\d+)?")


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: about four characters a token."""
    return max(1, (len(text) + 3) // 4)


def completion(
    request: dict[str, Any],
    *,
    content: str = "",
    tool_calls: list[tuple[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """An OpenAI chat-completion body, with usage counted from the request and reply."""
    prompt = "".join(str(m.get("content") or "") for m in request.get("messages", []))
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{next(_ids)}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for name, arguments in tool_calls
        ]
    reply = content + "".join(json.dumps(a) for _, a in tool_calls or [])
    return {
        "id": f"chatcmpl-offline-{next(_ids)}",
        "object": "chat.completion",
        "model": request.get("model") or OFFLINE_MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": count_tokens(prompt), "completion_tokens": count_tokens(reply)},
    }


def campus_policy(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Search (or calculate) first, then answer from what the tools returned."""
    messages = request.get("messages", [])
    question = next((str(m["content"]) for m in reversed(messages) if m.get("role") == "user"), "")
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        results = [m["content"] for m in messages if m.get("role") == "tool"]
        return 200, completion(request, content=_answer_from(results))
    tool_names = {t["function"]["name"] for t in request.get("tools", [])}
    match = _ARITHMETIC.search(question)
    if match and "calculate" in tool_names:
        return 200, completion(request, tool_calls=[("calculate", {"expression": match[0]})])
    if "search_knowledge" in tool_names:
        return 200, completion(request, tool_calls=[("search_knowledge", {"query": question})])
    return 200, completion(request, content="I can only help with campus questions.")


def _answer_from(results: list[str]) -> str:
    for raw in reversed(results):
        try:
            data = json.loads(raw)
        except ValueError:
            return f"The tool said: {raw}"
        if isinstance(data, dict) and data.get("results"):
            best = data["results"][0]
            return f'According to "{best["title"]}": {best["content"]}'
        if isinstance(data, dict) and "value" in data:
            return f"The result is {data['value']}."
        if isinstance(data, dict) and data.get("error"):
            return f"I could not work that out: {data['error']}"
    return "I could not find anything about that in the campus documents."


class _Handler(BaseHTTPRequestHandler):
    server: OfflineLLMServer

    def do_POST(self) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"unknown path {self.path}"}})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON"}})
            return
        self.server.requests.append(request)
        status, body = self.server.policy(request)
        self._send(status, body)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


class OfflineLLMServer(ThreadingHTTPServer):
    """An OpenAI-compatible server on 127.0.0.1 answering with ``policy``."""

    daemon_threads = True

    def __init__(self, policy: Policy = campus_policy, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.policy = policy
        self.requests: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="offline-llm")

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> OfflineLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


_default: OfflineLLMServer | None = None
_default_lock = threading.Lock()


def default_server() -> OfflineLLMServer:
    """The process's shared offline responder, started on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = OfflineLLMServer().start()
        return _default
