"""The staff trace viewer (/admin/agent-traces/) in a real Chromium.

Everything is real: the ASGI app under uvicorn (``live_server_url``), PostgreSQL, traces
written by agent runs through ChatService (offline LLM on loopback) or by a real OTel
TracerProvider feeding the real PostgresSpanExporter, and the page reading them through
/graphql/ with the staff session. Screenshots go to artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from django import db
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.test import Client
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from campus_core.chat.llm.offline import campus_policy
from tests.agent_helpers import run_turn
from tracing.conventions import attributes as A
from tracing.export import PostgresSpanExporter
from tracing.models import OTelSpan, OTelTrace
from tracing.pipeline import service_resource

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(settings.BASE_DIR) / "artifacts"
PASSWORD = "viewer-test-password"
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed at /usr/bin/chromium (run `make browser`)",
    ),
]


# --- browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API parks an event loop on this thread; Django's async-safety check
    # sees it and would refuse this module's plain synchronous ORM calls (fixtures, flush).
    # They never run inside that loop, so the check is lifted, for this module only.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    # A page error is a bug in the viewer's modules: collect them, fail the test on any.
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Chromium reports what a Content-Security-Policy blocked as a console error.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )

    def on_dialog(dialog: Any) -> None:
        errors.append(f"dialog opened: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"


def make_user(username: str, *, staff: bool) -> AbstractBaseUser:
    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, is_staff=staff
    )
    if staff:
        # A staff member, not a superuser: what the conversation viewer needs, no more.
        user.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="chat", codename__in=["view_conversation", "view_message"]
            )
        )
    return user


def admin_login(page: Any, base: str, username: str, next_path: str = "/admin/") -> None:
    page.goto(f"{base}/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_load_state()


def wait_list(page: Any) -> None:
    page.wait_for_selector('[data-viewer="list"][data-ready="true"]:not([aria-busy])')


def list_rows(page: Any) -> Any:
    return page.locator("#trace-list tbody tr[data-trace-id]")


def open_detail(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector('[data-viewer="detail"][data-ready="true"]')


def panel_field(page: Any, key: str) -> str:
    return str(page.locator(f'.span-panel [data-field="{key}"] dd').inner_text()).strip()


def click_span(page: Any, span_id: str) -> None:
    page.locator(f'.wf-row[data-span-id="{span_id}"] .wf-name').click()
    page.wait_for_selector(f'.span-panel .span-facts [data-field="id"] code:text-is("{span_id}")')
    page.wait_for_selector(".span-panel .span-attributes")


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


# --- traces written through the real OTel pipeline --------------------------------------


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000) * 1000


class SpanWriter:
    """Real SDK spans with chosen timestamps, exported by the real PostgresSpanExporter."""

    def __init__(self, exporter: PostgresSpanExporter, resource: Resource | None = None) -> None:
        self.provider = TracerProvider(resource=resource or service_resource())
        self.provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=4096,
                max_export_batch_size=512,
                schedule_delay_millis=60_000,
            )
        )
        self.tracer = self.provider.get_tracer("tests.admin_viewer")

    def span(
        self,
        name: str,
        start: datetime,
        duration_ms: float,
        parent: Span | None = None,
        attributes: dict[str, Any] | None = None,
        error: str | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Span:
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            name, context=context, kind=kind, attributes=attributes or {}, start_time=_ns(start)
        )
        if error:
            span.add_event(
                "exception",
                {"exception.type": "RuntimeError", "exception.message": error},
                timestamp=_ns(start + timedelta(milliseconds=duration_ms)),
            )
            span.set_status(Status(StatusCode.ERROR, error))
        # Ended at once with its own end time: parents are ended by the caller after.
        span.end(end_time=_ns(start + timedelta(milliseconds=duration_ms)))
        return span

    def open(
        self,
        name: str,
        start: datetime,
        parent: Span | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(
            name, context=context, attributes=attributes or {}, start_time=_ns(start)
        )

    def flush(self) -> None:
        assert self.provider.force_flush(30_000), "spans did not reach PostgreSQL"


def trace_id_of(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def span_id_of(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")


@dataclass
class LegacyTwin:
    trace_id: str
    chat_id: str
    tool_id: str


def write_agent_run(
    writer: SpanWriter, *, legacy: bool, question: str, start: datetime
) -> LegacyTwin:
    """One agent run (agent → iteration → llm + tool), in current or legacy naming."""
    if legacy:
        root = writer.open(
            A.LEGACY_SPAN_AGENT_RUN,
            start,
            attributes={A.LEGACY_AGENT_QUERY: question, A.LEGACY_LLM_MODEL: "gpt-legacy"},
        )
    else:
        root = writer.open(
            "invoke_agent campuscore_agent",
            start,
            attributes={
                A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
                A.GEN_AI_REQUEST_MODEL: "gpt-legacy",
                A.GEN_AI_INPUT_MESSAGES: json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": question}]}]
                ),
            },
        )
    iteration = writer.open("iteration_1", start + timedelta(milliseconds=2), parent=root)
    if legacy:
        chat_attrs: dict[str, Any] = {
            A.LEGACY_LLM_MODEL: "gpt-legacy",
            A.LEGACY_LLM_PROVIDER: "openai",
            A.LEGACY_LLM_INPUT_TOKENS: 321,
            A.LEGACY_LLM_OUTPUT_TOKENS: 54,
        }
        tool_name, tool_attrs = (
            f"{A.LEGACY_SPAN_TOOL_CALL_PREFIX}lookup",
            {
                A.LEGACY_TOOL_NAME: "lookup",
                A.LEGACY_TOOL_INPUT: '{"room": "B12"}',
                A.LEGACY_TOOL_OUTPUT: "open 9-17",
            },
        )
    else:
        chat_attrs = {
            A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
            A.GEN_AI_REQUEST_MODEL: "gpt-legacy",
            A.GEN_AI_PROVIDER_NAME: "openai",
            A.GEN_AI_USAGE_INPUT_TOKENS: 321,
            A.GEN_AI_USAGE_OUTPUT_TOKENS: 54,
        }
        tool_name, tool_attrs = (
            "execute_tool lookup",
            {
                A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
                A.GEN_AI_TOOL_NAME: "lookup",
                A.GEN_AI_TOOL_CALL_ARGUMENTS: '{"room": "B12"}',
                A.GEN_AI_TOOL_CALL_RESULT: "open 9-17",
            },
        )
    chat = writer.span(
        A.LEGACY_SPAN_LLM_CALL if legacy else "chat gpt-legacy",
        start + timedelta(milliseconds=3),
        40,
        parent=iteration,
        attributes=chat_attrs,
    )
    tool = writer.span(
        tool_name, start + timedelta(milliseconds=45), 10, parent=iteration, attributes=tool_attrs
    )
    iteration.end(end_time=_ns(start + timedelta(milliseconds=60)))
    root.end(end_time=_ns(start + timedelta(milliseconds=62)))
    return LegacyTwin(trace_id_of(root), span_id_of(chat), span_id_of(tool))


def write_simple_run(
    writer: SpanWriter,
    *,
    question: str,
    start: datetime,
    duration_ms: float,
    model: str,
    tool: str | None,
    error: str | None = None,
) -> str:
    """An agent run of chosen start, length, model and tool; returns its trace id."""
    root = writer.open(
        "invoke_agent campuscore_agent",
        start,
        attributes={
            A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
            A.GEN_AI_REQUEST_MODEL: model,
            A.GEN_AI_INPUT_MESSAGES: json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": question}]}]
            ),
            A.AGENT_STATUS: "error" if error else "completed",
        },
    )
    writer.span(
        f"chat {model}",
        start + timedelta(milliseconds=1),
        duration_ms / 2,
        parent=root,
        attributes={A.GEN_AI_OPERATION_NAME: A.OP_CHAT, A.GEN_AI_REQUEST_MODEL: model},
    )
    if tool:
        writer.span(
            f"execute_tool {tool}",
            start + timedelta(milliseconds=duration_ms / 2 + 2),
            duration_ms / 4,
            parent=root,
            attributes={A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL, A.GEN_AI_TOOL_NAME: tool},
        )
    if error:
        root.set_status(Status(StatusCode.ERROR, error))
    root.end(end_time=_ns(start + timedelta(milliseconds=duration_ms)))
    return trace_id_of(root)


def _vendor_down(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 500, {"error": {"message": "upstream overloaded"}}


@dataclass
class AgentRuns:
    calculate: OTelTrace
    search: OTelTrace
    failed: OTelTrace


@pytest.fixture
def agent_runs(offline_llm: Any, flush: Callable[[], None]) -> AgentRuns:
    """Three real chat turns: one calls calculate, one search_knowledge, one fails."""

    def turns() -> list[uuid.UUID]:
        try:
            return [
                uuid.UUID(run_turn(question, offline_llm(policy))[-1]["trace_id"])
                for question, policy in (
                    ("What is 12 * 7?", campus_policy),
                    ("When is the registration deadline?", campus_policy),
                    ("Is the library open on Sunday?", _vendor_down),
                )
            ]
        finally:
            db.connections.close_all()

    # In a thread of their own: async_to_sync refuses a thread where Playwright's loop lives.
    with ThreadPoolExecutor(max_workers=1) as pool:
        ids = pool.submit(turns).result(timeout=120)
    flush()
    traces = [OTelTrace.objects.get(pk=i) for i in ids]
    assert [t.status for t in traces] == ["completed", "completed", "error"]
    assert traces[0].tools_used == ["calculate"]
    assert traces[1].tools_used == ["search_knowledge"]
    return AgentRuns(*traces)


# --- access --------------------------------------------------------------------------------


def test_anonymous_and_non_staff_users_are_refused(
    live_server_url: str, page: Any, agent_runs: AgentRuns
) -> None:
    base = live_server_url
    detail = f"/admin/agent-traces/{agent_runs.calculate.id.hex}/"

    # Anonymous: sent to the admin login, with the page to come back to.
    page.goto(f"{base}/admin/agent-traces/")
    assert urlparse(page.url).path == "/admin/login/"
    assert parse_qs(urlparse(page.url).query)["next"] == ["/admin/agent-traces/"]

    # Signed in but not staff (a session made by Django's own login): still the login page,
    # saying so, and nothing of the trace on it.
    make_user("visitor", staff=False)
    client = Client()
    assert client.login(username="visitor", password=PASSWORD)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}]
    )
    for path in ("/admin/agent-traces/", detail):
        page.goto(base + path)
        assert urlparse(page.url).path == "/admin/login/"
        assert "not authorized to access this page" in page.inner_text("#content")
        assert agent_runs.calculate.query not in page.content()
        assert page.locator("[data-viewer]").count() == 0

    # The data path refuses them too, whatever the page does.
    status = page.evaluate(
        """async () => (await fetch('/graphql/', {method: 'POST',
             headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({query: '{ filterOptions { tools } }'})})).status"""
    )
    assert status == 403


def test_the_admin_app_list_entry_leads_to_the_viewer(
    live_server_url: str, page: Any, agent_runs: AgentRuns
) -> None:
    base = live_server_url
    get_user_model().objects.create_superuser("root", password=PASSWORD)
    admin_login(page, base, "root")

    # Traces have their usual row in the app list, and it opens the viewer, not an
    # ORM changelist; an old-style change URL opens the trace's page.
    page.click("tr.model-oteltrace th a")
    wait_list(page)
    assert urlparse(page.url).path == "/admin/agent-traces/"
    assert list_rows(page).count() == 3
    trace_id = agent_runs.search.id
    page.goto(f"{base}/admin/tracing/oteltrace/{trace_id}/change/")
    page.wait_for_selector('[data-viewer="detail"][data-ready="true"]')
    assert urlparse(page.url).path == f"/admin/agent-traces/{trace_id.hex}/"
    assert page.inner_text(".trace-summary [data-field=toolsUsed]") == "search_knowledge"


def test_viewer_pages_carry_a_content_security_policy_that_blocks_inline_script(
    live_server_url: str, browser: Any, agent_runs: AgentRuns
) -> None:
    base = live_server_url
    make_user("policy", staff=True)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    try:
        admin_login(page, base, "policy")
        # Both viewer pages send the policy, and work under it (no violation reported).
        for path in ("/admin/agent-traces/", f"/admin/agent-traces/{agent_runs.calculate.id.hex}/"):
            response = page.goto(base + path)
            assert response is not None
            policy = response.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            page.wait_for_selector("[data-viewer][data-ready=true]")
        assert not [e for e in console_errors if "Content Security Policy" in e]

        # An inline script (what an escaping bug would let in) does not run; the browser
        # reports it, which is what the page fixture fails every other test on.
        page.evaluate(
            """() => { const s = document.createElement('script');
                       s.textContent = 'window.injected = true'; document.body.append(s); }"""
        )
        assert page.evaluate("window.injected === undefined")
        assert any("Content Security Policy" in e for e in console_errors)
    finally:
        context.close()
    # Pages outside the viewer are left alone (the admin login, the chat API).
    assert "content-security-policy" not in httpx.get(f"{base}/admin/login/").headers


# --- the main flow -------------------------------------------------------------------------


def test_staff_filters_opens_a_trace_reads_a_chat_span_and_crosses_to_the_conversation(
    live_server_url: str, page: Any, agent_runs: AgentRuns
) -> None:
    base = live_server_url
    make_user("staffer", staff=True)
    calc = agent_runs.calculate

    # Given a staff member on the admin index, the viewer is one click away.
    admin_login(page, base, "staffer")
    screenshot(page, "admin_index.png")
    page.click("#agent-observability-module a:text('Agent trace viewer')")
    wait_list(page)
    assert urlparse(page.url).path == "/admin/agent-traces/"
    assert page.locator(".breadcrumbs a:text('Home')").count() == 1
    assert page.inner_text("#site-name")  # the admin header
    assert list_rows(page).count() == 3
    assert page.inner_text(".trace-list-summary").startswith("3 traces")
    # The retention window, from Query.retention (TRACE_RETENTION_DAYS unset here).
    page.wait_for_selector(".trace-retention:not([hidden])")
    retention = page.inner_text(".trace-retention")
    assert retention.startswith("Retention: every run is kept; oldest stored run started ")

    # The dropdowns come from filterOptions.
    tool_options = page.locator("select[name=toolUsed] option").all_inner_texts()
    assert {"calculate", "search_knowledge"} <= set(tool_options)
    status_options = page.locator("select[name=status] option").all_inner_texts()
    assert {"completed", "error"} <= set(status_options)

    # When filtering by tool and status, only the calculate run remains, and the URL says so.
    page.select_option("select[name=toolUsed]", "calculate")
    page.select_option("select[name=status]", "completed")
    page.click(".trace-filters input[type=submit]")
    page.wait_for_url(re.compile(r"toolUsed=calculate"))
    wait_list(page)
    query = parse_qs(urlparse(page.url).query)
    assert query["toolUsed"] == ["calculate"] and query["status"] == ["completed"]
    assert list_rows(page).count() == 1
    row = list_rows(page).first
    assert row.get_attribute("data-trace-id") == calc.id.hex
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "What is 12 * 7?"
    assert cells[2] == "completed" and cells[3] == "test-model"
    assert cells[4] == settings.OTEL_SERVICE_NAME
    assert cells[6] == f"{calc.total_input_tokens:,} / {calc.total_output_tokens:,}"
    assert cells[7] == str(calc.iteration_count) and cells[8] == "calculate"

    # The filtered view survives a reload (it lives in the URL).
    page.reload()
    wait_list(page)
    assert list_rows(page).count() == 1
    assert page.input_value("select[name=toolUsed]") == "calculate"
    assert page.input_value("select[name=status]") == "completed"

    # Status error alone finds the failed run; error with calculate finds nothing.
    page.select_option("select[name=toolUsed]", "")
    page.select_option("select[name=status]", "error")
    page.click(".trace-filters input[type=submit]")
    page.wait_for_url(re.compile(r"status=error"))
    wait_list(page)
    assert [r.get_attribute("data-trace-id") for r in list_rows(page).all()] == [
        agent_runs.failed.id.hex
    ]
    page.goto(f"{base}/admin/agent-traces/?status=error&toolUsed=calculate")
    wait_list(page)
    assert list_rows(page).count() == 0
    assert "No traces match" in page.inner_text("#trace-list tbody")

    page.goto(f"{base}/admin/agent-traces/?toolUsed=calculate&status=completed")
    wait_list(page)
    screenshot(page, "agent_traces_list.png")

    # When opening the trace, the waterfall has one row per span, by kind.
    row = list_rows(page).first
    row.locator("td.trace-query a").click()
    page.wait_for_selector('[data-viewer="detail"][data-ready="true"]')
    assert urlparse(page.url).path == f"/admin/agent-traces/{calc.id.hex}/"
    # The breadcrumb leads back to the filtered list the reader came from.
    back = page.get_attribute(".breadcrumbs a.back-to-list", "href") or ""
    assert parse_qs(urlparse(back).query) == {"toolUsed": ["calculate"], "status": ["completed"]}
    spans = list(calc.spans.order_by("started_at", "span_id"))
    rows = page.locator(".wf-row")
    assert rows.count() == len(spans)
    kinds = set(rows.evaluate_all("rows => rows.map(r => r.dataset.kind)"))
    assert {"agent", "iteration", "llm", "tool"} <= kinds
    agent_row = page.locator(f'.wf-row[data-span-id="{calc.root_span_id}"]')
    assert agent_row.get_attribute("data-depth") == "0"
    assert page.locator(".wf-axis .wf-tick").count() >= 2

    # Clicking a chat span shows its model and token counts, as stored.
    chat = next(s for s in spans if s.name.startswith("chat "))
    click_span(page, chat.span_id)
    assert panel_field(page, "model") == "test-model"
    assert panel_field(page, "inputTokens") == f"{chat.attributes[A.GEN_AI_USAGE_INPUT_TOKENS]:,}"
    assert panel_field(page, "outputTokens") == f"{chat.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS]:,}"
    assert panel_field(page, "finishReasons") == "tool_calls"
    raw_keys = page.locator(".span-attributes tr[data-key]").evaluate_all(
        "rows => rows.map(r => r.dataset.key)"
    )
    assert set(raw_keys) == set(chat.attributes)
    assert parse_qs(urlparse(page.url).query)["span"] == [chat.span_id]
    screenshot(page, "agent_trace_detail.png")

    # A tool span shows the resolved tool fields, its JSON input formatted.
    tool = next(s for s in spans if s.name == "execute_tool calculate")
    click_span(page, tool.span_id)
    assert panel_field(page, "toolName") == "calculate"
    assert json.loads(panel_field(page, "toolInput")) == {"expression": "12 * 7"}
    assert "84" in panel_field(page, "toolOutput")

    # Collapsing the agent span hides its subtree; expanding brings it back.
    agent_row.locator(".wf-toggle").click()
    assert page.locator(".wf-row").count() == 1
    assert page.inner_text(".wf-hidden-count") == f"(+{len(spans) - 1})"
    page.locator(f'.wf-row[data-span-id="{calc.root_span_id}"] .wf-toggle').click()
    assert page.locator(".wf-row").count() == len(spans)

    # Then the conversation and its messages, in the admin's conversation viewer...
    page.click(".trace-summary a.conversation-link")
    page.wait_for_load_state()
    assert urlparse(page.url).path == f"/admin/chat/conversation/{calc.conversation_id}/change/"
    content = page.inner_text("#content")
    assert "What is 12 * 7?" in content
    assert calc.ai_message is not None and calc.ai_message.content in content
    screenshot(page, "conversation_viewer.png")

    # ...and back to that conversation's traces in the viewer.
    page.click("a.agent-traces-link")
    wait_list(page)
    assert parse_qs(urlparse(page.url).query)["conversationId"] == [str(calc.conversation_id)]
    assert [r.get_attribute("data-trace-id") for r in list_rows(page).all()] == [calc.id.hex]
    page.wait_for_selector(".trace-filters-conversation a.conversation-link")
    assert page.input_value("input[name=conversationId]") == str(calc.conversation_id)


def test_a_page_keeps_within_the_users_in_flight_limit_and_waits_out_a_429(
    live_server_url: str, page: Any, agent_runs: AgentRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversation's list opens five queries at once (list, stats, options, retention,
    conversation). The API answers 429 past GRAPHQL_MAX_IN_FLIGHT_PER_USER requests in
    flight per user; the page keeps below it and waits out a 429's Retry-After."""
    from graphql_api import views as graphql_views

    monkeypatch.setattr(settings, "GRAPHQL_MAX_IN_FLIGHT_PER_USER", 2)
    base = live_server_url
    staffer = make_user("staffer", staff=True)
    calc = agent_runs.calculate
    admin_login(page, base, "staffer")
    url = f"{base}/admin/agent-traces/?conversationId={calc.conversation_id}"
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if "/graphql/" in r.url else None)

    # Within the limit: every query answered, none refused.
    page.goto(url)
    wait_list(page)
    page.wait_for_selector(".trace-filters-conversation a.conversation-link")
    page.wait_for_selector(".trace-retention:not([hidden])")
    assert len(statuses) >= 5 and set(statuses) == {200}, statuses
    assert not page.locator(".viewer-error:not([hidden])").count()
    assert [r.get_attribute("data-trace-id") for r in list_rows(page).all()] == [calc.id.hex]

    # The user's slots taken elsewhere (another tab's requests still running): the page's
    # queries get 429, wait, and are answered once the slots are free again.
    graphql_views._in_flight[staffer.pk] += 2
    try:
        with page.expect_response(lambda r: "/graphql/" in r.url and r.status == 429):
            page.goto(url)
    finally:
        graphql_views._in_flight[staffer.pk] -= 2
    wait_list(page)
    page.wait_for_selector(".trace-filters-conversation a.conversation-link")
    assert [r.get_attribute("data-trace-id") for r in list_rows(page).all()] == [calc.id.hex]
    assert not page.locator(".viewer-error:not([hidden])").count()


