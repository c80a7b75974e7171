// Recorded playback: a day timeline per camera (recorded ranges, gaps, event markers) and side-by-side players that
// play the same instant. Each player streams the recording as fragmented MP4 (remuxed by the server, never
// re-encoded) with fetch() and the bearer token in the Authorization header, into Media Source Extensions.

import { ROUTES, api } from "../api.js";
import { clear, errorBox, fmtTime, fromLocalInput, h, toLocalInput, toast } from "../dom.js";
import { t } from "../i18n.js";
import { listCameras } from "./common.js";
import { exportDialog } from "./evidence.js";

const SVG = "http://www.w3.org/2000/svg";
const SPEEDS = [1, 2, 4, 8];
const ZOOMS = [86400, 3600, 600, 120];
const DAY_S = 86400;
const CHUNK_S = 120; // seconds asked for per request; the continuation is fetched while this plays
const AHEAD_S = 30; // fetch the continuation when less than this is buffered ahead of the playhead
const KEEP_BEHIND_S = 60; // buffered media further behind the playhead is dropped (bounded memory)
const MAX_CAMERAS = 4;
const GAP_S = 1.5;
const EVENT_LEAD_S = 5; // events open this long before they happened
const SYNC_MS = 400;
const DEFAULT_BACK_S = 300; // with no time asked, open this long before now (or at the newest recording)
const EDGE_FIRST_S = 2; // at the live edge, ask again for what follows after this long ...
const EDGE_MAX_S = 15; // ... doubling up to this while nothing newer is recorded

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** Local midnight (epoch seconds) of the day holding `epoch`. */
function dayStart(epoch) {
  const d = new Date(epoch * 1000);
  d.setHours(0, 0, 0, 0);
  return d.getTime() / 1000;
}

/** "2026-12-01" of the local day holding `epoch` (for <input type=date>). */
function dayValue(epoch) {
  return toLocalInput(epoch).slice(0, 10);
}

/** Wall-clock time with milliseconds (before the time zone: "00:00:15.792 GMT+7"), in the page language. */
export function clockText(epoch) {
  return fmtTime(epoch, { ms: true });
}

/** The MIME type for MSE from the first bytes of a fragmented MP4 (the avcC/hvcC box of the init segment). */
export function mimeOf(bytes, codec) {
  const find = (a, b, c, d) => {
    for (let i = 0; i + 8 < bytes.length; i += 1) {
      if (bytes[i] === a && bytes[i + 1] === b && bytes[i + 2] === c && bytes[i + 3] === d) return i;
    }
    return -1;
  };
  const hex = (n) => n.toString(16).padStart(2, "0");
  const avc = find(0x61, 0x76, 0x63, 0x43); // "avcC"
  if (avc >= 0) return `video/mp4; codecs="avc1.${hex(bytes[avc + 5])}${hex(bytes[avc + 6])}${hex(bytes[avc + 7])}"`;
  if (find(0x68, 0x76, 0x63, 0x43) >= 0) return 'video/mp4; codecs="hvc1.1.6.L120.90"'; // "hvcC"
  if (find(0x6d, 0x6f, 0x6f, 0x66) >= 0) return `video/mp4; codecs="${codec === "hevc" ? "hvc1.1.6.L120.90" : "avc1.640028"}"`;
  return null; // not enough bytes yet
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * One camera's player: a <video> fed by a MediaSource. Every seek outside what is buffered opens a new session (its
 * own MediaSource, SourceBuffer and stream requests); work of an older session stops at its next step and never
 * touches the new one.
 */
class Player {
  constructor(camera, review) {
    this.camera = camera;
    this.review = review;
    this.video = h("video", { muted: true, playsinline: true, dataset: { camera: camera.id } });
    this.video.muted = true;
    this.clock = h("div", { class: "pb-clock" });
    this.status = h("div", { class: "pb-status", hidden: true });
    this.el = h("div", { class: "pb-tile", dataset: { camera: camera.id, state: "idle" } },
      this.video, h("div", { class: "pb-name" }, camera.name), this.clock, this.status);
    this.fps = 25;
    this.session = null;
    this.pending = false;
    this.trace = []; // the last steps, for failure reports (window.__cctvPlayback.players.get(id).trace)
    this.stalls = 0; // playback ran out of data (a gap jumped over is not one, nor a decoder behind at 8x)
    this.video.addEventListener("waiting", () => {
      const atEdge = Boolean(this.session && this.session.next === null && this.session.edge !== null);
      if (!this.crossGap() && !this.pending && !this.video.seeking && this.el.dataset.state === "playing"
          && this.ahead() < 0.1 && !atEdge) {
        this.stalls += 1;
        this.note("stall");
      }
    });
    this.video.addEventListener("playing", () => this.setState("playing"));
    this.video.addEventListener("pause", () => {
      if (["playing", "edge"].includes(this.el.dataset.state)) this.setState("paused");
    });
  }

