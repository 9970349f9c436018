// The span detail panel: resolved GenAI fields first, then every raw attribute, then events.
//
// The GenAI fields come resolved by the API (current, earlier and legacy names alike), so
// a legacy `llm_call` span reads exactly like a `chat <model>` one here.

import { asList, asObject, isError, spanKind } from "./api.js";
import { formatDuration, formatNumber, formatTime, h, valueNode } from "./dom.js";

const GENAI_FIELDS = [
  ["model", "Model"],
  ["provider", "Provider"],
  ["operation", "Operation"],
  ["inputTokens", "Input tokens", formatNumber],
  ["outputTokens", "Output tokens", formatNumber],
  ["finishReasons", "Finish reasons", (v) => (Array.isArray(v) ? v.join(", ") : v)],
  ["toolName", "Tool name"],
  ["toolSuccess", "Tool succeeded", (v) => (v ? "yes" : "no")],
  ["prompt", "Input"],
  ["toolInput", "Tool input"],
  ["toolOutput", "Tool output"],
];

function empty(value) {
  return value == null || value === "" || (Array.isArray(value) && value.length === 0);
}

function factList(rows, cls) {
  return h("dl", { class: cls }, rows.map(([label, node, key]) => h("div", { dataset: { field: key } },
    h("dt", {}, label), h("dd", {}, node))));
}

function genAiSection(genAi) {
  const rows = [];
  for (const [key, label, format] of GENAI_FIELDS) {
    const value = genAi ? genAi[key] : null;
    if (empty(value)) continue;
    rows.push([label, format ? h("span", {}, String(format(value))) : valueNode(value, { inlineLimit: 80 }), key]);
  }
  if (!rows.length) return null;
  return h("section", { class: "span-genai" }, h("h3", {}, "GenAI"), factList(rows, "span-facts genai-facts"));
}

function attributesSection(attributes) {
  const entries = Object.entries(asObject(attributes)).sort(([a], [b]) => a.localeCompare(b));
  return h("section", { class: "span-attributes" },
    h("h3", {}, `Attributes (${entries.length})`),
    entries.length
      ? h("table", { class: "attributes-table" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "key"), h("th", { scope: "col" }, "value"))),
        h("tbody", {}, entries.map(([key, value]) => h("tr", { dataset: { key } },
          h("th", { scope: "row", class: "attr-key" }, key),
          h("td", { class: "attr-value" }, valueNode(value))))))
      : h("p", { class: "help" }, "No attributes."));
}

function eventsSection(events, spanStart) {
  const list = asList(events);
  if (!list.length) return h("section", { class: "span-events" }, h("h3", {}, "Events"), h("p", { class: "help" }, "No events."));
  const start = spanStart ? new Date(spanStart).getTime() : NaN;
  return h("section", { class: "span-events" },
    h("h3", {}, `Events (${list.length})`),
    h("ol", { class: "event-list" }, list.map((event) => {
      const item = event && typeof event === "object" ? event : { name: String(event) };
      const at = item.timestamp ? new Date(item.timestamp).getTime() : NaN;
      const when = Number.isFinite(at) && Number.isFinite(start)
        ? `+${formatDuration(at - start)}` : formatTime(item.timestamp);
      const attrs = Object.entries(asObject(item.attributes));
      return h("li", { class: "event" },
        h("div", { class: "event-head" }, h("strong", {}, item.name || "(unnamed event)"), " ", h("span", { class: "quiet" }, when)),
        attrs.length
          ? h("table", { class: "attributes-table" }, h("tbody", {}, attrs.map(([key, value]) => h("tr", {},
            h("th", { scope: "row", class: "attr-key" }, key), h("td", { class: "attr-value" }, valueNode(value))))))
          : null);
    })));
}

export function renderSpanLoading(body, span) {
  body.replaceChildren(h("h3", { class: "span-title" }, span.name), h("p", { class: "help" }, "Loading span…"));
}

export function renderSpanError(body, span, message) {
  body.replaceChildren(h("h3", { class: "span-title" }, span.name), h("p", { class: "errornote" }, message));
}

export function renderSpan(body, span) {
  const kind = spanKind(span);
  const error = isError(span.status);
  const overview = [
    ["Kind", h("span", { class: `kind-chip kind-${kind}` }, kind), "kind"],
    ["Status", h("span", { class: error ? "status-badge status-error" : "status-badge" }, span.status || "UNSET"), "status"],
    ["Duration", formatDuration(span.durationMs), "durationMs"],
    ["Self time", formatDuration(span.selfDurationMs), "selfDurationMs"],
    ["Starts at", `+${formatDuration(span.offsetMs)}`, "offsetMs"],
    ["Span id", h("code", {}, span.id), "id"],
  ];
  if (span.op) overview.splice(1, 0, ["Op", span.op, "op"]);
  const sections = [
    h("h3", { class: "span-title" }, span.name),
    error && span.statusMessage ? h("p", { class: "errornote span-status-message" }, span.statusMessage) : null,
    factList(overview, "span-facts"),
    genAiSection(span.genAi),
    attributesSection(span.attributes),
    eventsSection(span.events, span.startedAt),
  ];
  // replaceChildren would print a null as the text "null".
  body.replaceChildren(...sections.filter(Boolean));
}
