// An execution's progress folded from its events, as the server folds them: each step's state,
// its compensation's state and order, and the timeline of every attempt.

import { bare, parseDuration } from "./ui.js";

const STEP_OF_EVENT = {
  STEP_STARTED: "RUNNING",
  STEP_RETRYING: "RUNNING",
  STEP_WAITING: "WAITING",
  SIGNAL_RECEIVED: "WAITING",
  STEP_SUCCEEDED: "SUCCEEDED",
  STEP_SKIPPED: "SKIPPED",
  STEP_FAILED: "FAILED",
  COMPENSATION_STARTED: "COMPENSATING",
  COMPENSATION_SUCCEEDED: "COMPENSATED",
  COMPENSATION_FAILED: "COMPENSATION_FAILED",
};

export class Progress {
  constructor(graph) {
    this.graph = graph;
    this.steps = new Map(graph.map((step) => [step.stepId, { state: "PENDING", attempts: 0, output: null, error: null, start: null, end: null }]));
    this.events = [];
    this.entries = [];  // timeline: one per attempt, compensation attempt, skip, or workflow mark
    this.open = new Map();  // step → its entry in flight
    this.undoOrder = [];  // step ids in the order their compensations started
    this.state = "PENDING";
    this.lastSeq = 0;
    this.gap = null;
  }

  step(id) {
    if (!this.steps.has(id)) this.steps.set(id, { state: "PENDING", attempts: 0, output: null, error: null, start: null, end: null });
    return this.steps.get(id);
  }

  apply(event) {
    const seq = Number(event.sequence);
    if (seq !== this.lastSeq + 1 && !this.gap) this.gap = `event ${seq} follows ${this.lastSeq}: events are missing`;
    this.lastSeq = seq;
    this.events.push(event);
    const type = bare(event.type, "EVENT_TYPE_");
    const executionState = bare(event.state, "EXECUTION_STATE_");
    this.state = executionState;
    const id = event.stepId;
    // An element of a for_each step: its step runs while its elements do, and stays
    // COMPENSATION_FAILED once one of them is (as model/progress.py folds it).
    const element = event.elementIndex !== undefined && event.elementIndex !== null;
    if (id && STEP_OF_EVENT[type]) {
      const step = this.step(id);
      const compensating = step.state === "COMPENSATING";
      const before = step.state;
      step.state = type === "STEP_RETRYING" && compensating ? "COMPENSATING" : STEP_OF_EVENT[type];
      if (element && !type.startsWith("COMPENSATION")) step.state = ["PENDING", "RUNNING"].includes(before) ? "RUNNING" : before;
      if (element && type === "COMPENSATION_SUCCEEDED" && before === "COMPENSATION_FAILED") step.state = before;
      if (type === "STEP_STARTED" || type === "STEP_WAITING") {
        step.attempts = Math.max(step.attempts, event.attempt || 0);
        step.start = step.start || event.time;
      }
      if (type === "STEP_SUCCEEDED" && !element) step.output = event.outputValue ?? event.output ?? null;
      if (event.error) step.error = event.error;
      if (type === "COMPENSATION_STARTED" && !this.undoOrder.includes(id)) this.undoOrder.push(id);
      if (!["RUNNING", "WAITING", "COMPENSATING"].includes(step.state)) step.end = event.time;
    }
    this.timeline(type, event, element ? `${id}[${event.elementIndex}]` : id);
  }

  timeline(type, event, id) {
    const close = (outcome) => {
      let entry = this.open.get(id);
      if (!entry) {  // failed before any attempt started (a template error, a cancel)
        entry = this.entry(type.startsWith("COMPENSATION") ? "compensation" : "forward", id, event);
      }
      entry.end = event.time;
      entry.outcome = outcome;
      entry.error = event.error || null;
      entry.inDoubt = Boolean(event.inDoubt);
      this.open.delete(id);
      return entry;
    };
    switch (type) {
      case "STEP_STARTED":
        this.open.set(id, this.entry("forward", id, event));
        break;
      case "STEP_WAITING":  // a wait or a sleep: one entry from the first WAITING to its end
        if (!this.open.has(id)) this.open.set(id, this.entry("forward", id, event));
        break;
      case "COMPENSATION_STARTED":
        this.open.set(id, this.entry("compensation", id, event));
        break;
      case "STEP_RETRYING":
        close("retrying").backoffMs = parseDuration(event.retryDelay);
        break;
      case "STEP_SUCCEEDED":
      case "COMPENSATION_SUCCEEDED":
        close("succeeded");
        break;
      case "STEP_FAILED":
      case "COMPENSATION_FAILED":
        close("failed");
        break;
      case "STEP_SKIPPED":
        this.entry("forward", id, event).outcome = "skipped";
        break;
      default:
        if (type.startsWith("WORKFLOW_")) {
          this.entries.push({ kind: "workflow", type, start: event.time, end: event.time, error: event.error || null, seq: event.sequence });
        }
    }
  }

  entry(kind, id, event) {
    const entry = { kind, step: id, attempt: event.attempt || 1, start: event.time, end: null, outcome: "running", seq: event.sequence };
    if (kind === "compensation") entry.order = this.undoOrder.indexOf(id) + 1;
    this.entries.push(entry);
    return entry;
  }

  /** The compensation of a step: {state, words, order}, or null when it has none. */
  undo(stepId) {
    const node = this.graph.find((s) => s.stepId === stepId);
    if (!node || !node.compensation) return null;
    const step = this.step(stepId);
    const order = this.undoOrder.indexOf(stepId) + 1;
    if (step.state === "COMPENSATING") return { state: "COMPENSATING", words: "running", order };
    if (step.state === "COMPENSATED") return { state: "COMPENSATED", words: "compensated", order };
    if (step.state === "COMPENSATION_FAILED") return { state: "COMPENSATION_FAILED", words: "failed", order };
    if (step.state === "FAILED") return { state: "NOT_NEEDED", words: "not needed: the step failed", order };
    if (step.state === "SUCCEEDED" && this.state === "COMPENSATING") return { state: "PENDING", words: "pending", order };
    if (step.state === "SUCCEEDED" && this.state === "COMPLETED") return { state: "NOT_NEEDED", words: "not needed: the execution completed", order };
    if (["PENDING", "SKIPPED"].includes(step.state) && this.state !== "RUNNING" && this.state !== "PENDING") {
      return { state: "NOT_NEEDED", words: "not needed: the step never ran", order };
    }
    return { state: "IDLE", words: "runs if a later step fails", order };
  }
}
