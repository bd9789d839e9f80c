// The contact card: phones with click-to-call, status (saved on change), follow-up, notes, tags,
// and the call history with a player for each call that has a recording.

import { api, withQuery } from "../api.js";
import { h, replaceChildren } from "../dom.js";
import { t, formatDateTime, formatDuration, currentLanguage } from "../i18n.js";
import { apiErrorText, causeText } from "../errors.js";

export function toLocalInput(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return "";
  const pad = (value) => String(value).padStart(2, "0");
  return `${moment.getFullYear()}-${pad(moment.getMonth() + 1)}-${pad(moment.getDate())}` +
    `T${pad(moment.getHours())}:${pad(moment.getMinutes())}`;
}

export function fromLocalInput(value) {
  if (!value) return null;
  const moment = new Date(value);
  return Number.isNaN(moment.getTime()) ? null : moment.toISOString();
}

function localTimeIn(timezone) {
  if (!timezone) return "";
  try {
    return new Intl.DateTimeFormat(currentLanguage(), { timeStyle: "short", timeZone: timezone }).format(new Date());
  } catch {
    return "";
  }
}

export class ContactCard {
  constructor(app) {
    this.app = app;
    this.contact = null;
    this.calls = [];
    this.element = h("section", { class: "pane-card", id: "contact-card", "aria-live": "polite" });
    this.generation = 0;
    this.showEmpty();
  }

  showEmpty() {
    this.contact = null;
    replaceChildren(this.element, h("p", { class: "empty" }, t("card.pick_contact")));
  }

  async show(contactId) {
    const generation = ++this.generation;
    try {
      const [contact, calls] = await Promise.all([
        api("GET", `/api/contacts/${contactId}`),
        api("GET", withQuery("/api/calls", { contact_id: contactId, limit: 20 })),
      ]);
      if (generation !== this.generation) return;
      this.contact = contact;
      this.calls = calls.items;
      this.render();
    } catch (error) {
      if (generation !== this.generation) return;
      this.contact = null;
      replaceChildren(this.element, h("p", { class: "error" }, apiErrorText(error)));
    }
  }

  reload() {
    if (this.contact) return this.show(this.contact.id);
    return Promise.resolve();
  }

  render() {
    const contact = this.contact;
    const localTime = localTimeIn(contact.timezone);
    replaceChildren(this.element, h("article", { class: "card" },
      h("h1", { id: "card-name" }, contact.name || contact.company || `#${contact.id}`),
      h("div", { class: "subtitle" },
        [contact.company, contact.position, contact.email].filter(Boolean).join(" · "),
        localTime ? ` · ${t("card.local_time", { time: localTime })}` : ""),
      this.phonesSection(), this.statusSection(), this.editSection(), this.historySection()));
  }

  phonesSection() {
    const phones = this.contact.phones;
    return h("section", { "aria-labelledby": "phones-title" },
      h("h2", { id: "phones-title" }, t("card.phones")),
      phones.length ? h("ul", { class: "phones" }, phones.map((phone, index) => h("li", {},
        h("button", {
          type: "button", class: "primary call-button", dataset: { phone: phone.e164 },
          "aria-keyshortcuts": index === 0 ? "c" : undefined,
          onclick: () => this.app.calls.place(this.contact, phone),
        }, t("card.call")),
        h("span", { class: "number" }, phone.e164),
        h("span", { class: "secondary" }, [t(`phone.kind.${phone.kind}`), phone.primary ? t("card.primary") : ""]
          .filter(Boolean).join(", ")))))
        : h("p", { class: "empty" }, t("card.no_phones")));
  }

  statusSection() {
    const select = h("select", {
      id: "card-status", "aria-label": t("card.status"), "aria-keyshortcuts": "s",
      onchange: () => this.save({ status: select.value }, note),
    }, this.app.statuses.map((status) => h("option", { value: status.code }, this.app.statusLabel(status.code))));
    select.value = this.contact.status;
    const note = h("span", { class: "secondary", role: "status", id: "card-status-note" });
    return h("section", {},
      h("h2", {}, t("card.status")),
      h("div", {}, select, " ", note));
  }

  editSection() {
    const contact = this.contact;
    const followUp = h("input", { type: "datetime-local", id: "card-follow-up", value: toLocalInput(contact.follow_up_at) });
    const followUpNote = h("input", { type: "text", id: "card-follow-up-note", value: contact.follow_up_note || "", maxlength: "2000" });
    const tags = h("input", { type: "text", id: "card-tags", value: (contact.tags || []).join(", "),
      placeholder: t("card.tags_hint") });
    const notes = h("textarea", { id: "card-notes", rows: "4", value: contact.notes || "" });
    const note = h("span", { class: "secondary", role: "status" });
    const form = h("form", {
      class: "grid-form",
      onsubmit: (event) => {
        event.preventDefault();
        this.save({
          follow_up_at: fromLocalInput(followUp.value),
          follow_up_note: followUpNote.value.trim() || null,
          tags: tags.value.split(",").map((tag) => tag.trim()).filter(Boolean),
          notes: notes.value,
        }, note);
      },
      onkeydown: (event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          form.requestSubmit();
        }
      },
    },
    h("label", { for: "card-follow-up" }, t("card.follow_up")), followUp,
    h("label", { for: "card-follow-up-note" }, t("card.follow_up_note")), followUpNote,
    h("label", { for: "card-tags" }, t("card.tags")), tags,
    h("label", { for: "card-notes" }, t("card.notes")), notes,
    h("span", {}), h("div", {}, h("button", { type: "submit", class: "primary" }, t("card.save")), " ", note));
    return h("section", {}, h("h2", {}, t("card.follow_up_and_notes")), form);
  }

  historySection() {
    if (!this.calls.length) {
      return h("section", {}, h("h2", {}, t("card.history")), h("p", { class: "empty" }, t("card.no_calls")));
    }
    return h("section", {}, h("h2", {}, t("card.history")),
      h("table", { class: "history", id: "call-history" },
        h("thead", {}, h("tr", {},
          [t("history.when"), t("history.number"), t("history.result"), t("history.talk"), t("history.outcome"), t("history.recording")]
            .map((title) => h("th", { scope: "col" }, title)))),
        h("tbody", {}, this.calls.map((call) => h("tr", { dataset: { callId: String(call.id) } },
          h("td", {}, formatDateTime(call.created_at)),
          h("td", {}, call.phone_e164),
          h("td", {}, call.end_cause ? causeText(call.end_cause, call.sip_code) : t(`call.state.${call.state}`)),
          h("td", {}, call.talk_seconds ? formatDuration(call.talk_seconds) : ""),
          h("td", {}, call.outcome ? this.app.statusLabel(call.outcome) : "",
            call.outcome_note ? h("div", { class: "secondary" }, call.outcome_note) : ""),
          h("td", {}, call.recording_url
            ? h("audio", { controls: true, preload: "none", src: call.recording_url })
            : ""))))));
  }

  async save(changes, note) {
    note.textContent = t("card.saving");
    note.classList.remove("error");
    try {
      this.contact = await api("PATCH", `/api/contacts/${this.contact.id}`, changes);
      note.textContent = t("card.saved");
      this.app.contactChanged(this.contact, true);
    } catch (error) {
      note.textContent = apiErrorText(error);
      note.classList.add("error");
    }
  }

  callPrimary() {
    if (!this.contact || !this.contact.phones.length) return;
    const phone = this.contact.phones.find((item) => item.primary) || this.contact.phones[0];
    this.app.calls.place(this.contact, phone);
  }
}
