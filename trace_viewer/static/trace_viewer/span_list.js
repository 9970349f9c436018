// The Spans tab: span search through the `spans` query, filters and order kept in the URL,
// forward cursor pagination; each row links to its trace with the span selected.

import { fetchSpanPage, isError, spanKind, urlFor, viewerConfig } from "./api.js";
import { clear, formatDuration, formatNumber, formatTime, h, showError } from "./dom.js";

const PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 200;
// URL parameter → SpanFilter field (same names). Lists: the API takes "any of these".
const LIST_FILTERS = ["kind", "name", "model", "toolName", "status"];
const TEXT_FILTERS = ["minDurationMs", "startedAfter", "startedBefore", "traceId"];
const ATTRIBUTE_PARAMS = ["attrKey", "attrOp", "attrValue"];
const NUMERIC_OPS = new Set(["gt", "gte", "lt", "lte"]);
const ORDER_FIELDS = new Set(["startedAt", "durationMs"]);
const DEFAULT_ORDER = "-startedAt";

const root = document.querySelector('[data-viewer="spans"]');
const form = root.querySelector("form.span-filters");
const table = root.querySelector("#span-list");
const tbody = table.querySelector("tbody");
const summary = root.querySelector(".span-list-summary");
const pager = root.querySelector(".span-list-pager");
const config = viewerConfig();
let loadSeq = 0;

function params() {
  return new URLSearchParams(window.location.search);
}