  get sb() { return this.session ? this.session.sb : null; }

  get loading() { return Boolean(this.session && this.session.loading); }

  note(text) {
    this.trace.push(`${performance.now().toFixed(0)} ${text} t=${this.video.currentTime.toFixed(3)} rs=${this.video.readyState}`);
    if (this.trace.length > 60) this.trace.shift();
  }

  setState(state, message = "") {
    this.el.dataset.state = state;
    this.status.textContent = message;
    this.status.hidden = !message;
  }

  /** Real time shown now (null while nothing is shown). */
  position() {
    return this.sb && !this.pending && this.video.buffered.length ? this.review.origin + this.video.currentTime : null;
  }

  bufferedAt(media) {
    const b = this.video.buffered;
    for (let i = 0; i < b.length; i += 1) if (b.start(i) - 0.01 <= media && media < b.end(i) - 0.05) return true;
    return false;
  }

  ahead() {
    const b = this.video.buffered;
    const now = this.video.currentTime;
    for (let i = 0; i < b.length; i += 1) if (b.start(i) - 0.01 <= now && now <= b.end(i)) return b.end(i) - now;
    return 0;
  }

  /** Close the current session (its requests aborted) and open a new one on a fresh MediaSource. */
  async open() {
    this.close();
    const session = { ms: new MediaSource(), sb: null, loading: false, next: null, controller: null,
      edge: null, edgeWait: EDGE_FIRST_S, edgeAt: 0 };
    this.session = session;
    this.objectUrl = URL.createObjectURL(session.ms);
    this.video.src = this.objectUrl;
    this.el.dataset.start = "";
    await new Promise((resolve) => session.ms.addEventListener("sourceopen", resolve, { once: true }));
    // media time is seconds since the day's midnight; without a long duration the element would clamp a seek to
    // the end of what the first bytes hold (fragmented MP4 has no duration of its own)
    if (session === this.session) session.ms.duration = 2 * DAY_S;
    return session;
  }

  close() {
    const old = this.session;
    this.session = null;
    if (old && old.controller) old.controller.abort();
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
  }

  /** Show real time `real`: within what is buffered, or from a new stream; resolves when the frame is there. */
  async seek(real, { play = false } = {}) {
    const media = real - this.review.origin;
    if (this.sb && !this.pending && this.bufferedAt(media)) {
      this.video.currentTime = media;
      if (play) this.video.play().catch(() => {});
      return true;
    }
    this.pending = true;
    this.note(`seek ${real.toFixed(3)} media ${media.toFixed(3)}`);
    this.setState("loading", t("playback.loading"));
    const session = await this.open();
    this.note("open");
    if (session !== this.session) return false;
    try {
      const started = await this.load(session, real);
      if (started === null || session !== this.session) return false;
      // the init segment is parsed on the media thread: a time set before the element has its metadata is lost
      this.note(`started ${started.toFixed(3)}`);
      await this.until(() => this.video.readyState >= 1, ["loadedmetadata"]);
      if (session !== this.session) return false;
      this.video.currentTime = Math.max(media, started - this.review.origin);
      this.note("currentTime set");
      const shown = await this.until(() => this.video.readyState >= 2 && !this.video.seeking,
        ["seeked", "loadeddata", "canplay", "timeupdate"]);
      if (session !== this.session) return false;
      this.note(`shown ${shown}`);
      if (!shown) {
        this.setState("error", t("playback.stalled"));
        return false;
      }
      this.video.playbackRate = this.review.rate;
      this.setState(play ? "playing" : "paused");
      if (play) this.video.play().catch(() => {});
      return true;
    } finally {
      if (session === this.session) this.pending = false;
    }
  }

  /** Resolves true once `ready()` holds (checked on the element's `events`), false after 15 s: never hangs. */
  until(ready, events) {
    return new Promise((resolve) => {
      const check = () => { if (ready()) { cleanup(); resolve(true); } };
      const timer = setTimeout(() => { cleanup(); resolve(false); }, 15_000);
      const cleanup = () => { clearTimeout(timer); events.forEach((e) => this.video.removeEventListener(e, check)); };
      events.forEach((e) => this.video.addEventListener(e, check));
      check();
    });
  }

