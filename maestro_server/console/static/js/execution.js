// One execution: its header and actions, the graph coloured by state, the timeline, each
// step's details, the raw event log and the workflow source, all live from WatchExecution.

import { ConnectError, serverStream, unary } from "./connect.js";
import { renderGraph } from "./graph.js";
import { Progress } from "./progress.js";
import { renderTimeline } from "./timeline.js";
import { TERMINAL, badge, bare, calls, duration, errorBanner, h, json, numbered, span, stateWords, time, fill } from "./ui.js";
import { confirmAction } from "./dialog.js";

const RECONNECT_MS = [500, 1000, 2000, 5000];

function stepDetails(step, progress, requests) {
  const state = progress.step(step.stepId);
  const undo = progress.undo(step.stepId);
  const sent = requests.get(step.stepId) || {};
  return h("details", { "data-testid": `step-detail-${step.stepId}`, id: `step-${step.stepId}`, class: "step-detail" },
    h("summary", {}, h("span", { class: "mono" }, step.stepId), " ", badge(state.state, "step"), undo ? h("span", { class: "muted" }, ` · undo: ${undo.words}`) : null),
    h("dl", {},
      h("dt", {}, "Calls"), h("dd", {}, calls(step)),
      h("dt", {}, "Depends on"), h("dd", {}, (step.dependsOn || []).join(", ") || "no other step"),
      step.when ? [h("dt", {}, "When"), h("dd", { class: "mono" }, step.when)] : null,
      h("dt", {}, "Attempts"), h("dd", {}, String(state.attempts)),
      h("dt", {}, "Started"), h("dd", {}, time(state.start)),
      h("dt", {}, "Ended"), h("dd", {}, time(state.end)),
      h("dt", {}, "Compensation"), h("dd", {}, step.compensation ? `${step.compensation.service}: ${step.compensation.method} (${undo.words})` : step.subWorkflow ? `compensate the child${undo ? ` (${undo.words})` : ""}` : "none"),
      step.subWorkflow ? [h("dt", {}, "Child executions"), h("dd", { "data-testid": `children-${step.stepId}` }, (sent.children || []).length
        ? (sent.children || []).map((id) => h("a", { href: `#/executions/${encodeURIComponent(id)}`, class: "mono" }, id, " "))
        : h("span", { class: "muted" }, "none yet"))] : null,
      h("dt", {}, "Input"), h("dd", {}, sent.input !== undefined ? json(sent.input) : h("span", { class: "muted" }, state.state === "PENDING" ? "not rendered yet" : "none kept")),
      sent.compensationInput !== undefined ? [h("dt", {}, "Compensation input"), h("dd", {}, json(sent.compensationInput))] : null,
      h("dt", {}, "Output"), h("dd", {}, state.output === null ? h("span", { class: "muted" }, "—") : json(state.output)),
      h("dt", {}, "Error"), h("dd", {}, state.error ? h("span", { class: "error-text" }, `${state.error.code}${state.error.service ? ` (${state.error.service})` : ""}: ${state.error.message}${state.error.retryable ? " · retryable" : ""}`) : h("span", { class: "muted" }, "—"))));
}

function eventDetail(event) {
  const parts = [];
  if (event.error) parts.push(`${event.error.code}: ${event.error.message}`);
  if (event.inDoubt) parts.push("in doubt");
  if (event.retryDelay) parts.push(`retry in ${duration(parseFloat(event.retryDelay) * 1000)}`);
  if (event.duration) parts.push(`took ${duration(parseFloat(event.duration) * 1000)}`);
  if (event.elementIndex !== undefined) parts.push(`element ${event.elementIndex}`);
  if (event.output !== undefined) parts.push(`output ${JSON.stringify(event.outputValue ?? event.output)}`);
  return parts.join(" · ");
}

function eventRow(event) {
  return h("tr", { "data-testid": `event-row-${event.sequence}` },
    h("td", { class: "num" }, String(event.sequence)), h("td", {}, time(event.time)),
    h("td", { class: "mono" }, bare(event.type, "EVENT_TYPE_")), h("td", { class: "mono" }, event.stepId || ""),
    h("td", { class: "num" }, event.attempt ? String(event.attempt) : ""), h("td", {}, stateWords(bare(event.state, "EXECUTION_STATE_"))),
    h("td", { class: "detail" }, eventDetail(event)));
}

