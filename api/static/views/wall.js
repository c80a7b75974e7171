// Video wall: live cameras in 1 / 2x2 / 3x3 / 4x4 tiles (fragmented MP4 over WebSocket into Media Source
// Extensions, nothing re-encoded), the layout saved per user on the server, the newest plate read or alert of each
// camera over its tile, click to enlarge. Only tiles on screen in a visible tab stream. Keyboard: Tab to a tile,
// Enter or Space enlarges it (again, or Escape, returns to the wall), F or the button shows the wall full screen;
// there a small corner button (shown on entering, on mouse move and on keyboard focus) leaves it again, as F does.

import { ROUTES, api, getToken } from "../api.js";
import { clear, errorBox, fmtTime, h, toast } from "../dom.js";
import { t } from "../i18n.js";
import { listCameras, watchCameras } from "./common.js";

const GRIDS = { "1": 1, "2x2": 4, "3x3": 9, "4x4": 16 };
const KEEP_BEHIND_S = 6; // buffered video kept behind the playhead
const MAX_LAG_S = 1.5; // further behind the live edge than this: jump to it
const START_S = 3; // in the first seconds of a stream, jump as soon as it is CATCH_UP_S behind: a stream starts at
// the server's cached keyframe, up to a keyframe interval old, and playing 10 % faster would take seconds to catch up
const CATCH_UP_S = 0.4; // further behind than this: play 10 % faster until back
const MAX_PENDING = 120; // fragments waiting for the SourceBuffer before the stream is restarted
const EVENTS_MS = 5000;
const ACK_EVERY = 5; // fragments between acknowledgements (the server allows CCTV_LIVE_ACK_WINDOW in flight)
const CONTROLS_MS = 3000; // full screen: the exit button stays shown this long after entering or a mouse move
/** A stream the server says is live that brings no fragment for this long is shown offline ("no video"), its last
 * frame dimmed, until fragments flow again: the server only notices a stalled camera after its stall timeout
 * (ingest.stall_timeout_s, 10 s by default), and meanwhile a frozen frame must not pass for live video. */
export const STALL_MS = 4000;
/** Still no fragment this long after the server said live: the connection itself may be dead (a half-open TCP
 * connection after a network cut never closes on its own): a new one is opened. A stalled camera the server
 * noticed is reported offline by it well before (its stall timeout), which ends this watch. */
export const RECONNECT_STALLED_MS = 30000;
/** A camera the server refuses or ends (4403: no longer permitted, 4404: removed, disabled or unknown) may come back
 * (re-enabled, camera limits restored): its tile asks again this often, quietly (it stays "No access" meanwhile),
 * and whenever it comes on screen again; it plays as soon as the server takes it. */
export const DENIED_RETRY_MS = 30000;

/** Fragments (`moof` boxes) in a binary message of one or more whole `moof`+`mdat` fragments. */
export function countFragments(buffer) {
  const view = new DataView(buffer);
  let count = 0;
  for (let pos = 0; pos + 8 <= view.byteLength;) {
    const size = view.getUint32(pos);
    if (view.getUint32(pos + 4) === 0x6d6f6f66) count += 1; // "moof"
    if (size < 8) break; // not a box stream this client knows (64-bit sizes are not used for fragments)
    pos += size;
  }
  return count;
}

/**
 * One live stream in a <video>: WebSocket (token as the first message), MediaSource fed with the init segment and
 * then the fragments (one per frame; one message may carry several, appended together), buffer trimmed, playhead kept near the live edge. Reconnects by itself (1 s doubling
 * to 15 s); a camera the server refuses (4403/4404) is asked for again every DENIED_RETRY_MS; never again after a
 * malformed request (4422) or an ended session (4401).
 */
