// Executions: a filtered, keyset-paged table, refreshed every few seconds on its first page so
// new executions appear (and states change) without a reload.

import { ConnectError, unary } from "./connect.js";
import { ALL_STATES, badge, bare, duration, errorBanner, h, span, stateWords, time, fill } from "./ui.js";

const PAGE_SIZE = 50;
const REFRESH_MS = 2000;

function row(execution) {
  const id = execution.executionId;
  const state = bare(execution.state, "EXECUTION_STATE_");
  return h("tr", { "data-testid": `execution-row-${id}`, "data-state": state, "data-key": rowKey(execution) },
    h("td", {}, h("a", { href: `#/executions/${encodeURIComponent(id)}`, class: "mono" }, id)),
    h("td", {}, execution.workflowName, execution.workflowVersion ? [" ", h("span", { class: "muted" }, `v${execution.workflowVersion}`)] : null),
    h("td", {}, badge(state)),
    h("td", {}, time(execution.createTime)),
    h("td", { class: "num" }, duration(span(execution.createTime, execution.endTime))),
    h("td", {}, execution.failedStepId ? h("span", { class: "mono" }, execution.failedStepId) : h("span", { class: "muted" }, "—")));
}

function rowKey(execution) {
  return [execution.state, execution.endTime || "", execution.failedStepId || ""].join("|");
}

function setQuery(params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
  location.hash = `#/executions${query.toString() ? `?${query}` : ""}`;
}

export function executionsPage(view, ctx) {
  const state = ctx.query.get("state") || "";
  const workflow = ctx.query.get("workflow") || "";
  const search = ctx.query.get("id") || "";
  const tokens = [""];
  let timer = null;
  let disposed = false;

  const stateSelect = h("select", { id: "filter-state" },
    h("option", { value: "" }, "any state"),
    ALL_STATES.map((s) => h("option", { value: s, selected: s === state }, stateWords(s))));
  const workflowInput = h("input", { id: "filter-workflow", list: "workflow-names", value: workflow, placeholder: "any workflow" });
  const idInput = h("input", { id: "search-id", type: "search", value: search, placeholder: "execution id" });
  const names = h("datalist", { id: "workflow-names" });
  const body = h("tbody", {});
  const status = h("p", { class: "muted", "aria-live": "polite" });
  const pager = h("div", { class: "pager" });
  const problem = h("div", {});

  const filters = h("form", { class: "filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    setQuery({ state: stateSelect.value, workflow: workflowInput.value.trim(), id: idInput.value.trim() });
  } },
  h("label", { for: "filter-state" }, "State"), stateSelect,
  h("label", { for: "filter-workflow" }, "Workflow"), workflowInput, names,
  h("label", { for: "search-id" }, "Id"), idInput,
  h("button", { type: "submit" }, "Apply"),
  h("a", { href: "#/executions", class: "button" }, "Clear"));
  stateSelect.addEventListener("change", () => filters.requestSubmit());

  const table = h("table", { class: "executions", "data-testid": "executions-table" },
    h("caption", { class: "visually-hidden" }, "Executions, newest first"),
    h("thead", {}, h("tr", {}, ["Id", "Workflow", "State", "Started", "Duration", "Failing step"].map((t) => h("th", { scope: "col" }, t)))),
    body);
  table.addEventListener("keydown", (event) => {  // j/k move between rows
    if (event.key !== "j" && event.key !== "k") return;
    const links = [...body.querySelectorAll("a")];
    const index = links.indexOf(document.activeElement);
    const next = links[Math.max(0, Math.min(links.length - 1, index + (event.key === "j" ? 1 : -1)))];
    if (next) next.focus();
  });

  view.append(h("h1", {}, "Executions"), filters, problem, h("div", { class: "table-wrap" }, table), status, pager);

  unary("ListWorkflows", { pageSize: 1000 }).then((answer) => {
    const seen = new Set((answer.workflows || []).map((w) => w.name));
    fill(names, ...[...seen].map((n) => h("option", { value: n })));
  }).catch(() => {});

  function render(executions, token) {
    const existing = new Map([...body.children].map((tr) => [tr.dataset.testid, tr]));
    const rows = executions.map((execution) => {
      const old = existing.get(`execution-row-${execution.executionId}`);
      if (old && old.dataset.key === rowKey(execution) && !execution.endTime === !old.dataset.running) return old;
      const fresh = row(execution);
      if (!execution.endTime) fresh.dataset.running = "1";
      if (!old && existing.size) fresh.classList.add("new");
      return fresh;
    });
    fill(body, ...rows);
    status.textContent = executions.length ? "" : "No executions match.";
    fill(pager, 
      tokens.length > 1 ? h("button", { type: "button", onclick: () => { tokens.pop(); load(); } }, "← Newer") : null,
      token ? h("button", { type: "button", "data-testid": "next-page", onclick: () => { tokens.push(token); load(); } }, "Older →") : null);
  }

  async function load() {
    clearTimeout(timer);
    if (document.hidden && body.children.length) {  // a background tab costs the server nothing
      timer = setTimeout(load, REFRESH_MS);
      return;
    }
    try {
      if (search) {
        const answer = await unary("GetExecution", { executionId: search });
        render([answer.execution], "");
      } else {
        const request = { pageSize: PAGE_SIZE, pageToken: tokens[tokens.length - 1] };
        if (state) request.states = [`EXECUTION_STATE_${state}`];
        if (workflow) request.workflowName = workflow;
        const answer = await unary("ListExecutions", request);
        render(answer.executions || [], answer.nextPageToken || "");
      }
      fill(problem, );
    } catch (exc) {
      if (exc instanceof ConnectError && exc.code === "not_found") {
        render([], "");
        status.textContent = `No execution with id ${search}.`;
      } else {
        fill(problem, errorBanner(exc));
      }
    }
    if (!disposed && tokens.length === 1 && !search) timer = setTimeout(load, REFRESH_MS);
  }

  load();
  return () => { disposed = true; clearTimeout(timer); };
}
