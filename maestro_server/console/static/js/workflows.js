// Workflows: the registered definitions, one definition with its graph and a form to start it,
// and a page that validates pasted YAML and shows each diagnostic at its line.

import { ConnectError, unary } from "./connect.js";
import { renderGraph } from "./graph.js";
import { errorBanner, h, numbered, time, fill } from "./ui.js";

export function workflowsPage(view) {
  const body = h("tbody", {});
  const status = h("div", {});
  view.append(h("h1", {}, "Workflows"),
    h("p", {}, h("a", { href: "#/validate" }, "Validate a workflow"), " before registering it."),
    status,
    h("div", { class: "table-wrap" }, h("table", { "data-testid": "workflows-table" },
      h("thead", {}, h("tr", {}, ["Name", "Version", "Description", "Registered"].map((t) => h("th", { scope: "col" }, t)))), body)));
  unary("ListWorkflows", { pageSize: 1000 }).then((answer) => {
    const workflows = answer.workflows || [];
    fill(body, ...workflows.map((w) => h("tr", { "data-testid": `workflow-row-${w.name}-${w.version}` },
      h("td", {}, h("a", { href: `#/workflows/${encodeURIComponent(w.name)}/${encodeURIComponent(w.version)}` }, w.name)),
      h("td", {}, w.version), h("td", {}, w.description || ""), h("td", {}, time(w.createTime)))));
    if (!workflows.length) status.append(h("p", { class: "muted" }, "No workflow is registered (maestro serve --workflows DIR, or RegisterWorkflow)."));
  }).catch((exc) => fill(status, errorBanner(exc)));
}

function fieldError(input, message) {
  const id = `${input.id}-error`;
  let note = document.getElementById(id);
  if (!message) {
    if (note) note.remove();
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
    return;
  }
  if (!note) {
    note = h("p", { id, class: "field-error", role: "alert", "data-testid": `${input.id}-error` });
    input.after(note);
  }
  note.textContent = message;
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", id);
}

/** The JSON input parsed and checked as an object, or a message saying what is wrong and where. */
function parseInput(text) {
  try {
    const value = JSON.parse(text || "{}");
    if (value === null || typeof value !== "object" || Array.isArray(value)) return { error: "the input must be a JSON object, e.g. {\"email\": \"ann@example.com\"}" };
    return { value };
  } catch (exc) {
    return { error: `not JSON: ${exc.message}` };
  }
}

function startForm(name, version, canAct) {
  if (!canAct) return h("p", { class: "muted" }, "Starting executions needs a token that may act.");
  const input = h("textarea", { id: "start-input", rows: 8, spellcheck: "false", class: "mono" }, "{\n}");
  const idInput = h("input", { id: "start-id", type: "text", placeholder: "generated when empty" });
  const problem = h("div", {});
  input.addEventListener("input", () => fieldError(input, parseInput(input.value).error));
  return h("form", { class: "card", "data-testid": "start-form", onsubmit: async (event) => {
    event.preventDefault();
    const parsed = parseInput(input.value);
    fieldError(input, parsed.error);
    if (parsed.error) { input.focus(); return; }
    try {
      const answer = await unary("StartWorkflow", { reference: { name, version }, input: parsed.value, executionId: idInput.value.trim() });
      location.hash = `#/executions/${encodeURIComponent(answer.executionId)}`;
    } catch (exc) {
      if (exc instanceof ConnectError && exc.code === "invalid_argument") fieldError(input, exc.message);
      else if (exc instanceof ConnectError && exc.code === "already_exists") fieldError(idInput, exc.message);
      else fill(problem, errorBanner(exc));
    }
  } },
  h("h2", {}, "Start an execution"),
  h("label", { for: "start-input" }, "Input (JSON object)"), input,
  h("label", { for: "start-id" }, "Execution id (optional)"), idInput,
  problem, h("button", { type: "submit", class: "primary", "data-testid": "action-start" }, "Start"));
}

export function workflowPage(view, ctx, name, version) {
  const page = h("div", {});  // filled when the answer comes, even if the view moved on
  view.append(page);
  unary("GetWorkflow", { name, version }).then((answer) => {
    const w = answer.workflow;
    fill(page, h("h1", {}, "Workflow ", h("span", { class: "mono" }, w.name), h("span", { class: "muted" }, ` v${w.version}`)),
      w.description ? h("p", {}, w.description) : null,
      h("p", { class: "muted" }, "Registered ", time(w.createTime), ` · hash ${w.hash.slice(0, 12)}… · `,
        h("a", { href: `#/executions?workflow=${encodeURIComponent(w.name)}` }, "its executions")),
      h("section", {}, h("h2", {}, "Graph"), renderGraph(w.steps || [], null)),
      startForm(w.name, w.version, ctx.canAct),
      h("section", {}, h("h2", {}, "Definition"), numbered(w.workflowYaml)));
  }).catch((exc) => fill(page, h("h1", {}, `Workflow ${name}`), errorBanner(exc)));
}

export function validatePage(view) {
  const text = h("textarea", { id: "validate-yaml", rows: 18, spellcheck: "false", class: "mono", placeholder: "name: my-workflow\nversion: \"1\"\nservices: …\nsteps: …" });
  const result = h("div", { "aria-live": "polite", "data-testid": "validation-result" });
  view.append(h("h1", {}, "Validate a workflow"),
    h("form", { class: "card", onsubmit: async (event) => {
      event.preventDefault();
      try {
        const answer = await unary("ValidateWorkflow", { workflowYaml: text.value });
        const diagnostics = answer.diagnostics || [];
        const marks = new Map(diagnostics.map((d) => [d.line, { severity: (d.severity || "").replace("DIAGNOSTIC_SEVERITY_", "").toLowerCase(), text: d.message }]));
        fill(result, 
          h("p", { class: answer.valid ? "ok" : "error-text", "data-testid": "validation-verdict" }, answer.valid ? `✓ valid${diagnostics.length ? `, with ${diagnostics.length} warning(s)` : ""}` : `✕ invalid: ${diagnostics.length} problem(s)`),
          h("ul", { class: "diagnostics" }, diagnostics.map((d) => h("li", { "data-testid": "validation-diagnostic" },
            h("a", { href: `#/validate`, onclick: (e) => { e.preventDefault(); const line = document.getElementById(`validated-${d.line}`); if (line) { line.scrollIntoView({ block: "center" }); line.classList.add("flash"); } } },
              `line ${d.line}:${d.column}`), ` ${(d.severity || "").replace("DIAGNOSTIC_SEVERITY_", "").toLowerCase()} `,
            h("code", {}, d.code), ` ${d.message}`, d.path ? h("span", { class: "muted" }, ` (${d.path})`) : null))),
          numbered(text.value, marks, { id: "validated" }),
          answer.valid ? h("section", {}, h("h2", {}, "Graph"), renderGraph(answer.steps || [], null)) : null);
      } catch (exc) {
        fill(result, errorBanner(exc));
      }
    } },
    h("label", { for: "validate-yaml" }, "Workflow YAML"), text,
    h("button", { type: "submit", class: "primary" }, "Validate")), result);
}
