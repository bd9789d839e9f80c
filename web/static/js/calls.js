// Click-to-call and the in-call bar: state (dialing, ringing, talking, ended with its cause),
// a timer, mute, hold, DTMF keypad and hang up. States come from live events (call.*); the
// browser audio leg is attached over /ws/calls/{id}/audio when the operator talks in the browser.

import { api } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { t, formatDuration } from "./i18n.js";
import { BrowserAudioLeg, MicrophoneError, socketUrl } from "./call-audio.js";
import { callErrorText, causeText, isFailure, microphoneText } from "./errors.js";

const STATE_RANK = { starting: 0, created: 1, dialing: 2, ringing: 3, answered: 4, ended: 9, failed: 9, interrupted: 9 };
const FINISHED = new Set(["ended", "failed", "interrupted"]);
export const DTMF_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

export class CallController {
  constructor(app, bar) {
    this.app = app;
    this.bar = bar;
    this.call = null;
    this.leg = null;
    this.placing = false;
    this.early = [];
    this.keypadOpen = false;
    this.timer = null;
    this.notice = "";
  }

  get active() {
    return Boolean(this.call) && !FINISHED.has(this.call.state);
  }

  async place(contact, phone) {
    if (this.active || this.placing) {
      this.app.toast(t("error.call_conflict"), "error");
      return;
    }
    const audioLeg = this.app.audioLeg();
    this.placing = true;
    let leg = null;
    try {
      if (audioLeg === "browser") {
        leg = new BrowserAudioLeg({ onState: (message) => this.onAudioState(message) });
        try {
          await leg.prepare();
        } catch (error) {
          leg.stop();
          const code = error instanceof MicrophoneError ? error.message : "microphone_unavailable";
          this.app.toast(microphoneText(code), "error");
          return;
        }
      }
      this.call = {
        id: null, contactId: contact ? contact.id : null, contactName: contact ? contact.name : "",
        number: phone.e164, state: "starting", cause: null, sipCode: null, answeredAt: null,
        muted: false, held: false, audioLeg,
      };
      this.notice = "";
      this.render();
      let live;
      try {
        const body = { number: phone.e164, audio_leg: audioLeg };
        if (contact) body.contact_id = contact.id;
        if (phone.id) body.phone_id = phone.id;
        live = await api("POST", "/api/calls", body);
      } catch (error) {
        if (leg) leg.stop();
        this.call.state = "failed";
        this.notice = callErrorText(error);
        this.render();
        this.app.toast(this.notice, "error");
        return;
      }
      this.call.id = live.call_id;
      this.applyLive(live);
      if (leg) {
        this.leg = leg;
        leg = null;
        this.connectAudio();
      }
      const early = this.early.filter((message) => message.payload.call_id === this.call.id);
      this.early = [];
      for (const message of early) this.onCallEvent(message);
    } finally {
      this.placing = false;
      if (leg) leg.stop();
    }
  }

  async connectAudio() {
    if (!this.leg || !this.call || this.call.id === null) return;
    try {
      await this.leg.connect(socketUrl(`/ws/calls/${this.call.id}/audio`));
      this.leg.setMuted(this.call.muted);
      this.notice = "";
    } catch (error) {
      this.notice = t("error.audio_socket", { reason: error.message });
    }
    this.render();
  }

  async reconnectAudio() {
    if (!this.active) return;
    if (this.leg) this.leg.stop();
    this.leg = new BrowserAudioLeg({ onState: (message) => this.onAudioState(message) });
    try {
      await this.leg.prepare();
    } catch (error) {
      this.leg.stop();
      this.leg = null;
      this.notice = microphoneText(error.message);
      this.render();
      return;
    }
    await this.connectAudio();
  }

