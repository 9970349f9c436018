// The trace list: filters and sort order (kept in the URL), the table, cursor pagination.

import {
  fetchConversation, fetchFilterOptions, fetchRetention, fetchTracePage, fetchTraceStats, urlFor,
  viewerConfig,
} from "./api.js";
import {
  clear, formatDuration, formatNumber, formatTime, h, showError, statusBadge,
} from "./dom.js";
import {
  checkedFilter, ensureOption, fillForm, listFilter, pageSize, params, renderPager,
  renderSortHeaders, wireNavigation,
} from "./list_page.js";

// URL parameter → TraceFilter field. The names are the same on purpose: a filtered URL
// reads like the GraphQL query it runs.
const FILTER_FIELDS = [
  "search", "status", "model", "serviceName", "toolUsed", "minDurationMs",
  "startedAfter", "startedBefore", "conversationId",
];
// Filters the API takes as "any of these": the URL may repeat them (?status=a&status=b).
const LIST_FILTERS = new Set(["status", "model", "serviceName"]);
const SELECTS = { status: "statuses", model: "models", serviceName: "services", toolUsed: "tools" };
const ORDER_FIELDS = new Set(["startedAt", "totalDurationMs", "totalTokens"]);
const DEFAULT_ORDER = "-startedAt";
// Parameters that belong to one page of one result set, dropped when the query changes.
const PAGE_PARAMS = ["after", "before"];
const LIST_URL_KEY = "agentTraces.listUrl";

const root = document.querySelector('[data-viewer="list"]');
const form = root.querySelector("form.trace-filters");
const table = root.querySelector("#trace-list");
const tbody = table.querySelector("tbody");
const summary = root.querySelector(".trace-list-summary");
const pager = root.querySelector(".trace-list-pager");
const stats = root.querySelector(".trace-stats");
const retentionLine = root.querySelector(".trace-retention");
const config = viewerConfig();
let loadSeq = 0;

// The TraceFilter for the current URL; a value the API would reject is reported here,
// in words, rather than sent.
function filtersFromUrl(search) {
  const filters = {};
  const problems = [];
  for (const name of FILTER_FIELDS) {
    if (LIST_FILTERS.has(name)) {
      listFilter(search, name, filters);
      continue;
    }
    const raw = (search.get(name) || "").trim();
    if (!raw || checkedFilter(name, raw, filters, problems)) continue;
    if (name === "conversationId") {
      if (/^\d+$/.test(raw)) filters[name] = raw;
      else problems.push(`Conversation id must be a number, not "${raw}".`);
    } else {
      filters[name] = raw;
    }
  }
  return { filters, problems };
}

function orderFromUrl(search) {
  const raw = search.get("order") || DEFAULT_ORDER;
  const field = raw.replace(/^-/, "");
  if (!ORDER_FIELDS.has(field)) return { key: DEFAULT_ORDER, ordering: [{ startedAt: "DESC" }] };
  const descending = raw.startsWith("-");
  // Nulls (a run still in flight has no duration) go last in either direction.
  const direction = descending ? "DESC_NULLS_LAST" : "ASC_NULLS_LAST";
  const ordering = [{ [field]: direction }];
  if (field !== "startedAt") ordering.push({ startedAt: "DESC" });
  return { key: raw, ordering };
}

function fillOptions(options) {
  const current = params();
  for (const [name, key] of Object.entries(SELECTS)) {
    const select = form.elements.namedItem(name);
    const first = select.options[0];
    select.replaceChildren(first, ...(options[key] || []).map((v) => h("option", { value: v }, v)));
    const value = current.get(name) || "";
    ensureOption(select, value);
    select.value = value;
  }
}

function traceRow(trace) {
  const href = urlFor(config.traceUrlTemplate, trace.id);
  const query = trace.query || "(no query)";
  return h("tr", { dataset: { traceId: trace.id, status: trace.status || "" } },
    h("td", { class: "nowrap" }, formatTime(trace.startedAt)),
    h("td", { class: "trace-query" },
      h("a", { href, title: query }, query.length > 120 ? `${query.slice(0, 120)}…` : query)),
    h("td", {}, statusBadge(trace.status)),
    h("td", {}, trace.model || "–"),
    h("td", { class: "trace-service" }, trace.serviceName || "–"),
    h("td", { class: "num nowrap" }, formatDuration(trace.totalDurationMs)),
    h("td", { class: "num nowrap" },
      `${formatNumber(trace.totalInputTokens)} / ${formatNumber(trace.totalOutputTokens)}`),
    h("td", { class: "num" }, formatNumber(trace.iterationCount)),
    h("td", { class: "trace-tools" },
      (trace.toolsUsed || []).length
        ? trace.toolsUsed.map((tool) => h("span", { class: "tool-chip" }, tool))
        : "–"),
  );
}

