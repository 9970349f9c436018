#!/usr/bin/env python
"""Per-iteration overhead of tracing on ``AgentCore.run`` with a zero-latency LLM.

The LLM is an in-process provider implementing ``campus_core.chat.llm.base.LLMProvider``
that answers instantly (no HTTP), so an iteration costs only the agent's own work: token
management, the provider call, the tools (``calculate`` in memory; ``search_knowledge``
a real full-text SQL query in PostgreSQL in the ``sql`` workload), metrics and spans.

Modes, alternated within each repetition so machine noise hits them alike:

* ``off``     — a ``NoOpTracerProvider`` tracer (what ``OTEL_SDK_DISABLED=true`` gives);
* ``sdk``     — a real ``TracerProvider`` with the tagger only (span creation cost);
* ``on``      — the production pipeline from ``tracing.pipeline.build_provider``: tagger +
  ``BatchSpanProcessor`` + ``PostgresSpanExporter`` writing to PostgreSQL in its thread.

A third workload, ``sql+llm``, gives the LLM a fixed 10 ms (still far faster than any
hosted model) to show how the same absolute cost weighs against a non-zero LLM latency.

``on`` is timed twice: the agent's own wall time (spans still queued at the end are
flushed after the clock stops), and ``on+flush`` with that flush inside — every span of
the repetition converted and written, all of it charged to the agent's iterations.
Figures are medians over the repetitions; overheads are medians of per-repetition ratios.

Run by ``bench_ingest.py`` (``make bench-ingest``) or alone:
``.venv/bin/python benchmarks/bench_overhead.py [--runs 100 --repeat 7]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

QUESTION = "When does the library open on weekends, and what is 1250 * 4 + 35?"
TOOL_ITERATIONS = 3  # then a final answer: 4 iterations per run
# For the one workload that is not zero-latency: still far faster than any hosted LLM.
LLM_LATENCY_S = 0.010


class InstantProvider:
    """A zero-latency LLM: tool calls for the first iterations, then an answer."""

    provider_name = "bench"
    model = "bench-instant"

    def __init__(self, tool_names: Sequence[str], latency_s: float = 0.0) -> None:
        self.tool_names = list(tool_names)
        self.latency_s = latency_s
        self.calls = 0

    async def complete(self, messages: list[dict[str, Any]], tools: list[Any]) -> Any:
        from campus_core.chat.llm.base import LLMResponse, ToolCall

        self.calls += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        step = sum(1 for m in messages[last_user:] if m["role"] == "assistant")
        tokens_in = sum(len(str(m.get("content") or "")) for m in messages) // 4
        if step < TOOL_ITERATIONS:
            arguments = {
                "search_knowledge": {"query": "library weekend hours"},
                "calculate": {"expression": "1250 * 4 + 35"},
            }
            return LLMResponse(
                content="",
                tool_calls=[
                    ToolCall(id=f"call_{self.calls}_{name}", name=name, arguments=arguments[name])
                    for name in self.tool_names
                ],
                finish_reason="tool_calls",
                input_tokens=tokens_in,
                output_tokens=24,
                model=self.model,
                response_id=f"resp-{self.calls}",
            )
        return LLMResponse(
            content="The library is open 10 am to 10 pm on weekends; 1250 * 4 + 35 = 5035.",
            finish_reason="stop",
            input_tokens=tokens_in,
            output_tokens=30,
            model=self.model,
            response_id=f"resp-{self.calls}",
        )


async def _timed_runs(agent: Any, runs: int) -> tuple[float, int]:
    iterations = 0
    started = time.perf_counter()
    for _ in range(runs):
        async for event in agent.run(QUESTION):
            if event["type"] == "llm":
                iterations += 1
            elif event["type"] == "error":
                raise RuntimeError(event["message"])
    return time.perf_counter() - started, iterations


def measure(conninfo: str, workload: str, runs: int, repeat: int) -> dict[str, Any]:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import NoOpTracerProvider

    from campus_core.chat.agent_core import AgentCore
    from tracing.export import PostgresSpanExporter
    from tracing.pipeline import TRACER_NAME, build_provider
    from tracing.pipeline.tagger import AgentRunTaggerProcessor

    tool_names = ["calculate"] if workload == "cpu" else ["search_knowledge", "calculate"]
    latency = LLM_LATENCY_S if workload == "sql+llm" else 0.0
    agent = AgentCore(InstantProvider(tool_names, latency), max_iterations=TOOL_ITERATIONS + 2)
    exporter = PostgresSpanExporter(conninfo=conninfo)
    pipeline = build_provider(exporter)
    bare = TracerProvider(resource=Resource.create({SERVICE_NAME: "bench"}))
    bare.add_span_processor(AgentRunTaggerProcessor())
    tracers = {
        "off": NoOpTracerProvider().get_tracer(TRACER_NAME),
        "sdk": bare.get_tracer(TRACER_NAME),
        "on": pipeline.get_tracer(TRACER_NAME),
    }
    per_iteration: dict[str, list[float]] = {mode: [] for mode in (*tracers, "on+flush")}
    loop = asyncio.new_event_loop()
    try:
        for tracer in tracers.values():  # warm-up: imports, caches, connections
            agent.tracer = tracer
            loop.run_until_complete(_timed_runs(agent, max(runs // 10, 3)))
        pipeline.force_flush()
        for rep in range(repeat):
            order = list(tracers) if rep % 2 == 0 else list(reversed(tracers))
            for mode in order:
                agent.tracer = tracers[mode]
                seconds, iterations = loop.run_until_complete(_timed_runs(agent, runs))
                per_iteration[mode].append(seconds / iterations * 1e6)
                if mode == "on":
                    started = time.perf_counter()
                    assert pipeline.force_flush(60_000), "spans did not reach PostgreSQL"
                    flush = time.perf_counter() - started
                    per_iteration["on+flush"].append((seconds + flush) / iterations * 1e6)
    finally:
        from asgiref.sync import sync_to_async
        from django.db import connections

        # search_knowledge ran in asgiref's worker thread: close that thread's connection
        # too, or the benchmark database cannot be dropped at the end.
        loop.run_until_complete(sync_to_async(connections.close_all)())
        loop.close()
        pipeline.shutdown()
    assert exporter.stats.spans_lost == 0 and exporter.stats.spans_written > 0, exporter.stats
    base = per_iteration["off"]
    return {
        "workload": workload,
        "iterations_per_rep": iterations,
        "spans_written": exporter.stats.spans_written,
        "median_us": {mode: statistics.median(v) for mode, v in per_iteration.items()},
        "overhead": {
            mode: statistics.median(x / b - 1 for x, b in zip(v, base, strict=True))
            for mode, v in per_iteration.items()
            if mode != "off"
        },
    }


def overhead(conninfo: str, runs: int = 100, repeat: int = 7) -> list[dict[str, Any]]:
    from campus_core.chat.knowledge import seed_documents

    seed_documents()
    results = []
    print(
        f"\nAGENT OVERHEAD (in-process LLM, {runs} runs x 4 iterations per mode, "
        f"median of {repeat} repetitions)"
    )
    for workload in ("cpu", "sql", "sql+llm"):
        # The 10 ms workload needs fewer runs for the same precision.
        result = measure(conninfo, workload, runs if workload != "sql+llm" else runs // 4, repeat)
        results.append(result)
        med, ovh = result["median_us"], result["overhead"]
        label = {
            "cpu": "calculate tool only (pure CPU, worst case)",
            "sql": "search_knowledge (PostgreSQL full-text query) + calculate",
            "sql+llm": f"as sql, but each LLM call takes {LLM_LATENCY_S * 1000:.0f} ms",
        }[workload]
        print(f"  workload {workload}: {label}")
        print(f"    off (NoOp tracer)        : {med['off']:8.0f} us/iteration")
        print(f"    sdk (spans, no export)   : {med['sdk']:8.0f} us/iteration  {ovh['sdk']:+7.1%}")
        verdict = "OK" if ovh["on"] < 0.05 else "MISSED"
        # The target is defined for a zero-latency LLM; the 10 ms row is context.
        target = f"[target < 5%: {verdict}]" if workload != "sql+llm" else "[reference]"
        print(
            f"    on  (PostgreSQL pipeline): {med['on']:8.0f} us/iteration  "
            f"{ovh['on']:+7.1%} ({med['on'] - med['off']:+.0f} us)  {target}"
        )
        print(
            f"    on + flush of every span : {med['on+flush']:8.0f} us/iteration  "
            f"{ovh['on+flush']:+7.1%} ({med['on+flush'] - med['off']:+.0f} us)"
        )
    return results


def main(argv: Sequence[str] | None = None) -> None:
    from bench_ingest import bench_database, machine_line, setup_django

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    setup_django()
    with bench_database(args.keep_db) as conninfo:
        print(machine_line(conninfo))
        overhead(conninfo, args.runs, args.repeat)


if __name__ == "__main__":
    main()
