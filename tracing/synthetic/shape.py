"""What describes one synthetic agent run: its question, model, naming generation,
iterations (tokens, tool calls, a failure) and outcome; ``run.build`` turns it into spans."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracing.conventions.semconv import Generation
from tracing.models import AgentStatus


@dataclass
class ToolCall:
    name: str
    ok: bool = True
    arguments: str = '{"q": 1}'
    result: str = "ok"
    duration_ms: float = 50.0


@dataclass
class Iteration:
    input_tokens: int = 120
    output_tokens: int = 30
    tools: list[ToolCall] = field(default_factory=list)
    # (exception type, message) when the LLM call failed: the run ends here, in error.
    error: tuple[str, str] | None = None
    llm_ms: float = 650.0


@dataclass(slots=True)
class Turn:
    """Where a run sits in a conversation (the ids of its stored rows)."""

    conversation_id: int
    user_message_id: int
    ai_message_id: int  # used only when the run produced an answer


@dataclass
class AgentRun:
    question: str = "When does the library open?"
    model: str = "gpt-test"
    provider: str = "openai"
    agent: str = "campuscore_agent"
    generation: Generation = Generation.CURRENT
    iterations: list[Iteration] = field(default_factory=lambda: [Iteration()])
    # What the run ends as when no iteration failed (a failed one makes it ERROR).
    status: AgentStatus = AgentStatus.COMPLETED
    turn: Turn | None = None
    # The conversation on chat spans (gen_ai.input/output.messages), as AgentCore writes
    # it: kilobytes per span. The seeder leaves it out to keep a large database small.
    messages: bool = False
