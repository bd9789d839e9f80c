// The audio self-test: a tone to check the speakers (OscillatorNode), and an echo loop that
// sends the microphone to the server (/ws/echo) and plays back what returns, exactly as a call
// in the browser would (same AudioWorklet, same 8 kHz frames, same socket path through the
// server).

import { h, replaceChildren } from "../dom.js";
import { t } from "../i18n.js";
import { BrowserAudioLeg, MicrophoneError, socketUrl } from "../call-audio.js";
import { microphoneText } from "../errors.js";

export class SelfTest {
  constructor(app) {
    this.app = app;
    this.leg = null;
    this.toneContext = null;
    this.frame = null;
  }

  mount(main) {
    this.status = h("p", { role: "status", id: "self-test-status" }, t("selftest.idle"));
    this.counters = h("p", { class: "secondary", id: "self-test-counters" });
    this.bar = h("div");
    this.toneButton = h("button", { type: "button", id: "tone-button", onclick: () => this.playTone() }, t("selftest.play_tone"));
    this.echoButton = h("button", { type: "button", class: "primary", id: "echo-button", onclick: () => this.toggleEcho() }, t("selftest.start_echo"));
    replaceChildren(main, h("section", { class: "self-test" },
      h("h1", {}, t("selftest.title")),
      h("p", {}, t("selftest.explain")),
      h("p", {}, this.toneButton, " ", this.echoButton),
      h("div", { class: "meter", "aria-hidden": "true" }, this.bar),
      this.status, this.counters));
  }

  unmount() {
    this.stopEcho();
    if (this.toneContext) this.toneContext.close();
    this.toneContext = null;
  }

  playTone() {
    if (this.toneContext) this.toneContext.close();
    const context = new AudioContext();
    this.toneContext = context;
    const oscillator = context.createOscillator();
    const gain = context.createGain();
    oscillator.frequency.value = 440;
    gain.gain.value = 0.2;
    oscillator.connect(gain).connect(context.destination);
    oscillator.start();
    oscillator.stop(context.currentTime + 1.0);
    this.status.textContent = t("selftest.tone_playing");
    oscillator.onended = () => {
      this.status.textContent = t("selftest.tone_done");
      context.close();
      if (this.toneContext === context) this.toneContext = null;
    };
  }

  async toggleEcho() {
    if (this.leg) {
      this.stopEcho();
      return;
    }
    const leg = new BrowserAudioLeg({ onState: (message) => this.onState(message) });
    this.leg = leg;
    this.echoButton.textContent = t("selftest.stop_echo");
    this.status.textContent = t("selftest.asking_microphone");
    try {
      await leg.prepare();
      await leg.connect(socketUrl("/ws/echo"));
    } catch (error) {
      this.stopEcho();
      this.status.textContent = error instanceof MicrophoneError
        ? microphoneText(error.message) : t("error.audio_socket", { reason: error.message });
      this.status.classList.add("error");
      return;
    }
    this.status.classList.remove("error");
    this.status.textContent = t("selftest.echo_running");
    this.refresh();
  }

  onState(message) {
    if (message.type === "audio_closed" && this.leg) {
      this.stopEcho();
      this.status.textContent = t("selftest.echo_closed");
    }
  }

  refresh() {
    // Screen refresh only (the figures are counted as frames pass); paused in hidden tabs.
    if (!this.leg) return;
    this.counters.textContent = t("selftest.counters", { sent: this.leg.framesSent, received: this.leg.framesReceived });
    this.bar.style.width = `${Math.min(100, Math.round(this.leg.level * 300))}%`;
    this.frame = requestAnimationFrame(() => this.refresh());
  }

  stopEcho() {
    cancelAnimationFrame(this.frame);
    if (this.leg) this.leg.stop();
    this.leg = null;
    if (this.echoButton) this.echoButton.textContent = t("selftest.start_echo");
    if (this.bar) this.bar.style.width = "0";
  }
}
