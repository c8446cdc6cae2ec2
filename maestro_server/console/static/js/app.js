// The console's shell: the session (bearer token and role), the hash router, the navigation.

import { getToken, session, setToken } from "./connect.js";
import { executionsPage } from "./executions.js";
import { executionPage } from "./execution.js";
import { h } from "./ui.js";
import { validatePage, workflowPage, workflowsPage } from "./workflows.js";

const view = document.getElementById("view");
const who = document.getElementById("session");
let dispose = () => {};
let current = { authRequired: false, role: "admin" };

const ROUTES = [
  [/^#\/executions\/(.+)$/, (m, ctx) => executionPage(view, ctx, decodeURIComponent(m[1]))],
  [/^#\/workflows\/([^/]+)\/([^/]+)$/, (m, ctx) => workflowPage(view, ctx, decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^#\/workflows$/, (m, ctx) => workflowsPage(view, ctx)],
  [/^#\/validate$/, (m, ctx) => validatePage(view, ctx)],
  [/^(#\/?(executions)?)?$/, (m, ctx) => executionsPage(view, ctx)],
];

function signInForm() {
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  return h("form", { class: "card narrow", "data-testid": "sign-in", onsubmit: async (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    await start();
  } },
  h("h1", {}, "Sign in"),
  h("p", {}, "This server wants a bearer token (one of its --auth-token-file lines)."),
  h("label", { for: "token" }, "Bearer token"), input,
  getToken() ? h("p", { class: "field-error", role: "alert" }, "That token is not known to the server.") : null,
  h("button", { type: "submit", class: "primary" }, "Sign in"));
}

function renderSession() {
  who.replaceChildren();
  if (!current.authRequired) return;
  who.append(h("span", { "data-testid": "session-role" }, current.role === "read" ? "read-only" : current.role || "signed out"),
    " ", h("button", { type: "button", class: "link", onclick: () => { setToken(""); start(); } }, "Sign out"));
}

function route() {
  dispose();
  dispose = () => {};
  view.replaceChildren();
  for (const link of document.querySelectorAll("nav a")) {
    const active = location.hash.startsWith(link.getAttribute("href")) || (!location.hash && link.getAttribute("href") === "#/executions");
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (current.authRequired && !current.role) {
    view.append(signInForm());
    return;
  }
  const [path, search] = (location.hash || "#/executions").split("?");
  const ctx = { canAct: current.role === "admin", query: new URLSearchParams(search || "") };
  for (const [pattern, page] of ROUTES) {
    const match = path.match(pattern);
    if (match) {
      dispose = page(match, ctx) || (() => {});
      view.focus({ preventScroll: true });
      return;
    }
  }
  view.append(h("p", {}, "No such page. ", h("a", { href: "#/executions" }, "Executions")));
}

async function start() {
  try {
    current = await session();
  } catch {
    current = { authRequired: false, role: "admin" };
  }
  renderSession();
  route();
}

window.addEventListener("hashchange", route);
start();