def test_a_span_is_shared_by_url_and_messages_link_to_the_admin(
    live_server_url: str, page: Any, agent_runs: AgentRuns
) -> None:
    base = live_server_url
    make_user("staffer", staff=True)
    failed = agent_runs.failed
    root = OTelSpan.objects.get(trace=failed, span_id=failed.root_span_id)
    admin_login(page, base, "staffer")

    # A URL with ?span= opens the trace with that span's panel.
    open_detail(page, f"{base}/admin/agent-traces/{failed.id.hex}/?span={root.span_id}")
    page.wait_for_selector(".span-panel .span-attributes")
    assert panel_field(page, "status") == "ERROR"
    assert "HTTP 500" in page.inner_text(".span-panel .span-status-message")
    # The failure is marked in the waterfall and its exception event is listed.
    error_rows = page.locator(".wf-row.is-error")
    assert error_rows.count() >= 2  # the agent span and the chat span that failed
    assert page.locator(".wf-row.is-error .wf-error-mark").count() == error_rows.count()
    assert "exception" in page.inner_text(".span-panel .span-events")

    # The user message links to its admin page.
    page.click(".trace-summary a.message-link")
    page.wait_for_load_state()
    assert urlparse(page.url).path == f"/admin/chat/message/{failed.user_message_id}/change/"
    assert "Is the library open on Sunday?" in page.inner_text("#content")


