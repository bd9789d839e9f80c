// The after-call form, keyboard first: it opens focused when a call ends; keys 1-9 pick the
// outcome, Tab moves through the fields, Enter saves (Shift+Enter is a new line in the note),
// Esc postpones. Postponed forms wait behind the "outcome pending" button in the header (key o).

import { api } from "../api.js";
import { h, isTyping } from "../dom.js";
import { t } from "../i18n.js";
import { apiErrorText } from "../errors.js";
import { fromLocalInput } from "./contact-card.js";

const PENDING_KEY = "dialer.pending-outcomes";

export class AfterCallForm {
  constructor(app, root, pendingButton) {
    this.app = app;
    this.root = root;
    this.pendingButton = pendingButton;
    this.current = null;
    this.queue = [];
    this.pending = this.loadPending();
    this.pendingButton.addEventListener("click", () => this.reopen());
    this.renderPending();
  }

  get isOpen() {
    return this.current !== null;
  }

  loadPending() {
    try {
      const stored = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "[]");
      return Array.isArray(stored) ? stored.filter((item) => Number.isInteger(item.callId)) : [];
    } catch {
      return [];
    }
  }

  savePending() {
    sessionStorage.setItem(PENDING_KEY, JSON.stringify(this.pending));
    this.renderPending();
  }

  renderPending() {
    this.pendingButton.hidden = this.pending.length === 0;
    this.pendingButton.textContent = t("after.pending", { count: this.pending.length });
    this.pendingButton.setAttribute("aria-keyshortcuts", "o");
  }

  offer(call) {
    if (!Number.isInteger(call.callId)) return;
    if (this.current && this.current.callId === call.callId) return;
    if (this.queue.some((item) => item.callId === call.callId)) return;
    this.pending = this.pending.filter((item) => item.callId !== call.callId);
    this.savePending();
    if (this.current) this.queue.push(call);
    else this.open(call);
  }

  reopen() {
    if (this.current || !this.pending.length) return;
    const [call] = this.pending.splice(0, 1);
    this.savePending();
    this.open(call);
  }

  open(call) {
    this.current = call;
    this.previousFocus = document.activeElement;
    const statuses = this.app.statuses;
    const error = h("p", { class: "error", role: "alert", id: "after-call-error" });
    const hint = h("p", { class: "secondary", id: "after-call-hint" });
    const radios = statuses.map((status, index) => h("input", {
      type: "radio", name: "outcome", value: status.code, id: `outcome-${status.code}`,
      dataset: { callback: String(status.callback) },
      onchange: () => this.onOutcomeChange(),
    }));
    const note = h("textarea", { id: "after-call-note", rows: "3", maxlength: "2000", "aria-label": t("after.note") });
    const followUp = h("input", { type: "datetime-local", id: "after-call-follow-up" });
    const form = h("form", {
      id: "after-call-form", novalidate: true,
      onsubmit: (event) => { event.preventDefault(); this.save(); },
    },
    h("fieldset", { class: "outcomes" },
      h("legend", {}, t("after.outcome_legend")),
      statuses.map((status, index) => h("label", { for: `outcome-${status.code}` }, radios[index],
        index < 9 ? h("kbd", {}, String(index + 1)) : null, this.app.statusLabel(status.code)))),
    hint,
    h("label", { for: "after-call-note" }, t("after.note")), note,
    h("label", { for: "after-call-follow-up" }, t("after.follow_up")), followUp,
    error,
    h("div", { class: "actions" },
      h("button", { type: "button", id: "after-call-later", onclick: () => this.postpone() }, t("after.later")),
      h("button", { type: "submit", class: "primary", id: "after-call-save" }, t("after.save"))));
    const dialog = h("div", {
      class: "modal", role: "dialog", "aria-modal": "true", "aria-labelledby": "after-call-title",
      onkeydown: (event) => this.onKey(event),
    },
    h("h2", { id: "after-call-title" }, t("after.title")),
    h("p", { class: "secondary" }, call.cause ? t("after.ended_with", { cause: this.app.causeText(call.cause) }) : ""),
    form);
    this.elements = { radios, note, followUp, error, hint, form, dialog };
    this.backdrop = h("div", { class: "modal-backdrop" }, dialog);
    this.root.append(this.backdrop);
    const contactName = this.app.contactName(call.contactId);
    if (contactName) dialog.querySelector("h2").textContent = t("after.title_for", { name: contactName });
    (radios[0] || note).focus();
  }

  onOutcomeChange() {
    const chosen = this.elements.radios.find((radio) => radio.checked);
    const needsTime = chosen && chosen.dataset.callback === "true";
    this.elements.hint.textContent = needsTime ? t("after.needs_follow_up") : "";
    this.elements.error.textContent = "";
  }

  pick(index) {
    const radio = this.elements.radios[index];
    if (!radio) return;
    radio.checked = true;
    radio.focus();
    this.onOutcomeChange();
  }

  onKey(event) {
    event.stopPropagation(); // the page's own hotkeys wait while the form is open
    if (event.key === "Escape") {
      event.preventDefault();
      this.postpone();
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.altKey) {
      if (event.target instanceof HTMLButtonElement && event.target.type === "button") return;
      event.preventDefault();
      this.save();
      return;
    }
    if (/^[1-9]$/.test(event.key) && !isTyping(event.target) && !event.ctrlKey && !event.altKey && !event.metaKey) {
      event.preventDefault();
      this.pick(Number(event.key) - 1);
      return;
    }
    if (event.key === "Tab") this.trapFocus(event);
  }

  trapFocus(event) {
    const focusable = [...this.elements.dialog.querySelectorAll("input, textarea, button, select")]
      .filter((element) => !element.disabled && !(element.type === "radio" && !element.checked &&
        this.elements.radios.some((radio) => radio.checked)));
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }

  async save() {
    const { radios, note, followUp, error } = this.elements;
    const chosen = radios.find((radio) => radio.checked);
    if (!chosen) {
      error.textContent = t("after.pick_outcome");
      (radios[0] || note).focus();
      return;
    }
    const followUpAt = fromLocalInput(followUp.value);
    if (chosen.dataset.callback === "true" && !followUpAt) {
      error.textContent = t("after.needs_follow_up");
      followUp.focus();
      return;
    }
    const call = this.current;
    error.textContent = t("after.saving");
    try {
      await api("POST", `/api/calls/${call.callId}/outcome`, {
        outcome: chosen.value, note: note.value.trim() || null, follow_up_at: followUpAt,
      });
    } catch (problem) {
      error.textContent = apiErrorText(problem);
      if (problem.field === "follow_up_at") followUp.focus();
      return;
    }
    this.close();
    this.app.toast(t("after.saved"));
    this.app.contactChanged({ id: call.contactId });
    if (this.app.calls.call && this.app.calls.call.id === call.callId) this.app.calls.dismiss();
  }

  postpone() {
    const call = this.current;
    if (!call) return;
    this.pending.push(call);
    this.savePending();
    this.close();
  }

  close() {
    if (this.backdrop) this.backdrop.remove();
    this.backdrop = null;
    this.current = null;
    this.elements = null;
    if (this.previousFocus && this.previousFocus.isConnected) this.previousFocus.focus();
    const next = this.queue.shift();
    if (next) this.open(next);
  }
}
