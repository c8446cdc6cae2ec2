// The timeline of an execution: one row per attempt of a step or of its compensation, in the
// order they started, each with a bar on a shared time axis, its outcome, error and backoff.

import { duration, h, span } from "./ui.js";

function label(entry) {
  if (entry.kind === "workflow") return h("span", { class: "mark" }, entry.type.replace("WORKFLOW_", "workflow ").toLowerCase());
  if (entry.kind === "compensation") {
    return [h("span", { class: "undo-order", title: "order in which the compensations ran" }, `undo #${entry.order}`), " ", h("span", { class: "mono" }, entry.step), h("span", { class: "muted" }, ` attempt ${entry.attempt}`)];
  }
  return [h("span", { class: "mono" }, entry.step), h("span", { class: "muted" }, entry.outcome === "skipped" ? " skipped" : ` attempt ${entry.attempt}`)];
}

function outcome(entry) {
  const parts = [];
  if (entry.kind === "workflow") {
    if (entry.error) parts.push(h("span", { class: "error-text" }, `${entry.error.code}: ${entry.error.message}`));
    return parts;
  }
  const words = { running: "in flight", retrying: "failed, will retry", succeeded: "succeeded", failed: "failed for good", skipped: "condition false" }[entry.outcome];
  parts.push(h("span", { class: `outcome ${entry.outcome}` }, words));
  if (entry.end || entry.outcome === "running") parts.push(h("span", { class: "muted" }, ` · ${duration(span(entry.start, entry.end))}`));
  if (entry.inDoubt) parts.push(" ", h("strong", { class: "in-doubt", title: "the call may have taken effect; it is compensated" }, "⚠ in doubt: the call may have taken effect"));
  if (entry.error) parts.push(h("div", { class: "error-text" }, `${entry.error.code}${entry.error.service ? ` (${entry.error.service})` : ""}: ${entry.error.message}`));
  if (entry.backoffMs !== undefined && entry.backoffMs !== null) parts.push(h("div", { class: "muted" }, `backoff ${duration(entry.backoffMs)} before the next attempt`));
  return parts;
}

/** The timeline of `progress` (see progress.js). */
export function renderTimeline(progress) {
  const entries = progress.entries;
  if (!entries.length) return h("p", { class: "muted" }, "No event yet.");
  const t0 = Date.parse(entries[0].start);
  const t1 = Math.max(...entries.map((e) => Date.parse(e.end || e.start) + (e.backoffMs || 0)), progress.state === "RUNNING" || progress.state === "COMPENSATING" ? Date.now() : 0);
  const total = Math.max(1, t1 - t0);
  const pct = (ms) => `${Math.max(0, Math.min(100, (ms / total) * 100)).toFixed(2)}%`;
  return h("ol", { class: "timeline", "data-testid": "timeline" }, entries.map((entry) => {
    const start = Date.parse(entry.start) - t0;
    const length = Date.parse(entry.end || new Date().toISOString()) - Date.parse(entry.start);
    const testid = entry.kind === "workflow" ? `timeline-${entry.type.toLowerCase()}` : `${entry.kind === "compensation" ? "compensation" : "attempt"}-${entry.step}-${entry.attempt}`;
    const track = h("div", { class: "track", "aria-hidden": "true" },
      h("span", { class: `bar ${entry.kind} ${entry.outcome || ""}`, style: `left:${pct(start)};width:${entry.kind === "workflow" ? "2px" : pct(Math.max(length, total / 300))}` }),
      entry.backoffMs ? h("span", { class: "bar backoff", style: `left:${pct(start + length)};width:${pct(entry.backoffMs)}` }) : null);
    return h("li", { class: `entry ${entry.kind}`, "data-testid": testid, "data-outcome": entry.outcome || "" },
      h("div", { class: "entry-label" }, label(entry)), track, h("div", { class: "entry-outcome" }, outcome(entry)));
  }));
}
