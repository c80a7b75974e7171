// Live alert feed: WebSocket with exponential backoff, replay from the last alert id seen, and a WebAudio beep.

import { ROUTES, getToken } from "./api.js";

/**
 * Keeps one WebSocket to the alert feed open. Calls `onAlert(item, {replayed})` for each alert
 * (item = {id, alert, ack?}) and `onState(state, info)` with "connecting", "live" or "waiting" (info.seconds).
 * After a drop it reconnects with backoff (1 s doubling to 30 s, with jitter) and asks for everything after the
 * last stream id it saw, so nothing is missed.
 */
export class AlertFeed {
  constructor({ onAlert, onState, onReplayDone, onUnauthorized }) {
    this.onAlert = onAlert;
    this.onUnauthorized = onUnauthorized || (() => {});
    this.onState = onState;
    this.onReplayDone = onReplayDone || (() => {});
    this.lastId = "";
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.countdown = null;
    this.stopped = true;
    this.replaying = false;
    this.replayCount = 0;
  }

  /** Open the feed (idempotent). */
  start() {
    this.stopped = false;
    if (!this.ws) this.connect();
  }

  /** Close the feed and stop reconnecting. */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.countdown);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "bye");
    }
  }

  /** Record that `id` (a Redis stream id) was seen, so a reconnect replays from there. */
  markSeen(id) {
    if (!id || (this.lastId && compareIds(id, this.lastId) <= 0)) return;
    this.lastId = id;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // The token is sent as the first message once the socket is open, never in the URL (URLs end up in logs).
    const params = new URLSearchParams();
    if (this.lastId) params.set("after", this.lastId);
    const query = params.toString();
    return `${scheme}//${location.host}${ROUTES.alertsWs}${query ? `?${query}` : ""}`;
  }

  connect() {
    if (this.stopped) return;
    this.onState("connecting", {});
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.replaying = Boolean(this.lastId);
    this.replayCount = 0;
    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({ token: getToken() }));
      this.attempt = 0;
      this.openedAt = Date.now() / 1000;
      this.onState("live", {});
      clearTimeout(this.replayTimer);
      this.replayTimer = setTimeout(() => this.finishReplay(), 1500);
    });
    ws.addEventListener("message", (event) => this.handle(event.data));
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (event.code === 4401) {
        this.stopped = true;
        this.onState("offline", {});
        this.onUnauthorized();
        return;
      }
      if (event.code === 4422) this.lastId = "";
      this.scheduleReconnect();
    });
    ws.addEventListener("error", () => { /* the close event follows and schedules the reconnect */ });
  }

  handle(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === "ping") return;
    if (message.type === "replay_done" || message.type === "live") {
      this.finishReplay();
      return;
    }
    const item = normaliseItem(message);
    if (!item) return;
    // The server sends backlog and live alerts alike; an alert raised before this connection opened is a replay
    // (no beep, counted in the "received while disconnected" notice).
    const replayed = message.type === "replay" || Boolean(message.replayed)
      || (this.openedAt && (item.alert.created_at || 0) < this.openedAt - 2);
    if (replayed) this.replayCount += 1;
    this.markSeen(item.id);
    this.onAlert(item, { replayed });
  }

  finishReplay() {
    if (this.replaying) this.onReplayDone(this.replayCount);
    this.replaying = false;
    this.replayCount = 0;
  }

  scheduleReconnect() {
    if (this.stopped) return;
    const base = Math.min(30, 2 ** this.attempt);
    const delay = base * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    let left = Math.ceil(delay);
    this.onState("waiting", { seconds: left });
    clearInterval(this.countdown);
    this.countdown = setInterval(() => {
      left -= 1;
      if (left > 0) this.onState("waiting", { seconds: left });
    }, 1000);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      clearInterval(this.countdown);
      this.connect();
    }, delay * 1000);
  }
}

/** Accept {id, alert}, {type, id, alert} or a bare Alert with stream_id; return {id, alert, ack}. */
export function normaliseItem(message) {
  if (!message || typeof message !== "object") return null;
  const alert = message.alert || (message.alert_id ? message : null);
  if (!alert || !alert.alert_id) return null;
  const id = message.id || message.stream_id || alert.stream_id || "";
  return { id, alert, ack: message.ack || alert.ack || null };
}

/** Compare Redis stream ids "ms-seq" numerically. */
export function compareIds(a, b) {
  const [am, as] = String(a).split("-").map(Number);
  const [bm, bs] = String(b).split("-").map(Number);
  return am === bm ? (as || 0) - (bs || 0) : am - bm;
}

let audioContext = null;

/** Create/resume the AudioContext; call from a user gesture (sign-in click) so beeps are allowed later. */
export function unlockAudio() {
  try {
    audioContext = audioContext || new AudioContext();
    if (audioContext.state === "suspended") audioContext.resume();
  } catch {
    audioContext = null;
  }
}

/** Two short tones (higher and longer for critical). No audio file needed. */
export function beep(severity = "high") {
  if (!audioContext) unlockAudio();
  if (!audioContext) return false;
  const tones = severity === "critical" ? [1046, 1318, 1046, 1318] : [880, 1175];
  let at = audioContext.currentTime + 0.02;
  for (const freq of tones) {
    const osc = audioContext.createOscillator();
    const gain = audioContext.createGain();
    osc.type = "square";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.18);
    osc.connect(gain).connect(audioContext.destination);
    osc.start(at);
    osc.stop(at + 0.2);
    at += 0.24;
  }
  window.__beeps = (window.__beeps || 0) + 1;
  return true;
}
