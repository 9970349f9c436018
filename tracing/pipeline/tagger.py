"""Marks every span started inside an agent run, so the exporter keeps only those.

``enter_agent_run()`` / ``exit_agent_run(token)`` bracket ``AgentCore.run``. A contextvar
carries the mark, so it follows the agent into awaited coroutines and into threads started
with ``sync_to_async`` (which copies the context) — psycopg and httpx spans included.
"""

from __future__ import annotations

import contextvars

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from tracing.conventions.attributes import IN_AGENT_RUN

_in_agent_run: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "campuscore_in_agent_run", default=False
)


def enter_agent_run() -> contextvars.Token[bool]:
    return _in_agent_run.set(True)


def exit_agent_run(token: contextvars.Token[bool]) -> None:
    try:
        _in_agent_run.reset(token)
    except ValueError:
        # The generator was finished from another context (e.g. closed by the server after
        # a disconnect): the mark belongs to that context, so clear it there.
        _in_agent_run.set(False)


def in_agent_run() -> bool:
    return _in_agent_run.get()


class AgentRunTaggerProcessor(SpanProcessor):
    """Sets ``campuscore.in_agent_run = true`` on spans started inside an agent run.

    Registered first on the TracerProvider so the mark is in place before any other
    processor sees the span. It only reads a contextvar and sets one attribute: it never
    blocks, never does I/O and never raises.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if _in_agent_run.get():
            span.set_attribute(IN_AGENT_RUN, True)

    def on_end(self, span: ReadableSpan) -> None:
        return None
