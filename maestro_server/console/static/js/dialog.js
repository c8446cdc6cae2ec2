// A confirmation dialog that takes an optional reason; focus is trapped by <dialog> and
// returns to the button that opened it.

import { h } from "./ui.js";

/** Resolves to {reason} when confirmed, null when dismissed. */
export function confirmAction({ title, text, confirm, reason }) {
  const opener = document.activeElement;
  const reasonInput = reason ? h("input", { id: "confirm-reason", type: "text", placeholder: "why (recorded in the execution's error)" }) : null;
  return new Promise((resolve) => {
    const dialog = h("dialog", { "data-testid": "confirm-dialog", "aria-labelledby": "confirm-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "confirm-title" }, title), h("p", {}, text),
        reason ? [h("label", { for: "confirm-reason" }, "Reason"), reasonInput] : null,
        h("div", { class: "dialog-buttons" },
          h("button", { value: "cancel", type: "submit" }, "Keep it"),
          h("button", { value: "confirm", type: "submit", class: "primary danger", "data-testid": "confirm" }, confirm))));
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener && opener.focus) opener.focus();
      resolve(dialog.returnValue === "confirm" ? { reason: reasonInput ? reasonInput.value.trim() : "" } : null);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
