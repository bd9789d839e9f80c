// The recordings library (/library) and the call player (/calls/{id}/player).
//
// Library: filters (dates, operator, outcome, talk time, recording, transcript words) over
// GET /api/library/calls, one page at a time, newest first.
// Player: the recording is fetched once (one audited play), kept as a Blob for the <audio>
// element and decoded with Web Audio (decodeAudioData) to draw both channels' waveforms on a
// canvas (operator above, customer below). The transcript beside it follows playback: the word
// being spoken is highlighted, and clicking a word (or the waveform) seeks there. Supervisors
// and admins score the call (1-5) and leave a coaching note.

import { api, withQuery } from "./api.js";
import { debounce, h, replaceChildren } from "./dom.js";
import { formatDateTime, formatDuration, t } from "./i18n.js";

const PAGE_SIZE = 50;
const WAVEFORM_HEIGHT = 120;
const STAFF_ROLES = ["supervisor", "admin"];

function isStaff(user) {
  return Boolean(user && STAFF_ROLES.includes(user.role));
}

function dayStart(value) {
  return value ? new Date(`${value}T00:00:00`).toISOString() : null;
}

function dayAfter(value) {
  if (!value) return null;
  const moment = new Date(`${value}T00:00:00`);
  moment.setDate(moment.getDate() + 1);
  return moment.toISOString();
}

export class LibraryView {
  constructor(app) {
    this.app = app;
    this.offset = 0;
    this.operators = new Map();
    this.element = null;
    this.request = null;
    this.reload = debounce(() => { this.offset = 0; this.load(); }, 300);
  }

  mount(main) {
    const statusOptions = (this.app.statuses || []).map((status) =>
      h("option", { value: status.code }, this.app.statusLabel(status.code)));
    this.fields = {
      q: h("input", { type: "search", id: "library-search", placeholder: t("library.search"), "aria-label": t("library.search"), oninput: () => this.reload() }),
      from: h("input", { type: "date", id: "library-from", onchange: () => this.reload() }),
      to: h("input", { type: "date", id: "library-to", onchange: () => this.reload() }),
      operator: h("select", { id: "library-operator", onchange: () => this.reload() },
        h("option", { value: "" }, t("library.all_operators"))),
      outcome: h("select", { id: "library-outcome", onchange: () => this.reload() },
        h("option", { value: "" }, t("library.all_outcomes")), statusOptions),
      minMinutes: h("input", { type: "number", min: "0", step: "1", id: "library-min", class: "short", onchange: () => this.reload() }),
      maxMinutes: h("input", { type: "number", min: "0", step: "1", id: "library-max", class: "short", onchange: () => this.reload() }),
      recorded: h("input", { type: "checkbox", id: "library-recorded", checked: true, onchange: () => this.reload() }),
    };
    const f = this.fields;
    this.rows = h("tbody", { id: "library-rows" });
    this.summary = h("span", { class: "secondary", id: "library-summary", role: "status" });
    this.queue = h("p", { class: "secondary", id: "library-queue" });
    this.previous = h("button", { type: "button", onclick: () => this.page(-1) }, t("contacts.previous"));
    this.next = h("button", { type: "button", onclick: () => this.page(1) }, t("contacts.next"));
    this.element = h("section", { class: "library" },
      h("h1", {}, t("library.title")),
      h("div", { class: "filters" },
        f.q,
        h("label", {}, t("library.from"), " ", f.from),
        h("label", {}, t("library.to"), " ", f.to),
        f.operator, f.outcome,
        h("label", {}, t("library.minutes"), " ", f.minMinutes, "–", f.maxMinutes),
        h("label", {}, f.recorded, " ", t("library.recorded_only"))),
      this.queue,
      h("table", { class: "history library-table" },
        h("thead", {}, h("tr", {},
          h("th", {}, t("library.when")), h("th", {}, t("library.operator")),
          h("th", {}, t("library.contact")), h("th", {}, t("library.outcome")),
          h("th", {}, t("library.duration")), h("th", {}, t("library.transcript")),
          h("th", {}, t("library.score")), h("th", {}))),
        this.rows),
      h("div", { class: "pager" }, this.previous, this.next, this.summary));
    replaceChildren(main, this.element);
    this.loadOperators();
    this.loadQueue();
    this.load();
  }

  unmount() {
    if (this.request) this.request.abort();
    this.request = null;
    this.element = null;
  }

  async loadOperators() {
    if (!this.app.user || this.app.user.role !== "admin") return;
    try {
      const users = await api("GET", "/api/users?limit=500");
      for (const user of users.items) {
        if (user.role === "operator") this.operators.set(user.id, user.display_name || user.login);
      }
      this.renderOperators();
    } catch {
      // the list still fills from the operators seen in the results
    }
  }