function pageArgs(search) {
  const size = pageSize(search);
  if (search.get("before")) return { last: size, before: search.get("before") };
  return { first: size, after: search.get("after") };
}

async function renderConversationNote(search) {
  const slot = form.querySelector(".trace-filters-conversation");
  clear(slot);
  const id = (search.get("conversationId") || "").trim();
  if (!/^\d+$/.test(id)) return;
  try {
    const conversation = await fetchConversation(id);
    if (!conversation) {
      slot.append(`Conversation ${id} does not exist.`);
      return;
    }
    slot.append("Traces of ", h("a", {
      href: urlFor(config.conversationUrlTemplate, conversation.id),
      class: "conversation-link",
    }, conversation.title ? `conversation ${conversation.id} (${conversation.title})` : `conversation ${conversation.id}`),
    " in the conversation viewer");
  } catch {
    // The list itself reports API problems; this note is a convenience.
  }
}

// Aggregates over every run the filters match (not just this page). A failure here only
// hides the line: the list below reports API problems itself.
async function renderStats(filters, seq) {
  stats.hidden = true;
  try {
    const s = await fetchTraceStats(filters);
    if (seq !== loadSeq || !s.count) return;
    const put = (key, text) => { stats.querySelector(`[data-stat="${key}"]`).textContent = text; };
    put("errors", `${formatNumber(s.errors)} of ${formatNumber(s.count)} (${(s.errorRate * 100).toFixed(1)}%)`);
    put("p50", formatDuration(s.durationMs.p50));
    put("p95", formatDuration(s.durationMs.p95));
    put("p99", formatDuration(s.durationMs.p99));
    put("tokens", `${formatNumber(s.inputTokens)} / ${formatNumber(s.outputTokens)}`);
    stats.hidden = false;
  } catch {
    // See above.
  }
}

async function load() {
  const seq = ++loadSeq;
  const search = params();
  fillForm(form, search, FILTER_FIELDS);
  const { filters, problems } = filtersFromUrl(search);
  const { key: orderKey, ordering } = orderFromUrl(search);
  renderSortHeaders(table, search, orderKey, PAGE_PARAMS);
  if (problems.length) {
    stats.hidden = true;
    showError(root, problems.join(" "));
    clear(tbody);
    summary.textContent = "No traces loaded: fix the filters above.";
    clear(pager);
    return;
  }
  showError(root, "");
  summary.textContent = "Loading traces…";
  root.setAttribute("aria-busy", "true");
  renderConversationNote(search);
  renderStats(filters, seq);
  try {
    const page = await fetchTracePage(filters, ordering, pageArgs(search));
    if (seq !== loadSeq) return;
    const fragment = document.createDocumentFragment();
    for (const trace of page.traces) fragment.appendChild(traceRow(trace));
    if (!page.traces.length) {
      fragment.appendChild(h("tr", {}, h("td", { colspan: "9", class: "empty" }, "No traces match these filters.")));
    }
    tbody.replaceChildren(fragment);
    const total = page.totalCount;
    summary.textContent = `${formatNumber(total)} ${total === 1 ? "trace" : "traces"}` +
      (page.traces.length < total ? `, ${page.traces.length} on this page` : "");
    renderPager(pager, search, page, page.traces.length, PAGE_PARAMS);
    sessionStorage.setItem(LIST_URL_KEY, window.location.pathname + window.location.search);
    root.dataset.ready = "true";
  } catch (err) {
    if (seq !== loadSeq) return;
    showError(root, err.message);
    clear(tbody);
    summary.textContent = "No traces loaded.";
    clear(pager);
  } finally {
    if (seq === loadSeq) root.removeAttribute("aria-busy");
  }
}

wireNavigation(root, form, FILTER_FIELDS, load);

// The retention window, one line above the list (TRACE_RETENTION_DAYS on the server).
function renderRetention(window) {
  const oldest = window.oldestKept ? `; oldest stored run started ${formatTime(window.oldestKept)} UTC` : "";
  retentionLine.textContent = window.days == null
    ? `Retention: every run is kept${oldest}.`
    : `Retention: ${window.days} days — runs started before ${formatTime(window.cutoff)} UTC are removed${oldest}.`;
  retentionLine.hidden = false;
}

fetchFilterOptions().then(fillOptions).catch((err) => showError(root, err.message));
fetchRetention().then(renderRetention).catch((err) => showError(root, err.message));
load();