def test_filters_sorting_and_pages_live_in_the_url(
    live_server_url: str, page: Any, db_exporter: PostgresSpanExporter
) -> None:
    base = live_server_url
    writer = SpanWriter(db_exporter)
    day = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    alpha = write_simple_run(
        writer,
        question="alpha: library hours",
        start=day,
        duration_ms=500,
        model="model-a",
        tool="lookup",
    )
    beta = write_simple_run(
        writer,
        question="beta: tuition",
        start=day + timedelta(days=1),
        duration_ms=1500,
        model="model-b",
        tool="calculate",
        error="vendor down",
    )
    gamma = write_simple_run(
        writer,
        question="gamma: dorms",
        start=day + timedelta(days=2),
        duration_ms=50,
        model="model-a",
        tool=None,
    )
    writer.flush()
    make_user("staffer", staff=True)
    admin_login(page, base, "staffer", next_path="/admin/agent-traces/")
    wait_list(page)

    def shown() -> list[str]:
        wait_list(page)
        return [str(r.get_attribute("data-trace-id")) for r in list_rows(page).all()]

    def submit(**fields: str) -> None:
        page.click(".trace-filters-reset")
        wait_list(page)
        for name, value in fields.items():
            selector = f".trace-filters [name={name}]"
            if page.locator(selector).evaluate("e => e.tagName") == "SELECT":
                page.select_option(selector, value)
            else:
                page.fill(selector, value)
        page.click(".trace-filters input[type=submit]")
        page.wait_for_function(
            "names => names.every(n => new URLSearchParams(location.search).has(n))",
            arg=list(fields),
        )

    assert shown() == [gamma, beta, alpha]  # newest first
    # Aggregates of everything the filters match, from traceStats.
    page.wait_for_selector(".trace-stats:not([hidden])")
    assert page.inner_text('.trace-stats [data-stat="errors"]') == "1 of 3 (33.3%)"
    assert page.inner_text('.trace-stats [data-stat="p50"]') == "500 ms"

    submit(minDurationMs="400")
    assert shown() == [beta, alpha]
    page.wait_for_selector(
        '.trace-stats:not([hidden]) [data-stat="errors"]:text-is("1 of 2 (50.0%)")'
    )
    submit(startedAfter="2026-03-02T00:00", startedBefore="2026-03-03T00:00")
    assert shown() == [beta]
    assert parse_qs(urlparse(page.url).query)["startedAfter"] == ["2026-03-02T00:00"]
    submit(model="model-a")
    assert shown() == [gamma, alpha]
    submit(search="ALPHA")
    assert shown() == [alpha]
    submit(toolUsed="lookup", status="completed")
    assert shown() == [alpha]

    # Sorting by duration: slowest first, then the other way; the order is in the URL.
    page.goto(f"{base}/admin/agent-traces/")
    assert shown() == [gamma, beta, alpha]
    page.click("#trace-list th[data-order=totalDurationMs] a")
    page.wait_for_url(re.compile(r"order=-totalDurationMs"))
    assert shown() == [beta, alpha, gamma]
    page.click("#trace-list th[data-order=totalDurationMs] a")
    page.wait_for_url(re.compile(r"order=totalDurationMs"))
    assert shown() == [gamma, alpha, beta]
    page.reload()
    assert shown() == [gamma, alpha, beta]

    # Two per page: the count covers all three; next, previous and first follow cursors.
    page.goto(f"{base}/admin/agent-traces/?first=2")
    assert shown() == [gamma, beta]
    assert page.inner_text(".trace-list-summary") == "3 traces, 2 on this page"
    assert page.locator(".page-previous").count() == 0
    page.click(".page-next")
    page.wait_for_url(re.compile(r"after="))
    assert shown() == [alpha]
    assert page.locator(".page-next").count() == 0
    page.reload()
    assert shown() == [alpha]
    page.click(".page-previous")
    page.wait_for_url(re.compile(r"before="))
    assert shown() == [gamma, beta]
    page.click(".page-first")
    page.wait_for_url(re.compile(r"\?first=2$"))
    assert shown() == [gamma, beta]
    # The browser's back button walks the same history.
    page.go_back()
    assert shown() == [gamma, beta]
    assert "before=" in page.url


