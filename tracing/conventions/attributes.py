"""Every span attribute name the product writes or reads, in one place.

Four naming generations exist in stored data (see DESIGN.md): the current OpenTelemetry
GenAI names (written now), the earlier GenAI names of the Sentry era, this product's
legacy names, and OpenInference (what other services' Phoenix-style instrumentations
send). Writers use only the current names; readers go through
``tracing.conventions.semconv``.
"""

from typing import Final

# --- Current OpenTelemetry GenAI semantic conventions -------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"

# gen_ai.operation.name values
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_CHAT: Final = "chat"
OP_EXECUTE_TOOL: Final = "execute_tool"

# --- Earlier GenAI names (Sentry era); read, never written --------------------------------
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_PROMPT: Final = "gen_ai.prompt"
GEN_AI_TOOL_INPUT: Final = "gen_ai.tool.input"
GEN_AI_TOOL_OUTPUT: Final = "gen_ai.tool.output"

# --- Legacy names of this product; read, never written ------------------------------------
LEGACY_AGENT_QUERY: Final = "agent.query"
LEGACY_AGENT_STATUS: Final = "agent.status"
LEGACY_LLM_MODEL: Final = "llm.model"
LEGACY_LLM_PROVIDER: Final = "llm.provider"
LEGACY_LLM_INPUT_TOKENS: Final = "llm.input_tokens"
LEGACY_LLM_OUTPUT_TOKENS: Final = "llm.output_tokens"
LEGACY_LLM_FINISH_REASONS: Final = "llm.finish_reasons"
LEGACY_TOOL_NAME: Final = "tool.name"
LEGACY_TOOL_INPUT: Final = "tool.input"
LEGACY_TOOL_OUTPUT: Final = "tool.output"
LEGACY_TOOL_SUCCESS: Final = "tool.success"
LEGACY_CONVERSATION_ID: Final = "conversation.id"

# --- OpenInference (Arize; spec/semantic_conventions.md); read, never written ---------------
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
OI_LLM_MODEL_NAME: Final = "llm.model_name"
OI_LLM_PROVIDER: Final = "llm.provider"  # the same key, and concept, as the legacy name
OI_LLM_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
OI_LLM_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
OI_LLM_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
OI_LLM_FINISH_REASON: Final = "llm.finish_reason"
OI_TOOL_NAME: Final = "tool.name"  # the same key, and concept, as the legacy name
OI_TOOL_PARAMETERS: Final = "tool.parameters"
OI_INPUT_VALUE: Final = "input.value"
OI_OUTPUT_VALUE: Final = "output.value"
OI_SESSION_ID: Final = "session.id"
OI_USER_ID: Final = "user.id"
OI_AGENT_NAME: Final = "agent.name"

# openinference.span.kind values
OI_KIND_AGENT: Final = "AGENT"
OI_KIND_LLM: Final = "LLM"
OI_KIND_TOOL: Final = "TOOL"
OI_KIND_CHAIN: Final = "CHAIN"
OI_KIND_RETRIEVER: Final = "RETRIEVER"
OI_KIND_EMBEDDING: Final = "EMBEDDING"
OI_KIND_RERANKER: Final = "RERANKER"
OI_KIND_GUARDRAIL: Final = "GUARDRAIL"
OI_KIND_EVALUATOR: Final = "EVALUATOR"

# --- Sentry ---------------------------------------------------------------------------------
SENTRY_OP: Final = "sentry.op"
SENTRY_OP_INVOKE_AGENT: Final = "gen_ai.invoke_agent"
SENTRY_OP_CHAT: Final = "gen_ai.chat"
SENTRY_OP_EXECUTE_TOOL: Final = "gen_ai.execute_tool"

# --- CampusCore extensions ------------------------------------------------------------------
IN_AGENT_RUN: Final = "campuscore.in_agent_run"
AGENT_STATUS: Final = "campuscore.agent.status"
AGENT_ITERATIONS: Final = "campuscore.agent.iterations"
AGENT_TOOL_CALLS: Final = "campuscore.agent.tool_calls"
USER_MESSAGE_ID: Final = "campuscore.message.user_id"
AI_MESSAGE_ID: Final = "campuscore.message.ai_id"
ITERATION_NUMBER: Final = "campuscore.iteration.number"
ITERATION_TOOL_CALLS: Final = "campuscore.iteration.tool_call_count"
TOOL_SUCCESS: Final = "campuscore.tool.success"
TOOL_ERROR: Final = "campuscore.tool.error"
ROUTING_FOLDER_COUNT: Final = "campuscore.routing.folder_count"
ROUTING_FOLDERS: Final = "campuscore.routing.folders"
TOKEN_MANAGEMENT_STRATEGY: Final = "campuscore.token_management.strategy"
TOKEN_MANAGEMENT_MESSAGES_BEFORE: Final = "campuscore.token_management.messages_before"
TOKEN_MANAGEMENT_MESSAGES_AFTER: Final = "campuscore.token_management.messages_after"

# --- Span names -----------------------------------------------------------------------------
SPAN_INVOKE_AGENT_PREFIX: Final = "invoke_agent"
SPAN_CHAT_PREFIX: Final = "chat"
SPAN_EXECUTE_TOOL_PREFIX: Final = "execute_tool"
SPAN_ITERATION_PREFIX: Final = "iteration_"
SPAN_KNOWLEDGE_ROUTING: Final = "knowledge_routing"
SPAN_TOKEN_MANAGEMENT: Final = "token_management"
LEGACY_SPAN_AGENT_RUN: Final = "agent_run"
LEGACY_SPAN_LLM_CALL: Final = "llm_call"
LEGACY_SPAN_TOOL_CALL_PREFIX: Final = "tool_call."

# --- Standard OTel attributes used by classification and storage ----------------------------
SERVICE_NAME: Final = "service.name"  # a resource attribute
DB_SYSTEM: Final = "db.system"
DB_SYSTEM_NAME: Final = "db.system.name"
DB_STATEMENT: Final = "db.statement"
DB_QUERY_TEXT: Final = "db.query.text"
HTTP_METHOD: Final = "http.method"
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_URL: Final = "http.url"
URL_FULL: Final = "url.full"
HTTP_STATUS_CODE: Final = "http.status_code"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