  /** Ask for the stream from `real` in `session`; resolves with its real start once its first bytes are appended,
   *  or null when there is nothing (the rest of the stream keeps coming in the background). */
  load(session, real) {
    session.loading = true;
    const controller = new AbortController();
    session.controller = controller;
    return new Promise((resolve) => {
      let resolved = false;
      const done = (value) => { if (!resolved) { resolved = true; resolve(value); } };
      (async () => {
        let started = false;
        try {
          const response = await api(ROUTES.recordingStream(this.camera.id), {
            query: { t: real.toFixed(3), max_s: CHUNK_S, session: this.review.session }, raw: true,
            signal: controller.signal });
          if (session !== this.session) return;
          const start = Number(response.headers.get("X-Playback-Start"));
          const end = Number(response.headers.get("X-Playback-End"));
          const upcoming = Number(response.headers.get("X-Playback-Next")) || null;
          this.fps = Number(response.headers.get("X-Playback-Frame-Rate")) || this.fps;
          this.continueAfter(session, end, upcoming);
          if (!this.el.dataset.start) this.el.dataset.start = String(start);
          started = true;
          await this.pump(session, response, start, codecOf(response), done);
        } catch (err) {
          if (session !== this.session || err.name === "AbortError") return;
          if (started && session.sb) {
            this.resumeAfterCut(session); // the server ended the stream early (e.g. it was not read for a while)
          } else if (err.status === 404) {
            if (!session.sb) this.setState("none", t("playback.no_recording"));
          } else {
            this.setState("error", err.message);
          }
        } finally {
          session.loading = false;
          done(null);
        }
      })();
    });
  }

