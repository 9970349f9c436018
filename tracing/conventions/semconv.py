"""Span classification and attribute resolution across the four naming generations.

The one place that knows what a span *is* (``classify``: agent run, iteration, LLM call,
tool call, ...), which naming ``Generation`` a name belongs to, and where a concept (model,
tokens, tool input, ...) lives in each generation (``ALIASES``, the one alias table). The
exporter (trace summaries), the GraphQL API and the admin viewer all read through it.

The alias table is explicit, concept by concept, never a prefix rewrite: other
conventions also use ``llm.*`` and ``tool.*`` keys that mean something else. Where the
legacy names and OpenInference share a key (``tool.name``, ``llm.provider``) they name the
same concept.

OpenInference agent runs have no ``iteration_N`` spans and no status attribute: each
OpenInference LLM span counts as one iteration (``SpanFacts.iteration``: one LLM call per
iteration is what this product's own runs record, so a run and its OpenInference twin
count alike), and the run's status is its agent span's OTel status (``agent_status``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from opentelemetry.trace import SpanKind, StatusCode

from tracing.conventions import attributes as A


class SpanCategory(StrEnum):
    AGENT = "agent"
    ITERATION = "iteration"
    LLM = "llm"
    TOOL = "tool"
    ROUTING = "routing"
    TOKEN_MANAGEMENT = "token_management"
    DATABASE = "database"
    HTTP = "http"
    REQUEST = "request"
    OTHER = "other"


class Generation(StrEnum):
    """The attribute naming generations found in stored data (see DESIGN.md)."""

    CURRENT = "current"  # OpenTelemetry GenAI names, written now
    EARLIER = "earlier"  # the GenAI names of the Sentry era; read, never written
    LEGACY = "legacy"  # this product's first names; read, never written
    OPENINFERENCE = "openinference"  # Arize OpenInference, sent by other services; read only


class Concept(StrEnum):
    MODEL = "model"
    PROVIDER = "provider"
    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    FINISH_REASONS = "finish_reasons"
    TOOL_NAME = "tool_name"
    TOOL_INPUT = "tool_input"
    TOOL_OUTPUT = "tool_output"
    TOOL_SUCCESS = "tool_success"
    PROMPT = "prompt"
    CONVERSATION_ID = "conversation_id"
    AGENT_STATUS = "agent_status"
    AGENT_NAME = "agent_name"


@functools.cache
def _distinct_keys(*keys: str) -> tuple[str, ...]:
    # Called for every attribute lookup of every span: computed once per alias row.
    return tuple(dict.fromkeys(keys))


@dataclass(frozen=True)
class AliasKeys:
    """One concept's key in each ``Generation`` (the fields are its members' values)."""

    current: str
    earlier: str
    legacy: str
    openinference: str

    def key(self, generation: Generation) -> str:
        return str(getattr(self, generation.value))

    def all(self) -> tuple[str, ...]:
        # Order of preference when several generations are present on one span.
        return _distinct_keys(self.current, self.earlier, self.legacy, self.openinference)


# A concept a generation has no name for repeats another generation's key (one key, read
# the same way, whoever wrote it).
ALIASES: dict[Concept, AliasKeys] = {
    Concept.MODEL: AliasKeys(
        A.GEN_AI_REQUEST_MODEL, A.GEN_AI_REQUEST_MODEL, A.LEGACY_LLM_MODEL, A.OI_LLM_MODEL_NAME
    ),
    Concept.PROVIDER: AliasKeys(
        A.GEN_AI_PROVIDER_NAME, A.GEN_AI_SYSTEM, A.LEGACY_LLM_PROVIDER, A.OI_LLM_PROVIDER
    ),
    Concept.INPUT_TOKENS: AliasKeys(
        A.GEN_AI_USAGE_INPUT_TOKENS,
        A.GEN_AI_USAGE_INPUT_TOKENS,
        A.LEGACY_LLM_INPUT_TOKENS,
        A.OI_LLM_TOKEN_COUNT_PROMPT,
    ),
    Concept.OUTPUT_TOKENS: AliasKeys(
        A.GEN_AI_USAGE_OUTPUT_TOKENS,
        A.GEN_AI_USAGE_OUTPUT_TOKENS,
        A.LEGACY_LLM_OUTPUT_TOKENS,
        A.OI_LLM_TOKEN_COUNT_COMPLETION,
    ),
    Concept.FINISH_REASONS: AliasKeys(
        A.GEN_AI_RESPONSE_FINISH_REASONS,
        A.GEN_AI_RESPONSE_FINISH_REASONS,
        A.LEGACY_LLM_FINISH_REASONS,
        A.OI_LLM_FINISH_REASON,
    ),
    Concept.TOOL_NAME: AliasKeys(
        A.GEN_AI_TOOL_NAME, A.GEN_AI_TOOL_NAME, A.LEGACY_TOOL_NAME, A.OI_TOOL_NAME
    ),
    Concept.TOOL_INPUT: AliasKeys(
        A.GEN_AI_TOOL_CALL_ARGUMENTS, A.GEN_AI_TOOL_INPUT, A.LEGACY_TOOL_INPUT, A.OI_TOOL_PARAMETERS
    ),
    Concept.TOOL_OUTPUT: AliasKeys(
        A.GEN_AI_TOOL_CALL_RESULT, A.GEN_AI_TOOL_OUTPUT, A.LEGACY_TOOL_OUTPUT, A.OI_OUTPUT_VALUE
    ),
    Concept.TOOL_SUCCESS: AliasKeys(
        A.TOOL_SUCCESS, A.TOOL_SUCCESS, A.LEGACY_TOOL_SUCCESS, A.TOOL_SUCCESS
    ),
    Concept.PROMPT: AliasKeys(
        A.GEN_AI_INPUT_MESSAGES, A.GEN_AI_PROMPT, A.LEGACY_AGENT_QUERY, A.OI_INPUT_VALUE
    ),
    Concept.CONVERSATION_ID: AliasKeys(
        A.GEN_AI_CONVERSATION_ID,
        A.GEN_AI_CONVERSATION_ID,
        A.LEGACY_CONVERSATION_ID,
        A.OI_SESSION_ID,
    ),
    Concept.AGENT_STATUS: AliasKeys(
        A.AGENT_STATUS, A.AGENT_STATUS, A.LEGACY_AGENT_STATUS, A.AGENT_STATUS
    ),
    Concept.AGENT_NAME: AliasKeys(
        A.GEN_AI_AGENT_NAME, A.GEN_AI_AGENT_NAME, A.GEN_AI_AGENT_NAME, A.OI_AGENT_NAME
    ),
}

_CONCEPT_OF_KEY: dict[str, Concept] = {
    key: concept for concept, keys in ALIASES.items() for key in keys.all()
}


def concept_of(key: str) -> Concept | None:
    return _CONCEPT_OF_KEY.get(key)


def resolve(attributes: Mapping[str, Any], key: str) -> Any:
    """The value of ``key``, looked up across all naming generations.

    The key itself wins when present; otherwise its aliases are tried, current first.
    ``resolve(legacy_span, "gen_ai.request.model")`` returns its ``llm.model`` and
    ``resolve(genai_span, "llm.model")`` returns its ``gen_ai.request.model``.
    """
    if key in attributes:
        return attributes[key]
    concept = _CONCEPT_OF_KEY.get(key)
    if concept is None:
        return None
    return get(attributes, concept)


# Each concept's keys in order of preference: ``get`` runs several times per stored span.
_KEYS: dict[Concept, tuple[str, ...]] = {concept: keys.all() for concept, keys in ALIASES.items()}


def get(attributes: Mapping[str, Any], concept: Concept) -> Any:
    for key in _KEYS[concept]:
        if key in attributes:
            return attributes[key]
    return None


def translate(attributes: Mapping[str, Any], generation: Generation | None) -> dict[str, Any]:
    """The attribute map with every aliased key renamed into ``generation`` (None: as stored).

    When a span carries the same concept under several generations, the target
    generation's own key keeps its value.
    """
    if generation is None:
        return dict(attributes)
    out: dict[str, Any] = {}
    owned: set[str] = set()
    for key, value in attributes.items():
        concept = _CONCEPT_OF_KEY.get(key)
        if concept is None:
            out[key] = value
            continue
        target = ALIASES[concept].key(generation)
        if key == target:
            out[target] = value
            owned.add(target)
        elif target not in owned:
            out[target] = value
    return out


def _name_suffix(name: str, prefix: str) -> str | None:
    if name.startswith(prefix):
        rest = name[len(prefix) :].strip()
        return rest or None
    return None


# The OpenInference span kinds that are agent concepts; the others (CHAIN, RETRIEVER,
# EMBEDDING, RERANKER, GUARDRAIL, EVALUATOR, PROMPT) are classified like any other span.
_OPENINFERENCE_CATEGORIES: dict[str, SpanCategory] = {
    A.OI_KIND_AGENT: SpanCategory.AGENT,
    A.OI_KIND_LLM: SpanCategory.LLM,
    A.OI_KIND_TOOL: SpanCategory.TOOL,
}


def openinference_kind(attributes: Mapping[str, Any]) -> str | None:
    """The span's ``openinference.span.kind`` (upper case), None on other generations."""
    kind = attributes.get(A.OPENINFERENCE_SPAN_KIND)
    return kind.upper() if isinstance(kind, str) and kind else None