  onAudioState(message) {
    if (message.type === "error") {
      this.notice = message.code === "call_service_unavailable"
        ? t("error.calling_not_available") : t("error.audio_socket", { reason: message.message || message.code });
      this.render();
    } else if (message.type === "audio_closed" && this.active) {
      if (this.leg) this.leg.stop();
      this.leg = null;
      if (!this.notice) this.notice = t("call.audio_lost");
      this.render();
    }
  }

  applyLive(live) {
    if (!this.call) return;
    this.call.muted = Boolean(live.muted);
    this.call.held = Boolean(live.held);
    if (live.contact_id !== undefined && live.contact_id !== null) this.call.contactId = live.contact_id;
    this.setState(live.state);
  }

  setState(state, at = null) {
    if (!state || !this.call) return;
    const current = STATE_RANK[this.call.state] ?? 0;
    const next = STATE_RANK[state] ?? current;
    if (next < current) return;
    this.call.state = state;
    if (state === "answered" && !this.call.answeredAt) {
      const moment = at ? Date.parse(at) : NaN;
      this.call.answeredAt = Number.isNaN(moment) ? Date.now() : Math.min(moment, Date.now());
    }
    this.render();
  }

  // Restore the bar after a reload or reconnect from the server's idea of the current call.
  adoptCurrent(live) {
    if (!live || this.placing) return;
    if (this.call && this.call.id === live.call_id) {
      this.applyLive(live);
      return;
    }
    this.call = {
      id: live.call_id, contactId: live.contact_id, contactName: this.app.contactName(live.contact_id),
      number: live.number,
      state: "created", cause: null, sipCode: null, answeredAt: null, muted: false, held: false,
      audioLeg: this.app.audioLeg(),
    };
    this.applyLive(live);
  }

  onCallEvent(message) {
    const payload = message.payload || {};
    const kind = message.kind;
    if (this.placing && (!this.call || this.call.id === null)) {
      this.early.push(message);
      return;
    }
    if (!this.call || this.call.id !== payload.call_id) {
      if (kind === "call.ended") {
        this.app.afterCall.offer({ callId: payload.call_id, contactId: payload.contact_id, cause: payload.cause });
        return;
      }
      if (this.active) return; // another call of ours while one is shown: ignore its noise
      this.call = {
        id: payload.call_id, contactId: payload.contact_id, contactName: this.app.contactName(payload.contact_id),
        number: payload.number || "",
        state: "created", cause: null, sipCode: null, answeredAt: null, muted: false, held: false,
        audioLeg: this.app.audioLeg(),
      };
    }
    const state = kind === "call.ended" ? (payload.state || "ended") : kind.slice("call.".length);
    if (kind === "call.ended") {
      this.call.cause = payload.cause || null;
      this.call.sipCode = payload.sip_code || null;
      this.setState(FINISHED.has(state) ? state : "ended", payload.at);
      this.finish();
      this.app.afterCall.offer({ callId: this.call.id, contactId: this.call.contactId, cause: this.call.cause });
    } else {
      this.setState(state, payload.at);
    }
  }

  finish() {
    if (this.leg) this.leg.stop();
    this.leg = null;
    this.keypadOpen = false;
    this.app.contactChanged({ id: this.call.contactId });
    this.render();
  }

  async control(path, body) {
    if (!this.call || this.call.id === null) return null;
    try {
      return await api("POST", `/api/calls/${this.call.id}/${path}`, body);
    } catch (error) {
      this.app.toast(callErrorText(error), "error");
      return null;
    }
  }

  async hangUp() {
    if (!this.active) return;
    if (this.call.id === null) {
      this.app.toast(t("call.wait_for_dialing"));
      return;
    }
    await this.control("hangup", undefined);
  }

  async toggleMute() {
    if (!this.active) return;
    const muted = !this.call.muted;
    if (this.leg) this.leg.setMuted(muted);
    const live = await this.control("mute", { muted });
    if (live) this.applyLive(live);
    else if (this.leg) this.leg.setMuted(this.call.muted);
    this.render();
  }

