// The keyboard help overlay (key ?).

import { h } from "../dom.js";
import { t } from "../i18n.js";

export const HOTKEYS = [
  ["/", "help.search"], ["↑ ↓", "help.move"], ["Enter", "help.open"], ["PgUp PgDn", "help.pages"],
  ["f", "help.followups"], ["c", "help.call"], ["e", "help.hang_up"], ["m", "help.mute"],
  ["h", "help.hold"], ["d", "help.keypad"], ["0-9 * #", "help.dtmf"], ["s", "help.status"],
  ["n", "help.notes"], ["o", "help.pending"], ["1-9", "help.outcome"], ["Enter ", "help.save_outcome"],
  ["Esc", "help.escape"], ["?", "help.toggle"],
];

export class HelpOverlay {
  constructor(root) {
    this.root = root;
    this.backdrop = null;
  }

  get isOpen() {
    return this.backdrop !== null;
  }

  toggle() {
    if (this.isOpen) this.close();
    else this.open();
  }

  open() {
    this.previousFocus = document.activeElement;
    const close = h("button", { type: "button", onclick: () => this.close() }, t("help.close"));
    this.backdrop = h("div", { class: "modal-backdrop", onclick: (event) => { if (event.target === this.backdrop) this.close(); } },
      h("div", { class: "modal", role: "dialog", "aria-modal": "true", "aria-labelledby": "help-title", id: "help-overlay",
        onkeydown: (event) => {
          event.stopPropagation();
          if (event.key === "Escape" || event.key === "?") { event.preventDefault(); this.close(); }
        } },
      h("h2", { id: "help-title" }, t("help.title")),
      h("table", { class: "help-table" }, h("tbody", {}, HOTKEYS.map(([keys, key]) =>
        h("tr", {}, h("td", {}, h("kbd", {}, keys.trim())), h("td", {}, t(key)))))),
      h("div", { class: "actions" }, close)));
    this.root.append(this.backdrop);
    close.focus();
  }

  close() {
    if (this.backdrop) this.backdrop.remove();
    this.backdrop = null;
    if (this.previousFocus && this.previousFocus.isConnected) this.previousFocus.focus();
  }
}
