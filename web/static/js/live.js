// The live events client: one WebSocket per tab to /ws/events.
//
// It remembers the last sequence number it handled (sessionStorage, per user), so after a
// dropped connection, a server restart or a reload it reconnects with ?after=N and receives
// exactly what it missed. A "gap" message means those events are gone: listeners reload what
// they show. Reconnects back off exponentially (with jitter) up to 15 s, and happen at once when
// the browser comes back online. Nothing here polls for data: the only timers are the reconnect
// delay and a watchdog re-armed by every message (the server pings every heartbeat).
//
// Events dispatched (CustomEvent, detail = message): "event" (every live event) and its kind
// ("call.ended", ...), "hello", "gap", "status" ({connected}), "session-expired".

const MAXIMUM_DELAY_MS = 15000;
const FIRST_DELAY_MS = 500;

export class LiveEvents extends EventTarget {
  constructor({ path = "/ws/events", storage = window.sessionStorage } = {}) {
    super();
    this.path = path;
    this.storage = storage;
    this.socket = null;
    this.userId = null;
    this.attempt = 0;
    this.stopped = true;
    this.connected = false;
    this.heartbeatSeconds = 15;
    this.reconnectTimer = null;
    this.watchdogTimer = null;
    this.onOnline = () => this.reconnectNow();
    this.onVisible = () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    };
  }

  get storageKey() {
    return `dialer.live.after.${this.userId}`;
  }

  get lastSequence() {
    const raw = this.storage.getItem(this.storageKey);
    if (raw === null) return null;
    const value = Number(raw);
    return Number.isInteger(value) && value >= 0 ? value : null;
  }

  set lastSequence(value) {
    this.storage.setItem(this.storageKey, String(value));
  }

  start(userId) {
    if (!this.stopped && this.userId === userId) return;
    this.stop();
    this.userId = userId;
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    document.addEventListener("visibilitychange", this.onVisible);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.watchdogTimer);
    window.removeEventListener("online", this.onOnline);
    document.removeEventListener("visibilitychange", this.onVisible);
    if (this.socket) this.socket.close(1000);
    this.socket = null;
    this.setConnected(false);
  }

  url() {
    const address = new URL(this.path, window.location.href);
    address.protocol = address.protocol === "https:" ? "wss:" : "ws:";
    const after = this.lastSequence;
    if (after !== null) address.searchParams.set("after", String(after));
    return address.toString();
  }

  connect() {
    clearTimeout(this.reconnectTimer);
    if (this.stopped || this.socket) return;
    const socket = new WebSocket(this.url());
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.setConnected(true);
      this.armWatchdog();
    };
    socket.onmessage = (message) => {
      this.armWatchdog();
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      this.handle(data);
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.socket = null;
      clearTimeout(this.watchdogTimer);
      this.setConnected(false);
      if (this.stopped) return;
      if (event.code === 4401) {
        this.emit("session-expired", {});
        return;
      }
      if (!opened) {
        this.checkSessionThenRetry();
        return;
      }
      this.scheduleReconnect();
    };
  }

  async checkSessionThenRetry() {
    // A refused handshake tells the page nothing; ask the API whether the session is gone.
    try {
      const response = await fetch("/api/session", { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        this.emit("session-expired", {});
        return;
      }
    } catch {
      // offline: keep retrying
    }
    this.scheduleReconnect();
  }

  handle(message) {
    switch (message.type) {
      case "hello":
        if (typeof message.heartbeat_seconds === "number") {
          this.heartbeatSeconds = message.heartbeat_seconds;
        }
        if (this.lastSequence === null) this.lastSequence = message.last_sequence;
        this.emit("hello", message);
        break;
      case "event": {
        const last = this.lastSequence;
        if (last !== null && message.sequence <= last) return; // already handled
        this.lastSequence = message.sequence;
        this.emit("event", message);
        this.emit(message.kind, message);
        break;
      }
      case "gap":
        this.lastSequence = message.resume_from;
        this.emit("gap", message);
        break;
      case "ping":
        if (this.socket && this.socket.readyState === WebSocket.OPEN) {
          this.socket.send(JSON.stringify({ type: "pong" }));
        }
        break;
      case "session_expired":
        this.emit("session-expired", message);
        break;
      default:
        break;
    }
  }

  armWatchdog() {
    clearTimeout(this.watchdogTimer);
    // Three heartbeats of silence: the connection is dead even if the browser has not noticed.
    this.watchdogTimer = setTimeout(() => {
      if (this.socket) this.socket.close(4000, "silent");
    }, this.heartbeatSeconds * 3000);
  }

  scheduleReconnect() {
    const ceiling = Math.min(MAXIMUM_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (this.stopped || this.socket) return;
    this.attempt = 0;
    this.connect();
  }

  setConnected(connected) {
    if (this.connected === connected) return;
    this.connected = connected;
    this.emit("status", { connected });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