def test_the_list_shows_and_filters_the_service_and_leaves_out_non_agent_traces(
    live_server_url: str, page: Any, db_exporter: PostgresSpanExporter
) -> None:
    base = live_server_url
    ours = SpanWriter(db_exporter)
    phoenix = SpanWriter(db_exporter, Resource.create({SERVICE_NAME: "phoenix-worker"}))
    edge = SpanWriter(db_exporter, Resource.create({SERVICE_NAME: "edge-proxy"}))
    day = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    local = write_simple_run(
        ours, question="local run", start=day, duration_ms=500, model="model-a", tool=None
    )
    remote = write_simple_run(
        phoenix,
        question="remote run",
        start=day + timedelta(hours=1),
        duration_ms=500,
        model="model-a",
        tool=None,
    )
    health = edge.span(
        "GET /health",
        day + timedelta(hours=2),
        20,
        kind=SpanKind.SERVER,
        attributes={A.HTTP_REQUEST_METHOD: "GET"},
    )
    for writer in (ours, phoenix, edge):
        writer.flush()
    make_user("staffer", staff=True)
    admin_login(page, base, "staffer", next_path="/admin/agent-traces/")
    wait_list(page)

    def shown() -> dict[str, str]:
        wait_list(page)
        return {
            str(r.get_attribute("data-trace-id")): r.locator("td.trace-service").inner_text()
            for r in list_rows(page).all()
        }

    # Agent runs only, each with its service; the HTTP-only trace is not a run.
    assert shown() == {local: settings.OTEL_SERVICE_NAME, remote: "phoenix-worker"}
    options = page.locator(".trace-filters [name=serviceName] option").all_inner_texts()
    assert options == [
        "Any service",
        *sorted([settings.OTEL_SERVICE_NAME, "edge-proxy", "phoenix-worker"]),
    ]
    page.select_option(".trace-filters [name=serviceName]", "phoenix-worker")
    page.click(".trace-filters input[type=submit]")
    page.wait_for_function("() => new URLSearchParams(location.search).has('serviceName')")
    assert shown() == {remote: "phoenix-worker"}
    # A shared URL asks for the same; the HTTP trace is still reachable by its id.
    page.goto(f"{base}/admin/agent-traces/?serviceName=edge-proxy")
    assert shown() == {}
    open_detail(page, f"{base}/admin/agent-traces/{trace_id_of(health)}/")
    assert page.locator(".wf-row").count() == 1