  renderOperators() {
    const select = this.fields.operator;
    const chosen = select.value;
    const options = [...this.operators.entries()].sort((a, b) => a[1].localeCompare(b[1]))
      .map(([id, name]) => h("option", { value: String(id) }, name));
    replaceChildren(select, h("option", { value: "" }, t("library.all_operators")), options);
    select.value = chosen;
  }

  async loadQueue() {
    if (!isStaff(this.app.user)) return;
    try {
      const status = await api("GET", "/api/transcription/status");
      this.queue.textContent = t("library.queue", {
        waiting: status.ready + status.waiting_retry, running: status.running, failed: status.failed,
      });
    } catch {
      this.queue.textContent = "";
    }
  }

  query() {
    const f = this.fields;
    const minutes = (field) => (field.value === "" ? null : Math.max(0, Number(field.value)) * 60);
    return {
      q: f.q.value.trim(),
      from: dayStart(f.from.value),
      to: dayAfter(f.to.value),
      operator_id: f.operator.value,
      outcome: f.outcome.value,
      min_seconds: minutes(f.minMinutes),
      max_seconds: minutes(f.maxMinutes),
      has_recording: f.recorded.checked ? "true" : null,
      limit: PAGE_SIZE,
      offset: this.offset,
    };
  }

  page(step) {
    this.offset = Math.max(0, this.offset + step * PAGE_SIZE);
    this.load();
  }

  async load() {
    if (!this.element) return;
    if (this.request) this.request.abort();
    const request = new AbortController();
    this.request = request;
    let page;
    try {
      page = await api("GET", withQuery("/api/library/calls", this.query()), undefined, { signal: request.signal });
    } catch (error) {
      if (error && error.name === "AbortError") return;
      replaceChildren(this.rows, h("tr", {}, h("td", { colspan: "8", class: "error" }, t("library.failed"))));
      return;
    }
    if (this.request !== request || !this.element) return;
    let newOperators = false;
    for (const item of page.items) {
      if (item.operator_id && !this.operators.has(item.operator_id)) {
        this.operators.set(item.operator_id, item.operator_name || `#${item.operator_id}`);
        newOperators = true;
      }
    }
    if (newOperators) this.renderOperators();
    this.render(page);
  }

  render(page) {
    if (!page.items.length) {
      replaceChildren(this.rows, h("tr", {}, h("td", { colspan: "8", class: "empty" }, t("contacts.nothing_found"))));
    } else {
      replaceChildren(this.rows, page.items.map((item) => h("tr", { dataset: { callId: String(item.id) } },
        h("td", {}, formatDateTime(item.created_at)),
        h("td", {}, item.operator_name || ""),
        h("td", {}, item.contact_name || item.phone_e164),
        h("td", {}, item.outcome ? this.app.statusLabel(item.outcome) : ""),
        h("td", {}, formatDuration(item.talk_seconds)),
        h("td", {}, item.has_transcript ? t("library.has_transcript") : ""),
        h("td", {}, item.review_score ? `${item.review_score}/5` : ""),
        h("td", {}, h("a", { href: item.player_url, "data-link": true, class: "play-link" }, t("library.open_player"))))));
    }
    const first = page.items.length ? page.offset + 1 : 0;
    const last = page.offset + page.items.length;
    const total = page.total_is_exact ? String(page.total) : `${page.total}+`;
    this.summary.textContent = t("contacts.range", { first, last, total });
    this.previous.disabled = page.offset === 0;
    this.next.disabled = last >= page.total;
  }
}

// Min and max of each of ``buckets`` slices of ``samples``.
function envelope(samples, buckets) {
  const size = Math.max(1, Math.floor(samples.length / buckets));
  const lows = new Float32Array(buckets);
  const highs = new Float32Array(buckets);
  for (let bucket = 0; bucket < buckets; bucket += 1) {
    let low = 0;
    let high = 0;
    const end = Math.min(samples.length, (bucket + 1) * size);
    for (let index = bucket * size; index < end; index += 1) {
      const value = samples[index];
      if (value < low) low = value;
      if (value > high) high = value;
    }
    lows[bucket] = low;
    highs[bucket] = high;
  }
  return { lows, highs };
}

export class PlayerView {
  constructor(app) {
    this.app = app;
    this.callId = null;
    this.element = null;
    this.objectUrl = null;
    this.words = [];
    this.currentWord = null;
    this.frame = null;
    this.duration = 0;
  }

