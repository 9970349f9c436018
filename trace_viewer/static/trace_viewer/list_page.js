// What the trace list and the span list share: the URL as the page's state (filters,
// order, page size, cursor), the checks of the filter values typed into it, sortable
// column headers, cursor pagination links and in-page navigation.

import { clear, h } from "./dom.js";

const PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 200;

export function params() {
  return new URLSearchParams(window.location.search);
}

// datetime-local values are read as UTC (see formatTime).
export function utcIso(local) {
  const withSeconds = /T\d\d:\d\d$/.test(local) ? `${local}:00` : local;
  const date = new Date(`${withSeconds}Z`);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

// The "any of these" filter `name` of the URL (it may repeat: ?status=a&status=b).
export function listFilter(search, name, filters) {
  const values = search.getAll(name).map((v) => v.trim()).filter(Boolean);
  if (values.length) filters[name] = values;
}

// minDurationMs, startedAfter and startedBefore: the filter when the API would take the
// raw value, else a problem in words. Returns false for any other name.
export function checkedFilter(name, raw, filters, problems) {
  if (name === "minDurationMs") {
    const value = Number(raw);
    if (Number.isFinite(value) && value >= 0) filters[name] = value;
    else problems.push(`Minimum duration must be a number of milliseconds, not "${raw}".`);
  } else if (name === "startedAfter" || name === "startedBefore") {
    const iso = utcIso(raw);
    if (iso) filters[name] = iso;
    else problems.push(`"${raw}" is not a date and time.`);
  } else {
    return false;
  }
  return true;
}

export function ensureOption(select, value) {
  // Keep a shared URL's choice visible even if the options do not (yet) list it.
  if (value && ![...select.options].some((o) => o.value === value)) {
    select.appendChild(h("option", { value }, value));
  }
}

// The form's fields as the URL says (`defaults` for a parameter that is absent).
export function fillForm(form, search, names, defaults = {}) {
  for (const name of names) {
    const field = form.elements.namedItem(name);
    if (!field) continue;
    const value = search.get(name) || defaults[name] || "";
    if (field.tagName === "SELECT") ensureOption(field, value);
    field.value = value;
  }
}

// Each th[data-order] becomes a link to the URL sorted by its column (first click:
// descending, what a reader usually wants: newest, slowest, costliest first).
export function renderSortHeaders(table, search, orderKey, pageParams) {
  for (const th of table.querySelectorAll("th[data-order]")) {
    const field = th.dataset.order;
    if (!th.dataset.label) th.dataset.label = th.textContent.trim();
    const active = orderKey.replace(/^-/, "") === field;
    const descending = orderKey.startsWith("-");
    const next = new URLSearchParams(search);
    for (const p of pageParams) next.delete(p);
    next.set("order", active && descending ? field : `-${field}`);
    th.setAttribute("aria-sort", active ? (descending ? "descending" : "ascending") : "none");
    th.classList.toggle("sorted", active);
    th.replaceChildren(h("a", { href: `?${next}`, "data-nav": "", class: "sort-link" },
      th.dataset.label, active ? (descending ? " ▼" : " ▲") : ""));
  }
}

export function pageSize(search) {
  const value = Number(search.get("first"));
  return Number.isInteger(value) && value > 0 ? Math.min(value, MAX_PAGE_SIZE) : PAGE_SIZE;
}

// First / previous / next page links of a Relay page holding `count` rows. `pageParams`
// are the cursor parameters the list reads (["after"] for a forward-only list).
export function renderPager(pager, search, page, count, pageParams) {
  clear(pager);
  const base = new URLSearchParams(search);
  for (const p of pageParams) base.delete(p);
  const backwards = pageParams.includes("before") && Boolean(search.get("before"));
  const forwards = Boolean(search.get("after"));
  const links = [];
  // Relay reports "more items" only in the direction of travel; the other direction is
  // known to exist because we came from it.
  const hasPrevious = backwards ? page.hasPreviousPage : forwards;
  const hasNext = backwards ? true : page.hasNextPage;
  if (hasPrevious || backwards) {
    links.push(h("a", { href: base.toString() ? `?${base}` : "?", class: "page-first", "data-nav": "" }, "« First page"));
  }
  if (hasPrevious && page.startCursor) {
    const prev = new URLSearchParams(base);
    prev.set("before", page.startCursor);
    links.push(h("a", { href: `?${prev}`, class: "page-previous", "data-nav": "" }, "‹ Previous page"));
  }
  if (hasNext && page.endCursor && count) {
    const next = new URLSearchParams(base);
    next.set("after", page.endCursor);
    links.push(h("a", { href: `?${next}`, class: "page-next", "data-nav": "" }, "Next page ›"));
  }
  pager.append(...links);
}

// In-page navigation: the form's submit (its non-empty `names`, then whatever `extra`
// adds), links marked data-nav and history moves all reload through `load` without
// leaving the page. Sort order and page size survive a new filter; the cursor does not
// (it belongs to the old result set).
export function wireNavigation(root, form, names, load, extra = () => {}) {
  const navigate = (url) => {
    window.history.pushState(null, "", url);
    load();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const current = params();
    const next = new URLSearchParams();
    for (const name of names) {
      const value = String(form.elements.namedItem(name).value || "").trim();
      if (value) next.set(name, value);
    }
    extra(next);
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
}
