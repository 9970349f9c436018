"""A seeded stream of synthetic runs, cut into self-contained chunks for bulk loading.

A chunk (``make_chunk``) holds its runs' span rows (``tracing.export.rows``), their trace
summaries (``tracing.export.summary.TraceDelta``) and the conversations and messages its
runs belong to, as COPY text lines; everything it depends on is in its ``ChunkPlan`` (ids
reserved up front, random streams seeded by its index), so chunks are built and written
independently. Contents follow the seed; only the instants follow the time window.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings

from tracing.export.rows import SpanRow
from tracing.export.summary import TraceDelta
from tracing.synthetic import run as synthetic
from tracing.synthetic import world
from tracing.synthetic.shape import Turn

MEAN_TURNS = 3.0  # turns per conversation, geometric
_LOG_STAY = math.log(1 - 1 / MEAN_TURNS)
# A new conversation starts with this probability, so that SHARE_IN_CONVERSATION of all
# traces end up in one.
CONVERSATION_START = world.SHARE_IN_CONVERSATION / (
    world.SHARE_IN_CONVERSATION + (1 - world.SHARE_IN_CONVERSATION) * MEAN_TURNS
)
MAX_ITERATIONS = world.MAX_ITERATIONS

# --- COPY text format (conversations and messages) -------------------------------------------


@lru_cache(maxsize=4096)
def _hour_prefix(hour: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour)).strftime("%Y-%m-%d %H:")


def ts(us: int) -> str:
    """A COPY timestamptz literal for microseconds since the epoch (datetime is 10x slower)."""
    rem = us % 3_600_000_000
    return (
        f"{_hour_prefix(us // 3_600_000_000)}{rem // 60_000_000:02d}:"
        f"{rem // 1_000_000 % 60:02d}.{rem % 1_000_000:06d}+00"
    )


def _text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


@dataclass
class Chunk:
    conversations: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    rows: list[SpanRow] = field(default_factory=list)
    traces: dict[uuid.UUID, TraceDelta] = field(default_factory=dict)

    @property
    def trace_count(self) -> int:
        return len(self.traces)

    @property
    def span_count(self) -> int:
        return len(self.rows)

    def add(self, run: synthetic.AgentRun, rng: random.Random, started_us: int) -> None:
        """One run: its span rows, its summary, and its messages when it is a turn."""
        built = synthetic.build(run, rng, started_us)
        rows = synthetic.to_rows(built, settings.TRACING_MAX_ATTRIBUTE_BYTES)
        delta = TraceDelta()
        for row in rows:
            delta.add(row)
        self.rows += rows
        self.traces[rows[0].trace_id] = delta
        turn = run.turn
        if turn is not None:
            self.messages.append(
                f"{turn.user_message_id}\t{turn.conversation_id}\tuser\t"
                f"{_text(run.question)}\t{ts(started_us - 5_000)}\n"
            )
            if built.answered_at_us is not None:
                self.messages.append(
                    f"{turn.ai_message_id}\t{turn.conversation_id}\tassistant\t"
                    f"Here is what I found about: {_text(run.question)}\t"
                    f"{ts(built.answered_at_us)}\n"
                )


# --- chunks and the load -------------------------------------------------------------------------


@dataclass
class Reserved:
    """Id ranges taken from the real sequences, so seeded rows never collide with live ones."""

    next_conversation: int
    next_message: int


def _diurnal_offsets(rng: random.Random, count: int, lo_us: int, hi_us: int) -> list[int]:
    """``count`` sorted instants in [lo, hi): more traffic in the afternoon than at night."""
    out: list[int] = []
    while len(out) < count:
        x = rng.randrange(lo_us, hi_us)
        hour = (x // 3_600_000_000) % 24
        if rng.random() < 0.35 + 0.65 * math.sin(math.pi * ((hour - 4) % 24) / 24) ** 2:
            out.append(x)
    out.sort()
    return out


@dataclass(frozen=True)
class ChunkPlan:
    """Everything one chunk depends on: chunks are generated and written independently."""

    index: int
    size: int
    first_rank: int  # of its first trace among all (its age picks the naming generation)
    traces: int
    lo_us: int
    hi_us: int
    first_conversation: int  # ids reserved for this chunk: at most one per trace...
    first_message: int  # ...and two messages per trace
    seed: int
    spans_per_trace: float
    large_spans: int = 0  # a chunk of ``size`` large traces ending at ``hi_us`` instead


def plan_chunks(
    *,
    traces: int,
    spans_per_trace: float,
    seed: int,
    chunk_size: int,
    window_start_us: int,
    window_end_us: int,
    reserved: Reserved,
) -> list[ChunkPlan]:
    chunks = max(math.ceil(traces / chunk_size), 1)
    span_us = window_end_us - window_start_us
    return [
        ChunkPlan(
            index=index,
            size=min(chunk_size, traces - index * chunk_size),
            first_rank=index * chunk_size,
            traces=traces,
            lo_us=window_start_us + span_us * index // chunks,
            hi_us=window_start_us + span_us * (index + 1) // chunks,
            first_conversation=reserved.next_conversation + index * chunk_size,
            first_message=reserved.next_message + 2 * index * chunk_size,
            seed=seed,
            spans_per_trace=spans_per_trace,
        )
        for index in range(chunks)
    ]


def make_chunk(plan: ChunkPlan) -> Chunk:
    """The traces of one chunk in time order; conversations never cross chunks."""
    chunk = Chunk()
    if plan.large_spans:
        rng = random.Random(plan.seed + 1)
        for k in range(plan.size):
            at = plan.hi_us - (k + 1) * 3_600_000_000
            chunk.add(world.large_run(plan.large_spans, rng), rng, at)
        return chunk
    rng = random.Random(f"{plan.seed}-{plan.index}")
    # Start times come from their own stream: how many draws the day/night rejection takes
    # depends on where the window falls, and must not shift the traces' contents. For the
    # same reason a trace's age (which picks its naming generation) is its rank in the
    # sequence, not its instant: only the start times follow the window.
    starts = _diurnal_offsets(
        random.Random(f"{plan.seed}-times-{plan.index}"), plan.size, plan.lo_us, plan.hi_us
    )
    picker = world.RunPicker(rng, plan.spans_per_trace)
    next_conversation, next_message = plan.first_conversation, plan.first_message
    i = 0
    while i < plan.size:
        started = starts[i]
        age = (plan.first_rank + i) / plan.traces
        if rng.random() < CONVERSATION_START:
            turns = min(1 + int(math.log(1 - rng.random()) / _LOG_STAY), plan.size - i)
            conversation_id = next_conversation
            next_conversation += 1
            chunk.conversations.append(
                f"{conversation_id}\t\\N\t{_text(world.question(rng)[:200])}\t"
                f"{ts(started - 10_000)}\n"
            )
            # Turns follow each other minutes apart.
            t = started
            for _ in range(turns):
                turn = Turn(conversation_id, next_message, next_message + 1)
                next_message += 2
                chunk.add(picker.pick(age, world.question(rng), turn), rng, t)
                t += rng.randrange(20, 300) * 1_000_000
                i += 1
        else:
            chunk.add(picker.pick(age, world.question(rng), None), rng, started)
            i += 1
    return chunk


def generate_chunks(**plan: Any) -> Iterator[Chunk]:
    """The chunks ``plan_chunks(**plan)`` describes, one after the other."""
    for chunk_plan in plan_chunks(**plan):
        yield make_chunk(chunk_plan)