def test_bad_filters_and_unknown_traces_get_clear_messages(
    live_server_url: str, page: Any, agent_runs: AgentRuns
) -> None:
    base = live_server_url
    make_user("staffer", staff=True)
    admin_login(page, base, "staffer")

    page.goto(f"{base}/admin/agent-traces/?minDurationMs=fast")
    page.wait_for_selector(".viewer-error:not([hidden])")
    assert "Minimum duration must be a number" in page.inner_text(".viewer-error")
    assert list_rows(page).count() == 0

    # An impossible range is refused by the API, and its words reach the reader.
    page.goto(
        f"{base}/admin/agent-traces/?startedAfter=2026-01-02T00:00&startedBefore=2026-01-01T00:00"
    )
    page.wait_for_selector(".viewer-error:not([hidden])")
    assert "startedAfter" in page.inner_text(".viewer-error")

    page.goto(f"{base}/admin/agent-traces/{'ab' * 16}/")
    page.wait_for_selector(".viewer-error:not([hidden])")
    assert "No trace with id" in page.inner_text(".viewer-error")


# --- naming generations, untrusted text, size ---------------------------------------------


def test_legacy_named_trace_reads_like_a_genai_one(
    live_server_url: str, page: Any, db_exporter: PostgresSpanExporter
) -> None:
    base = live_server_url
    writer = SpanWriter(db_exporter)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    legacy = write_agent_run(writer, legacy=True, question="Where is room B12?", start=t0)
    genai = write_agent_run(
        writer, legacy=False, question="Where is room B12?", start=t0 + timedelta(seconds=1)
    )
    writer.flush()
    make_user("staffer", staff=True)
    admin_login(page, base, "staffer")

    def panel_genai(trace_id: str, span_id: str) -> str:
        open_detail(page, f"{base}/admin/agent-traces/{trace_id}/")
        click_span(page, span_id)
        return str(page.inner_text(".span-panel .span-genai"))

    def kinds(trace_id: str) -> list[str]:
        open_detail(page, f"{base}/admin/agent-traces/{trace_id}/")
        return list(page.locator(".wf-row").evaluate_all("rows => rows.map(r => r.dataset.kind)"))

    assert kinds(legacy.trace_id) == kinds(genai.trace_id) == ["agent", "iteration", "llm", "tool"]
    legacy_chat = panel_genai(legacy.trace_id, legacy.chat_id)
    assert legacy_chat == panel_genai(genai.trace_id, genai.chat_id)
    assert "gpt-legacy" in legacy_chat and "321" in legacy_chat and "54" in legacy_chat
    legacy_tool = panel_genai(legacy.trace_id, legacy.tool_id)
    assert legacy_tool == panel_genai(genai.trace_id, genai.tool_id)
    assert "lookup" in legacy_tool and "open 9-17" in legacy_tool
    # Raw attributes stay as stored: the legacy keys are still there to read.
    open_detail(page, f"{base}/admin/agent-traces/{legacy.trace_id}/")
    click_span(page, legacy.chat_id)
    assert page.locator(f'.span-attributes tr[data-key="{A.LEGACY_LLM_MODEL}"]').count() == 1

    page.goto(f"{base}/admin/agent-traces/?search=room+B12")
    wait_list(page)
    assert list_rows(page).count() == 2
    models = [r.locator("td").nth(3).inner_text() for r in list_rows(page).all()]
    assert models == ["gpt-legacy", "gpt-legacy"]