  async toggleHold() {
    if (!this.active) return;
    const live = await this.control("hold", { held: !this.call.held });
    if (live) this.applyLive(live);
  }

  toggleKeypad() {
    if (!this.active) return;
    this.keypadOpen = !this.keypadOpen;
    this.render();
  }

  async sendDigits(digits) {
    if (!this.active || !/^[0-9*#]+$/.test(digits)) return;
    this.flashKey(digits);
    await this.control("dtmf", { digits });
  }

  flashKey(digits) {
    const key = this.bar.querySelector(`[data-digit="${CSS.escape(digits)}"]`);
    if (key) key.focus();
  }

  dismiss() {
    if (this.active) return;
    this.call = null;
    this.notice = "";
    this.render();
  }

  elapsed() {
    if (!this.call || !this.call.answeredAt) return "";
    const end = FINISHED.has(this.call.state) && this.call.endedAt ? this.call.endedAt : Date.now();
    return formatDuration((end - this.call.answeredAt) / 1000);
  }

  render() {
    const call = this.call;
    clearInterval(this.timer);
    this.timer = null;
    if (!call) {
      this.bar.hidden = true;
      replaceChildren(this.bar);
      return;
    }
    if (FINISHED.has(call.state) && !call.endedAt) call.endedAt = Date.now();
    const active = this.active;
    const stateWords = call.state === "answered" ? t("call.state.talking") : t(`call.state.${call.state}`);
    const timer = h("span", { class: "timer", id: "call-timer" }, this.elapsed());
    const cause = call.cause ? causeText(call.cause, call.sipCode) : "";
    const controls = active ? [
      h("button", { type: "button", id: "call-mute", "aria-pressed": String(call.muted), "aria-keyshortcuts": "m",
        onclick: () => this.toggleMute() }, call.muted ? t("call.unmute") : t("call.mute")),
      h("button", { type: "button", id: "call-hold", "aria-pressed": String(call.held), "aria-keyshortcuts": "h",
        onclick: () => this.toggleHold() }, call.held ? t("call.resume") : t("call.hold")),
      h("button", { type: "button", id: "call-keypad", "aria-expanded": String(this.keypadOpen), "aria-keyshortcuts": "d",
        onclick: () => this.toggleKeypad() }, t("call.keypad")),
      this.keypadOpen ? h("div", { class: "keypad", role: "group", "aria-label": t("call.keypad") },
        DTMF_KEYS.map((digit) => h("button", { type: "button", dataset: { digit },
          onclick: () => this.sendDigits(digit) }, digit))) : null,
      call.audioLeg === "browser" && !this.leg && call.id !== null
        ? h("button", { type: "button", onclick: () => this.reconnectAudio() }, t("call.connect_audio")) : null,
      h("button", { type: "button", class: "danger", id: "call-hangup", "aria-keyshortcuts": "e",
        onclick: () => this.hangUp() }, t("call.hang_up")),
    ] : [h("button", { type: "button", onclick: () => this.dismiss() }, t("call.close"))];
    replaceChildren(this.bar,
      h("span", { class: "state", id: "call-state", dataset: { state: call.state } }, stateWords),
      h("span", { class: "who" }, [call.contactName, call.number].filter(Boolean).join(" · ")),
      timer,
      call.held ? h("span", {}, t("call.on_hold")) : null,
      cause ? h("span", { class: isFailure(call.cause) ? "cause" : "", id: "call-cause" }, cause) : null,
      this.notice ? h("span", { class: "cause", role: "alert" }, this.notice) : null,
      h("span", { class: "spacer" }),
      controls);
    this.bar.hidden = false;
    if (active && call.answeredAt) {
      // Display only: the elapsed time is computed from the answer time, so a throttled
      // background tab still shows the right value when it repaints.
      this.timer = setInterval(() => { timer.textContent = this.elapsed(); }, 1000);
    }
  }
}