def classify(name: str, attributes: Mapping[str, Any], span_kind: str = "") -> SpanCategory:
    """What a span is, from its name, GenAI operation (or OpenInference span kind) and
    standard attributes."""
    oi_kind = openinference_kind(attributes)
    if oi_kind is not None:
        # The kind is required on every OpenInference span and says what the span is; its
        # name is free text (a CHAIN named "chat ..." is still a chain).
        category = _OPENINFERENCE_CATEGORIES.get(oi_kind)
        return category if category is not None else _standard_category(attributes, span_kind)
    op = attributes.get(A.GEN_AI_OPERATION_NAME)
    if (
        op == A.OP_INVOKE_AGENT
        or name == A.LEGACY_SPAN_AGENT_RUN
        or (name.split(" ", 1)[0] == A.SPAN_INVOKE_AGENT_PREFIX)
    ):
        return SpanCategory.AGENT
    if name.startswith(A.SPAN_ITERATION_PREFIX):
        return SpanCategory.ITERATION
    if (
        op == A.OP_EXECUTE_TOOL
        or name.startswith(A.LEGACY_SPAN_TOOL_CALL_PREFIX)
        or (name.split(" ", 1)[0] == A.SPAN_EXECUTE_TOOL_PREFIX)
    ):
        return SpanCategory.TOOL
    if op in (A.OP_CHAT, "text_completion", "generate_content") or (
        name == A.LEGACY_SPAN_LLM_CALL or name.split(" ", 1)[0] == A.SPAN_CHAT_PREFIX
    ):
        return SpanCategory.LLM
    if name == A.SPAN_KNOWLEDGE_ROUTING:
        return SpanCategory.ROUTING
    if name == A.SPAN_TOKEN_MANAGEMENT:
        return SpanCategory.TOKEN_MANAGEMENT
    return _standard_category(attributes, span_kind)