  /** Append a stream's bytes to the session's SourceBuffer (created from the first bytes' codec). */
  async pump(session, response, start, codec, done) {
    const reader = response.body.getReader();
    const stale = () => session !== this.session;
    let head = null;
    let first = true;
    let first2 = true;
    try {
      for (;;) {
        const { done: finished, value } = await reader.read();
        if (finished || stale()) return;
        let data = value;
        if (!session.sb) {
          head = head ? concat(head, data) : data;
          const mime = mimeOf(head, codec);
          if (!mime) continue;
          if (!window.MediaSource || !MediaSource.isTypeSupported(mime)) {
            this.setState("error", t("playback.codec_unsupported", { codec }));
            return;
          }
          session.sb = session.ms.addSourceBuffer(mime);
          session.sb.mode = "segments";
          data = head;
          head = null;
        }
        if (first) {
          await idle(session.sb);
          if (stale()) return;
          session.sb.timestampOffset = start - this.review.origin; // media time = real time - the day's midnight
          first = false;
        }
        await this.append(session, data);
        if (first2) { this.note(`appended first ${data.length} B`); first2 = false; }
        if (stale()) return;
        done(start);
        while (!stale() && this.ahead() > 3 * AHEAD_S) await sleep(250); // back-pressure: the request waits
      }
    } catch (err) {
      if (err.name === "AbortError" || stale()) return;
      if (session.sb && this.video.buffered.length) throw err; // cut off midway: load() asks for the rest
      this.setState("error", err.message);
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  /** Where to ask next after a stream ending at real time `end`: the end itself, the next recording after a gap,
   *  or, with no newer recording indexed yet (the live edge), `end` again later (keepFed polls with backoff). */
  continueAfter(session, end, upcoming) {
    if (upcoming) {
      session.next = upcoming - end > GAP_S ? upcoming : end;
      session.edge = null;
      return;
    }
    session.next = null;
    if (session.edge === null || end > session.edge + 0.05) session.edgeWait = EDGE_FIRST_S; // it moved on
    session.edge = end;
    session.edgeAt = performance.now() + session.edgeWait * 1000;
  }

  /** A stream broke off before its end: continue from the last instant buffered. */
  resumeAfterCut(session) {
    const b = this.video.buffered;
    const last = this.review.origin + b.end(b.length - 1);
    this.note(`cut, resume at ${last.toFixed(3)}`);
    session.edge = null;
    session.next = last;
  }

  async append(session, data) {
    const { sb } = session;
    await idle(sb);
    if (session !== this.session) return;
    try {
      sb.appendBuffer(data);
    } catch (err) {
      if (err.name !== "QuotaExceededError") throw err;
      await this.trim(session, 5);
      sb.appendBuffer(data);
    }
    await idle(sb);
    if (session === this.session) await this.trim(session, KEEP_BEHIND_S);
  }

  async trim(session, keep) {
    const b = this.video.buffered;
    const cut = this.video.currentTime - keep;
    if (b.length && b.start(0) < cut) {
      await idle(session.sb);
      if (session !== this.session) return;
      session.sb.remove(0, cut);
      await idle(session.sb);
    }
  }

  /** Playback reached the end of a buffered stretch: jump to the next one (a gap in the recording). */
  crossGap() {
    const b = this.video.buffered;
    const now = this.video.currentTime;
    for (let i = 0; i < b.length; i += 1) {
      if (b.start(i) > now + 0.05 && (i === 0 || b.end(i - 1) <= now + 0.3)) {
        this.note(`gap jump to ${b.start(i).toFixed(3)}`);
        this.video.currentTime = b.start(i);
        toast(t("playback.gap_jump", { time: fmtTime(this.review.origin + b.start(i)) }), "info", 3000);
        return true;
      }
    }
    return false;
  }

  /** Fetch the continuation in time; called by the review's clock. */
  keepFed() {
    const session = this.session;
    if (!session || !session.sb || this.pending || session.loading) return;
    if (session.next === null) {
      this.watchEdge(session);
      return;
    }
    if (this.ahead() > AHEAD_S) return;
    const from = session.next;
    session.next = null;
    this.load(session, from);
  }

  /** At the live edge (nothing indexed after what is buffered yet): say so once the playhead gets there, and ask
   *  again for what follows, from the end of the last stream, waiting longer each time nothing came. */
  watchEdge(session) {
    if (session.edge === null || this.ahead() > AHEAD_S) return;
    if (this.ahead() < 0.25 && ["playing", "edge"].includes(this.el.dataset.state) && this.review.playing) {
      this.setState("edge", t("playback.live_edge"));
    }
    if (performance.now() < session.edgeAt) return;
    const from = session.edge;
    session.edgeWait = Math.min(EDGE_MAX_S, session.edgeWait * 2);
    session.edgeAt = performance.now() + session.edgeWait * 1000; // a 404 (nothing yet) waits this long
    this.note(`edge poll ${from.toFixed(3)} next in ${session.edgeWait}s`);
    this.load(session, from);
  }

  step(frames) {
    this.video.pause();
    this.video.currentTime = Math.max(0, this.video.currentTime + frames / this.fps);
  }

  paintClock() {
    const pos = this.position();
    this.clock.textContent = pos === null ? "" : clockText(pos);
    this.el.dataset.position = pos === null ? "" : pos.toFixed(3);
  }

  destroy() {
    this.close();
    this.video.removeAttribute("src");
    this.video.load();
  }
}

/** Resolves when the SourceBuffer is not updating (at once if it is not). */
function idle(sb) {
  return new Promise((resolve) => {
    if (!sb || !sb.updating) resolve();
    else sb.addEventListener("updateend", resolve, { once: true });
  });
}

function codecOf(response) {
  return response.headers.get("X-Playback-Codec") || "h264";
}

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  Object.entries(attrs).forEach(([k, v]) => {
    if (k === "dataset") Object.entries(v).forEach(([dk, dv]) => { el.dataset[dk] = String(dv); });
    else el.setAttribute(k, String(v));
  });
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Several cameras playing the same instant, a shared timeline and the controls. */
class Review {
  constructor(ctx, cameras, chosen, at, play) {
    this.ctx = ctx;
    this.cameras = cameras;
    this.chosen = chosen;
    this.origin = dayStart(at);
    this.master = at;
    this.rate = 1;
    this.playing = play;
    this.zoom = 600;
    this.markIn = null;
    this.markOut = null;
    this.dragging = null;
    this.version = 0;
    this.timelines = new Map();
    this.players = new Map();
    this.session = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2)).replaceAll("-", "");
    this.timers = [];
  }

  lead() {
    for (const player of this.players.values()) {
      if (!player.pending && player.position() !== null && ["playing", "paused", "edge"].includes(player.el.dataset.state)) {
        return player;
      }
    }
    return null;
  }

  position() {
    const lead = this.lead();
    return lead ? lead.position() : this.master;
  }

  async seekAll(real, { play = this.playing } = {}) {
    if (real < this.origin || real >= this.origin + DAY_S) {
      this.origin = dayStart(real);
      this.dayInput.value = dayValue(real);
      await this.loadTimelines();
    }
    this.master = real;
    this.playing = play;
    this.paintButtons();
    this.remember();
    await Promise.all([...this.players.values()].map((p) => p.seek(real, { play })));
    this.paintTimeline();
  }

  remember() {
    const cams = this.chosen.map(encodeURIComponent).join(",");
    history.replaceState(null, "", `#/playback?camera=${cams}&t=${this.master.toFixed(3)}`);
  }

