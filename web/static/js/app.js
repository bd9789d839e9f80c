// The application: session, router (History API), header, hotkeys and the wiring between the
// live events, the contact views, the call bar and the after-call form.

import { api, setCsrfToken } from "./api.js";
import { debounce, isTyping, replaceChildren, h } from "./dom.js";
import { chooseLanguage, currentLanguage, has, loadLanguage, rememberLanguage, t, translateTree } from "./i18n.js";
import { LiveEvents } from "./live.js";
import { CallController, DTMF_KEYS } from "./calls.js";
import { causeText } from "./errors.js";
import { renderLogin } from "./views/login.js";
import { ContactsView } from "./views/contacts.js";
import { ContactCard } from "./views/contact-card.js";
import { AfterCallForm } from "./views/after-call.js";
import { SelfTest } from "./views/self-test.js";
import { HelpOverlay } from "./views/help.js";
import { LibraryView, PlayerView } from "./library.js";
import { ReportsView } from "./reports.js";
import { FloorView } from "./floor.js";

const AUDIO_LEG_KEY = "dialer.audio-leg";
const byId = (id) => document.getElementById(id);

class App {
  constructor() {
    this.user = null;
    this.statuses = [];
    this.main = byId("main");
    this.top = byId("top");
    this.live = new LiveEvents();
    this.calls = new CallController(this, byId("call-bar"));
    this.afterCall = null;
    this.help = new HelpOverlay(byId("overlay-root"));
    this.contacts = null;
    this.card = null;
    this.selfTest = null;
    this.openContactId = null;
    this.reloadList = debounce(() => { if (this.contacts) this.contacts.load(); }, 300);
    this.causeText = causeText;
  }

  async boot() {
    await loadLanguage(chooseLanguage());
    translateTree(document.body);
    this.afterCall = new AfterCallForm(this, byId("overlay-root"), byId("pending-outcomes"));
    this.wireHeader();
    this.wireLive();
    document.addEventListener("keydown", (event) => this.onKey(event));
    window.addEventListener("popstate", () => this.route());
    window.addEventListener("dialer:session-lost", () => this.sessionLost());
    try {
      const session = await api("GET", "/api/session");
      setCsrfToken(session.csrf_token);
      await this.signedIn(session.user);
    } catch {
      this.showLogin();
    }
  }

  wireHeader() {
    const language = byId("language");
    language.value = currentLanguage();
    language.addEventListener("change", () => this.changeLanguage(language.value));
    const leg = byId("audio-leg");
    leg.value = this.audioLeg();
    leg.addEventListener("change", () => localStorage.setItem(AUDIO_LEG_KEY, leg.value));
    byId("logout").addEventListener("click", () => this.logOut());
    byId("help-button").addEventListener("click", () => this.help.toggle());
    document.addEventListener("click", (event) => {
      const link = event.target instanceof Element ? event.target.closest("a[data-link]") : null;
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      this.navigate(link.getAttribute("href"));
    });
  }

  wireLive() {
    const live = this.live;
    live.addEventListener("status", (event) => {
      const status = byId("live-status");
      status.textContent = event.detail.connected ? t("live.connected") : t("live.reconnecting");
      status.classList.toggle("offline", !event.detail.connected);
    });
    live.addEventListener("hello", (event) => this.calls.adoptCurrent(event.detail.current_call));
    live.addEventListener("gap", () => this.reloadVisible());
    live.addEventListener("session-expired", () => this.sessionLost());
    live.addEventListener("event", (event) => this.onLiveEvent(event.detail));
  }

  onLiveEvent(message) {
    const payload = message.payload || {};
    if (this.floor) this.floor.onEvent(message);
    if (message.kind.startsWith("call.")) {
      this.calls.onCallEvent(message);
    } else if (message.kind === "contact.updated") {
      this.contactChanged({ id: payload.contact_id });
    } else if (message.kind === "followup.due") {
      const name = payload.name || this.contactName(payload.contact_id) || `#${payload.contact_id}`;
      this.toast(t("followup.due", { name }));
      if (this.contacts && this.contacts.due) this.reloadList();
    } else if (message.kind === "operator.state") {
      const state = payload.state ? (has(`operator.${payload.state}`) ? t(`operator.${payload.state}`) : payload.state) : "";
      byId("user-name").textContent = [this.user && this.user.display_name, state].filter(Boolean).join(" · ");
    }
  }

  reloadVisible() {
    if (this.contacts && this.main.contains(this.contacts.element)) this.contacts.load();
    if (this.card) this.card.reload();
    if (this.floor && this.floor.mounted) this.floor.load();
  }

  async signedIn(user) {
    this.user = user;
    byId("user-name").textContent = user.display_name || user.login;
    this.top.hidden = false;
    for (const link of document.querySelectorAll("[data-staff-only]")) link.hidden = user.role === "operator";
    try {
      this.statuses = (await api("GET", "/api/statuses")).items;
    } catch {
      this.statuses = [];
    }
    this.buildViews();
    this.live.start(user.id);
    if (window.location.pathname === "/login") this.navigate("/", true);
    else this.route();
  }

  buildViews() {
    this.contacts = new ContactsView(this);
    this.card = new ContactCard(this);
    this.selfTest = new SelfTest(this);
    if (this.library) this.library.unmount();
    if (this.player) this.player.unmount();
    this.library = new LibraryView(this);
    this.player = new PlayerView(this);
    if (this.reports) this.reports.unmount();
    this.reports = new ReportsView(this);
    if (this.floor) this.floor.unmount();
    this.floor = new FloorView(this);
  }

