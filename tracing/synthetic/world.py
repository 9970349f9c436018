"""The synthetic world: realistic agent runs drawn at random (``RunPicker``).

Agents, models, tools, statuses, iteration counts and their weights; questions built from
campus vocabulary; the naming generation by a run's age (the oldest runs predate the
current GenAI names). ``natural_spans_per_trace`` is the average size of a run, which
``RunPicker`` tops up with extra tool calls to reach a target.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from collections.abc import Callable
from functools import cache
from typing import Any

from tracing.conventions.semconv import Generation
from tracing.models import AgentStatus
from tracing.synthetic.shape import AgentRun, Iteration, ToolCall, Turn

AGENTS = (("campuscore_agent", 0.9), ("admissions_agent", 0.1))
# (model, weight, provider, median LLM latency in ms)
MODELS = (
    ("gpt-4o-mini", 0.36, "openai", 650.0),
    ("gpt-4o", 0.18, "openai", 1300.0),
    ("claude-sonnet-4-5", 0.17, "anthropic", 1500.0),
    ("claude-haiku-4-5", 0.12, "anthropic", 700.0),
    ("llama-3.3-70b", 0.11, "vllm", 900.0),
    ("offline-campus", 0.06, "offline", 15.0),
)
# (tool, weight of a call, median latency in ms); tools_used ends up a subset of these.
TOOLS = (
    ("search_knowledge", 0.66, 35.0),
    ("calculate", 0.12, 0.4),
    ("lookup_course", 0.11, 120.0),
    ("check_room_availability", 0.06, 220.0),
    ("get_dining_menu", 0.05, 90.0),
)
STATUSES = (
    (AgentStatus.COMPLETED, 0.88),
    (AgentStatus.ERROR, 0.09),
    (AgentStatus.MAX_ITERATIONS, 0.03),
)
# Iterations of a run that ends normally; the last one answers without tools.
ITERATIONS = ((1, 0.62), (2, 0.28), (3, 0.06), (4, 0.025), (5, 0.015))
MAX_ITERATIONS = 5
SHARE_IN_CONVERSATION = 0.4  # of traces; the rest are API / CLI runs with no conversation
TOOL_FAILURE_RATE = 0.03

DEPARTMENTS = ("CS", "MATH", "BIO", "CHEM", "ECON", "HIST", "PHYS", "PSY", "ENG", "ART")
TERMS = ("fall 2026", "spring 2027", "summer 2027", "winter break")
HALLS = ("Maple Hall", "Cedar Hall", "Birch House", "North Tower", "Lakeside")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("library", "When does the library open on {day}?"),
    ("library", "How many books can I borrow at once from the library?"),
    ("library", "Can I renew a library book online during {term}?"),
    ("registrar", "When is the registration deadline for {term}?"),
    ("registrar", "How do I request an official transcript?"),
    ("registrar", "Can I still drop {course} after the deadline?"),
    ("registrar", "Is {course} offered in {term}?"),
    ("financial_aid", "What scholarships are available for {dept} students?"),
    ("financial_aid", "When is the FAFSA deadline for {term}?"),
    ("financial_aid", "How much tuition do I owe if I take {n} credits at 412 per credit?"),
    ("housing", "When is move-in day for {hall}?"),
    ("housing", "Is there a room available in {hall} for {term}?"),
    ("housing", "How do I request a dorm change from {hall}?"),
    ("it", "How do I reset my campus account password?"),
    ("it", "Why can't I connect to the campus wifi in {hall}?"),
    ("dining", "What is on the dining hall menu on {day}?"),
    ("dining", "How many meals are left on a plan of {n} meals if I used 37?"),
    ("other", "My student ID is S{sid}, can you check my {dept} advisor?"),
    ("other", "Who teaches {course} in {term}?"),
)
ERRORS = (
    ("httpx.ReadTimeout", "timed out"),
    ("openai.RateLimitError", "Error code: 429 - rate limit exceeded"),
    ("httpx.ConnectError", "[Errno 111] Connection refused"),
    ("anthropic.InternalServerError", "Error code: 529 - overloaded"),
)


@cache
def _cumulative(table: tuple[tuple[Any, ...], ...]) -> list[float]:
    return list(itertools.accumulate(row[1] for row in table))


def weighted(rng: random.Random, table: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    """A row of ``table`` drawn by its weight (column 1)."""
    cumulative = _cumulative(table)
    return table[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


def lognormal_ms(rng: random.Random, median: float, sigma: float = 0.6) -> float:
    value = median * math.exp(rng.gauss(0.0, sigma))
    if rng.random() < 0.004:  # the long tail: retries, cold starts, vendor hiccups
        value *= rng.uniform(8, 40)
    return value


def question(rng: random.Random) -> str:
    _, template = QUESTIONS[rng.randrange(len(QUESTIONS))]
    return template.format(
        day=DAYS[rng.randrange(7)],
        term=TERMS[rng.randrange(len(TERMS))],
        course=f"{DEPARTMENTS[rng.randrange(len(DEPARTMENTS))]} {rng.randrange(100, 500)}",
        dept=DEPARTMENTS[rng.randrange(len(DEPARTMENTS))],
        hall=HALLS[rng.randrange(len(HALLS))],
        n=rng.randrange(6, 240),
        sid=rng.randrange(100_000, 1_000_000),
    )


def _status_weight(status: AgentStatus) -> float:
    return next(w for s, w in STATUSES if s is status) / sum(w for _, w in STATUSES)


def _iteration_mean(f: Callable[[int], float]) -> float:
    return sum(p * f(i) for i, p in ITERATIONS) / sum(p for _, p in ITERATIONS)


def natural_spans_per_trace() -> float:
    """Average spans of a trace when each tool-using iteration calls exactly one tool.

    A run with i iterations has the agent and routing spans, 4 spans per iteration
    (iteration, token_management, chat, POST) and 2 per tool call (execute_tool, SELECT);
    an error stops at a uniformly chosen iteration; answered conversation turns add the
    INSERT of the answer.
    """
    completed = _iteration_mean(lambda i: 2 + 4 * i + 2 * (i - 1))
    error = _iteration_mean(lambda i: sum(2 + 4 * f + 2 * (f - 1) for f in range(1, i + 1)) / i)
    maxed = 2 + 6 * MAX_ITERATIONS
    answered = 1 - _status_weight(AgentStatus.ERROR)
    return (
        _status_weight(AgentStatus.COMPLETED) * completed
        + _status_weight(AgentStatus.ERROR) * error
        + _status_weight(AgentStatus.MAX_ITERATIONS) * maxed
        + SHARE_IN_CONVERSATION * answered
    )


def _tool_iterations_per_trace() -> float:
    return (
        _status_weight(AgentStatus.COMPLETED) * _iteration_mean(lambda i: i - 1)
        + _status_weight(AgentStatus.ERROR) * _iteration_mean(lambda i: (i - 1) / 2)
        + _status_weight(AgentStatus.MAX_ITERATIONS) * MAX_ITERATIONS
    )


def _tool_call(rng: random.Random, text: str) -> ToolCall:
    name, _, median = weighted(rng, TOOLS)
    ok = rng.random() >= TOOL_FAILURE_RATE
    return ToolCall(
        name=name,
        ok=ok,
        arguments=json.dumps({"query": text[:60]}),
        result=json.dumps({"hits": rng.randrange(0, 4)} if ok else {"error": "bad input"}),
        duration_ms=lognormal_ms(rng, median, 0.8),
    )


def iterations(
    rng: random.Random, text: str, tools_per_iteration: list[int], llm_median_ms: float
) -> list[Iteration]:
    """Iterations of a run: tokens grow with the conversation, tools as given."""
    return [
        Iteration(
            input_tokens=rng.randrange(350, 900) + 300 * n + rng.randrange(0, 600) * (n - 1),
            output_tokens=rng.randrange(15, 380),
            tools=[_tool_call(rng, text) for _ in range(count)],
            llm_ms=lognormal_ms(rng, llm_median_ms),
        )
        for n, count in enumerate(tools_per_iteration, start=1)
    ]


class RunPicker:
    """Draws runs so that the average span count is close to the target."""

    def __init__(self, rng: random.Random, spans_per_trace: float) -> None:
        self.rng = rng
        # Extra tool calls (2 spans each) spread over the tool-using iterations.
        extra_spans = max(spans_per_trace - natural_spans_per_trace(), 0.0)
        self.extra_tools_mean = extra_spans / 2 / _tool_iterations_per_trace()

    def tools_count(self) -> int:
        extra = 0
        if self.extra_tools_mean > 0:
            # Geometric number of extra calls: most iterations call one tool, a few many.
            p = 1 / (1 + self.extra_tools_mean)
            extra = int(math.log(1 - self.rng.random()) / math.log(1 - p)) if p < 1 else 0
        return 1 + extra

    def pick(self, age_fraction: float, text: str, turn: Turn | None) -> AgentRun:
        rng = self.rng
        status = weighted(rng, STATUSES)[0]
        if status is AgentStatus.MAX_ITERATIONS:
            tools = [self.tools_count() for _ in range(MAX_ITERATIONS)]
        else:
            count = weighted(rng, ITERATIONS)[0]
            tools = [self.tools_count() for _ in range(count - 1)] + [0]
        model, _, provider, median = weighted(rng, MODELS)
        # The oldest traces predate the current GenAI names: legacy first, then Sentry era.
        roll = rng.random()
        if age_fraction < 0.2 and roll < 0.5:
            generation = Generation.LEGACY
        elif age_fraction < 0.45 and roll < 0.5:
            generation = Generation.EARLIER
        else:
            generation = Generation.CURRENT
        steps = iterations(rng, text, tools, median)
        if status is AgentStatus.ERROR:
            fail_at = rng.randint(1, len(steps))
            steps = steps[:fail_at]
            steps[-1].error = ERRORS[rng.randrange(len(ERRORS))]
        return AgentRun(
            question=text,
            model=model,
            provider=provider,
            agent=weighted(rng, AGENTS)[0],
            generation=generation,
            iterations=steps,
            status=status,
            turn=turn,
        )


def large_run(spans: int, rng: random.Random) -> AgentRun:
    """A max_iterations run with many tool calls per iteration: exactly ``spans`` spans."""
    tool_calls = max((spans - 2 - 4 * MAX_ITERATIONS) // 2, 0)
    per, rest = divmod(tool_calls, MAX_ITERATIONS)
    text = f"Large benchmark run: audit every course section ({rng.getrandbits(32):08x})"
    tools = [per + (1 if i < rest else 0) for i in range(MAX_ITERATIONS)]
    return AgentRun(
        question=text,
        model="gpt-4o",
        provider="openai",
        generation=Generation.CURRENT,
        iterations=iterations(rng, text, tools, 1300.0),
        status=AgentStatus.MAX_ITERATIONS,
    )