export function executionPage(view, ctx, executionId) {
  const controller = new AbortController();
  let execution = null;
  let progress = null;
  let streaming = false;
  let scheduled = false;
  const requests = new Map();  // step id → the requests it sent, as GetExecution tells
  let refreshing = null;

  function takeRequests(answer) {
    for (const step of answer.steps || []) requests.set(step.stepId, { input: step.input, compensationInput: step.compensationInput, children: step.childExecutionIds });
  }

  function refreshRequests() {  // a request is kept when its step starts: fetch it, at most 3 times a second
    if (refreshing) return;
    refreshing = setTimeout(async () => {
      try {
        takeRequests((await unary("GetExecution", { executionId })).execution);
        schedule();
      } catch {
        // the next start tries again
      }
      refreshing = null;
    }, 300);
  }

  const root = h("article", { class: "execution", "data-testid": "execution-page", "data-last-seq": "0" });
  const header = h("header", { class: "execution-header" });
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Actions" });
  const live = h("span", { class: "live", "data-testid": "live-indicator", "aria-live": "polite" });
  const graphBox = h("section", { "aria-labelledby": "graph-title" });
  const timelineBox = h("div", {});
  const stepsBox = h("div", {});
  const eventsBody = h("tbody", {});
  const problem = h("div", {});
  view.append(root);
  root.append(header, problem,
    h("section", { "aria-labelledby": "graph-title" }, h("h2", { id: "graph-title" }, "Graph"), graphBox),
    h("section", { "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Timeline"), timelineBox),
    h("section", { "aria-labelledby": "steps-title" }, h("h2", { id: "steps-title" }, "Steps"), stepsBox),
    h("section", { "aria-labelledby": "events-title" }, h("h2", { id: "events-title" }, "Event log ",
      h("button", { type: "button", class: "link", onclick: download }, "download JSON")),
    h("div", { class: "table-wrap" }, h("table", { class: "events", "data-testid": "event-log" },
      h("thead", {}, h("tr", {}, ["Seq", "Time", "Type", "Step", "Attempt", "State after", "Detail"].map((t) => h("th", { scope: "col" }, t)))), eventsBody))),
    h("section", { "aria-labelledby": "source-title" }, h("h2", { id: "source-title" }, "Workflow source"), h("div", { "data-testid": "workflow-source", id: "source" })));

  function download() {
    const blob = new Blob([JSON.stringify(progress ? progress.events : [], null, 2)], { type: "application/json" });
    const link = h("a", { href: URL.createObjectURL(blob), download: `${executionId}.events.json` });
    link.click();
    URL.revokeObjectURL(link.href);
  }

  function select(stepId) {
    const detail = document.getElementById(`step-${stepId}`);
    if (detail) {
      detail.open = true;
      detail.scrollIntoView({ block: "center" });
      detail.querySelector("summary").focus();
    }
  }

  function renderHeader() {
    const state = progress.state;
    const failing = execution.failedStepId || progress.events.filter((e) => bare(e.type, "EVENT_TYPE_") === "STEP_FAILED").map((e) => e.stepId)[0];
    const terminal = [...progress.events].reverse().find((e) => TERMINAL.has(bare(e.state, "EXECUTION_STATE_")) && bare(e.type, "EVENT_TYPE_").startsWith("WORKFLOW_") && e.type !== "EVENT_TYPE_WORKFLOW_STARTED");
    const ended = TERMINAL.has(state) && terminal ? terminal.time : null;
    const error = TERMINAL.has(state) && terminal ? terminal.error : (state === "COMPENSATING" ? execution.error : null);
    fill(header, 
      h("h1", {}, h("span", { class: "muted" }, "Execution "), h("span", { class: "mono" }, executionId)),
      h("p", { class: "status-line" }, badge(state, "execution", { role: "status", "data-testid": "execution-status" }), " ", live),
      h("dl", { class: "facts" },
        // Only a registered (versioned) workflow has a page; one started inline has neither.
        h("dt", {}, "Workflow"), h("dd", { "data-testid": "execution-workflow" }, execution.workflowVersion
          ? h("a", { href: `#/workflows/${encodeURIComponent(execution.workflowName)}/${encodeURIComponent(execution.workflowVersion)}` }, `${execution.workflowName} v${execution.workflowVersion}`)
          : execution.workflowName),
        execution.parentExecutionId ? [h("dt", {}, "Parent"), h("dd", {}, h("a", { href: `#/executions/${encodeURIComponent(execution.parentExecutionId)}`, class: "mono", "data-testid": "parent-execution" }, execution.parentExecutionId))] : null,
        h("dt", {}, "Started"), h("dd", {}, time(execution.createTime)),
        h("dt", {}, "Ended"), h("dd", {}, time(ended)),
        h("dt", {}, "Duration"), h("dd", {}, duration(span(execution.createTime, ended))),
        h("dt", {}, "Events"), h("dd", {}, String(progress.lastSeq))),
      error ? h("div", { class: "banner error", role: "alert", "data-testid": "execution-error" }, h("strong", {}, error.code), `: ${error.message} `,
        failing ? h("button", { type: "button", class: "link", onclick: () => select(failing) }, `show step ${failing}`) : null) : null,
      progress.gap ? errorBanner({ code: "GAP", message: progress.gap }) : null,
      h("details", {}, h("summary", {}, "Input"), json(execution.input || {})),
      execution.output || state === "COMPLETED" ? h("details", {}, h("summary", {}, "Output"), json(terminal && terminal.output ? terminal.outputValue ?? terminal.output : execution.outputValue ?? execution.output ?? null)) : null,
      ctx.canAct ? actions : null);
    renderActions(state);
  }

  function renderActions(state) {
    if (!ctx.canAct) return;
    const cancellable = !TERMINAL.has(state);
    const resumable = state === "COMPENSATION_FAILED";
    fill(actions, 
      h("button", { type: "button", "data-testid": "action-cancel", disabled: !cancellable, title: cancellable ? "stop and compensate the completed steps" : `a ${stateWords(state)} execution cannot be cancelled`,
        onclick: () => act("cancel") }, "Cancel execution"),
      h("button", { type: "button", "data-testid": "action-resume", disabled: !resumable, title: resumable ? "retry the failed compensations" : "only a compensation-failed execution can be resumed",
        onclick: () => act("resume") }, "Resume compensations"),
      !cancellable && !resumable ? h("span", { class: "muted" }, ` no action applies to a ${stateWords(state)} execution`) : null);
  }

  async function act(kind) {
    const pending = progress.graph.filter((s) => s.compensation && progress.step(s.stepId).state === "SUCCEEDED").map((s) => s.stepId).reverse();
    const stuck = progress.graph.filter((s) => progress.step(s.stepId).state === "COMPENSATION_FAILED").map((s) => s.stepId);
    const choice = await confirmAction(kind === "cancel"
      ? { title: "Cancel this execution?", confirm: "Cancel execution", reason: true,
        text: pending.length ? `Forward progress stops, then these compensations run, in this order: ${pending.join(", ")}.` : "Forward progress stops; no completed step needs compensating." }
      : { title: "Resume the failed compensations?", confirm: "Resume", reason: false,
        text: `The compensations of ${stuck.join(", ") || "the failed steps"} are tried again, with the same idempotency keys, then the rest in reverse order.` });
    if (!choice) return;
    try {
      const answer = kind === "cancel"
        ? await unary("CancelExecution", { executionId, reason: choice.reason || "cancelled from the console" })
        : await unary("ResumeExecution", { executionId });
      execution = { ...execution, ...answer.execution, graph: execution.graph, workflowYaml: execution.workflowYaml };
      fill(problem, );
      if (!streaming) watch();
    } catch (exc) {
      fill(problem, errorBanner(exc, { "data-testid": "action-error" }));
    }
  }

  function render() {
    scheduled = false;
    root.dataset.lastSeq = String(progress.lastSeq);
    root.dataset.state = progress.state;
    renderHeader();
    fill(graphBox, renderGraph(execution.graph || [], progress, select));
    fill(timelineBox, renderTimeline(progress));
    const open = new Set([...stepsBox.querySelectorAll("details[open]")].map((d) => d.id));
    fill(stepsBox, ...(execution.graph || []).map((step) => stepDetails(step, progress, requests)));
    for (const id of open) document.getElementById(id).open = true;
  }

  function schedule() {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(render);
    }
  }

  async function watch() {
    streaming = true;
    let failures = 0;
    while (!controller.signal.aborted) {
      live.textContent = "● live";
      live.dataset.status = "live";
      try {
        await serverStream("WatchExecution", { executionId, afterSequence: String(progress.lastSeq) }, (message) => {
          if (Number(message.event.sequence) <= progress.lastSeq) return;
          progress.apply(message.event);
          eventsBody.append(eventRow(message.event));
          const kind = bare(message.event.type, "EVENT_TYPE_");
          const sent = requests.get(message.event.stepId) || {};
          if ((kind === "STEP_STARTED" && sent.input === undefined) || (kind === "COMPENSATION_STARTED" && sent.compensationInput === undefined)) refreshRequests();
          failures = 0;
          schedule();
        }, controller.signal);
        break;  // the terminal event came
      } catch (exc) {
        if (controller.signal.aborted) break;
        if (exc instanceof ConnectError && ["not_found", "permission_denied", "unauthenticated", "invalid_argument"].includes(exc.code)) {
          fill(problem, errorBanner(exc));
          break;
        }
        live.textContent = `reconnecting after: ${exc.message}`;
        live.dataset.status = "reconnecting";
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS[Math.min(failures++, RECONNECT_MS.length - 1)]));
      }
    }
    streaming = false;
    if (!controller.signal.aborted) {
      live.textContent = TERMINAL.has(progress.state) ? "finished" : "";
      live.dataset.status = "finished";
      schedule();
    }
  }

  (async () => {
    try {
      execution = (await unary("GetExecution", { executionId })).execution;
    } catch (exc) {
      fill(root, h("h1", {}, "Execution ", h("span", { class: "mono" }, executionId)), errorBanner(exc));
      return;
    }
    progress = new Progress(execution.graph || []);
    takeRequests(execution);
    document.getElementById("source").append(numbered(execution.workflowYaml || "(the source is not kept for this execution)"));
    render();
    watch();
  })();

  return () => {
    controller.abort();
    clearTimeout(refreshing);
  };
}
