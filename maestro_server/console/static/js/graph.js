// A workflow's graph as SVG: steps in columns by dependency depth, solid forward edges, and
// below each step that has one its compensation, with dashed reverse edges between them.
// Every node is a focusable button whose accessible name says its state in words.

import { calls, h, s, stateWords } from "./ui.js";

const W = 204, H = 56, GAP_X = 56, GAP_Y = 22, PAD = 16, UNDO_GAP = 60;

function layout(graph) {
  const depth = new Map();
  const byId = new Map(graph.map((step) => [step.stepId, step]));
  const visit = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id) || !byId.has(id)) return 0;
    seen.add(id);
    const d = Math.max(-1, ...(byId.get(id).dependsOn || []).map((dep) => visit(dep, seen))) + 1;
    depth.set(id, d);
    return d;
  };
  graph.forEach((step) => visit(step.stepId));
  const rows = new Map();
  const place = new Map();
  for (const step of graph) {
    const column = depth.get(step.stepId);
    const row = rows.get(column) || 0;
    rows.set(column, row + 1);
    place.set(step.stepId, { x: PAD + column * (W + GAP_X), y: PAD + row * (H + GAP_Y) });
  }
  const height = Math.max(1, ...rows.values()) * (H + GAP_Y) - GAP_Y;
  const width = Math.max(1, ...[...rows.keys()].map((c) => c + 1)) * (W + GAP_X) - GAP_X;
  return { place, width, height };
}

/** The compensable steps a compensation hands over to: the nearest compensable ancestors. */
function undoTargets(step, byId) {
  const found = new Set();
  const walk = (ids, seen) => {
    for (const id of ids) {
      if (seen.has(id) || !byId.has(id)) continue;
      seen.add(id);
      if (byId.get(id).compensation) found.add(id);
      else walk(byId.get(id).dependsOn || [], seen);
    }
  };
  walk(step.dependsOn || [], new Set());
  return [...found];
}

function edge(from, to, attrs) {
  const mid = (from.x + to.x) / 2;
  return s("path", { d: `M${from.x},${from.y} C${mid},${from.y} ${mid},${to.y} ${to.x},${to.y}`, ...attrs });
}

function clip(text, room = 30) {
  return text.length > room ? `${text.slice(0, room - 1)}…` : text;
}

function node({ x, y, testid, state, title, line, words, label, undo, onselect, order }) {
  const group = s("g", {
    class: `node ${undo ? "undo" : "step"} state-${state.toLowerCase()}`, transform: `translate(${x},${y})`,
    role: "button", tabindex: "0", "data-testid": testid, "data-state": state, "aria-label": label,
    onclick: onselect, onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); onselect(); } },
  },
  s("title", {}, label),
  s("rect", { width: W, height: H, rx: undo ? 22 : 6 }),
  s("text", { x: 10, y: 20, class: "node-title" }, clip(title, order ? 24 : 28)),
  s("text", { x: 10, y: 35, class: "node-line" }, clip(line, 34)),
  s("text", { x: 10, y: 50, class: "node-state" }, clip(words, 32)),
  order ? s("g", { class: "order" }, s("circle", { cx: W - 14, cy: 14, r: 10 }), s("text", { x: W - 14, y: 18, "text-anchor": "middle" }, String(order))) : null);
  return group;
}

/**
 * The graph of `graph` (WorkflowStep messages). `progress` (optional) colours it; `onselect(id)`
 * is called when a node is chosen.
 */
export function renderGraph(graph, progress, onselect = () => {}) {
  const { place, width, height } = layout(graph);
  const byId = new Map(graph.map((step) => [step.stepId, step]));
  const hasUndo = graph.some((step) => step.compensation);
  const undoY = PAD + height + UNDO_GAP;
  const total = hasUndo ? undoY + H + PAD : PAD * 2 + height;
  const svg = s("svg", { viewBox: `0 0 ${width + PAD * 2} ${total}`, width: width + PAD * 2, height: total, class: "graph", role: "group", "aria-label": "Workflow graph" },
    s("defs", {},
      s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" })),
      s("marker", { id: "arrow-undo", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead undo" }))));
  const edges = s("g", { class: "edges" });
  const nodes = s("g", { class: "nodes" });
  svg.append(edges, nodes);
  for (const step of graph) {
    const at = place.get(step.stepId);
    for (const dep of step.dependsOn || []) {
      const from = place.get(dep);
      if (from) edges.append(edge({ x: from.x + W, y: from.y + H / 2 }, { x: at.x, y: at.y + H / 2 }, { class: "edge forward", "marker-end": "url(#arrow)" }));
    }
    const state = progress ? progress.step(step.stepId).state : "DEFINED";
    const undo = progress ? progress.undo(step.stepId) : null;
    const stepWords = progress ? stateWords(state, "step") : "";
    const label = `Step ${step.stepId}: ${progress ? stepWords : calls(step)}` + (step.compensation ? `; compensation: ${undo ? undo.words : "defined"}` : "; no compensation");
    nodes.append(node({ x: at.x, y: at.y, testid: `step-node-${step.stepId}`, state, title: step.stepId, line: calls(step),
      words: progress ? `${stepWords}${step.when ? " · when" : ""}` : (step.when ? `when ${step.when}` : ""), label, onselect: () => onselect(step.stepId) }));
    if (!step.compensation) continue;
    const undoAt = { x: at.x, y: undoY };
    edges.append(s("path", { d: `M${at.x + W / 2},${at.y + H} L${at.x + W / 2},${undoY}`, class: "edge undo", "marker-end": "url(#arrow-undo)" }));
    for (const target of undoTargets(step, byId)) {
      const other = place.get(target);
      edges.append(edge({ x: undoAt.x, y: undoY + H / 2 }, { x: other.x + W, y: undoY + H / 2 }, { class: "edge undo reverse", "marker-end": "url(#arrow-undo)" }));
    }
    const undoState = undo ? undo.state : "DEFINED";
    nodes.append(node({ x: undoAt.x, y: undoY, testid: `comp-node-${step.stepId}`, state: undoState, undo: true, title: `↩ ${step.stepId}`,
      line: `${step.compensation.service}: ${step.compensation.method}`, words: undo ? undo.words : "compensation", order: undo && undo.order,
      label: `Compensation of ${step.stepId}: ${undo ? undo.words : "defined"}${undo && undo.order ? `, ran ${ordinal(undo.order)}` : ""}`,
      onselect: () => onselect(step.stepId) }));
  }
  const legend = h("ul", { class: "legend", "aria-label": "Legend" },
    h("li", {}, h("span", { class: "swatch forward" }), "dependency (runs after)"),
    hasUndo ? h("li", {}, h("span", { class: "swatch undo" }), progress ? "compensation, run in reverse; numbers give the order they ran" : "compensation, run in reverse order of completion when a later step fails") : null,
    progress ? h("li", {}, "states are written on each node and coloured: ", h("span", { class: "badge state-succeeded" }, "succeeded"), " ",
      h("span", { class: "badge state-failed" }, "failed"), " ", h("span", { class: "badge state-compensated" }, "compensated")) : null);
  return h("figure", { class: "graph-wrap" }, h("div", { class: "scroll-x" }, svg), legend);
}

function ordinal(n) {
  return `${n}${["th", "st", "nd", "rd"][n % 100 > 10 && n % 100 < 14 ? 0 : Math.min(n % 10, 4) % 4] || "th"}`;
}
