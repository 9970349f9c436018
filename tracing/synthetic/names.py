"""How a synthetic run's spans are named in each ``Generation``: the chat, tool and agent
spans are the ones whose names and attribute keys changed between generations."""

from __future__ import annotations

import json
import random
from typing import Any

from tracing.conventions import attributes as A
from tracing.conventions.semconv import Generation
from tracing.models import AgentStatus
from tracing.synthetic.shape import AgentRun, Iteration, ToolCall


def chat_attributes(run: AgentRun, it: Iteration, rng: random.Random) -> dict[str, Any]:
    if run.generation is Generation.LEGACY:
        attrs: dict[str, Any] = {A.LEGACY_LLM_MODEL: run.model, A.LEGACY_LLM_PROVIDER: run.provider}
        if it.error is None:
            attrs |= {
                A.LEGACY_LLM_INPUT_TOKENS: it.input_tokens,
                A.LEGACY_LLM_OUTPUT_TOKENS: it.output_tokens,
                A.LEGACY_LLM_FINISH_REASONS: ["tool_calls" if it.tools else "stop"],
            }
        return attrs
    earlier = run.generation is Generation.EARLIER
    attrs = {
        A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
        A.SENTRY_OP: A.SENTRY_OP_CHAT,
        (A.GEN_AI_SYSTEM if earlier else A.GEN_AI_PROVIDER_NAME): run.provider,
        A.GEN_AI_REQUEST_MODEL: run.model,
    }
    if it.error is None:
        attrs |= {
            A.GEN_AI_RESPONSE_MODEL: run.model,
            A.GEN_AI_RESPONSE_ID: f"chatcmpl-{rng.getrandbits(48):012x}",
            A.GEN_AI_RESPONSE_FINISH_REASONS: ["tool_calls" if it.tools else "stop"],
            A.GEN_AI_USAGE_INPUT_TOKENS: it.input_tokens,
            A.GEN_AI_USAGE_OUTPUT_TOKENS: it.output_tokens,
        }
    return attrs


def tool_attributes(
    run: AgentRun, call: ToolCall, rng: random.Random
) -> tuple[str, dict[str, Any]]:
    if run.generation is Generation.LEGACY:
        return f"{A.LEGACY_SPAN_TOOL_CALL_PREFIX}{call.name}", {
            A.LEGACY_TOOL_NAME: call.name,
            A.LEGACY_TOOL_INPUT: call.arguments,
            A.LEGACY_TOOL_OUTPUT: call.result,
            A.LEGACY_TOOL_SUCCESS: call.ok,
        }
    earlier = run.generation is Generation.EARLIER
    attrs: dict[str, Any] = {
        A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
        A.SENTRY_OP: A.SENTRY_OP_EXECUTE_TOOL,
        A.GEN_AI_TOOL_NAME: call.name,
        A.GEN_AI_TOOL_CALL_ID: f"call_{rng.getrandbits(40):010x}",
        A.GEN_AI_TOOL_TYPE: "function",
        (A.GEN_AI_TOOL_INPUT if earlier else A.GEN_AI_TOOL_CALL_ARGUMENTS): call.arguments,
        (A.GEN_AI_TOOL_OUTPUT if earlier else A.GEN_AI_TOOL_CALL_RESULT): call.result,
        A.TOOL_SUCCESS: call.ok,
    }
    if not call.ok:
        attrs[A.TOOL_ERROR] = "bad input"
    return f"{A.SPAN_EXECUTE_TOOL_PREFIX} {call.name}", attrs


def root_attributes(
    run: AgentRun, status: AgentStatus, answered: bool
) -> tuple[str, dict[str, Any]]:
    turn = run.turn
    if run.generation is Generation.LEGACY:
        attrs: dict[str, Any] = {
            A.LEGACY_AGENT_QUERY: run.question,
            A.LEGACY_LLM_MODEL: run.model,
            A.LEGACY_LLM_PROVIDER: run.provider,
            A.LEGACY_AGENT_STATUS: status.value,
        }
        if turn is not None:
            attrs[A.LEGACY_CONVERSATION_ID] = str(turn.conversation_id)
        return A.LEGACY_SPAN_AGENT_RUN, attrs
    earlier = run.generation is Generation.EARLIER
    message: dict[str, Any] = (
        {"role": "user", "content": run.question}
        if earlier
        else {"role": "user", "parts": [{"type": "text", "content": run.question}]}
    )
    attrs = {
        A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
        A.SENTRY_OP: A.SENTRY_OP_INVOKE_AGENT,
        A.GEN_AI_AGENT_NAME: run.agent,
        (A.GEN_AI_SYSTEM if earlier else A.GEN_AI_PROVIDER_NAME): run.provider,
        A.GEN_AI_REQUEST_MODEL: run.model,
        (A.GEN_AI_PROMPT if earlier else A.GEN_AI_INPUT_MESSAGES): json.dumps([message]),
        A.AGENT_STATUS: status.value,
    }
    if turn is not None:
        attrs[A.GEN_AI_CONVERSATION_ID] = str(turn.conversation_id)
        attrs[A.USER_MESSAGE_ID] = turn.user_message_id
        if answered:
            attrs[A.AI_MESSAGE_ID] = turn.ai_message_id
    return f"{A.SPAN_INVOKE_AGENT_PREFIX} {run.agent}", attrs
