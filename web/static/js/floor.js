// The live floor (/floor), for supervisors and admins: the wallboard and live coaching.
//
// The board is read once from GET /api/floor (your team; everyone for admins) and then kept
// current by the events socket: operator.state moves an operator's state, call.created /
// call.answered / call.ended move today's figures, with the same rules as dialer/floor/board.py
// (stale state changes are ignored; calls are counted by id, so a replay never counts twice).
// Nothing polls: a one-second display timer only re-renders "time in state" and the talk time
// of calls in progress from the timestamps it already has (and reloads the board once when the
// local day changes, since "today" starts again).
//
// Listen / whisper / barge: POST /api/calls/{id}/monitor grants a monitor (audited), then a
// BrowserAudioLeg plays the call's mix from /ws/calls/{id}/monitor and sends the microphone.
// Switching mode on the same call is a message on that socket (audited too).

import { api, withQuery } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { t, has, currentLanguage } from "./i18n.js";
import { BrowserAudioLeg, MicrophoneError, socketUrl } from "./call-audio.js";
import { apiErrorText, microphoneText } from "./errors.js";

const STATES = ["offline", "idle", "dialing", "ringing", "talking", "wrap-up"];
const MODES = ["listen", "whisper", "barge"];

function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

function localDay(date = new Date()) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

function parseTime(value) {
  if (typeof value !== "string") return null;
  const moment = Date.parse(value);
  return Number.isNaN(moment) ? null : moment;
}