export class LivePlayer {
  constructor(video, cameraId, stream, { onState = () => {}, onUnauthorized = () => {} } = {}) {
    Object.assign(this, { video, cameraId, stream, onState, onUnauthorized });
    this.ws = null;
    this.stopped = true;
    this.attempt = 0;
    this.timer = null;
    this.pending = [];
    this.sourceBuffer = null;
    this.mediaSource = null;
    this.expectInit = false;
    this.mime = "";
    this.mode = "remux";
    this.stats = { fragments: 0, bytes: 0, presented: 0, firstFrameAt: null, openedAt: null, frames: [] };
    this.serverStatus = ""; // the server's newest status of the stream ("live", "offline", ...)
    this.stalled = false; // the server says live, but no fragment came for STALL_MS
    this.lastFragmentAt = 0;
    this.stallMs = STALL_MS;
    this.reconnectMs = RECONNECT_STALLED_MS;
    this.deniedRetryMs = DENIED_RETRY_MS;
    this.denied = false; // refused by the server (4403/4404): stopped, asked again after deniedRetryMs
    this.tick = setInterval(() => { this.watchStall(); this.keepLive(); }, 500);
    if (video.requestVideoFrameCallback) {
      const onFrame = (now, meta) => {
        if (this.dead) return;
        this.stats.presented += 1;
        if (this.stats.firstFrameAt === null) this.stats.firstFrameAt = Date.now();
        // wall-clock presentation time of each frame with its media time (read by benchmarks.video --browser)
        this.stats.frames.push([performance.timeOrigin + meta.expectedDisplayTime, meta.mediaTime]);
        if (this.stats.frames.length > 1000) this.stats.frames.splice(0, 500);
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    }
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${ROUTES.liveWs(this.cameraId)}?stream=${encodeURIComponent(this.stream)}`;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(state = "paused") {
    this.stopped = true;
    this.denied = false;
    clearTimeout(this.timer);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000, "bye"); }
    this.resetMedia();
    this.onState(state, {});
  }

  destroy() {
    this.dead = true;
    this.stop("paused");
    clearInterval(this.tick);
  }

  /** Open the stream's WebSocket; `quiet`: the tile keeps its state until the server says something (a refused
   * camera asked again). */
  connect(quiet = false) {
    if (this.stopped) return;
    this.denied = false;
    if (!quiet) this.onState("connecting", {});
    this.stats.openedAt = Date.now();
    this.stats.firstFrameAt = null;
    const ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.received = 0;
    this.acked = 0;
    this.serverStatus = "";
    this.stalled = false;
    this.endCode = ""; // the reason_code of the server's "end" message, which comes just before its close
    ws.addEventListener("open", () => ws.send(JSON.stringify({ token: getToken() })));
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      if (typeof event.data === "string") this.onText(event.data);
      else this.onBinary(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.resetMedia();
      const code = this.endCode || CLOSE_CODES[event.code] || "";
      if (event.code === 4401) { this.stopped = true; this.onState("denied", { reason: event.reason, code }); this.onUnauthorized(); return; }
      if ([4403, 4404, 4422].includes(event.code)) {
        this.stopped = true;
        this.onState("denied", { reason: event.reason || t("wall.denied"), code });
        if (event.code !== 4422) this.askAgainLater();
        return;
      }
      this.retry(event.reason, code);
    });
  }

  /** A refused camera may be enabled or permitted again: ask once more after deniedRetryMs (stop() cancels). */
  askAgainLater() {
    this.denied = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (!this.denied || this.dead) return;
      this.stopped = false;
      this.connect(true);
    }, this.deniedRetryMs);
  }

  retry(reason, code = "") {
    if (this.stopped) return;
    const delay = Math.min(15, 2 ** this.attempt) * 1000;
    this.attempt += 1;
    this.onState("offline", { reason: reason || t("wall.connection_lost"), code: reason ? code : "" });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  onText(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (msg.type === "init") {
      this.mime = msg.mime;
      this.mode = msg.mode || "remux";
      this.expectInit = true;
      if (!window.MediaSource || !MediaSource.isTypeSupported(msg.mime)) {
        this.onState("offline", { reason: t("wall.unsupported", { codec: msg.codec }) });
      }
    } else if (msg.type === "status") {
      this.mode = msg.mode || this.mode;
      this.serverStatus = msg.status;
      this.stalled = false;
      this.lastFragmentAt = Date.now(); // the stall clock starts again from the server's word
      this.onState(msg.status === "live" ? "live" : msg.status,
        { reason: msg.reason, code: msg.reason_code || "", mode: this.mode });
      if (msg.status === "live") this.attempt = 0;
    } else if (msg.type === "end") {
      this.endCode = msg.reason_code || "";
      this.onState("offline", { reason: msg.reason, code: this.endCode });
    }
  }

  onBinary(buffer) {
    if (this.expectInit) {
      this.expectInit = false;
      this.newMedia(buffer);
      return;
    }
    // flow control: the server keeps at most a window of unacknowledged fragments in flight; a message may carry
    // several fragments (sent together when this viewer fell a little behind): each one counts
    const fragments = countFragments(buffer);
    this.received += fragments;
    this.lastFragmentAt = Date.now();
    if (this.stalled) { // video flows again: live once more
      this.stalled = false;
      this.onState("live", { mode: this.mode });
    }
    if (this.received - this.acked >= ACK_EVERY && this.ws) {
      this.acked = this.received;
      this.ws.send(JSON.stringify({ ack: this.received }));
    }
    if (!this.mediaSource) return;
    this.stats.fragments += fragments;
    this.stats.bytes += buffer.byteLength;
    this.pending.push(buffer);
    if (this.pending.length > MAX_PENDING) { // the decoder cannot keep up: start again from a keyframe
      this.resetMedia();
      if (this.ws) this.ws.close(4000, "behind");
      return;
    }
    this.pump();
  }

  newMedia(init) {
    this.resetMedia();
    this.mediaStartedAt = Date.now();
    const ms = new MediaSource();
    this.mediaSource = ms;
    this.pending = [init];
    this.video.src = URL.createObjectURL(ms);
    ms.addEventListener("sourceopen", () => {
      if (this.mediaSource !== ms) return;
      try {
        this.sourceBuffer = ms.addSourceBuffer(this.mime);
        this.sourceBuffer.mode = "segments";
        this.sourceBuffer.addEventListener("updateend", () => this.pump());
        this.pump();
      } catch (err) {
        this.onState("offline", { reason: t("wall.unsupported", { codec: this.mime }) });
      }
    }, { once: true });
  }

  resetMedia() {
    this.pending = [];
    this.sourceBuffer = null;
    if (this.mediaSource) {
      const old = this.video.src;
      this.mediaSource = null;
      this.video.removeAttribute("src");
      this.video.load();
      if (old) URL.revokeObjectURL(old);
    }
  }

  pump() {
    const sb = this.sourceBuffer;
    if (!sb || sb.updating || !this.pending.length) return;
    try {
      sb.appendBuffer(this.pending.shift());
    } catch (err) {
      if (err.name === "QuotaExceededError") { this.trim(true); return; }
      this.resetMedia();
      if (this.ws) this.ws.close(4000, "append failed");
      return;
    }
    const v = this.video;
    if (v.paused && v.buffered.length) {
      if (v.currentTime < v.buffered.start(0)) v.currentTime = v.buffered.start(0);
      v.play().catch(() => { /* autoplay of muted video is allowed; retried on the next fragment */ });
    }
  }

  /** Remove what lies more than KEEP_BEHIND_S behind the playhead. */
  trim(force = false) {
    const sb = this.sourceBuffer;
    const v = this.video;
    if (!sb || sb.updating || !v.buffered.length) return;
    const start = v.buffered.start(0);
    const cut = v.currentTime - (force ? 1 : KEEP_BEHIND_S);
    if (cut - start > 1) {
      try { sb.remove(start, cut); } catch { /* removed on the next tick */ }
    }
  }

  /** A stream the server calls live that brought no fragment for STALL_MS: say so (offline, "no video") instead of
   * leaving its frozen last frame under a live badge; the next fragment makes it live again. */
  watchStall() {
    if (this.stopped || !this.ws || this.serverStatus !== "live") return;
    const quiet = Date.now() - this.lastFragmentAt;
    const reason = `no video from the camera for ${Math.round(quiet / 1000)} s`;
    if (this.stalled && quiet >= this.reconnectMs) { // silent for long: a new connection (see RECONNECT_STALLED_MS)
      const ws = this.ws;
      this.ws = null;
      ws.close(4000, "stalled");
      this.resetMedia();
      this.retry(reason, "no_video");
      return;
    }
    if (this.stalled || quiet < this.stallMs) return;
    this.stalled = true;
    this.onState("offline", { reason, code: "no_video", mode: this.mode });
  }

  /** Jump to the live edge when the playhead fell behind (tab throttled, slow decode); trim the buffer. */
  keepLive() {
    const v = this.video;
    if (!this.sourceBuffer || !v.buffered.length) return;
    const end = v.buffered.end(v.buffered.length - 1);
    const lag = end - v.currentTime;
    const starting = Date.now() - (this.mediaStartedAt || 0) < START_S * 1000;
    if (lag > (starting ? CATCH_UP_S : MAX_LAG_S)) v.currentTime = Math.max(v.buffered.start(v.buffered.length - 1), end - 0.1);
    else v.playbackRate = lag > CATCH_UP_S ? 1.1 : 1.0; // drift back to the live edge without a jump
    this.trim();
  }
}

/** Reason codes (for reasonText) of the live WebSocket's close codes, whose close reason is English text. */
const CLOSE_CODES = { 4401: "session_ended", 4403: "not_permitted", 4404: "no_camera", 4422: "bad_request",
  4429: "too_many_streams" };

/** The server's reason in the page's language: a known `code` (sent with each live status) is translated, an
 * unknown or missing one falls back to the server's English text. */
export function reasonText(info) {
  const key = info.code ? `cameras.error.${info.code}` : "";
  return key && t(key) !== key ? t(key) : info.reason || "";
}

function statusText(state, info) {
  if (state === "live") return info.mode && info.mode !== "remux" ? t(`wall.mode.${info.mode}`) : "";
  if (state === "offline" || state === "denied") return reasonText(info);
  return "";
}

/** One tile: header (name, status), video, overlay of the newest event, offline notice. */
function makeTile(index, cameras, wall) {
  const video = h("video", { muted: true, autoplay: true, playsinline: true, class: "wall-video" });
  video.muted = true;
  const name = h("span", { class: "wall-name" });
  const badge = h("span", { class: "badge wall-status" });
  const note = h("div", { class: "wall-note" });
  const overlay = h("div", { class: "wall-overlay", hidden: true });
  const select = h("select", { class: "wall-select", "aria-label": t("wall.choose_camera") },
    h("option", { value: "" }, t("wall.empty_tile")),
    ...cameras.map((c) => h("option", { value: c.id }, c.name)));
  const el = h("div", { class: "wall-tile", tabindex: "0", role: "group",
    dataset: { index: String(index), state: "empty" } },
    h("div", { class: "wall-head" }, name, badge, select), video, overlay, note);
  const tile = { el, video, player: null, cameraId: "", visible: false, state: "empty", info: {}, overlay, note };
  tile.paint = (state, info = {}) => {
    tile.state = state;
    tile.info = info;
    el.dataset.state = state;
    badge.className = `badge wall-status status-${state}`;
    badge.textContent = state === "empty" ? "" : t(`wall.state.${state}`);
    badge.hidden = state === "empty";
    const text = statusText(state, info);
    note.textContent = text;
    note.title = text && info.reason && info.reason !== text ? info.reason : ""; // the server's own words
    note.hidden = !text;
    note.classList.toggle("wall-note-error", state === "offline" || state === "denied");
  };
  tile.assign = (cameraId) => {
    if (tile.player) { tile.player.destroy(); tile.player = null; }
    tile.cameraId = cameraId || "";
    el.dataset.cameraId = tile.cameraId;
    select.value = tile.cameraId;
    const cam = cameras.find((c) => c.id === cameraId);
    name.textContent = cam ? cam.name : "";
    tile.label();
    overlay.hidden = true;
    if (!cam) { tile.paint("empty"); return; }
    tile.player = new LivePlayer(video, cam.id, wall.streamFor(tile), {
      onState: (state, info) => tile.paint(state, info),
      onUnauthorized: () => wall.ctx.go("#/alerts"),
    });
    tile.paint("paused");
    if (wall.newest.has(cam.id)) showEvent(tile, wall.newest.get(cam.id));
    wall.updateStreaming(tile);
  };
  /** The chooser's options from the (refreshed) camera list; the playing video is not touched. */
  tile.refreshOptions = () => {
    const known = cameras.some((c) => c.id === tile.cameraId);
    select.replaceChildren(h("option", { value: "" }, t("wall.empty_tile")),
      ...cameras.map((c) => h("option", { value: c.id }, c.name)),
      tile.cameraId && !known ? h("option", { value: tile.cameraId }, tile.cameraId) : null);
    select.value = tile.cameraId;
    const cam = cameras.find((c) => c.id === tile.cameraId);
    if (cam && name.textContent !== cam.name) { name.textContent = cam.name; tile.label(); }
  };
  tile.label = () => {
    const camName = name.textContent;
    el.setAttribute("aria-label", !camName ? t("wall.tile_label_empty", { n: index + 1 })
      : t(wall.enlarged === tile ? "wall.tile_label_enlarged" : "wall.tile_label", { name: camName }));
  };
  select.addEventListener("change", () => { tile.assign(select.value); wall.markDirty(); });
  select.addEventListener("keydown", (event) => event.stopPropagation()); // Enter/Space/Escape/F belong to the list
  select.addEventListener("click", (event) => event.stopPropagation());
  el.addEventListener("click", () => { if (tile.cameraId) wall.toggleEnlarge(tile); });
  el.addEventListener("keydown", (event) => {
    if (event.target !== el || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault(); // no page scroll on Space
      if (tile.cameraId) wall.toggleEnlarge(tile);
    }
  });
  return tile;
}

function showEvent(tile, event) {
  if (!event) return;
  const { overlay } = tile;
  clear(overlay, h("span", { class: `wall-event wall-event-${event.kind}` }, event.text),
    h("time", { class: "wall-event-time" }, fmtTime(event.at, { date: false })));
  overlay.dataset.kind = event.kind;
  overlay.hidden = false;
}

async function render(container, ctx) {
  const cameras = await listCameras(true);
  let layout;
  try { layout = await api(ROUTES.liveLayout); } catch (err) { layout = { grid: "2x2", tiles: [], stream: "auto" }; toast(err.message, "error"); }
  const grid = h("div", { class: "wall-grid", id: "wall-grid" });
  // full screen shows the stage: the grid and, over its corner, a button back (the toolbar stays in the page)
  const exitButton = h("button", { class: "btn wall-exit-fullscreen", id: "wall-exit-fullscreen", type: "button",
    title: t("wall.exit_fullscreen_hint"), onclick: () => toggleFullscreen() },
  h("span", { "aria-hidden": "true" }, "✕ "), t("wall.exit_fullscreen"));
  const stage = h("div", { class: "wall-stage", id: "wall-stage" }, exitButton, grid);
  const saveButton = h("button", { class: "btn btn-secondary", id: "wall-save", type: "button" }, t("wall.save"));
  const fullButton = h("button", { class: "btn btn-secondary", id: "wall-fullscreen", type: "button",
    title: t("wall.fullscreen_hint"), "aria-pressed": "false", onclick: () => toggleFullscreen() }, t("wall.fullscreen"));
  /** The wall (the stage: grid and exit button) full screen, or back; a browser that refuses (headless, no user
   * gesture, iframe) leaves the page as it is, quietly. */
  const toggleFullscreen = () => {
    try {
      const done = document.fullscreenElement ? document.exitFullscreen()
        : stage.requestFullscreen ? stage.requestFullscreen() : null;
      if (done && done.catch) done.catch(() => { /* refused: the wall stays in the page */ });
    } catch { /* no Fullscreen API */ }
  };
  let controlsTimer = null;
  /** Show the exit button for a while (CSS keeps it shown while hovered or focused by keyboard). */
  const showControls = () => {
    if (!stage.classList.contains("wall-fullscreen")) return;
    stage.classList.add("wall-controls-shown");
    clearTimeout(controlsTimer);
    controlsTimer = setTimeout(() => stage.classList.remove("wall-controls-shown"), CONTROLS_MS);
  };
  let pointerAt = "";
  stage.addEventListener("pointermove", (event) => { // a real move (not one the browser makes up after a layout change)
    const at = `${event.screenX},${event.screenY}`;
    if (at !== pointerAt) { pointerAt = at; showControls(); }
  });
  stage.addEventListener("pointerdown", showControls);
  const onFullscreen = () => {
    const on = document.fullscreenElement === stage;
    stage.classList.toggle("wall-fullscreen", on);
    fullButton.setAttribute("aria-pressed", String(on));
    if (on) {
      showControls();
      // the focus was on the toolbar (now behind the full-screen wall): to the exit button, the first stop inside
      if (!stage.contains(document.activeElement)) exitButton.focus({ preventScroll: true });
    } else {
      clearTimeout(controlsTimer);
      stage.classList.remove("wall-controls-shown");
      if (document.activeElement === exitButton) fullButton.focus({ preventScroll: true }); // the button is gone
    }
  };
  document.addEventListener("fullscreenchange", onFullscreen);
  const onKey = (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    if (target && (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName))) return;
    if (!grid.isConnected) return;
    if (event.key === "Escape" && wall.enlarged) {
      const tile = wall.enlarged;
      event.preventDefault();
      wall.toggleEnlarge(tile);
      tile.el.focus();
    } else if ((event.key === "f" || event.key === "F") && !event.repeat) {
      event.preventDefault();
      toggleFullscreen();
    }
  };
  document.addEventListener("keydown", onKey);
  const gridButtons = Object.keys(GRIDS).map((g) => h("button", {
    class: "btn btn-secondary wall-grid-btn", type: "button", dataset: { grid: g }, onclick: () => wall.setGrid(g, true),
  }, g === "1" ? t("wall.single") : g));
  const wall = {
    ctx,
    grid: layout.grid,
    stream: layout.stream || "auto",
    tiles: [],
    enlarged: null,
    dirty: false,
    newest: new Map(), // camera id -> newest plate read or alert shown over its tiles
    streamFor(tile) {
      if (this.stream !== "auto") return this.stream;
      return this.grid === "1" || this.enlarged === tile ? "main" : "sub";
    },
    markDirty() { this.dirty = true; saveButton.classList.add("btn-primary"); },
    setGrid(g, byUser) {
      const keep = this.tiles.map((tile) => tile.cameraId);
      this.tiles.forEach((tile) => { if (tile.player) tile.player.destroy(); if (tile.el) observer.unobserve(tile.el); });
      this.grid = g;
      this.enlarged = null;
      // classList, not className: other classes of the grid stay
      Object.keys(GRIDS).forEach((k) => grid.classList.toggle(`wall-grid-${k.replace("x", "-")}`, k === g));
      grid.classList.remove("wall-has-enlarged");
      grid.dataset.grid = g;
      gridButtons.forEach((b) => b.classList.toggle("active", b.dataset.grid === g));
      this.tiles = Array.from({ length: GRIDS[g] }, (_, i) => makeTile(i, cameras, this));
      clear(grid, ...this.tiles.map((tile) => tile.el));
      this.tiles.forEach((tile, i) => { observer.observe(tile.el); tile.assign(keep[i] || ""); });
      if (byUser) this.markDirty();
    },
    updateStreaming(tile) {
      if (!tile.player) return;
      const on = tile.visible && document.visibilityState === "visible"
        && (!this.enlarged || this.enlarged === tile);
      if (on) tile.player.start();
      else if (!tile.player.stopped || tile.player.denied) tile.player.stop("paused"); // a refused one too: no retry
    },
    toggleEnlarge(tile) {
      this.enlarged = this.enlarged === tile ? null : tile;
      grid.classList.toggle("wall-has-enlarged", Boolean(this.enlarged));
      this.tiles.forEach((other) => {
        other.el.classList.toggle("wall-enlarged", other === this.enlarged);
        if (other.label) other.label();
        const wanted = this.streamFor(other);
        if (other.player && other.player.stream !== wanted) other.assign(other.cameraId);
        this.updateStreaming(other);
      });
    },
  };
  const observer = new IntersectionObserver((entries) => {
    entries.forEach((entry) => {
      const tile = wall.tiles.find((x) => x.el === entry.target);
      if (!tile) return;
      tile.visible = entry.isIntersecting;
      wall.updateStreaming(tile);
      if (tile.visible && wall.onVisible) wall.onVisible(); // its newest plate read now, not at the next poll
    });
  }, { threshold: 0.05 });
  const onVisibility = () => wall.tiles.forEach((tile) => wall.updateStreaming(tile));
  document.addEventListener("visibilitychange", onVisibility);

  saveButton.addEventListener("click", async () => {
    saveButton.disabled = true;
    try {
      const tiles = wall.tiles.map((tile) => tile.cameraId || null);
      await api(ROUTES.liveLayout, { method: "PUT", body: { grid: wall.grid, tiles, stream: wall.stream } });
      wall.dirty = false;
      saveButton.classList.remove("btn-primary");
      toast(t("wall.saved"), "ok", 3000);
    } catch (err) {
      toast(err.message, "error");
    } finally {
      saveButton.disabled = false;
    }
  });

  clear(container,
    h("div", { class: "view-head" }, h("h1", {}, t("wall.title")),
      h("div", { class: "wall-toolbar", role: "toolbar" }, ...gridButtons, saveButton, fullButton)),
    cameras.length ? stage : errorBox({ message: t("wall.no_cameras") }));
  const initial = (layout.tiles || []).slice(0, GRIDS[layout.grid]);
  wall.tiles = initial.map((cameraId) => ({ cameraId }));
  wall.setGrid(layout.grid, false);

  // newest plate read (polled per visible camera) or alert (live feed) over each tile
  const { newest } = wall;
  const offer = (cameraId, event) => {
    const known = newest.get(cameraId);
    if (known && known.at >= event.at) return;
    newest.set(cameraId, event);
    wall.tiles.filter((tile) => tile.cameraId === cameraId).forEach((tile) => showEvent(tile, event));
  };
  const fromAlerts = () => {
    ctx.alerts().forEach((item) => {
      const a = item.alert;
      offer(a.camera_id, { kind: a.kind === "face" || a.kind === "person" ? "face" : "alert",
        text: `⚠ ${a.label || t(`alerts.kind.${a.kind}`)}`, at: a.created_at || 0 });
    });
  };
  const pollPlates = async () => {
    const ids = [...new Set(wall.tiles.filter((tile) => tile.cameraId && tile.visible).map((tile) => tile.cameraId))];
    await Promise.all(ids.map(async (id) => {
      try {
        const data = await api(ROUTES.cameraEvents(id), { query: { kind: "plate", limit: 1 } });
        const e = (data.items || [])[0];
        if (e) offer(id, { kind: "plate", text: `${e.plate_text} ${e.province || ""}`.trim(), at: e.frame_time || 0 });
      } catch { /* a tile without events access shows none */ }
    }));
  };
  fromAlerts();
  let soon = null;
  wall.onVisible = () => { clearTimeout(soon); soon = setTimeout(pollPlates, 200); };
  pollPlates();
  const stopAlerts = ctx.onAlerts(fromAlerts);
  const eventsTimer = setInterval(pollPlates, EVENTS_MS);
  // a camera added or enabled while the wall is open: offered by every tile's chooser (the same array, updated)
  const stopCameras = watchCameras((fresh) => {
    cameras.splice(0, cameras.length, ...fresh);
    wall.tiles.forEach((tile) => tile.refreshOptions());
  });
  window.__wall = wall;
  return () => {
    clearInterval(eventsTimer);
    clearTimeout(soon);
    stopAlerts();
    stopCameras();
    document.removeEventListener("visibilitychange", onVisibility);
    document.removeEventListener("keydown", onKey);
    document.removeEventListener("fullscreenchange", onFullscreen);
    clearTimeout(controlsTimer);
    if (document.fullscreenElement === stage) document.exitFullscreen().catch(() => { /* already left */ });
    observer.disconnect();
    wall.tiles.forEach((tile) => { if (tile.player) tile.player.destroy(); });
    delete window.__wall;
  };
}

export const wallView = {
  id: "wall",
  feature: "wall",
  navKey: "nav.wall",
  render,
};
