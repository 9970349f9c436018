"""AgentCore: the observed LLM agent, an async generator of events.

Each run is one OpenTelemetry trace: ``invoke_agent <name>`` → ``knowledge_routing``,
``iteration_N`` → ``token_management``, ``chat <model>`` (httpx ``POST`` child),
``execute_tool <name>`` (psycopg ``SELECT`` child). Because ``run`` yields between steps,
spans that live across a yield (agent, iteration) are started and ended by hand with an
explicit parent context; spans that do not (chat, tool) are made current for their
duration so auto-instrumented children nest under them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from campus_core.chat import knowledge
from campus_core.chat.llm import LLMProvider, LLMResponse, ToolCall, get_provider
from campus_core.chat.tools import TOOLS, Tool, ToolInputError, ToolResult
from campus_core.observability.metrics import metrics
from tracing.conventions import attributes as A
from tracing.models import AgentStatus
from tracing.pipeline import get_tracer
from tracing.pipeline.tagger import enter_agent_run, exit_agent_run

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are CampusCore, the campus assistant. Use search_knowledge for questions about "
    "campus services and calculate for arithmetic. Answer briefly from what the tools return."
)

# (role, content) pairs of earlier turns.
History = Sequence[tuple[str, str]]
AnswerHook = Callable[[str, str], Awaitable[int | None]]


@dataclass
class RunTotals:
    status: AgentStatus = AgentStatus.ERROR
    iterations: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class AgentCore:
    def __init__(
        self,
        provider: LLMProvider | None = None,
        *,
        tools: dict[str, Tool] | None = None,
        name: str | None = None,
        max_iterations: int | None = None,
        max_history_messages: int | None = None,
    ) -> None:
        self.provider = provider or get_provider()
        self.tools = TOOLS if tools is None else tools
        self.name = name or settings.AGENT_NAME
        self.max_iterations = max_iterations or settings.AGENT_MAX_ITERATIONS
        self.max_history = max_history_messages or settings.AGENT_MAX_HISTORY_MESSAGES
        self.tracer = get_tracer()

    async def run(
        self,
        question: str,
        *,
        history: History = (),
        conversation_id: int | None = None,
        user_message_id: int | None = None,
        on_answer: AnswerHook | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Run one turn; yields ``start``, ``routing``, ``llm``, ``tool_call``,
        ``tool_result`` and finally ``final`` or ``error`` events."""
        token = enter_agent_run()
        model = self.provider.model
        root = self.tracer.start_span(
            f"{A.SPAN_INVOKE_AGENT_PREFIX} {self.name}",
            kind=SpanKind.INTERNAL,
            attributes={
                A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
                A.SENTRY_OP: A.SENTRY_OP_INVOKE_AGENT,
                A.GEN_AI_AGENT_NAME: self.name,
                A.GEN_AI_PROVIDER_NAME: self.provider.provider_name,
                A.GEN_AI_REQUEST_MODEL: model,
                A.GEN_AI_INPUT_MESSAGES: json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": question}]}]
                ),
                **({A.GEN_AI_CONVERSATION_ID: str(conversation_id)} if conversation_id else {}),
                **({A.USER_MESSAGE_ID: user_message_id} if user_message_id else {}),
            },
        )
        root_ctx = trace.set_span_in_context(root)
        totals = RunTotals()
        used_tools: set[str] = set()
        trace_id = format(root.get_span_context().trace_id, "032x")
        try:
            # Log lines carry this run's trace id even outside a request (CLI, workers).
            with trace.use_span(root, end_on_exit=False):
                logger.info("agent run started", extra={"agent": self.name})
            yield {"type": "start", "trace_id": trace_id}
            folders = self._route(question, root_ctx)
            yield {"type": "routing", "folders": folders}
            messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
            messages += [{"role": r, "content": c} for r, c in history]
            messages.append({"role": "user", "content": question})
            answer = ""
            for number in range(1, self.max_iterations + 1):
                totals.iterations = number
                iteration = self.tracer.start_span(
                    f"{A.SPAN_ITERATION_PREFIX}{number}",
                    context=root_ctx,
                    attributes={A.ITERATION_NUMBER: number},
                )
                iteration_ctx = trace.set_span_in_context(iteration)
                calls_here = 0
                try:
                    messages = self._manage_tokens(messages, iteration_ctx)
                    response = await self._call_llm(messages, iteration_ctx)
                    totals.input_tokens += response.input_tokens
                    totals.output_tokens += response.output_tokens
                    yield {
                        "type": "llm",
                        "iteration": number,
                        "content": response.content,
                        "tool_calls": [c.name for c in response.tool_calls],
                    }
                    if not response.tool_calls:
                        answer = response.content
                        totals.status = AgentStatus.COMPLETED
                        break
                    messages.append(_assistant_tool_message(response))
                    for call in response.tool_calls:
                        yield {"type": "tool_call", "name": call.name, "arguments": call.arguments}
                        result = await self._execute_tool_traced(call, iteration_ctx)
                        calls_here += 1
                        totals.tool_calls += 1
                        used_tools.add(call.name)
                        yield {
                            "type": "tool_result",
                            "name": call.name,
                            "success": result.success,
                            "output": result.output,
                        }
                        messages.append(
                            {"role": "tool", "tool_call_id": call.id, "content": result.as_text()}
                        )
                except Exception as exc:
                    iteration.record_exception(exc)
                    iteration.set_status(Status(StatusCode.ERROR, str(exc)))
                    raise
                finally:
                    iteration.set_attribute(A.ITERATION_TOOL_CALLS, calls_here)
                    iteration.end()
            else:
                totals.status = AgentStatus.MAX_ITERATIONS
                answer = (
                    "I could not finish within the allowed number of steps. "
                    "Please rephrase or narrow the question."
                )
                root.set_status(Status(StatusCode.ERROR, "max_iterations reached"))
            if on_answer is not None:
                # Current for the hook's duration (no yield inside), so its INSERT nests here.
                with trace.use_span(root, end_on_exit=False):
                    ai_message_id = await on_answer(answer, totals.status.value)
                if ai_message_id:
                    root.set_attribute(A.AI_MESSAGE_ID, ai_message_id)
            root.set_attribute(
                A.GEN_AI_OUTPUT_MESSAGES,
                json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]),
            )
            with trace.use_span(root, end_on_exit=False):
                logger.info("agent run finished", extra={"status": totals.status.value})
            yield {
                "type": "final",
                "status": totals.status.value,
                "content": answer,
                "trace_id": trace_id,
            }
        except Exception as exc:
            totals.status = AgentStatus.ERROR
            root.record_exception(exc)
            root.set_status(Status(StatusCode.ERROR, str(exc)))
            with trace.use_span(root, end_on_exit=False):
                logger.exception("agent run failed")
            yield {
                "type": "error",
                "status": totals.status.value,
                "message": str(exc),
                "trace_id": trace_id,
            }
        finally:
            if (
                totals.status is AgentStatus.ERROR
                and root.is_recording()
                and not _has_error_status(root)
            ):
                # Closed before finishing (e.g. the client went away).
                root.set_status(Status(StatusCode.ERROR, "agent run cancelled"))
            root.set_attributes(
                {
                    A.AGENT_STATUS: totals.status.value,
                    A.AGENT_ITERATIONS: totals.iterations,
                    A.AGENT_TOOL_CALLS: totals.tool_calls,
                    A.GEN_AI_USAGE_INPUT_TOKENS: totals.input_tokens,
                    A.GEN_AI_USAGE_OUTPUT_TOKENS: totals.output_tokens,
                }
            )
            root.end()
            exit_agent_run(token)
            _emit_agent_metrics(totals, used_tools)

    def _route(self, question: str, parent: Context) -> list[str]:
        with self.tracer.start_as_current_span(A.SPAN_KNOWLEDGE_ROUTING, context=parent) as span:
            folders = knowledge.route_folders(question)
            span.set_attribute(A.ROUTING_FOLDER_COUNT, len(folders))
            span.set_attribute(A.ROUTING_FOLDERS, folders or list(knowledge.FOLDERS))
            return folders

    def _manage_tokens(
        self, messages: list[dict[str, Any]], parent: Context
    ) -> list[dict[str, Any]]:
        """Keep the system prompt and the newest messages within the history budget."""
        with self.tracer.start_as_current_span(A.SPAN_TOKEN_MANAGEMENT, context=parent) as span:
            before = len(messages)
            kept = messages
            if before > self.max_history + 1:
                tail = messages[-self.max_history :]
                # Never start the window on a tool result whose call was cut off.
                while tail and tail[0]["role"] == "tool":
                    tail = tail[1:]
                kept = [messages[0], *tail]
            span.set_attributes(
                {
                    A.TOKEN_MANAGEMENT_STRATEGY: "sliding_window",
                    A.TOKEN_MANAGEMENT_MESSAGES_BEFORE: before,
                    A.TOKEN_MANAGEMENT_MESSAGES_AFTER: len(kept),
                }
            )
            return kept

    async def _call_llm(self, messages: list[dict[str, Any]], parent: Context) -> LLMResponse:
        model = self.provider.model
        with self.tracer.start_as_current_span(
            f"{A.SPAN_CHAT_PREFIX} {model}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={
                A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
                A.SENTRY_OP: A.SENTRY_OP_CHAT,
                A.GEN_AI_PROVIDER_NAME: self.provider.provider_name,
                A.GEN_AI_REQUEST_MODEL: model,
                A.GEN_AI_INPUT_MESSAGES: json.dumps(messages),
            },
        ) as span:
            response = await self.provider.complete(
                messages, [tool.spec for tool in self.tools.values()]
            )
            span.set_attributes(
                {
                    A.GEN_AI_RESPONSE_MODEL: response.model or model,
                    A.GEN_AI_RESPONSE_ID: response.response_id,
                    A.GEN_AI_RESPONSE_FINISH_REASONS: [response.finish_reason],
                    A.GEN_AI_USAGE_INPUT_TOKENS: response.input_tokens,
                    A.GEN_AI_USAGE_OUTPUT_TOKENS: response.output_tokens,
                    A.GEN_AI_OUTPUT_MESSAGES: json.dumps([_assistant_tool_message(response)]),
                }
            )
            return response

    async def _execute_tool_traced(self, call: ToolCall, parent: Context) -> ToolResult:
        started = time.perf_counter()
        with self.tracer.start_as_current_span(
            f"{A.SPAN_EXECUTE_TOOL_PREFIX} {call.name}",
            context=parent,
            record_exception=False,
            set_status_on_exception=False,
            attributes={
                A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
                A.SENTRY_OP: A.SENTRY_OP_EXECUTE_TOOL,
                A.GEN_AI_TOOL_NAME: call.name,
                A.GEN_AI_TOOL_CALL_ID: call.id,
                A.GEN_AI_TOOL_TYPE: "function",
                A.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps(call.arguments),
            },
        ) as span:
            outcome = "success"
            tool = self.tools.get(call.name)
            try:
                if tool is None:
                    raise ToolInputError(f"unknown tool {call.name!r}")
                result = await tool.run(call.arguments)
                if not result.success:
                    outcome = "failure"
            except ToolInputError as exc:
                outcome = "failure"
                result = ToolResult(success=False, output={"error": str(exc)})
                span.set_status(Status(StatusCode.ERROR, str(exc)))
            except Exception as exc:
                outcome = "exception"
                logger.warning("tool %s raised %s", call.name, exc)
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                result = ToolResult(success=False, output={"error": f"{type(exc).__name__}: {exc}"})
            span.set_attributes(
                {A.TOOL_SUCCESS: result.success, A.GEN_AI_TOOL_CALL_RESULT: result.as_text()}
            )
            if not result.success:
                span.set_attribute(A.TOOL_ERROR, str(result.output.get("error", "")))
        metrics.increment(f"tool.{call.name}.{outcome}_count")
        metrics.record(f"tool.{call.name}.duration_ms", (time.perf_counter() - started) * 1000)
        return result


def _has_error_status(span: trace.Span) -> bool:
    status = getattr(span, "status", None)
    return status is not None and status.status_code is StatusCode.ERROR


def _assistant_tool_message(response: LLMResponse) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.content or None}
    if response.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in response.tool_calls
        ]
    return message


def _emit_agent_metrics(totals: RunTotals, used_tools: set[str]) -> None:
    """Golden signals of one agent run, from every terminal path."""
    metrics.increment("agent.run.count")
    metrics.increment(f"agent.run.status.{totals.status.value}")
    if totals.status is AgentStatus.ERROR:
        metrics.increment("agent.run.error_count")
    metrics.record("agent.iteration_count", totals.iterations)
    metrics.record("agent.tool_call_count", totals.tool_calls)
    metrics.record("agent.tokens.input", totals.input_tokens)
    metrics.record("agent.tokens.output", totals.output_tokens)
    if totals.status is AgentStatus.COMPLETED and not used_tools:
        metrics.increment("agent.no_tool_calls_count")