// datetime-local values are read as UTC (see formatTime).
function utcIso(local) {
  const withSeconds = /T\d\d:\d\d$/.test(local) ? `${local}:00` : local;
  const date = new Date(`${withSeconds}Z`);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

// The attribute value as typed: JSON when it parses (42, true, "x", [..]), else the text.
function jsonValue(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// The SpanFilter for the current URL; what the API would reject is said here, in words.
function filtersFromUrl(search) {
  const filters = {};
  const problems = [];
  for (const name of LIST_FILTERS) {
    const values = search.getAll(name).map((v) => v.trim()).filter(Boolean);
    if (values.length) filters[name] = values;
  }
  for (const name of TEXT_FILTERS) {
    const raw = (search.get(name) || "").trim();
    if (!raw) continue;
    if (name === "minDurationMs") {
      const value = Number(raw);
      if (Number.isFinite(value) && value >= 0) filters[name] = value;
      else problems.push(`Minimum duration must be a number of milliseconds, not "${raw}".`);
    } else if (name === "traceId") {
      filters[name] = raw;
    } else {
      const iso = utcIso(raw);
      if (iso) filters[name] = iso;
      else problems.push(`"${raw}" is not a date and time.`);
    }
  }
  const key = (search.get("attrKey") || "").trim();
  if (key) {
    const op = search.get("attrOp") || "equals";
    const raw = search.get("attrValue") || "";
    if (op === "exists") {
      filters.attributes = [{ key, exists: raw.trim().toLowerCase() !== "false" }];
    } else if (NUMERIC_OPS.has(op)) {
      const value = Number(raw);
      if (raw.trim() && Number.isFinite(value)) filters.attributes = [{ key, [op]: value }];
      else problems.push(`"${raw}" is not a number to compare ${key} with.`);
    } else if (op === "contains") {
      filters.attributes = [{ key, contains: raw }];
    } else {
      filters.attributes = [{ key, equals: jsonValue(raw) }];
    }
  }
  return { filters, problems };
}

function orderFromUrl(search) {
  const raw = search.get("order") || DEFAULT_ORDER;
  const field = raw.replace(/^-/, "");
  if (!ORDER_FIELDS.has(field)) return { key: DEFAULT_ORDER, ordering: [] };
  return { key: raw, ordering: [{ [field]: raw.startsWith("-") ? "DESC" : "ASC" }] };
}

function fillForm(search) {
  for (const name of [...LIST_FILTERS, ...TEXT_FILTERS, ...ATTRIBUTE_PARAMS]) {
    const field = form.elements.namedItem(name);
    if (!field) continue;
    const value = search.get(name) || (name === "attrOp" ? "equals" : "");
    if (field.tagName === "SELECT" && ![...field.options].some((o) => o.value === value)) {
      field.appendChild(h("option", { value }, value));
    }
    field.value = value;
  }
}

function renderSortHeaders(search, orderKey) {
  for (const th of table.querySelectorAll("th[data-order]")) {
    const field = th.dataset.order;
    if (!th.dataset.label) th.dataset.label = th.textContent.trim();
    const active = orderKey.replace(/^-/, "") === field;
    const descending = orderKey.startsWith("-");
    const next = new URLSearchParams(search);
    next.delete("after");
    next.set("order", active && descending ? field : `-${field}`);
    th.setAttribute("aria-sort", active ? (descending ? "descending" : "ascending") : "none");
    th.replaceChildren(h("a", { href: `?${next}`, "data-nav": "", class: "sort-link" },
      th.dataset.label, active ? (descending ? " ▼" : " ▲") : ""));
  }
}

function spanRow(span) {
  const traceUrl = urlFor(config.traceUrlTemplate, span.traceId);
  const spanUrl = `${traceUrl}?${new URLSearchParams({ span: span.id })}`;
  const genAi = span.genAi || {};
  const tokens = genAi.inputTokens == null && genAi.outputTokens == null
    ? "–"
    : `${formatNumber(genAi.inputTokens ?? 0)} / ${formatNumber(genAi.outputTokens ?? 0)}`;
  return h("tr", { dataset: { spanId: span.id, traceId: span.traceId } },
    h("td", { class: "nowrap" }, formatTime(span.startedAt)),
    h("td", { class: "span-name" }, h("a", { href: spanUrl, class: "span-link" }, span.name)),
    h("td", {}, h("span", { class: `kind-chip kind-${spanKind(span)}` }, spanKind(span))),
    h("td", {}, isError(span.status) ? h("span", { class: "status-badge status-error" }, "ERROR") : span.status),
    h("td", {}, genAi.model || "–"),
    h("td", {}, genAi.toolName || "–"),
    h("td", { class: "num nowrap" }, formatDuration(span.durationMs)),
    h("td", { class: "num nowrap" }, tokens),
    h("td", { class: "nowrap" }, h("a", { href: traceUrl, class: "trace-link" }, span.traceId.slice(0, 12))),
  );
}

function pageSize(search) {
  const value = Number(search.get("first"));
  return Number.isInteger(value) && value > 0 ? Math.min(value, MAX_PAGE_SIZE) : PAGE_SIZE;
}

function renderPager(search, page, count) {
  clear(pager);
  const base = new URLSearchParams(search);
  base.delete("after");
  if (search.get("after")) {
    pager.append(h("a", { href: base.toString() ? `?${base}` : "?", class: "page-first", "data-nav": "" }, "« First page"));
  }
  if (page.hasNextPage && page.endCursor && count) {
    const next = new URLSearchParams(base);
    next.set("after", page.endCursor);
    pager.append(h("a", { href: `?${next}`, class: "page-next", "data-nav": "" }, "Next page ›"));
  }
}

async function load() {
  const seq = ++loadSeq;
  const search = params();
  fillForm(search);
  const { filters, problems } = filtersFromUrl(search);
  const { key: orderKey, ordering } = orderFromUrl(search);
  renderSortHeaders(search, orderKey);
  if (problems.length) {
    showError(root, problems.join(" "));
    clear(tbody);
    clear(pager);
    summary.textContent = "No spans loaded: fix the filters above.";
    return;
  }
  showError(root, "");
  summary.textContent = "Loading spans…";
  root.setAttribute("aria-busy", "true");
  try {
    const page = await fetchSpanPage(filters, ordering, {
      first: pageSize(search), after: search.get("after"),
    });
    if (seq !== loadSeq) return;
    const fragment = document.createDocumentFragment();
    for (const span of page.spans) fragment.appendChild(spanRow(span));
    if (!page.spans.length) {
      fragment.appendChild(h("tr", {}, h("td", { colspan: "9", class: "empty" }, "No spans match these filters.")));
    }
    tbody.replaceChildren(fragment);
    summary.textContent = `${formatNumber(page.spans.length)} ${page.spans.length === 1 ? "span" : "spans"} on this page` +
      (page.hasNextPage ? ", more on the next" : "");
    renderPager(search, page, page.spans.length);
    root.dataset.ready = "true";
  } catch (err) {
    if (seq !== loadSeq) return;
    showError(root, err.message);
    clear(tbody);
    clear(pager);
    summary.textContent = "No spans loaded.";
  } finally {
    if (seq === loadSeq) root.removeAttribute("aria-busy");
  }
}

function navigate(url) {
  window.history.pushState(null, "", url);
  load();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const current = params();
  const next = new URLSearchParams();
  for (const name of [...LIST_FILTERS, ...TEXT_FILTERS, "attrKey", "attrValue"]) {
    const value = String(form.elements.namedItem(name).value || "").trim();
    if (value) next.set(name, value);
  }
  if (next.get("attrKey")) next.set("attrOp", form.elements.namedItem("attrOp").value);
  for (const keep of ["order", "first"]) if (current.get(keep)) next.set(keep, current.get(keep));
  navigate(next.toString() ? `?${next}` : window.location.pathname);
});

root.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-nav]");
  if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  const href = link.getAttribute("href");
  navigate(href === "?" ? window.location.pathname : href);
});

window.addEventListener("popstate", load);

load();
