// The trace page: summary, cross-links to the conversation viewer, the waterfall and the
// span detail panel. The selected span is kept in the URL (?span=…) so it can be shared.

import { fetchSpan, fetchTrace, spansFromColumns, urlFor, viewerConfig } from "./api.js";
import { formatDuration, formatNumber, formatTime, h, showError, statusBadge } from "./dom.js";
import { renderSpan, renderSpanError, renderSpanLoading } from "./span_panel.js";
import { Waterfall } from "./waterfall.js";

const LIST_URL_KEY = "agentTraces.listUrl";

const root = document.querySelector('[data-viewer="detail"]');
const traceId = root.dataset.traceId;
const config = viewerConfig();
const summary = root.querySelector(".trace-summary");
const layout = root.querySelector(".trace-layout");
const panelBody = root.querySelector(".span-panel-body");
const loading = root.querySelector(".viewer-loading");
let spanSeq = 0;

// Back to the list the reader came from, filters included.
const savedList = sessionStorage.getItem(LIST_URL_KEY);
if (savedList && savedList.startsWith(config.listUrl)) {
  document.querySelector(".breadcrumbs a.back-to-list")?.setAttribute("href", savedList);
}

function setField(name, ...content) {
  const slot = summary.querySelector(`[data-field="${name}"]`);
  if (slot) slot.replaceChildren(...content.map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
}

function messageLink(message, label) {
  if (!message) return "";
  return h("a", { href: urlFor(config.messageUrlTemplate, message.id), class: "message-link" }, label);
}

function renderSummary(trace) {
  setField("status", statusBadge(trace.status));
  setField("model", trace.model || "–");
  setField("startedAt", formatTime(trace.startedAt));
  setField("duration", formatDuration(trace.totalDurationMs));
  setField("tokens", `${formatNumber(trace.totalInputTokens)} / ${formatNumber(trace.totalOutputTokens)}`);
  setField("iterationCount", formatNumber(trace.iterationCount));
  setField("toolCallCount", formatNumber(trace.toolCallCount));
  setField("toolsUsed", (trace.toolsUsed || []).join(", ") || "–");
  setField("spanCount", formatNumber(trace.spanCount ?? (trace.spanColumns?.ids || []).length));
  if (trace.conversation) {
    const id = trace.conversation.id;
    setField("conversation",
      h("a", { href: urlFor(config.conversationUrlTemplate, id), class: "conversation-link" }, `Conversation ${id}`),
      " · ",
      h("a", { href: `${config.listUrl}?${new URLSearchParams({ conversationId: id })}`, class: "conversation-traces-link" },
        "all its traces"));
  } else {
    setField("conversation", "–");
  }
  setField("query", trace.userMessage?.content || trace.query || "–");
  setField("userMessageLink", messageLink(trace.userMessage, "(message)"));
  setField("answer", trace.aiMessage?.content || "–");
  setField("aiMessageLink", messageLink(trace.aiMessage, "(message)"));
  summary.hidden = false;
}

async function showSpan(span) {
  const seq = ++spanSeq;
  const url = new URL(window.location.href);
  url.searchParams.set("span", span.id);
  window.history.replaceState(null, "", url);
  renderSpanLoading(panelBody, span);
  try {
    const detail = await fetchSpan(traceId, span.id);
    if (seq !== spanSeq) return;
    if (!detail) renderSpanError(panelBody, span, "This span is no longer stored.");
    else renderSpan(panelBody, { ...span, ...detail });
  } catch (err) {
    if (seq === spanSeq) renderSpanError(panelBody, span, err.message);
  }
}

async function main() {
  let trace;
  try {
    trace = await fetchTrace(traceId);
  } catch (err) {
    loading.hidden = true;
    showError(root, err.message);
    return;
  }
  loading.hidden = true;
  if (!trace) {
    showError(root, `No trace with id ${traceId} is stored.`);
    return;
  }
  const started = performance.now();
  renderSummary(trace);
  layout.hidden = false;
  const container = root.querySelector(".waterfall");
  const spans = spansFromColumns(trace.spanColumns);
  if (!spans.length) {
    // A trace row exists as soon as any span arrives; this one has none left to show.
    container.replaceChildren(h("p", { class: "help" }, "No spans are stored for this trace."));
    root.dataset.ready = "true";
    return;
  }
  const waterfall = new Waterfall(container, spans, { onSelect: showSpan });
  root.querySelector(".wf-expand-all").addEventListener("click", () => waterfall.setAllCollapsed(false));
  root.querySelector(".wf-collapse-all").addEventListener("click", () => waterfall.setAllCollapsed(true));
  const wanted = new URL(window.location.href).searchParams.get("span");
  if (wanted) waterfall.select(wanted, { scroll: true });
  // Read by the browser test, which prints it (it is reported, never asserted on).
  root.dataset.renderMs = (performance.now() - started).toFixed(1);
  root.dataset.ready = "true";
}

main();
