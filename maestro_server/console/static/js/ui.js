// DOM helpers, state names and glyphs, time formatting. Every value is rendered as text.

/** An element: h("a", {href: "#/x", class: "c"}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const node = tag === "svg" || attrs.svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false || key === "svg") continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else if (key === "style") node.style.cssText = value;  // CSSOM: allowed by the page's CSP
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Replace a node's children, leaving out null, undefined and false. */
export function fill(parent, ...children) {
  parent.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

/** An SVG element. */
export function s(tag, attrs = {}, ...children) {
  return h(tag, { ...attrs, svg: true }, ...children);
}

const EXECUTION_STATES = {
  PENDING: ["pending", "○"],
  RUNNING: ["running", "▶"],
  COMPENSATING: ["compensating", "↺"],
  COMPLETED: ["completed", "✓"],
  FAILED: ["failed", "✕"],
  COMPENSATED: ["compensated", "↩"],
  COMPENSATION_FAILED: ["compensation failed", "⚠"],
  CANCELLED: ["cancelled", "⊘"],
};
const STEP_STATES = {
  PENDING: ["pending", "○"],
  RUNNING: ["running", "▶"],
  WAITING: ["waiting", "⏸"],
  SUCCEEDED: ["succeeded", "✓"],
  SKIPPED: ["skipped", "↷"],
  FAILED: ["failed", "✕"],
  COMPENSATING: ["compensating", "↺"],
  COMPENSATED: ["compensated", "↩"],
  COMPENSATION_FAILED: ["compensation failed", "⚠"],
};

/** What a step does, in a line: "svc: Method", what a `wait` or `sleep` step waits for, or the
 * workflow a sub-workflow step runs as a child execution. */
export function calls(step) {
  if (step.waitSignal) return `wait for signal ${step.waitSignal}`;
  if (step.sleep) return `sleep ${step.sleep}`;
  if (step.subWorkflow) return `runs workflow ${step.subWorkflow}`;
  return `${step.service}: ${step.method}`;
}

/** "EXECUTION_STATE_RUNNING" → "RUNNING". */
export function bare(value, prefix) {
  return (value || `${prefix}UNSPECIFIED`).replace(prefix, "");
}

function describe(table, state) {
  return table[state] || [`unknown (${state})`, "?"];
}

/** A state badge: a glyph, the state in words, and data-state with the machine value. */
export function badge(state, kind = "execution", attrs = {}) {
  const [words, glyph] = describe(kind === "step" ? STEP_STATES : EXECUTION_STATES, state);
  return h("span", { class: `badge state-${state.toLowerCase()}`, "data-state": state, ...attrs },
    h("span", { "aria-hidden": "true", class: "glyph" }, glyph), ` ${words}`);
}

export function stateWords(state, kind = "execution") {
  return describe(kind === "step" ? STEP_STATES : EXECUTION_STATES, state)[0];
}

export const TERMINAL = new Set(["COMPLETED", "FAILED", "COMPENSATED", "COMPENSATION_FAILED", "CANCELLED"]);
export const ALL_STATES = Object.keys(EXECUTION_STATES);

/** A timestamp as local date and time, with the ISO value in a tooltip. */
export function time(value) {
  if (!value) return h("span", { class: "muted" }, "—");
  const date = new Date(value);
  return h("time", { datetime: value, title: value }, date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  }));
}

/** Milliseconds as "850 ms", "2.4 s", "3 min 5 s". */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60000);
  if (minutes < 60) return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** A protobuf JSON duration ("1.500s") in milliseconds. */
export function parseDuration(value) {
  return value ? parseFloat(value) * 1000 : null;
}

export function span(start, end) {
  if (!start) return null;
  return (end ? Date.parse(end) : Date.now()) - Date.parse(start);
}

/** JSON, pretty, in a <pre>. */
export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

/** An error message from the API, in a banner with its code. */
export function errorBanner(error, attrs = {}) {
  return h("div", { class: "banner error", role: "alert", ...attrs },
    h("strong", {}, error.code || "error"), ": ", error.message || String(error));
}

/** Text with line numbers; `marks` maps a line number to a note. */
export function numbered(text, marks = new Map(), attrs = {}) {
  const lines = (text || "").split("\n");
  return h("ol", { class: "source", ...attrs }, lines.map((line, i) => {
    const mark = marks.get(i + 1);
    return h("li", { id: attrs.id ? `${attrs.id}-${i + 1}` : undefined, class: mark ? `marked ${mark.severity}` : undefined, "data-line": i + 1 },
      h("code", {}, line || " "), mark ? h("span", { class: "line-note" }, mark.text) : null);
  }));
}