def _standard_category(attributes: Mapping[str, Any], span_kind: str) -> SpanCategory:
    if A.DB_SYSTEM in attributes or A.DB_SYSTEM_NAME in attributes:
        return SpanCategory.DATABASE
    if A.HTTP_REQUEST_METHOD in attributes or A.HTTP_METHOD in attributes:
        return (
            SpanCategory.REQUEST if span_kind.upper() == SpanKind.SERVER.name else SpanCategory.HTTP
        )
    return SpanCategory.OTHER


def sentry_op(category: SpanCategory, attributes: Mapping[str, Any]) -> str | None:
    op = attributes.get(A.SENTRY_OP)
    if isinstance(op, str):
        return op
    return {
        SpanCategory.AGENT: A.SENTRY_OP_INVOKE_AGENT,
        SpanCategory.LLM: A.SENTRY_OP_CHAT,
        SpanCategory.TOOL: A.SENTRY_OP_EXECUTE_TOOL,
        SpanCategory.DATABASE: "db",
        SpanCategory.HTTP: "http.client",
        SpanCategory.REQUEST: "http.server",
    }.get(category)


def tool_name(name: str, attributes: Mapping[str, Any]) -> str | None:
    value = get(attributes, Concept.TOOL_NAME)
    if isinstance(value, str) and value:
        return value
    return _name_suffix(name, A.LEGACY_SPAN_TOOL_CALL_PREFIX) or _name_suffix(
        name, A.SPAN_EXECUTE_TOOL_PREFIX + " "
    )