  setPlaying(play) {
    this.playing = play;
    this.players.forEach((p) => {
      if (play && p.sb) p.video.play().catch(() => {});
      else p.video.pause();
    });
    this.paintButtons();
  }

  setRate(rate) {
    this.rate = rate;
    this.players.forEach((p) => { p.video.playbackRate = rate; });
  }

  step(frames) {
    this.setPlaying(false);
    this.players.forEach((p) => p.step(frames));
  }

  /** The review's clock: the lead player sets the time; the others are pulled to it; continuations fetched. */
  sync() {
    const lead = this.lead();
    if (lead) this.master = lead.position();
    if (this.followDay()) return;
    for (const p of this.players.values()) {
      p.keepFed();
      if (!p.video.paused && !p.pending && p.sb && p.ahead() < 0.15) p.crossGap(); // the next stretch came late
      if (p === lead || p.loading || p.pending) continue;
      const pos = p.position();
      const media = this.master - this.origin;
      const recorded = (this.timelines.get(p.camera.id)?.ranges || []).some((r) => r.start <= this.master && this.master < r.end);
      if (pos !== null && Math.abs(pos - this.master) <= 0.25 * Math.max(1, this.rate)) continue;
      if (pos !== null && p.bufferedAt(media)) p.video.currentTime = media;
      else if (recorded && p.el.dataset.state !== "loading") p.seek(this.master, { play: this.playing });
    }
    this.paintTimeline();
  }

  /** Playback went past the shown day (midnight): move the day field, the timeline and the players' clock origin
   *  to the day now played (the players reopen at the instant played); true while that is under way. */
  followDay() {
    if (this.rolling) return true;
    if (this.master >= this.origin && this.master < this.origin + DAY_S) return false;
    this.rolling = true;
    this.seekAll(this.master).finally(() => { this.rolling = false; });
    return true;
  }

  async loadTimelines() {
    await Promise.all(this.chosen.map(async (id) => {
      try {
        const data = await api(ROUTES.recordingTimeline(id), { query: { start: this.origin, end: this.origin + DAY_S } });
        this.timelines.set(id, data);
      } catch (err) {
        this.timelines.set(id, { ranges: [], gaps: [], markers: [], error: err.message });
      }
    }));
    this.version = (this.version || 0) + 1;
    this.paintTimeline(true);
  }

  /** The timeline's window: `zoom` seconds around the playhead, moved in tenths (not redrawn on every tick). */
  window() {
    const span = this.zoom;
    const step = span / 10;
    let v0 = Math.floor((this.master - span / 2) / step) * step;
    v0 = Math.max(this.origin, Math.min(v0, this.origin + DAY_S - span));
    return [v0, v0 + span];
  }

