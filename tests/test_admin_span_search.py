"""The viewer's Spans tab (/admin/agent-traces/spans/) in a real Chromium: span search
through the same ``spans`` GraphQL query as any dashboard, filters in the URL, rows that
open their trace with the span selected, under the viewer's Content-Security-Policy (the
``page`` fixture fails a test on any violation or page error)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.test_admin_viewer import (
    CHROMIUM,
    SpanWriter,
    admin_login,
    browser,
    make_user,
    page,
    write_agent_run,
)
from tracing.export import PostgresSpanExporter

__all__ = ["browser", "page"]  # fixtures, shared with the viewer's other browser tests

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def wait_spans(page: Any) -> None:
    page.wait_for_selector('[data-viewer="spans"][data-ready="true"]:not([aria-busy])')


def rows(page: Any) -> list[tuple[str, str, str]]:
    """(span name, kind, trace id) of every row shown."""
    return [
        (
            r.locator(".span-name").inner_text(),
            r.locator(".kind-chip").inner_text(),
            str(r.get_attribute("data-trace-id")),
        )
        for r in page.locator("#span-list tbody tr[data-span-id]").all()
    ]


def test_spans_tab_finds_legacy_and_genai_spans_and_opens_the_span(
    live_server_url: str, page: Any, db_exporter: PostgresSpanExporter
) -> None:
    base = live_server_url
    writer = SpanWriter(db_exporter)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    legacy = write_agent_run(writer, legacy=True, question="Where is B12?", start=t0)
    genai = write_agent_run(
        writer, legacy=False, question="Where is B12?", start=t0 + timedelta(seconds=1)
    )
    writer.flush()
    make_user("staffer", staff=True)
    admin_login(page, base, "staffer")

    # The tab is reachable from the trace list.
    page.goto(f"{base}/admin/agent-traces/")
    page.click(".viewer-tabs a:text-is('Spans')")
    wait_spans(page)
    assert urlparse(page.url).path == "/admin/agent-traces/spans/"
    assert len(rows(page)) == 8  # every span of both runs, newest first

    # An attribute filter in legacy names finds the GenAI-named span too, and the reverse.
    for key in ("llm.model", "gen_ai.request.model"):
        response = page.goto(
            f"{base}/admin/agent-traces/spans/?kind=LLM&attrKey={key}&attrOp=equals"
            "&attrValue=gpt-legacy"
        )
        assert response is not None
        assert "script-src 'self'" in response.headers["content-security-policy"]
        wait_spans(page)
        assert sorted(rows(page)) == sorted(
            [("llm_call", "llm", legacy.trace_id), ("chat gpt-legacy", "llm", genai.trace_id)]
        )
        assert page.input_value("input[name=attrKey]") == key

    # The form writes the filters into the URL.
    page.goto(f"{base}/admin/agent-traces/spans/")
    wait_spans(page)
    page.select_option("select[name=kind]", "TOOL")
    page.fill("input[name=toolName]", "lookup")
    page.click("form.span-filters input[type=submit]")
    wait_spans(page)
    query = parse_qs(urlparse(page.url).query)
    assert query == {"kind": ["TOOL"], "toolName": ["lookup"]}
    assert sorted(name for name, _, _ in rows(page)) == ["execute_tool lookup", "tool_call.lookup"]

    # A row opens its trace with that span selected.
    page.click(f'#span-list tr[data-span-id="{legacy.tool_id}"] a.span-link')
    page.wait_for_selector('[data-viewer="detail"][data-ready="true"]')
    assert urlparse(page.url).path == f"/admin/agent-traces/{legacy.trace_id}/"
    assert parse_qs(urlparse(page.url).query) == {"span": [legacy.tool_id]}
    page.wait_for_selector(
        f'.span-panel .span-facts [data-field="id"] code:text-is("{legacy.tool_id}")'
    )


def test_spans_tab_pages_sorts_and_reports_bad_filters(
    live_server_url: str, page: Any, db_exporter: PostgresSpanExporter
) -> None:
    base = live_server_url
    writer = SpanWriter(db_exporter)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    for i in range(3):
        write_agent_run(
            writer, legacy=bool(i % 2), question=f"q{i}", start=t0 + timedelta(seconds=i)
        )
    writer.flush()
    make_user("staffer", staff=True)
    admin_login(page, base, "staffer")

    # Pages of 5 through the cursor, sorted by duration (longest first), in the URL.
    page.goto(f"{base}/admin/agent-traces/spans/?first=5&order=-durationMs")
    wait_spans(page)
    seen: list[tuple[str, str, str]] = []
    while True:
        seen.extend(rows(page))
        durations = page.locator("#span-list tbody tr td:nth-child(7)").all_inner_texts()
        assert len(durations) <= 5
        if page.locator("a.page-next").count() == 0:
            break
        page.click("a.page-next")
        wait_spans(page)
        assert "after" in parse_qs(urlparse(page.url).query)
    assert len(seen) == len(set(seen)) == 12  # 3 runs of 4 spans, each once
    assert seen[0][0] in ("agent_run", "invoke_agent campuscore_agent")  # the longest

    # A comparison with a non-number is explained, and nothing is shown.
    page.goto(f"{base}/admin/agent-traces/spans/?attrKey=llm.input_tokens&attrOp=gt&attrValue=lots")
    page.wait_for_selector(".viewer-error:not([hidden])")
    assert "not a number" in page.inner_text(".viewer-error")
    # An error of the API (a malformed trace id) is shown as the API words it.
    page.goto(f"{base}/admin/agent-traces/spans/?traceId=nope")
    page.wait_for_selector(".viewer-error:not([hidden])")
    assert "Invalid trace id" in page.inner_text(".viewer-error")