def model(name: str, attributes: Mapping[str, Any], category: SpanCategory) -> str | None:
    value = get(attributes, Concept.MODEL) or attributes.get(A.GEN_AI_RESPONSE_MODEL)
    if isinstance(value, str) and value:
        return value
    if category is SpanCategory.LLM:
        return _name_suffix(name, A.SPAN_CHAT_PREFIX + " ")
    return None


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value:  # not NaN
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return 0
    return 0


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    if isinstance(value, int):
        return bool(value)
    return None


def prompt_text(value: Any) -> str:
    """The user's question from a prompt attribute of any generation.

    Current spans carry ``gen_ai.input.messages`` (JSON list of messages with parts);
    earlier ones a JSON list or plain string; legacy ones plain text.
    """
    if value is None:
        return ""
    messages: Any = value
    if isinstance(value, str):
        stripped = value.lstrip()
        if not stripped.startswith(("[", "{")):
            return value
        try:
            messages = json.loads(value)
        except ValueError:
            return value
    if isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, list):
        return str(value)
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role", "user") != "user":
            continue
        if isinstance(message.get("content"), str):
            return str(message["content"])
        texts = [
            str(part.get("content", ""))
            for part in message.get("parts", [])
            if isinstance(part, dict) and part.get("type", "text") == "text"
        ]
        if texts:
            return "\n".join(texts)
    return str(value) if isinstance(value, str) else json.dumps(value)


class SpanFacts(NamedTuple):
    """What one span contributes to its trace's summary (made for every stored span: a
    named tuple, about twice as fast to build as a frozen dataclass)."""

    category: SpanCategory
    model: str | None
    input_tokens: int
    output_tokens: int
    tool_name: str | None
    # Counts as one iteration of its run: an iteration_N span, or an OpenInference LLM call
    # (OpenInference runs have no iteration spans; see the module docstring).
    iteration: bool = False
    # Part of an agent run's work (agent, iteration, LLM or tool span): a trace with none
    # of these has no agent activity (``AgentStatus.NO_AGENT``).
    agent_work: bool = False


_AGENT_WORK = frozenset(
    {SpanCategory.AGENT, SpanCategory.ITERATION, SpanCategory.LLM, SpanCategory.TOOL}
)


def span_facts(name: str, attributes: Mapping[str, Any], span_kind: str = "") -> SpanFacts:
    category = classify(name, attributes, span_kind)
    is_llm = category is SpanCategory.LLM
    return SpanFacts(
        category=category,
        model=model(name, attributes, category),
        input_tokens=as_int(get(attributes, Concept.INPUT_TOKENS)) if is_llm else 0,
        output_tokens=as_int(get(attributes, Concept.OUTPUT_TOKENS)) if is_llm else 0,
        tool_name=tool_name(name, attributes) if category is SpanCategory.TOOL else None,
        iteration=category is SpanCategory.ITERATION
        or (is_llm and A.OPENINFERENCE_SPAN_KIND in attributes),
        agent_work=category in _AGENT_WORK,
    )


def agent_name(name: str, attributes: Mapping[str, Any]) -> str:
    """An agent span's agent: its agent-name attribute, else the name's suffix
    (``invoke_agent <agent>``), else (OpenInference, whose span names are free) the name."""
    value = get(attributes, Concept.AGENT_NAME)
    if value:
        return str(value)
    suffix = name.partition(" ")[2]
    if suffix or openinference_kind(attributes) is None:
        return suffix
    return name


def agent_status(attributes: Mapping[str, Any], status_code: str) -> str:
    """An agent run's terminal status: an ``AgentStatus`` value (or as recorded)."""
    from tracing.models import AgentStatus  # models need the app registry; this module not

    value = get(attributes, Concept.AGENT_STATUS)
    if isinstance(value, str) and value:
        return value
    return AgentStatus.ERROR if status_code == StatusCode.ERROR.name else AgentStatus.COMPLETED