def test_markup_in_span_data_is_shown_as_text_and_never_runs(
    live_server_url: str, page: Any, db_exporter: PostgresSpanExporter
) -> None:
    base = live_server_url
    writer = SpanWriter(db_exporter)
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    root = writer.open(
        f"invoke_agent {XSS}",
        t0,
        attributes={
            A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
            A.GEN_AI_INPUT_MESSAGES: json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": f"hi {XSS}"}]}]
            ),
            A.AGENT_STATUS: "completed",
        },
    )
    tool = writer.span(
        f"execute_tool {XSS}",
        t0 + timedelta(milliseconds=5),
        12,
        parent=root,
        attributes={
            A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
            A.GEN_AI_TOOL_NAME: "search_knowledge",
            A.GEN_AI_TOOL_CALL_RESULT: XSS,
            "campuscore.note": XSS,
        },
        error=XSS,
    )
    root.end(end_time=_ns(t0 + timedelta(milliseconds=30)))
    writer.flush()
    trace_id, tool_id = trace_id_of(root), span_id_of(tool)
    make_user("staffer", staff=True)
    admin_login(page, base, "staffer")

    page.goto(f"{base}/admin/agent-traces/")
    wait_list(page)
    assert XSS in page.inner_text("#trace-list tbody td.trace-query")

    open_detail(page, f"{base}/admin/agent-traces/{trace_id}/")
    assert XSS in page.inner_text(".trace-summary [data-field=query]")
    click_span(page, tool_id)
    assert page.inner_text(f'.wf-row[data-span-id="{tool_id}"] .wf-name') == f"execute_tool {XSS}"
    assert page.inner_text('.span-attributes tr[data-key="campuscore.note"] td') == XSS
    assert panel_field(page, "toolOutput") == XSS
    assert page.inner_text(".span-panel .span-status-message") == XSS
    # Nothing from the data became markup, and nothing ran.
    assert page.locator(".agent-traces script, .agent-traces img").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_a_two_thousand_span_trace_opens_and_scrolls(
    live_server_url: str, page: Any, db_exporter: PostgresSpanExporter
) -> None:
    base = live_server_url
    writer = SpanWriter(db_exporter)
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    root = writer.open(
        "invoke_agent campuscore_agent",
        t0,
        attributes={A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT, A.AGENT_STATUS: "completed"},
    )
    writer.span(A.SPAN_KNOWLEDGE_ROUTING, t0, 1, parent=root)
    written = 2
    at = t0 + timedelta(milliseconds=1)
    last_span = root
    for number in range(1, 334):  # 333 iterations x 6 spans + root + routing = 2,000
        iteration = writer.open(f"iteration_{number}", at, parent=root)
        writer.span(A.SPAN_TOKEN_MANAGEMENT, at, 0.2, parent=iteration)
        chat = writer.open(
            "chat test-model",
            at + timedelta(milliseconds=1),
            parent=iteration,
            attributes={
                A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
                A.GEN_AI_REQUEST_MODEL: "test-model",
                A.GEN_AI_USAGE_INPUT_TOKENS: 100 + number,
                A.GEN_AI_USAGE_OUTPUT_TOKENS: number,
            },
        )
        writer.span(
            "POST",
            at + timedelta(milliseconds=1.5),
            6,
            parent=chat,
            kind=SpanKind.CLIENT,
            attributes={A.HTTP_REQUEST_METHOD: "POST"},
        )
        chat.end(end_time=_ns(at + timedelta(milliseconds=8)))
        tool = writer.open(
            "execute_tool calculate",
            at + timedelta(milliseconds=8),
            parent=iteration,
            attributes={
                A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
                A.GEN_AI_TOOL_NAME: "calculate",
            },
        )
        last_span = writer.span(
            "SELECT",
            at + timedelta(milliseconds=8.5),
            1,
            parent=tool,
            attributes={A.DB_SYSTEM: "postgresql"},
            error="deadlock detected" if number == 200 else None,
        )
        tool.end(end_time=_ns(at + timedelta(milliseconds=10)))
        at += timedelta(milliseconds=10)
        iteration.end(end_time=_ns(at))
        written += 6
    root.end(end_time=_ns(at + timedelta(milliseconds=1)))
    writer.flush()
    trace_id = trace_id_of(root)
    assert written == 2000
    assert OTelTrace.objects.get(pk=uuid.UUID(trace_id)).span_count == 2000
    make_user("staffer", staff=True)
    admin_login(page, base, "staffer")

    started = time.perf_counter()
    open_detail(page, f"{base}/admin/agent-traces/{trace_id}/")
    page.wait_for_selector(".wf-row")
    wall_ms = (time.perf_counter() - started) * 1000
    render_ms = page.get_attribute('[data-viewer="detail"]', "data-render-ms")
    print(
        f"\n2,000-span trace: page open to first rows {wall_ms:.0f} ms "
        f"(fetch + render); waterfall build and first paint in JS {render_ms} ms"
    )
    assert page.inner_text(".trace-summary [data-field=spanCount]") == "2,000"
    # Virtualized: a screenful of rows exists, not 2,000.
    assert 0 < page.locator(".wf-row").count() < 200
    assert page.locator(".wf-row").first.get_attribute("data-span-id") == span_id_of(root)

    # Scrolling to the end draws the last span (pre-order: the last SELECT) in place.
    started = time.perf_counter()
    page.locator(".wf-viewport").evaluate("v => { v.scrollTop = v.scrollHeight; }")
    last_row = page.locator(f'.wf-row[data-span-id="{span_id_of(last_span)}"]')
    last_row.wait_for()
    print(f"scroll to the end and redraw: {(time.perf_counter() - started) * 1000:.0f} ms")
    assert 0 < page.locator(".wf-row").count() < 200
    last_row.locator(".wf-name").click()
    page.wait_for_selector(f'.span-panel [data-field="id"] code:text-is("{span_id_of(last_span)}")')

    # The one failing span is marked; selecting it by URL expands and scrolls to it.
    failing = OTelSpan.objects.get(trace_id=uuid.UUID(trace_id), status_code="ERROR")
    open_detail(page, f"{base}/admin/agent-traces/{trace_id}/?span={failing.span_id}")
    failing_row = page.locator(f'.wf-row[data-span-id="{failing.span_id}"]')
    failing_row.wait_for()
    assert "is-error" in (failing_row.get_attribute("class") or "")
    assert "deadlock detected" in page.inner_text(".span-panel .span-status-message")

    # Collapse all leaves the agent span and its 334 children; the iteration holding the
    # failure says so while collapsed. Expand all restores every row.
    page.click(".wf-collapse-all")
    assert page.locator(".wf-spacer").evaluate("s => s.style.height") == f"{335 * 24}px"
    holder = OTelSpan.objects.get(trace_id=uuid.UUID(trace_id), name="iteration_200")
    # Row 201: the agent span, knowledge_routing, then iterations 1..199 above it.
    page.locator(".wf-viewport").evaluate("v => { v.scrollTop = 201 * 24; }")
    collapsed = page.locator(f'.wf-row[data-span-id="{holder.span_id}"]')
    collapsed.wait_for()
    assert collapsed.locator(".wf-error-below").count() == 1
    assert page.locator(".wf-error-below").count() == 1
    page.click(".wf-expand-all")
    assert page.locator(".wf-spacer").evaluate("s => s.style.height") == f"{2000 * 24}px"
    screenshot(page, "agent_trace_detail_2000_spans.png")


