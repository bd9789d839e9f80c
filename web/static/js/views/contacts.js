// The contact list: instant search (as you type, debounced, stale answers dropped), status
// filter, "my follow-ups due", pagination, keyboard selection (arrows, Enter).

import { api, withQuery } from "../api.js";
import { h, replaceChildren, debounce } from "../dom.js";
import { t, formatDateTime } from "../i18n.js";
import { apiErrorText } from "../errors.js";

const PAGE_SIZE = 20;

export class ContactsView {
  constructor(app) {
    this.app = app;
    this.text = "";
    this.status = "";
    this.due = false;
    this.offset = 0;
    this.page = { items: [], total: 0 };
    this.selected = -1;
    this.request = null;
    this.generation = 0;
    this.element = null;
    this.searchLater = debounce(() => { this.offset = 0; this.load(); }, 180);
    this.build();
  }

  build() {
    this.search = h("input", {
      type: "search", id: "contact-search", autocomplete: "off", spellcheck: "false",
      placeholder: t("contacts.search_placeholder"), "aria-label": t("contacts.search"),
      "aria-keyshortcuts": "/", "aria-controls": "contact-list",
      oninput: () => { this.text = this.search.value.trim(); this.syncAddress(); this.searchLater(); },
      onkeydown: (event) => this.onListKey(event),
    });
    this.statusSelect = h("select", {
      id: "status-filter", "aria-label": t("contacts.status_filter"),
      onchange: () => { this.status = this.statusSelect.value; this.offset = 0; this.syncAddress(); this.load(); },
    });
    this.dueToggle = h("button", {
      type: "button", id: "due-filter", "aria-pressed": "false", "aria-keyshortcuts": "f",
      onclick: () => this.setDue(!this.due),
    }, t("contacts.followups_due"));
    this.list = h("ul", {
      class: "contact-list", id: "contact-list", role: "listbox", tabindex: "0",
      "aria-label": t("contacts.title"), onkeydown: (event) => this.onListKey(event),
    });
    this.summary = h("span", { class: "summary", role: "status" });
    this.previous = h("button", { type: "button", onclick: () => this.turnPage(-1) }, t("contacts.previous"));
    this.next = h("button", { type: "button", onclick: () => this.turnPage(1) }, t("contacts.next"));
    this.element = h("section", { class: "pane-list", "aria-label": t("contacts.title") },
      h("div", { class: "filters" }, this.search, this.statusSelect, this.dueToggle),
      this.list,
      h("div", { class: "pager" }, this.previous, this.next, this.summary));
    this.fillStatuses();
  }

  fillStatuses() {
    replaceChildren(this.statusSelect, h("option", { value: "" }, t("contacts.all_statuses")),
      this.app.statuses.map((status) => h("option", { value: status.code }, this.app.statusLabel(status.code))));
    this.statusSelect.value = this.status;
  }

  readAddress(parameters) {
    this.text = parameters.get("q") || "";
    this.status = parameters.get("status") || "";
    this.due = parameters.get("due") === "1";
    this.offset = Math.max(0, Number(parameters.get("offset")) || 0);
    this.search.value = this.text;
    this.statusSelect.value = this.status;
    this.dueToggle.setAttribute("aria-pressed", String(this.due));
  }

  query() {
    return withQuery("", { q: this.text, status: this.status, due: this.due ? "1" : "", offset: this.offset || "" });
  }

  syncAddress() {
    const address = `${window.location.pathname}${this.query()}`;
    window.history.replaceState(window.history.state, "", address);
  }

  setDue(due) {
    this.due = due;
    this.offset = 0;
    this.dueToggle.setAttribute("aria-pressed", String(due));
    this.syncAddress();
    this.load();
  }

  turnPage(direction) {
    const offset = this.offset + direction * PAGE_SIZE;
    if (offset < 0 || offset >= Math.max(this.page.total, 1)) return;
    this.offset = offset;
    this.syncAddress();
    this.load();
  }

