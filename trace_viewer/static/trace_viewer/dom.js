// DOM building and formatting shared by the viewer's pages.
//
// Span data is untrusted (prompts, tool output, model text), so nothing here parses HTML:
// elements are made with createElement and every piece of data goes in as a text node.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "href") el.setAttribute("href", safeHref(value));
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

// Only same-site paths and http(s) links become hrefs; a "javascript:" URL never does.
function safeHref(value) {
  const text = String(value);
  if (text.startsWith("/") && !text.startsWith("//")) return text;
  if (text.startsWith("?") || text.startsWith("#")) return text;
  try {
    const url = new URL(text, window.location.href);
    if (url.protocol === "http:" || url.protocol === "https:") return url.href;
  } catch {
    // fall through
  }
  return "#";
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function showError(container, message) {
  const note = container.querySelector(".viewer-error");
  if (!note) return;
  note.textContent = message;
  note.hidden = !message;
}

export function formatDuration(ms) {
  if (ms == null || Number.isNaN(Number(ms))) return "–";
  const value = Number(ms);
  if (value < 1) return `${value.toFixed(2)} ms`;
  if (value < 1000) return `${value.toFixed(value < 10 ? 1 : 0)} ms`;
  if (value < 60_000) return `${(value / 1000).toFixed(2)} s`;
  const minutes = Math.floor(value / 60_000);
  return `${minutes} min ${((value % 60_000) / 1000).toFixed(0)} s`;
}

// Times are shown in UTC, as the date filters read them, so a shared URL means the same
// thing to every reader.
export function formatTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "").replace("Z", "");
}

export function formatNumber(value) {
  if (value == null) return "–";
  return Number(value).toLocaleString("en-US");
}

export function statusBadge(status) {
  const text = status || "unknown";
  const cls = String(text).toLowerCase().replace(/[^a-z0-9_-]/g, "_");
  return h("span", { class: `status-badge status-${cls}` }, text);
}

// A value as readable text: JSON (objects, or strings holding JSON) pretty-printed, large
// or multi-line text in a <pre>, short text inline.
export function valueNode(value, { inlineLimit = 120 } = {}) {
  let text;
  let structured = false;
  if (value !== null && typeof value === "object") {
    text = JSON.stringify(value, null, 2);
    structured = true;
  } else if (typeof value === "string") {
    text = value;
    const trimmed = value.trim();
    if ((trimmed.startsWith("{") || trimmed.startsWith("[")) && trimmed.length > 1) {
      try {
        text = JSON.stringify(JSON.parse(trimmed), null, 2);
        structured = true;
      } catch {
        // Not JSON after all: shown as text.
      }
    }
  } else {
    text = String(value);
  }
  if (structured || text.length > inlineLimit || text.includes("\n")) {
    return h("pre", { class: structured ? "json-value" : "text-value" }, text);
  }
  return h("span", { class: "inline-value" }, text);
}