  showLogin() {
    this.user = null;
    this.top.hidden = true;
    this.live.stop();
    if (this.selfTest) this.selfTest.unmount();
    if (window.location.pathname !== "/login") {
      const back = window.location.pathname + window.location.search;
      window.history.replaceState({ back }, "", "/login");
    }
    renderLogin(this.main, {
      onLoggedIn: (user) => {
        const back = (window.history.state && window.history.state.back) || "/";
        window.history.replaceState({}, "", back === "/login" ? "/" : back);
        this.signedIn(user);
      },
    });
  }

  sessionLost() {
    if (!this.user) return;
    setCsrfToken(null);
    this.showLogin();
    byId("login-error").textContent = t("error.session_expired");
  }

  async logOut() {
    try {
      await api("DELETE", "/api/session");
    } catch {
      // the session may already be gone; the login page is shown either way
    }
    setCsrfToken(null);
    this.showLogin();
  }

  async changeLanguage(code) {
    rememberLanguage(code);
    await loadLanguage(code);
    translateTree(document.body);
    if (this.user) {
      this.buildViews();
      this.route();
    } else {
      this.showLogin();
    }
    this.calls.render();
    this.afterCall.renderPending();
  }

  audioLeg() {
    return localStorage.getItem(AUDIO_LEG_KEY) === "phone" ? "phone" : "browser";
  }

  statusLabel(code) {
    if (has(`status.${code}`)) return t(`status.${code}`);
    const status = this.statuses.find((item) => item.code === code);
    return status ? status.label : code;
  }

  contactName(contactId) {
    if (!contactId) return "";
    if (this.card && this.card.contact && this.card.contact.id === contactId) return this.card.contact.name;
    const listed = this.contacts && this.contacts.page.items.find((item) => item.id === contactId);
    return listed ? listed.name : "";
  }

  contactChanged(contact, fromCard = false) {
    this.reloadList();
    if (fromCard || !contact || !this.card || !this.card.contact || this.card.contact.id !== contact.id) return;
    const editing = this.card.element.contains(document.activeElement) && isTyping(document.activeElement);
    if (!editing) this.card.reload();
  }

  navigate(path, replace = false) {
    if (replace) window.history.replaceState({}, "", path);
    else window.history.pushState({}, "", path);
    this.route();
  }

  openContact(contactId) {
    this.navigate(`/contacts/${contactId}${this.contacts ? this.contacts.query() : ""}`);
  }

  route() {
    if (!this.user) {
      this.showLogin();
      return;
    }
    const path = window.location.pathname;
    for (const link of document.querySelectorAll(".nav a")) {
      const [linkPath, linkQuery] = link.getAttribute("href").split("?");
      const current = linkPath === path && (linkQuery ? window.location.search === `?${linkQuery}` : !window.location.search.includes("due=1"));
      if (current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    this.library.unmount();
    this.player.unmount();
    this.reports.unmount();
    this.floor.unmount();
    if (path === "/floor") {
      this.openContactId = null;
      this.selfTest.unmount();
      this.floor.mount(this.main);
      return;
    }
    if (path === "/reports") {
      this.openContactId = null;
      this.selfTest.unmount();
      this.reports.mount(this.main);
      return;
    }
    if (path === "/self-test") {
      this.openContactId = null;
      this.selfTest.mount(this.main);
      return;
    }
    this.selfTest.unmount();
    const player = /^\/calls\/(\d+)\/player$/.exec(path);
    if (path === "/library" || player) {
      this.openContactId = null;
      if (player) this.player.mount(this.main, Number(player[1]));
      else this.library.mount(this.main);
      return;
    }
    this.showListLayout();
    const match = /^\/contacts\/(\d+)$/.exec(path);
    if (match) {
      this.openContactId = Number(match[1]);
      this.contacts.markOpen(this.openContactId);
      this.card.show(this.openContactId);
    } else {
      this.openContactId = null;
      this.card.showEmpty();
    }
  }

  showListLayout() {
    const mounted = this.main.contains(this.contacts.element);
    if (!mounted) replaceChildren(this.main, this.contacts.element, this.card.element);
    if (!mounted || this.contacts.query() !== window.location.search) {
      this.contacts.readAddress(new URLSearchParams(window.location.search));
      this.contacts.load();
    }
  }

  toast(message, kind = "info") {
    const toast = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
    byId("toasts").append(toast);
    setTimeout(() => toast.remove(), kind === "error" ? 8000 : 4000);
  }

  onKey(event) {
    if (!this.user || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (this.afterCall.isOpen || this.help.isOpen) return;
    const key = event.key;
    if (key === "Escape") {
      if (isTyping(event.target)) event.target.blur();
      else if (this.openContactId) this.navigate(`/${this.contacts.query()}`);
      return;
    }
    if (isTyping(event.target)) return;
    const calls = this.calls;
    if (calls.keypadOpen && DTMF_KEYS.includes(key)) {
      event.preventDefault();
      calls.sendDigits(key);
      return;
    }
    const actions = {
      "?": () => this.help.toggle(),
      "/": () => {
        if (window.location.pathname === "/self-test") this.navigate("/");
        this.contacts.focusSearch();
      },
      f: () => this.contacts.setDue(!this.contacts.due),
      c: () => this.card.callPrimary(),
      e: () => calls.hangUp(),
      m: () => calls.toggleMute(),
      h: () => calls.toggleHold(),
      d: () => calls.toggleKeypad(),
      o: () => this.afterCall.reopen(),
      s: () => { const select = byId("card-status"); if (select) select.focus(); },
      n: () => { const notes = byId("card-notes"); if (notes) notes.focus(); },
    };
    const action = actions[key];
    if (action) {
      event.preventDefault();
      action();
    }
  }
}

const app = new App();
window.dialerApp = app; // for debugging from the console
app.boot();