  /** Redraw the timeline when its window, data or marks changed (never during a drag); else move the playhead. */
  paintTimeline(force = false) {
    if (!this.chart) return;
    const [w0, w1] = this.window();
    const key = `${w0}|${w1}|${this.version}|${this.markIn}|${this.markOut}|${this.chosen.join(",")}`;
    if (this.dragging || (!force && key === this.drawn)) {
      this.movePlayhead();
      return;
    }
    this.drawn = key;
    const width = 1000;
    const left = 215;
    const lane = 40;
    const top = 10;
    const height = top + this.chosen.length * lane + 28;
    const [v0, v1] = this.window();
    const x = (time) => left + ((time - v0) / (v1 - v0)) * (width - left - 10);
    const timeAt = (px) => v0 + ((px - left) / (width - left - 10)) * (v1 - v0);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, id: "pb-timeline-svg", role: "img",
      "aria-label": t("playback.title"), dataset: { start: v0, end: v1 } });
    const defs = svg("defs");
    const hatch = svg("pattern", { id: "pb-hatch", width: 8, height: 8, patternUnits: "userSpaceOnUse",
      patternTransform: "rotate(45)" });
    hatch.append(svg("rect", { width: 8, height: 8, class: "gap-bg" }), svg("line", { x1: 0, y1: 0, x2: 0, y2: 8, class: "gap-stroke" }));
    defs.append(hatch);
    chart.append(defs);
    const clip = (a, b) => [Math.max(a, v0), Math.min(b, v1)];
    this.chosen.forEach((id, i) => {
      const y = top + i * lane;
      const data = this.timelines.get(id) || { ranges: [], gaps: [], markers: [] };
      const camera = this.cameras.find((c) => c.id === id);
      chart.append(svg("text", { x: 4, y: y + 22, class: "lane-label" }, (camera ? camera.name : id).slice(0, 26)));
      chart.append(svg("rect", { x: left, y: y + 4, width: width - left - 10, height: 26, class: "lane-bg",
        dataset: { camera: id } }));
      data.ranges.forEach((r) => {
        const [a, b] = clip(r.start, r.end);
        if (b <= a) return;
        chart.append(svg("rect", { x: x(a), y: y + 6, width: Math.max(2, x(b) - x(a)), height: 22, class: "rec",
          dataset: { camera: id, start: r.start, end: r.end } }));
      });
      data.gaps.forEach((g) => {
        const [a, b] = clip(g.start, g.end);
        if (b <= a) return;
        const rect = svg("rect", { x: x(a), y: y + 6, width: Math.max(2, x(b) - x(a)), height: 22, class: "gap",
          fill: "url(#pb-hatch)", dataset: { camera: id, start: g.start, end: g.end } });
        rect.append(svg("title", {}, `${t("playback.legend.gap")}: ${fmtTime(g.start)} – ${fmtTime(g.end, { date: false })}`));
        chart.append(rect);
      });
      data.markers.forEach((m) => {
        if (m.time < v0 || m.time > v1) return;
        const mark = svg("rect", { x: x(m.time) - 3, y: y + 2, width: 6, height: 30, class: `marker marker-${m.kind}`,
          dataset: { camera: id, time: m.time, kind: m.kind, eventId: m.event_id } });
        mark.append(svg("title", {}, `${t(`playback.legend.${m.kind}`)} ${m.label || ""} · ${fmtTime(m.time)}`));
        mark.addEventListener("click", (ev) => { ev.stopPropagation(); this.seekAll(m.time - EVENT_LEAD_S, { play: true }); });
        chart.append(mark);
      });
    });
    const ticks = 6;
    for (let k = 0; k <= ticks; k += 1) {
      const time = v0 + ((v1 - v0) * k) / ticks;
      chart.append(svg("text", { x: x(time), y: height - 6, class: "tick",
        "text-anchor": k === 0 ? "start" : k === ticks ? "end" : "middle" },
      fmtTime(time, { date: false, seconds: this.zoom <= 3600 })));
    }
    if (this.markIn !== null && this.markOut !== null) {
      const [a, b] = clip(Math.min(this.markIn, this.markOut), Math.max(this.markIn, this.markOut));
      if (b > a) chart.append(svg("rect", { x: x(a), y: top, width: x(b) - x(a), height: height - top - 24, class: "inout" }));
    }
    this.playhead = svg("line", { y1: 2, y2: height - 22, class: "playhead" });
    this.playheadX = x;
    this.playheadRange = [v0, v1];
    chart.append(this.playhead);
    // click or drag anywhere on the lanes: play from that instant
    const toTime = (ev) => {
      const box = chart.getBoundingClientRect();
      return timeAt(((ev.clientX - box.left) / box.width) * width);
    };
    chart.addEventListener("pointerdown", (ev) => {
      if (ev.target.classList && ev.target.classList.contains("marker")) return;
      this.dragging = toTime(ev);
      this.scrub.textContent = fmtTime(this.dragging);
      chart.setPointerCapture(ev.pointerId);
    });
    chart.addEventListener("pointermove", (ev) => {
      if (!this.dragging) return;
      this.dragging = toTime(ev);
      this.scrub.textContent = fmtTime(this.dragging);
    });
    chart.addEventListener("pointerup", () => {
      if (!this.dragging) return;
      const at = Math.max(this.origin, Math.min(this.dragging, this.origin + DAY_S - 1));
      this.dragging = null;
      this.scrub.textContent = "";
      this.seekAll(at);
    });
    clear(this.chart, chart);
    this.movePlayhead();
    const capped = [...this.timelines.values()].some((d) => d.markers_capped);
    this.capped.hidden = !capped;
    this.paintInOut();
  }

  movePlayhead() {
    if (!this.playhead) return;
    const pos = this.position();
    const [v0, v1] = this.playheadRange;
    const shown = pos >= v0 && pos <= v1;
    this.playhead.setAttribute("visibility", shown ? "visible" : "hidden");
    if (shown) {
      this.playhead.setAttribute("x1", this.playheadX(pos));
      this.playhead.setAttribute("x2", this.playheadX(pos));
      this.playhead.dataset.time = pos.toFixed(3);
    }
  }

  paintButtons() {
    if (!this.playBtn) return;
    // CSS-drawn icons: the pause sign (U+23F8) is missing from the page's fonts and showed as an empty box
    const icon = h("span", { class: `pb-icon pb-icon-${this.playing ? "pause" : "play"}`, "aria-hidden": "true" });
    this.playBtn.replaceChildren(icon, " ", t(this.playing ? "playback.pause" : "playback.play"));
    this.playBtn.dataset.playing = String(this.playing);
  }

  paintInOut() {
    if (!this.inOut) return;
    this.inOut.textContent = this.markIn === null && this.markOut === null ? ""
      : t("playback.in_out", { a: this.markIn === null ? "–" : fmtTime(this.markIn), b: this.markOut === null ? "–" : fmtTime(this.markOut) });
  }

  async exportClip() {
    const at = this.position();
    const a = this.markIn ?? at - 30;
    const b = this.markOut ?? at + 30;
    const lead = this.lead();
    await exportDialog(this.ctx, { cameras: this.cameras, camera: lead ? lead.camera.id : this.chosen[0],
      start: Math.min(a, b), end: Math.max(a, b) });
  }

  buildPlayers(grid) {
    this.players.forEach((p) => p.destroy());
    this.players.clear();
    this.chosen.forEach((id) => {
      const camera = this.cameras.find((c) => c.id === id);
      this.players.set(id, new Player(camera, this));
    });
    grid.dataset.count = String(this.players.size);
    clear(grid, [...this.players.values()].map((p) => p.el));
  }

  destroy() {
    this.timers.forEach((timer) => clearInterval(timer));
    cancelAnimationFrame(this.frame);
    this.players.forEach((p) => p.destroy());
    if (window.__cctvPlayback === this) delete window.__cctvPlayback;
  }
}