  async mount(main, callId) {
    this.unmount();
    this.callId = callId;
    this.audio = h("audio", { id: "player-audio", controls: true, preload: "auto" });
    this.canvas = h("canvas", { id: "player-waveform", height: String(WAVEFORM_HEIGHT), "aria-label": t("player.waveform"), role: "img" });
    this.playhead = h("div", { class: "playhead", "aria-hidden": "true" });
    this.waveNote = h("p", { class: "secondary", id: "player-wave-note" }, t("player.loading_audio"));
    this.heading = h("h1", { id: "player-title" }, t("player.title", { id: callId }));
    this.details = h("p", { class: "secondary", id: "player-details" });
    this.download = h("a", { id: "player-download", class: "button-link", hidden: true }, t("player.download"));
    this.transcript = h("div", { class: "transcript", id: "player-transcript", "aria-live": "off" }, t("player.loading"));
    this.review = h("section", { class: "review", id: "player-review" });
    this.element = h("section", { class: "player" },
      h("div", { class: "player-main" },
        h("p", {}, h("a", { href: "/library", "data-link": true }, t("player.back"))),
        this.heading, this.details,
        h("div", { class: "waveform" }, this.canvas, this.playhead,
          h("span", { class: "lane operator" }, t("speaker.operator")),
          h("span", { class: "lane customer" }, t("speaker.customer"))),
        this.waveNote, this.audio, h("p", {}, this.download), this.review),
      h("div", { class: "player-side" }, h("h2", {}, t("player.transcript")), this.transcript));
    replaceChildren(main, this.element);
    this.canvas.addEventListener("click", (event) => this.seekFromWaveform(event));
    this.audio.addEventListener("timeupdate", () => this.follow());
    this.audio.addEventListener("seeked", () => this.follow());
    this.audio.addEventListener("play", () => this.animate());
    this.audio.addEventListener("loadedmetadata", () => { if (Number.isFinite(this.audio.duration)) this.duration = this.audio.duration; });
    let data;
    try {
      data = await api("GET", `/api/calls/${callId}/transcript`);
    } catch (error) {
      if (this.callId !== callId) return;
      replaceChildren(this.transcript, h("p", { class: "error" }, error.status === 404 ? t("player.not_found") : t("library.failed")));
      this.waveNote.textContent = "";
      return;
    }
    if (this.callId !== callId) return;
    this.showDetails(data.call);
    this.showTranscript(data);
    this.showReview(data.review);
    if (data.call.recording_url) {
      this.download.href = `${data.call.recording_url}?download=1`;
      this.download.hidden = false;
      this.loadAudio(data.call.recording_url, callId);
    } else {
      this.waveNote.textContent = t("player.no_recording");
    }
  }