  async load() {
    if (this.request) this.request.abort();
    const request = new AbortController();
    this.request = request;
    const generation = ++this.generation;
    const path = withQuery("/api/contacts", {
      q: this.text, status: this.status, follow_up_due: this.due ? "true" : "",
      limit: PAGE_SIZE, offset: this.offset,
    });
    this.list.setAttribute("aria-busy", "true");
    try {
      const page = await api("GET", path, undefined, { signal: request.signal });
      if (generation !== this.generation) return;
      this.page = page;
      this.selected = page.items.findIndex((item) => item.id === this.app.openContactId);
      this.render();
    } catch (error) {
      if (error.name === "AbortError" || generation !== this.generation) return;
      replaceChildren(this.list, h("li", { class: "empty error" }, apiErrorText(error)));
    } finally {
      if (generation === this.generation) this.list.removeAttribute("aria-busy");
    }
  }

  render() {
    const { items, total } = this.page;
    if (!items.length) {
      replaceChildren(this.list, h("li", { class: "empty", role: "presentation" },
        this.due ? t("contacts.no_followups") : t("contacts.nothing_found")));
    } else {
      replaceChildren(this.list, items.map((contact, index) => this.row(contact, index)));
    }
    const first = total ? this.offset + 1 : 0;
    const last = this.offset + items.length;
    this.summary.textContent = t("contacts.range", { first, last, total });
    this.previous.disabled = this.offset === 0;
    this.next.disabled = last >= total;
  }

  row(contact, index) {
    const phone = contact.phones.find((item) => item.primary) || contact.phones[0];
    const due = contact.follow_up_at && new Date(contact.follow_up_at) <= new Date();
    return h("li", {
      role: "option", id: `contact-${contact.id}`, dataset: { contactId: String(contact.id) },
      "aria-selected": String(index === this.selected),
      onclick: () => { this.selected = index; this.app.openContact(contact.id); },
    },
    h("span", { class: "name" }, contact.name || contact.company || (phone ? phone.e164 : `#${contact.id}`)),
    h("span", { class: "status" }, this.app.statusLabel(contact.status)),
    h("span", { class: "secondary" }, [contact.company, phone ? phone.e164 : ""].filter(Boolean).join(" · ")),
    h("span", { class: due ? "secondary due" : "secondary" },
      contact.follow_up_at ? t("contacts.follow_up_at", { when: formatDateTime(contact.follow_up_at) }) : ""));
  }

  markOpen(contactId) {
    this.selected = this.page.items.findIndex((item) => item.id === contactId);
    for (const item of this.list.querySelectorAll("li[role=option]")) {
      item.setAttribute("aria-selected", String(Number(item.dataset.contactId) === contactId));
    }
  }

  moveSelection(delta) {
    const count = this.page.items.length;
    if (!count) return;
    this.selected = Math.min(count - 1, Math.max(0, this.selected + delta));
    const items = this.list.querySelectorAll("li[role=option]");
    items.forEach((item, index) => item.setAttribute("aria-selected", String(index === this.selected)));
    const current = items[this.selected];
    if (current) {
      current.scrollIntoView({ block: "nearest" });
      this.list.setAttribute("aria-activedescendant", current.id);
    }
  }

  openSelected() {
    const contact = this.page.items[this.selected] || (this.page.items.length === 1 ? this.page.items[0] : null);
    if (contact) this.app.openContact(contact.id);
  }

  onListKey(event) {
    if (event.key === "ArrowDown") { this.moveSelection(1); event.preventDefault(); }
    else if (event.key === "ArrowUp") { this.moveSelection(-1); event.preventDefault(); }
    else if (event.key === "Enter") { this.openSelected(); event.preventDefault(); }
    else if (event.key === "PageDown") { this.turnPage(1); event.preventDefault(); }
    else if (event.key === "PageUp") { this.turnPage(-1); event.preventDefault(); }
    else if (event.key === "Escape" && event.target === this.search && this.search.value) {
      this.search.value = "";
      this.text = "";
      this.syncAddress();
      this.load();
    }
  }

  focusSearch() {
    this.search.focus();
    this.search.select();
  }
}
