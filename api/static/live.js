// Live alert feed: WebSocket with exponential backoff, replay from the last alert id seen, and a WebAudio beep.

import { ROUTES, getToken } from "./api.js";

/** Seconds between tries while the server refuses the stream with 4429 (too many open), with ±20 % jitter. */
export const LIMIT_RETRY_S = 45;
/** A socket refused for the limit is closed right after it opens: it only counts as live after this long. */
const LIMIT_CLEAR_MS = 2500;

/**
 * Keeps one WebSocket to the alert feed open. Calls `onAlert(item, {replayed})` for each alert
 * (item = {id, alert, ack?}) and `onState(state, info)` with "connecting", "live" or "waiting" (info.seconds).
 * After a drop it reconnects with backoff (1 s doubling to 30 s, with jitter) and asks for everything after the
 * last stream id it saw, so nothing is missed. When the server refuses the stream because too many are open (close
 * code 4429: CCTV_ALERT_STREAMS_PER_USER per user or CCTV_ALERT_STREAMS_TOTAL in all) it reports "limited"
 * (info: seconds, scope "user" or "total", limit, reason, first) and tries again only every LIMIT_RETRY_S, so it
 * connects once another tab closes its stream, without hammering the server.
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
    this.limited = null; // {scope, limit, reason} while the server refuses the stream for its limit
    this.limitRetryS = LIMIT_RETRY_S;
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
    clearTimeout(this.limitTimer);
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
    if (!this.limited) this.onState("connecting", {});
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
      if (this.limited) { // the server still may refuse it (4429 comes right after the token): live only if it stays
        clearTimeout(this.limitTimer);
        this.limitTimer = setTimeout(() => { if (this.ws === ws) this.clearLimit(); }, LIMIT_CLEAR_MS);
      } else {
        this.onState("live", {});
      }
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
      if (event.code === 4429) {
        this.scheduleLimitRetry(event.reason || "");
        return;
      }
      this.limited = null;
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
    if (this.limited) this.clearLimit();
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

  /** The stream was accepted after a refusal for the limit: live again. */
  clearLimit() {
    clearTimeout(this.limitTimer);
    if (!this.limited) return;
    this.limited = null;
    this.onState("live", {});
  }

  /** Refused with 4429 (too many streams open): say so and try again slowly (a closed tab frees a slot). */
  scheduleLimitRetry(reason) {
    if (this.stopped) return;
    clearTimeout(this.limitTimer);
    const first = !this.limited;
    // the server's reason: "you already have N live alert streams open; ..." (per user) or
    // "too many live alert streams are open (N); ..." (all users together)
    const scope = /^you already have/i.test(reason) ? "user" : "total";
    const match = reason.match(/\d+/);
    this.limited = { scope, limit: match ? Number(match[0]) : null, reason };
    const delay = this.limitRetryS * (0.8 + Math.random() * 0.4);
    this.reconnectAfter(delay, (left, isFirst) => this.onState("limited",
      { ...this.limited, seconds: left, first: isFirst && first }));
  }

  scheduleReconnect() {
    if (this.stopped) return;
    const base = Math.min(30, 2 ** this.attempt);
    const delay = base * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    this.reconnectAfter(delay, (left) => this.onState("waiting", { seconds: left }));
  }

  /** Connect again after `delay` seconds, calling `report(secondsLeft, isFirst)` now and every second meanwhile. */
  reconnectAfter(delay, report) {
    let left = Math.ceil(delay);
    report(left, true);
    clearInterval(this.countdown);
    this.countdown = setInterval(() => {
      left -= 1;
      if (left > 0) report(left, false);
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
