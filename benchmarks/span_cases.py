"""The span search cases of ``bench_query.py``: ``spans`` pages under each single filter,
attribute filters (resolved across naming generations), LLM spans of one model, and
``spanStats`` over one day and over the whole 30-day window.

Values (models, tools, days, trace ids) are read from the seeded database, so every case
asks for something that exists.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

SPAN_FIELDS = """
      edges { cursor node { id traceId name kind status startedAt durationMs
                            genAi { model toolName inputTokens outputTokens } } }
      pageInfo { hasNextPage endCursor }"""
SPANS_QUERY = (
    "query S($f: SpanFilter, $o: [SpanOrder!]! = [], $after: String) {"
    " spans(filters: $f, ordering: $o, first: 50, after: $after) {" + SPAN_FIELDS + " } }"
)
STATS_FIELDS = """
    count errors errorRate inputTokens outputTokens durationMs { p50 p95 p99 }
    byModel { key count errors p95DurationMs inputTokens }
    byTool { key count errors p95DurationMs }
    byName { key count }"""
STATS_QUERY = (
    "query T($f: SpanFilter, $bucket: TimeBucketSize!) { spanStats(filters: $f) {"
    + STATS_FIELDS
    + " timeSeries(bucket: $bucket) { start count errors p95DurationMs } } }"
)

SPAN_PAGE_TARGET_MS = 25.0
ATTRIBUTE_TARGET_MS = 50.0
STATS_DAY_TARGET_MS = 50.0
STATS_30_DAYS_TARGET_MS = 500.0


def span_cases(case: Any, sample_trace_ids: list[str]) -> list[Any]:
    """The cases, built with ``bench_query.Case`` (passed in: this module is imported by
    the script, not the reverse)."""
    from django.db import connection

    def one(sql: str) -> Any:
        with connection.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
            return row[0] if row else None

    lo: datetime = one("SELECT min(started_at) FROM tracing_otelspan")
    hi: datetime = one("SELECT max(started_at) FROM tracing_otelspan")
    mid = lo + (hi - lo) / 2
    p99 = one(
        "SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY duration_ms) FROM "
        "(SELECT duration_ms FROM tracing_otelspan TABLESAMPLE SYSTEM (5)) s"
    )
    days = [mid + timedelta(days=k) for k in range(-3, 4)]

    def filters(*fs: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"f": f} for f in fs]

    def attrs(*conditions: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"f": {"attributes": [c]}} for c in conditions]

    def day(d: datetime) -> dict[str, str]:
        return {"startedAfter": d.isoformat(), "startedBefore": (d + timedelta(days=1)).isoformat()}

    q = SPANS_QUERY
    cases = [
        case("spans: no filter (newest first)", q, [{}]),
        case("spans, page 21 (after cursor)", q, [], after_pages=20),
        case("spans kind: LLM", q, filters({"kind": ["LLM"]})),
        case("spans kind: DATABASE", q, filters({"kind": ["DATABASE"]})),
        case("spans name: knowledge_routing", q, filters({"name": ["knowledge_routing"]})),
        case(
            "spans name: execute_tool get_dining_menu",
            q,
            filters({"name": ["execute_tool get_dining_menu"]}),
            note="rare name",
        ),
        case("spans model: claude-haiku-4-5", q, filters({"model": ["claude-haiku-4-5"]})),
        case("spans model: offline-campus", q, filters({"model": ["offline-campus"]})),
        case("spans toolName: search_knowledge", q, filters({"toolName": ["search_knowledge"]})),
        case("spans toolName: get_dining_menu", q, filters({"toolName": ["get_dining_menu"]})),
        case("spans status: ERROR", q, filters({"status": ["ERROR"]})),
        case("spans minDurationMs: p99", q, filters({"minDurationMs": p99}), note=f"≥ {p99:.0f}"),
        case("spans startedAfter/Before: one day", q, filters(*(day(d) for d in days))),
        case(
            "spans traceId",
            q,
            filters(*({"traceId": t} for t in sample_trace_ids)),
            note=f"{len(sample_trace_ids)} traces",
        ),
        case("spans trace: {status: error}", q, filters({"trace": {"status": ["error"]}})),
        case("spans ordering: durationMs DESC", q, [{"o": [{"durationMs": "DESC"}]}]),
        case(
            "spans LLM of one model (kind + model)",
            q,
            filters({"kind": ["LLM"], "model": ["gpt-4o"]}),
        ),
        case(
            "spans attribute llm.model = claude-haiku-4-5",
            q,
            attrs({"key": "llm.model", "equals": "claude-haiku-4-5"}),
            note="alias of gen_ai.request.model",
        ),
        case(
            "spans attribute llm.provider = anthropic",
            q,
            attrs({"key": "llm.provider", "equals": "anthropic"}),
            note="3 names, no column",
        ),
        case(
            "spans attribute http.status_code = 429",
            q,
            attrs({"key": "http.status_code", "equals": 429}),
            note="rare, no column",
        ),
        case(
            "spans attribute gen_ai.usage.input_tokens > 4000",
            q,
            attrs({"key": "gen_ai.usage.input_tokens", "gt": 4000}),
        ),
        case(
            "spans attribute tool.input contains 'CS101'",
            q,
            attrs({"key": "tool.input", "contains": "CS101"}),
        ),
        case(
            "spanStats: one day",
            STATS_QUERY,
            [{"f": day(d), "bucket": "HOUR"} for d in days],
            count_variant=False,
            note="7 different days",
        ),
        case(
            "spanStats: one day, LLM spans",
            STATS_QUERY,
            [{"f": {**day(d), "kind": ["LLM"]}, "bucket": "HOUR"} for d in days],
            count_variant=False,
        ),
        case(
            "spanStats: 30 days",
            STATS_QUERY,
            [
                {
                    "f": {
                        "startedAfter": (hi - timedelta(days=30)).isoformat(),
                        "startedBefore": (hi + timedelta(seconds=1)).isoformat(),
                    },
                    "bucket": "DAY",
                }
            ],
            count_variant=False,
        ),
    ]
    return cases


def span_verdict(results: list[Any], pct: Any) -> list[str]:
    """The issue's span targets, at p95."""
    lines = []
    groups = (
        (
            "spans page, one filter",
            SPAN_PAGE_TARGET_MS,
            lambda n: (
                n.startswith("spans ")
                and not n.startswith("spans attribute")
                and "ordering" not in n
            ),
        ),
        (
            "attribute equality",
            ATTRIBUTE_TARGET_MS,
            lambda n: n.startswith("spans attribute") and " = " in n,
        ),
        ("spanStats one day", STATS_DAY_TARGET_MS, lambda n: n.startswith("spanStats: one day")),
        ("spanStats 30 days", STATS_30_DAYS_TARGET_MS, lambda n: n == "spanStats: 30 days"),
    )
    for label, target, member in groups:
        chosen = [r for r in results if member(r.name)]
        if not chosen:
            continue
        worst = max(chosen, key=lambda r: pct(r.samples, 95))
        p95 = pct(worst.samples, 95)
        shown = f"{p95:.1f} ms" if worst.samples else "capped"
        lines.append(
            f"{label}, p95 < {target:.0f} ms: worst p95 {shown} ({worst.name}) -> "
            f"{'met' if p95 < target else 'MISSED'}"
        )
    return lines