export function clock(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const rest = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

// Apply one live event to a board line (the rules of dialer/floor/board.py); true if it changed.
export function applyEvent(board, kind, payload) {
  const line = board.lines.get(payload.operator_id);
  const at = parseTime(payload.at);
  if (!line || at === null) return false;
  if (kind === "operator.state") {
    if (!STATES.includes(payload.state)) return false;
    if (line.since !== null && at < line.since) return false;
    if (payload.state !== line.state) {
      line.state = payload.state;
      line.since = at;
    }
    if (payload.state === "idle" || payload.state === "offline") {
      line.call_id = null;
      line.contact_id = null;
      line.contact_name = null;
      return true;
    }
    if (Number.isInteger(payload.call_id)) {
      if (payload.call_id !== line.call_id) {
        line.contact_id = null;
        line.contact_name = null;
      }
      line.call_id = payload.call_id;
    }
    if (Number.isInteger(payload.contact_id)) line.contact_id = payload.contact_id;
    if (typeof payload.contact_name === "string") line.contact_name = payload.contact_name;
    return true;
  }
  const callId = payload.call_id;
  if (!Number.isInteger(callId)) return false;
  if (kind === "call.created") {
    if (callId <= line.last_call_id) return false;
    line.last_call_id = callId;
    line.last_call_today = at >= board.dayStartedAt;
    line.answeredAt = null;
    line.last_call_talk_counted = false;
    if (line.last_call_today) line.calls_today += 1;
    return true;
  }
  if (callId !== line.last_call_id) return false;
  if (kind === "call.answered") {
    line.answeredAt = at;
    return true;
  }
  if (kind === "call.ended" && !line.last_call_talk_counted) {
    line.last_call_talk_counted = true;
    if (line.last_call_today && line.answeredAt !== null) {
      line.talk_seconds_today += Math.max(0, (at - line.answeredAt) / 1000);
    }
    return true;
  }
  return false;
}

export function boardFromSnapshot(snapshot) {
  const lines = new Map();
  for (const line of snapshot.operators) {
    lines.set(line.operator_id, {
      ...line,
      since: parseTime(line.state_since),
      answeredAt: parseTime(line.last_call_answered_at),
    });
  }
  return { lines, dayStartedAt: parseTime(snapshot.day_started_at), timezone: snapshot.timezone };
}

export class FloorView {
  constructor(app) {
    this.app = app;
    this.board = null;
    this.rows = new Map();
    this.timer = null;
    this.day = localDay();
    this.leg = null;
    this.monitoring = null;           // {callId, mode, operatorId}
    this.status = h("p", { class: "floor-status", role: "status", id: "floor-status" });
    this.body = h("tbody", {});
    this.element = h("section", { class: "floor", id: "floor" },
      h("h1", {}, t("floor.title")),
      this.status,
      h("table", { class: "floor-board" },
        h("thead", {}, h("tr", {},
          ["operator", "state", "in_state", "contact", "calls_today", "talk_today", "coach"]
            .map((name) => h("th", { scope: "col" }, t(`floor.${name}`))))),
        this.body));
  }

  get mounted() {
    return this.element.isConnected;
  }

  mount(main) {
    replaceChildren(main, this.element);
    this.load();
    clearInterval(this.timer);
    // Display only: re-render elapsed times from known timestamps, never fetch.
    this.timer = setInterval(() => this.tick(), 1000);
  }

  unmount() {
    clearInterval(this.timer);
    this.timer = null;
    this.stopMonitoring();
    this.element.remove();
  }

  async load() {
    try {
      const snapshot = await api("GET", withQuery("/api/floor", { timezone: browserZone() }));
      this.board = boardFromSnapshot(snapshot);
      this.day = localDay();
      this.status.textContent = "";
      this.render();
    } catch (error) {
      this.status.textContent = apiErrorText(error);
    }
  }

  onEvent(message) {
    if (!this.board || !this.mounted) return;
    const kind = message.kind;
    if (kind !== "operator.state" && !kind.startsWith("call.")) return;
    const payload = message.payload || {};
    if (applyEvent(this.board, kind, payload)) this.renderLine(this.board.lines.get(payload.operator_id));
    if (kind === "call.ended" && this.monitoring && this.monitoring.callId === payload.call_id) {
      this.stopMonitoring();
    }
  }

  render() {
    this.rows.clear();
    const lines = [...this.board.lines.values()];
    if (!lines.length) {
      replaceChildren(this.body, h("tr", {}, h("td", { colspan: 7, class: "secondary" }, t("floor.empty"))));
      return;
    }
    replaceChildren(this.body, lines.map((line) => this.row(line)));
  }

  row(line) {
    const cells = {
      name: h("th", { scope: "row" }, line.name, line.team_name ? h("span", { class: "team" }, ` · ${line.team_name}`) : null),
      state: h("td", { class: "state" }),
      since: h("td", { class: "since number" }),
      contact: h("td", { class: "contact" }),
      calls: h("td", { class: "calls number" }),
      talk: h("td", { class: "talk number" }),
      coach: h("td", { class: "coach" }),
    };
    const element = h("tr", { dataset: { operatorId: String(line.operator_id) } }, Object.values(cells));
    this.rows.set(line.operator_id, { element, cells });
    this.fill(line);
    return element;
  }

  renderLine(line) {
    if (!line) return;
    if (!this.rows.has(line.operator_id)) {
      this.render();
      return;
    }
    this.fill(line);
  }

  fill(line) {
    const { element, cells } = this.rows.get(line.operator_id);
    element.dataset.state = line.state;
    const stateKey = `floor.state.${line.state}`;
    cells.state.textContent = has(stateKey) ? t(stateKey) : line.state;
    cells.contact.textContent = line.contact_name || (line.contact_id ? `#${line.contact_id}` : "");
    cells.calls.textContent = new Intl.NumberFormat(currentLanguage()).format(line.calls_today);
    replaceChildren(cells.coach, this.coachButtons(line));
    this.fillTimes(line);
  }

  fillTimes(line) {
    const entry = this.rows.get(line.operator_id);
    if (!entry) return;
    const now = Date.now();
    entry.cells.since.textContent = line.since === null ? "" : clock((now - line.since) / 1000);
    let talk = line.talk_seconds_today;
    if (line.state === "talking" && line.answeredAt !== null && !line.last_call_talk_counted && line.last_call_today) {
      talk += Math.max(0, (now - line.answeredAt) / 1000);
    }
    entry.cells.talk.textContent = clock(talk);
  }

  coachButtons(line) {
    if (line.state !== "talking" || !line.call_id) return [];
    const active = this.monitoring && this.monitoring.callId === line.call_id ? this.monitoring.mode : null;
    const buttons = MODES.map((mode) => h("button", {
      type: "button",
      class: active === mode ? "active" : "",
      "aria-pressed": active === mode ? "true" : "false",
      dataset: { mode },
      onClick: () => this.monitor(line, mode),
    }, t(`floor.${mode}`)));
    if (active) buttons.push(h("button", { type: "button", class: "link", dataset: { mode: "stop" }, onClick: () => this.stopMonitoring() }, t("floor.stop")));
    return buttons;
  }

  tick() {
    if (!this.board) return;
    if (localDay() !== this.day) {
      this.load(); // a new day: today's figures start again
      return;
    }
    for (const line of this.board.lines.values()) this.fillTimes(line);
  }

  async monitor(line, mode) {
    const current = this.monitoring;
    if (current && current.callId === line.call_id && this.leg && this.leg.socket) {
      this.leg.socket.send(JSON.stringify({ type: "mode", mode }));
      return;
    }
    this.stopMonitoring();
    let granted;
    try {
      granted = await api("POST", `/api/calls/${line.call_id}/monitor`, { mode });
    } catch (error) {
      this.app.toast(apiErrorText(error), "error");
      return;
    }
    const leg = new BrowserAudioLeg({ url: socketUrl(granted.socket_path), onState: (message) => this.onMonitorState(leg, message) });
    this.leg = leg;
    this.monitoring = { callId: line.call_id, mode, operatorId: line.operator_id };
    this.refreshButtons();
    try {
      await leg.start();
    } catch (error) {
      if (this.leg === leg) this.stopMonitoring();
      this.app.toast(error instanceof MicrophoneError ? microphoneText(error.message) : t("floor.monitor_failed"), "error");
    }
  }

  onMonitorState(leg, message) {
    if (leg !== this.leg) return;
    if (message.type === "monitoring" || message.type === "mode") {
      this.monitoring = { ...this.monitoring, mode: message.mode };
      this.status.textContent = t(`floor.now_${message.mode}`);
      this.refreshButtons();
    } else if (message.type === "error") {
      this.app.toast(message.message || t("floor.monitor_failed"), "error");
    } else if (message.type === "ended" || message.type === "audio_closed") {
      this.stopMonitoring();
    }
  }

  stopMonitoring() {
    const leg = this.leg;
    this.leg = null;
    const had = this.monitoring;
    this.monitoring = null;
    if (leg) leg.stop();
    if (had) {
      this.status.textContent = "";
      this.refreshButtons();
    }
  }

  refreshButtons() {
    if (!this.board) return;
    for (const line of this.board.lines.values()) {
      const entry = this.rows.get(line.operator_id);
      if (entry) replaceChildren(entry.cells.coach, this.coachButtons(line));
    }
  }
}
