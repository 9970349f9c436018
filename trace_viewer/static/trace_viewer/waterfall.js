// The span waterfall: one row per span, indented by depth, a bar placed by start offset and
// sized by duration, coloured by kind; subtrees collapse; a time axis on top.
//
// Rows are virtualized: only those in (or near) the viewport exist in the DOM, absolutely
// placed inside a spacer as tall as all visible rows. A 2,000-span trace thus costs a few
// dozen row elements per frame instead of 2,000, and scrolling stays smooth.

import { isError, spanKind } from "./api.js";
import { formatDuration, h } from "./dom.js";

const ROW_HEIGHT = 24;
const OVERSCAN = 12;
const INDENT_PX = 14;
const MAX_VIEWPORT_PX = 640;

// 1, 2 or 5 × 10^n: tick spacing a reader can add up in their head.
function niceStep(raw) {
  if (!(raw > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (raw <= m * power) return m * power;
  return 10 * power;
}

export class Waterfall {
  constructor(container, spans, { onSelect } = {}) {
    this.container = container;
    this.onSelect = onSelect || (() => {});
    this.selectedId = null;
    this.scheduled = false;
    this.buildTree(spans);
    this.buildDom();
    this.refresh();
  }

  buildTree(spans) {
    const nodes = new Map();
    for (const span of spans) {
      nodes.set(span.id, { span, children: [], depth: 0, collapsed: false, kind: spanKind(span) });
    }
    const roots = [];
    for (const node of nodes.values()) {
      const parent = node.span.parentId ? nodes.get(node.span.parentId) : null;
      // A span whose parent was never stored still gets a row, at the top level.
      if (parent && parent !== node) parent.children.push(node);
      else roots.push(node);
    }
    const byStart = (a, b) => (a.span.offsetMs ?? 0) - (b.span.offsetMs ?? 0)
      || (a.span.order ?? 0) - (b.span.order ?? 0);
    roots.sort(byStart);
    let start = Infinity;
    let end = 0;
    for (const node of nodes.values()) {
      node.children.sort(byStart);
      const offset = Number(node.span.offsetMs) || 0;
      start = Math.min(start, offset);
      end = Math.max(end, offset + (Number(node.span.durationMs) || 0));
    }
    // Depth from the tree itself (iteratively: a pathological trace may nest deeply).
    const order = [];
    const stack = roots.map((node) => [node, 0]);
    while (stack.length) {
      const [node, depth] = stack.pop();
      node.depth = depth;
      order.push(node);
      for (const child of node.children) stack.push([child, depth + 1]);
    }
    // Children come after their parent in `order`, so walking it backwards sees every
    // subtree complete: a collapsed row can then say an error hides below it.
    for (let i = order.length - 1; i >= 0; i -= 1) {
      const node = order[i];
      node.errorBelow = node.children.some((c) => c.errorBelow || isError(c.span.status));
    }
    this.nodes = nodes;
    this.roots = roots;
    this.origin = Number.isFinite(start) ? start : 0;
    this.total = Math.max(end - this.origin, 0.001);
  }

  buildDom() {
    this.axis = h("div", { class: "wf-axis", "aria-hidden": "true" },
      h("div", { class: "wf-axis-label" }, "span"),
      h("div", { class: "wf-axis-track" }));
    this.viewport = h("div", {
      class: "wf-viewport", role: "tree", tabindex: "0", "aria-label": "Spans by start time",
    });
    this.spacer = h("div", { class: "wf-spacer" });
    this.viewport.appendChild(this.spacer);
    this.viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    this.viewport.addEventListener("click", (event) => this.onClick(event));
    this.viewport.addEventListener("keydown", (event) => this.onKey(event));
    this.container.replaceChildren(this.axis, this.viewport);
    this.drawAxis();
  }

  drawAxis() {
    const track = this.axis.querySelector(".wf-axis-track");
    const step = niceStep(this.total / 6);
    const ticks = [];
    for (let t = 0; t <= this.total + step * 1e-9; t += step) {
      ticks.push(h("span", {
        class: "wf-tick", style: { left: `${(t / this.total) * 100}%` },
      }, formatDuration(t)));
    }
    track.replaceChildren(...ticks);
  }

  // The rows currently shown: a pre-order walk that skips collapsed subtrees.
  computeVisible() {
    const visible = [];
    const stack = [...this.roots].reverse();
    while (stack.length) {
      const node = stack.pop();
      visible.push(node);
      if (!node.collapsed) {
        for (let i = node.children.length - 1; i >= 0; i -= 1) stack.push(node.children[i]);
      }
    }
    this.visible = visible;
    this.indexOf = new Map(visible.map((node, i) => [node.span.id, i]));
    this.spacer.style.height = `${visible.length * ROW_HEIGHT}px`;
    this.viewport.style.height = `${Math.min(visible.length * ROW_HEIGHT, MAX_VIEWPORT_PX) + 2}px`;
  }

  refresh() {
    this.computeVisible();
    this.render();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  render() {
    const top = this.viewport.scrollTop;
    const height = this.viewport.clientHeight || MAX_VIEWPORT_PX;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.visible.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    const fragment = document.createDocumentFragment();
    for (let i = first; i < last; i += 1) fragment.appendChild(this.row(this.visible[i], i));
    this.spacer.replaceChildren(fragment);
  }

  row(node, index) {
    const { span } = node;
    const offset = (Number(span.offsetMs) || 0) - this.origin;
    const duration = Number(span.durationMs) || 0;
    const left = (offset / this.total) * 100;
    const width = (duration / this.total) * 100;
    const error = isError(span.status);
    const hasChildren = node.children.length > 0;
    const classes = ["wf-row", `kind-${node.kind}`];
    if (error) classes.push("is-error");
    if (span.id === this.selectedId) classes.push("is-selected");
    return h("div", {
      class: classes.join(" "),
      role: "treeitem",
      "aria-level": String(node.depth + 1),
      "aria-expanded": hasChildren ? String(!node.collapsed) : null,
      "aria-selected": String(span.id === this.selectedId),
      dataset: { spanId: span.id, kind: node.kind, depth: String(node.depth), status: span.status || "" },
      style: { top: `${index * ROW_HEIGHT}px`, height: `${ROW_HEIGHT}px` },
      title: span.statusMessage ? `${span.name}: ${span.statusMessage}` : span.name,
    },
      h("div", { class: "wf-label", style: { paddingLeft: `${node.depth * INDENT_PX + 4}px` } },
        hasChildren
          ? h("button", {
            type: "button", class: "wf-toggle",
            "aria-label": node.collapsed ? `Expand ${span.name}` : `Collapse ${span.name}`,
          }, node.collapsed ? "▸" : "▾")
          : h("span", { class: "wf-toggle-spacer" }),
        error ? h("span", { class: "wf-error-mark", title: "error" }, "!") : null,
        h("span", { class: "wf-name" }, span.name),
        node.collapsed ? h("span", { class: "wf-hidden-count" }, `(+${this.countBelow(node)})`) : null,
        node.collapsed && node.errorBelow
          ? h("span", { class: "wf-error-mark wf-error-below", title: "an error inside" }, "!")
          : null),
      h("div", { class: "wf-track" },
        h("div", {
          class: "wf-bar",
          style: { left: `${left}%`, width: `max(${width}%, 2px)` },
        }),
        h("span", {
          class: "wf-duration",
          style: left > 75 ? { right: `${100 - left}%` } : { left: `calc(${left + width}% + 4px)` },
        }, formatDuration(duration))),
    );
  }

  countBelow(node) {
    let count = 0;
    const stack = [...node.children];
    while (stack.length) {
      const next = stack.pop();
      count += 1;
      stack.push(...next.children);
    }
    return count;
  }

  onClick(event) {
    const row = event.target.closest(".wf-row");
    if (!row) return;
    const node = this.nodes.get(row.dataset.spanId);
    if (!node) return;
    if (event.target.closest(".wf-toggle")) {
      this.setCollapsed(node, !node.collapsed);
      return;
    }
    this.select(node.span.id);
  }

  onKey(event) {
    const index = this.selectedId != null ? this.indexOf.get(this.selectedId) : undefined;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      const next = index === undefined ? 0 : Math.min(Math.max(index + step, 0), this.visible.length - 1);
      if (this.visible[next]) this.select(this.visible[next].span.id, { scroll: true });
    } else if ((event.key === "ArrowLeft" || event.key === "ArrowRight") && index !== undefined) {
      event.preventDefault();
      this.setCollapsed(this.visible[index], event.key === "ArrowLeft");
    }
  }

  setCollapsed(node, collapsed) {
    if (!node.children.length || node.collapsed === collapsed) return;
    node.collapsed = collapsed;
    this.refresh();
  }

  setAllCollapsed(collapsed) {
    const roots = new Set(this.roots);
    for (const node of this.nodes.values()) {
      // Collapsing everything but the roots keeps the run's outline on screen.
      node.collapsed = collapsed && node.children.length > 0 && !roots.has(node);
    }
    this.refresh();
  }

  // Select a span (from a click, the keyboard, or the URL); its ancestors are expanded
  // so the row is on screen.
  select(spanId, { scroll = false, notify = true } = {}) {
    const node = this.nodes.get(spanId);
    if (!node) return false;
    let expanded = false;
    let parent = this.nodes.get(node.span.parentId);
    // Bounded by the span count, so malformed parent links cannot loop forever.
    for (let hops = 0; parent && hops < this.nodes.size; hops += 1) {
      if (parent.collapsed) {
        parent.collapsed = false;
        expanded = true;
      }
      parent = this.nodes.get(parent.span.parentId);
    }
    this.selectedId = spanId;
    if (expanded) this.computeVisible();
    if (scroll) this.scrollToSpan(spanId);
    this.render();
    if (notify) this.onSelect(node.span);
    return true;
  }

  scrollToSpan(spanId) {
    const index = this.indexOf.get(spanId);
    if (index === undefined) return;
    const top = index * ROW_HEIGHT;
    const view = this.viewport;
    if (top < view.scrollTop || top + ROW_HEIGHT > view.scrollTop + view.clientHeight) {
      view.scrollTop = Math.max(0, top - view.clientHeight / 2);
    }
  }
}