/**
 * Where to open when no time was asked: `now - DEFAULT_BACK_S` when a chosen camera recorded then; else the last
 * DEFAULT_BACK_S seconds of the newest recording of the chosen cameras in the last day (from their timelines), so a
 * camera recording for less than that, or stopped, opens on footage instead of "no recording"; else the default.
 */
async function defaultInstant(chosen, now) {
  const wanted = now - DEFAULT_BACK_S;
  const lists = await Promise.all(chosen.map((id) => api(ROUTES.recordingTimeline(id),
    { query: { start: (now - DAY_S).toFixed(3), end: (now + 60).toFixed(3) } })
    .then((data) => data.ranges || [], () => [])));
  const ranges = lists.flat();
  if (ranges.some((r) => r.start <= wanted && wanted < r.end)) return wanted;
  const newest = ranges.reduce((best, r) => (!best || r.end > best.end ? r : best), null);
  return newest ? Math.max(newest.start, newest.end - DEFAULT_BACK_S) : wanted;
}

export const playbackView = {
  id: "playback",
  feature: "playback",
  navKey: "nav.playback",
  async render(container, ctx, { params }) {
    const cameras = await listCameras();
    const asked = (params.get("camera") || "").split(",").map((s) => s.trim()).filter(Boolean);
    const refused = asked.filter((id) => !cameras.some((c) => c.id === id));
    let chosen = asked.filter((id) => cameras.some((c) => c.id === id)).slice(0, MAX_CAMERAS);
    if (!chosen.length && !refused.length && cameras.length) chosen = [cameras[0].id];
    const now = Date.now() / 1000;
    const at = Number(params.get("t")) || await defaultInstant(chosen, now);
    const review = new Review(ctx, cameras, chosen, at, params.get("play") !== "0");
    window.__cctvPlayback = review;

    const problem = h("div", { id: "pb-problem" }, refused.length
      ? errorBox({ message: t("playback.unknown_camera", { id: refused.join(", ") }) }) : null);
    const grid = h("div", { class: "pb-grid", id: "pb-players" });
    const picks = h("div", { class: "pb-picks", id: "pb-cameras" }, cameras.map((c) => h("label", { class: "check" },
      h("input", { type: "checkbox", value: c.id, checked: chosen.includes(c.id),
        onchange: async (ev) => {
          const boxes = [...picks.querySelectorAll("input:checked")].map((i) => i.value);
          if (boxes.length > MAX_CAMERAS) { ev.target.checked = false; toast(t("playback.max_cameras", { n: MAX_CAMERAS }), "info"); return; }
          review.chosen = boxes;
          review.buildPlayers(grid);
          await review.loadTimelines();
          await review.seekAll(review.position());
        } }), c.name)));
    review.dayInput = h("input", { type: "date", id: "pb-day", value: dayValue(at),
      onchange: () => {
        const d = new Date(`${review.dayInput.value}T00:00:00`).getTime() / 1000;
        if (!Number.isNaN(d)) review.seekAll(d + Math.min(DAY_S - 1, Math.max(0, review.position() - review.origin)));
      } });
    const jump = h("input", { type: "datetime-local", step: 1, id: "pb-time", value: toLocalInput(at) });
    const speed = h("select", { id: "pb-speed", onchange: () => review.setRate(Number(speed.value)) },
      SPEEDS.map((s) => h("option", { value: s }, `${s}×`)));
    const zoom = h("select", { id: "pb-zoom", onchange: () => { review.zoom = Number(zoom.value); review.paintTimeline(); } },
      ZOOMS.map((z) => h("option", { value: z, selected: z === review.zoom }, t(`playback.zoom.${z}`))));
    const button = (id, label, onclick, title) => h("button", { class: "btn btn-secondary", type: "button", id, onclick, title }, label);
    review.playBtn = h("button", { class: "btn btn-primary", type: "button", id: "pb-play",
      onclick: () => review.setPlaying(!review.playing) });
    review.chart = h("div", { class: "pb-timeline", id: "pb-timeline" });
    review.scrub = h("span", { class: "pb-scrub", id: "pb-scrub" });
    review.capped = h("div", { class: "muted", hidden: true }, t("playback.markers_capped"));
    review.inOut = h("span", { class: "muted", id: "pb-inout" });
    const legend = h("div", { class: "pb-legend" }, ["rec", "gap", "plate", "face", "alert"].map((k) =>
      h("span", { class: `pb-key pb-key-${k}` }, t(`playback.legend.${k}`))));

    const controls = h("div", { class: "pb-controls row", id: "pb-controls" },
      button("pb-back10", t("playback.back10"), () => review.seekAll(review.position() - 10)),
      button("pb-stepback", "◀|", () => review.step(-1), t("playback.step_back")),
      review.playBtn,
      button("pb-step", "|▶", () => review.step(1), t("playback.step")),
      button("pb-fwd10", t("playback.fwd10"), () => review.seekAll(review.position() + 10)),
      h("label", { class: "field-inline" }, t("playback.speed"), speed),
      h("label", { class: "field-inline" }, t("playback.zoom"), zoom),
      button("pb-in", t("playback.mark_in"), () => { review.markIn = review.position(); review.paintTimeline(); }),
      button("pb-out", t("playback.mark_out"), () => { review.markOut = review.position(); review.paintTimeline(); }),
      ctx.can("evidence") ? button("pb-export", t("playback.export"), () => review.exportClip()) : null,
      review.inOut);

    clear(container,
      h("div", { class: "view-head" }, h("h1", {}, t("playback.title")),
        h("label", { class: "field-inline" }, t("playback.day"), review.dayInput),
        h("form", { class: "row", onsubmit: (ev) => {
          ev.preventDefault();
          const when = fromLocalInput(jump.value);
          if (when !== null) review.seekAll(when);
        } }, h("label", { class: "field-inline" }, t("playback.go_to"), jump),
        h("button", { class: "btn btn-secondary", type: "submit", id: "pb-go" }, t("playback.go")))),
      problem,
      h("div", { class: "panel" }, h("div", { class: "field-label" }, t("playback.cameras", { n: MAX_CAMERAS })), picks),
      grid, controls,
      h("div", { class: "panel" }, legend, review.chart, review.scrub, review.capped));
    review.paintButtons();
    if (!chosen.length) {
      clear(grid, h("div", { class: "empty" }, t("playback.pick_camera")));
      return () => review.destroy();
    }
    review.buildPlayers(grid);
    await review.loadTimelines();
    review.seekAll(at, { play: review.playing });
    review.timers.push(setInterval(() => review.sync(), SYNC_MS));
    review.timers.push(setInterval(() => { if (review.origin + DAY_S > Date.now() / 1000) review.loadTimelines(); }, 60_000));
    const paintClocks = () => {
      review.players.forEach((p) => p.paintClock());
      review.frame = requestAnimationFrame(paintClocks);
    };
    paintClocks();
    return () => review.destroy();
  },
};

/** Hash of the playback view at an event's time minus a few seconds (no token: the page holds it). */
export function playLink(cameraId, time) {
  return `#/playback?camera=${encodeURIComponent(cameraId)}&t=${(Number(time) - EVENT_LEAD_S).toFixed(3)}`;
}

/** A "play" button for an event row or card. */
export function playButton(cameraId, time) {
  return h("a", { class: "btn btn-small btn-secondary play-link", href: playLink(cameraId, time),
    dataset: { camera: cameraId, time }, onclick: (ev) => ev.stopPropagation() }, `▶ ${t("common.play")}`);
}