def test_graphiql_works_offline_and_runs_a_query(live_server_url: str, page: Any) -> None:
    """GraphiQL's files come from our static folder (same bytes as strawberry's pinned
    unpkg files, SRI-checked by the browser), so it renders with no internet."""
    base = live_server_url
    make_user("explorer", staff=True)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    with page.expect_response(lambda r: urlparse(r.url).path == "/graphql/") as served:
        admin_login(page, base, "explorer", next_path="/graphql/")
    page.wait_for_selector(".graphiql-container .graphiql-query-editor")
    # It runs under a Content-Security-Policy admitting only its own inline blocks (the
    # page fixture fails the test on any violation the browser reports).
    policy = served.value.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in policy and "'unsafe-inline'" not in policy
    assert not [url for url in requested if not url.startswith(base)], requested
    assert any(
        "/static/graphql_api/graphiql/graphiql@3.8.3/graphiql.min.js" in u for u in requested
    )

    # A query put into the editor runs against the live endpoint, with the session's CSRF.
    # Set through the editor's own API: typed keys could reach CodeMirror before it took
    # the focus (CI once sent "filterOptions { statuses } }" without its first brace).
    page.locator(".graphiql-query-editor .CodeMirror").first.evaluate(
        "e => e.CodeMirror.setValue('{ filterOptions { statuses } }')"
    )
    page.click(".graphiql-execute-button")
    page.wait_for_function(
        "() => document.querySelector('.result-window')?.innerText.includes('filterOptions')"
    )
    assert '"statuses"' in page.inner_text(".result-window")