  unmount() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = null;
    if (this.audio) this.audio.pause();
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
    this.callId = null;
    this.element = null;
    this.words = [];
    this.currentWord = null;
  }

  showDetails(call) {
    const parts = [formatDateTime(call.created_at), call.phone_e164, formatDuration(call.talk_seconds)];
    if (call.outcome) parts.push(this.app.statusLabel(call.outcome));
    this.details.textContent = parts.filter(Boolean).join(" · ");
  }

  showTranscript(data) {
    const status = data.status;
    if (!data.transcript) {
      const job = data.job;
      let message = t(`player.transcript_${status}`);
      if (status === "running" && job) message = t("player.transcript_running", { percent: Math.round(job.progress * 100) });
      const parts = [h("p", { class: "empty", id: "player-transcript-state" }, message)];
      if (status === "failed" && job && job.last_error && isStaff(this.app.user)) {
        parts.push(h("p", { class: "error" }, job.last_error));
      }
      replaceChildren(this.transcript, parts);
      return;
    }
    this.words = [];
    const utterances = data.transcript.utterances.map((utterance) => {
      const words = utterance.words.map((word) => {
        const span = h("span", {
          class: "word", role: "button", tabindex: "0",
          dataset: { start: String(word.start), end: String(word.end) },
          title: formatDuration(word.start),
          onclick: () => this.seek(word.start),
          onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); this.seek(word.start); } },
        }, word.word);
        this.words.push({ start: word.start, end: word.end, element: span });
        return [span, " "];
      });
      return h("div", { class: `utterance ${utterance.speaker}` },
        h("div", { class: "speaker" }, t(`speaker.${utterance.speaker}`), " ",
          h("span", { class: "secondary" }, formatDuration(utterance.start))),
        h("p", {}, words.length ? words : utterance.text));
    });
    this.words.sort((a, b) => a.start - b.start);
    const hint = h("p", { class: "secondary" }, t("player.transcript_hint"));
    replaceChildren(this.transcript, hint, utterances.length ? utterances : h("p", { class: "empty" }, t("player.transcript_empty")));
  }

  showReview(review) {
    const staff = isStaff(this.app.user);
    if (!staff) {
      replaceChildren(this.review, h("h2", {}, t("review.title")),
        review ? [h("p", {}, t("review.score_value", { score: review.score })), h("p", {}, review.note)]
          : h("p", { class: "empty" }, t("review.none")));
      return;
    }
    const scores = [1, 2, 3, 4, 5].map((score) => h("label", { class: "score" },
      h("input", { type: "radio", name: "review-score", value: String(score), checked: Boolean(review && review.score === score) }),
      String(score)));
    const note = h("textarea", { id: "review-note", rows: "3", maxlength: "4000", value: review ? review.note : "" });
    const state = h("span", { class: "secondary", id: "review-state", role: "status" },
      review && review.reviewer_name ? t("review.by", { name: review.reviewer_name, when: formatDateTime(review.updated_at) }) : "");
    const form = h("form", { id: "review-form" },
      h("fieldset", {}, h("legend", {}, t("review.score")), scores),
      h("label", { for: "review-note" }, t("review.note")), note,
      h("p", {}, h("button", { type: "submit", class: "primary" }, t("review.save")), " ", state));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const chosen = form.querySelector("input[name=review-score]:checked");
      if (!chosen) {
        state.textContent = t("review.pick_score");
        return;
      }
      state.textContent = t("card.saving");
      try {
        await api("POST", `/api/calls/${this.callId}/review`, { score: Number(chosen.value), note: note.value });
        state.textContent = t("card.saved");
      } catch (error) {
        state.textContent = error.message;
      }
    });
    replaceChildren(this.review, h("h2", {}, t("review.title")), form);
  }

  async loadAudio(url, callId) {
    let bytes;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      this.contentType = response.headers.get("content-type");
      bytes = await response.arrayBuffer();
    } catch {
      if (this.callId === callId) this.waveNote.textContent = t("player.audio_failed");
      return;
    }
    if (this.callId !== callId) return;
    const blob = new Blob([bytes], { type: this.contentType || "audio/ogg" });
    this.objectUrl = URL.createObjectURL(blob);
    this.audio.src = this.objectUrl;
    try {
      const context = new OfflineAudioContext(1, 1, 8000);
      const decoded = await context.decodeAudioData(bytes);
      if (this.callId !== callId) return;
      this.duration = decoded.duration;
      this.drawWaveform(decoded);
      this.waveNote.textContent = "";
    } catch {
      if (this.callId === callId) this.waveNote.textContent = t("player.waveform_failed");
    }
  }

  drawWaveform(decoded) {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(200, canvas.clientWidth || 600);
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(WAVEFORM_HEIGHT * ratio);
    const context = canvas.getContext("2d");
    context.scale(ratio, ratio);
    context.clearRect(0, 0, width, WAVEFORM_HEIGHT);
    const lane = WAVEFORM_HEIGHT / 2;
    const colours = ["#1f6feb", "#2e7d32"];
    for (let channel = 0; channel < Math.min(2, decoded.numberOfChannels); channel += 1) {
      const { lows, highs } = envelope(decoded.getChannelData(channel), Math.floor(width));
      const middle = lane * channel + lane / 2;
      context.fillStyle = colours[channel];
      for (let x = 0; x < lows.length; x += 1) {
        const top = middle - highs[x] * (lane / 2 - 2);
        const bottom = middle - lows[x] * (lane / 2 - 2);
        context.fillRect(x, top, 1, Math.max(1, bottom - top));
      }
    }
    context.fillStyle = "#d8dde4";
    context.fillRect(0, lane, width, 1);
    this.canvas.dataset.drawn = "true";
  }

  seekFromWaveform(event) {
    const duration = this.duration || this.audio.duration;
    if (!duration || !Number.isFinite(duration)) return;
    const box = this.canvas.getBoundingClientRect();
    this.seek(((event.clientX - box.left) / box.width) * duration);
  }

  seek(seconds) {
    this.audio.currentTime = Math.max(0, seconds);
    this.follow();
  }

  animate() {
    if (this.frame) cancelAnimationFrame(this.frame);
    const step = () => {
      this.follow();
      this.frame = this.audio && !this.audio.paused ? requestAnimationFrame(step) : null;
    };
    this.frame = requestAnimationFrame(step);
  }

  // Highlight the word being spoken and move the playhead.
  follow() {
    if (!this.audio) return;
    const now = this.audio.currentTime;
    const duration = this.duration || this.audio.duration;
    if (duration && Number.isFinite(duration)) {
      this.playhead.style.left = `${Math.min(100, (now / duration) * 100)}%`;
    }
    let low = 0;
    let high = this.words.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (this.words[middle].start <= now) low = middle + 1;
      else high = middle - 1;
    }
    // words[high] is the last word starting at or before now; it is current until it ends.
    const candidate = high >= 0 ? this.words[high] : null;
    const found = candidate && now < candidate.end + 0.05 ? candidate : null;
    if (found === this.currentWord) return;
    if (this.currentWord) {
      this.currentWord.element.classList.remove("current");
      this.currentWord.element.removeAttribute("aria-current");
    }
    this.currentWord = found;
    if (found) {
      found.element.classList.add("current");
      found.element.setAttribute("aria-current", "true");
      found.element.scrollIntoView({ block: "nearest" });
    }
  }
}
