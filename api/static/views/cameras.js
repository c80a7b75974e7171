// Camera grid (health + latest snapshot, refreshed live) and one camera's page with its recent plate and face events.

import { ROUTES, api, loadImage } from "../api.js";
import { clear, errorBox, fmtAgo, fmtTime, h, num, pct } from "../dom.js";
import { t } from "../i18n.js";
import { authImg, cropUrl, listCameras } from "./common.js";
import { playButton } from "./playback.js";

const REFRESH_MS = 3000;

/**
 * Health of a camera as the capture workers report it (pipeline.ingest.health): a report that went stale means
 * the worker is gone, so the camera is shown offline; "connecting" is shown as reconnecting, "stopped" as offline.
 */
export function health(cam) {
  const hl = cam.health || {};
  let status = String(hl.status || "unknown").toLowerCase();
  if (status === "connecting") status = "reconnecting";
  if (status === "stopped" || (cam.health && hl.stale)) status = "offline";
  return {
    status: ["online", "reconnecting", "offline"].includes(status) ? status : "unknown",
    fps: hl.analysed_fps ?? null,
    inputFps: hl.input_fps ?? null,
    drops: hl.dropped_frames ?? null,
    reconnects: hl.reconnects ?? null,
    lastFrame: hl.last_frame_time || null,
    lastError: hl.last_error || "",
    recording: hl.recording || "",
    recordingError: hl.recording_error || "",
  };
}

/**
 * Classes of the capture's last error (pipeline.ingest.capture: ffmpeg's words, redacted), first match wins; the
 * class names are the live hub's reason codes, so one set of `cameras.error.*` strings serves both pages.
 */
const ERROR_CLASSES = [
  ["unauthorized", /\b401\b|unauthori[sz]ed|authorization failed/i],
  ["forbidden", /\b403\b|forbidden/i],
  ["not_found", /\b404\b|not found/i],
  ["transport", /\b461\b|unsupported transport/i],
  ["refused", /connection refused/i],
  ["timeout", /timed out/i], // not "timeout": ffmpeg's URLs carry "?timeout=…"
  ["unreachable", /no route to host|network is unreachable/i],
  ["no_video", /no video|no frame|stalled/i],
  ["connect", /connection to \S+ failed|failed to connect/i],
];

/** The class of a raw capture error (see ERROR_CLASSES), "other" when none matches, "" for no error. */
export function errorClass(text) {
  if (!text) return "";
  const hit = ERROR_CLASSES.find(([, pattern]) => pattern.test(text));
  return hit ? hit[0] : "other";
}

/**
 * The last error as a translated summary; ffmpeg's raw text only in a details element (and the title). `open`
 * keeps the details unfolded across the page's refreshes once the user opened them.
 */
function lastErrorBox(text, open = false) {
  const summary = t(`cameras.error.${errorClass(text)}`);
  return h("div", { class: "error-box", dataset: { stat: "last-error", errorClass: errorClass(text) }, title: text },
    h("p", {}, `${t("cameras.last_error")}: ${summary}`),
    h("details", { open }, h("summary", {}, t("cameras.error.details")), h("code", { class: "raw-error" }, text)));
}

function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, dataset: { status } }, t(`cameras.status.${status}`));
}

/** A 16:9 box with the camera's latest snapshot, or a "no picture yet" placeholder. */
function snapshotBox(cam, id) {
  const box = h("div", { class: "snapshot-box" }, h("img", { class: "camera-snapshot", alt: cam.name, id }),
    h("span", { class: "snapshot-placeholder" }, t("cameras.no_snapshot")));
  showSnapshot(box, cam);
  return box;
}

function showSnapshot(box, cam) {
  const img = box.querySelector("img");
  const placeholder = box.querySelector(".snapshot-placeholder");
  img.hidden = !cam.snapshot_url;
  placeholder.hidden = Boolean(cam.snapshot_url);
  if (cam.snapshot_url) loadImage(img, cam.snapshot_url, { cacheable: false });
}

/** Which server (and worker) holds the camera in a multi-host deployment; null on one machine. */
function holder(cam) {
  if (cam.host && cam.worker && cam.worker !== cam.host) return `${cam.host} · ${cam.worker}`;
  return cam.host || cam.worker || null;
}

function cameraBody(cam, hl) {
  const where = holder(cam);
  return h("div", { class: "camera-body" },
    h("div", { class: "row" }, h("span", { class: "camera-name" }, cam.name), statusBadge(hl.status)),
    h("div", { class: "camera-stats" },
      h("span", { dataset: { stat: "fps" } }, `${t("cameras.fps")}: ${num(hl.fps)}`),
      h("span", { dataset: { stat: "drops" } }, `${t("cameras.drops")}: ${hl.drops ?? "–"}`),
      h("span", {}, `${t("cameras.last_frame")}: ${fmtAgo(hl.lastFrame)}`),
      where ? h("span", { dataset: { stat: "host" } }, `${t("cameras.host")}: ${where}`) : null,
      recordingFailed(hl)));
}

/**
 * Classes of the capture's recording error by its leading phrase (pipeline.recording.recorder: os_error_reason and
 * recording_write_error give "disk full (No space left on device)" and the like, in English), first match wins.
 */
const RECORDING_ERRORS = [
  ["disk full", "disk_full"],
  ["disk quota exceeded", "quota"],
  ["file size limit reached", "file_too_large"],
  ["read-only file system", "read_only"],
  ["permission denied", "permission"],
  ["recordings folder gone", "folder_gone"],
  ["disk i/o error", "io_error"],
  ["cannot create a segment file", "segment_create"],
];

/** The class of a raw recording error (see RECORDING_ERRORS), "other" when none matches, "" for no error. */
export function recordingErrorClass(text) {
  if (!text) return "";
  const lower = String(text).trim().toLowerCase();
  const hit = RECORDING_ERRORS.find(([phrase]) => lower.startsWith(phrase));
  return hit ? hit[1] : "other";
}

/** The recording error in the page's language; an unknown one as the capture wrote it. */
export function recordingErrorText(text) {
  const cls = recordingErrorClass(text);
  return cls && cls !== "other" ? t(`cameras.recording_error.${cls}`) : text || "";
}

/** A warning that the camera is analysed but not recorded (disk full, folder gone), with the reason; else null. */
function recordingFailed(hl) {
  if (hl.recording !== "failed") return null;
  const reason = recordingErrorText(hl.recordingError);
  return h("span", { class: "badge status-offline", title: hl.recordingError,
    dataset: { stat: "recording", errorClass: recordingErrorClass(hl.recordingError) } },
  reason ? `${t("cameras.recording_failed")}: ${reason}` : t("cameras.recording_failed"));
}

function recordingLine(hl) {
  if (!hl.recording) return null;
  const state = ["on", "off", "failed"].includes(hl.recording) ? t(`cameras.recording_state.${hl.recording}`)
    : hl.recording;
  const line = h("p", { dataset: { stat: "recording" } }, `${t("cameras.recording")}: ${state}`);
  return hl.recording === "failed"
    ? h("div", { class: "error-box" }, line, hl.recordingError ? h("p", { title: hl.recordingError, dataset:
      { stat: "recording-error", errorClass: recordingErrorClass(hl.recordingError) } },
    recordingErrorText(hl.recordingError)) : null) : line;
}

/** Create or update (in place, so the wall does not flicker) the card of one camera. */
function paintCard(card, cam) {
  const hl = health(cam);
  let el = card;
  if (!el) {
    el = h("a", { href: `#/cameras/${encodeURIComponent(cam.id)}`, dataset: { cameraId: cam.id } },
      snapshotBox(cam), h("div", { class: "camera-body" }));
  }
  el.className = `camera-card ${hl.status}`;
  el.dataset.status = hl.status;
  el.querySelector(".camera-body").replaceWith(cameraBody(cam, hl));
  if (card) showSnapshot(el.querySelector(".snapshot-box"), cam);
  return el;
}

async function renderGrid(container) {
  const summary = h("span", { class: "muted", id: "camera-summary" });
  const grid = h("div", { class: "camera-grid", id: "camera-grid" });
  const problem = h("div");
  const cards = new Map();
  clear(container, h("div", { class: "view-head" }, h("h1", {}, t("cameras.title")), summary), problem, grid);
  const refresh = async () => {
    try {
      const cameras = await listCameras(true);
      clear(problem);
      const online = cameras.filter((c) => health(c).status === "online").length;
      summary.textContent = t("cameras.summary", { online, total: cameras.length });
      if (!cameras.length) {
        cards.clear();
        clear(grid, h("div", { class: "empty" }, t("common.none")));
        return;
      }
      grid.querySelector(".empty")?.remove();
      const ids = new Set(cameras.map((c) => c.id));
      for (const [id, el] of cards) if (!ids.has(id)) { el.remove(); cards.delete(id); }
      cameras.forEach((cam) => {
        const el = paintCard(cards.get(cam.id), cam);
        cards.set(cam.id, el);
        grid.append(el);
      });
    } catch (err) {
      clear(problem, errorBox(err));
    }
  };
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => clearInterval(timer);
}

const EVENTS_PAGE = 20;
const VEHICLES = ["car", "motorcycle", "bus", "truck", "vehicle"];

/** One page of a camera's recent events (newest first) from GET /api/cameras/{id}/events. */
async function recentEvents(cameraId, kind, before) {
  return api(ROUTES.cameraEvents(cameraId), { query: { kind, limit: EVENTS_PAGE, before } });
}

function plateRow(e) {
  return h("tr", { class: "clickable", dataset: { eventId: e.event_id, plate: e.plate_text },
    onclick: () => { location.hash = `#/plates?q=${encodeURIComponent(e.plate_text)}`; } },
  h("td", {}, authImg(cropUrl(e), { class: "crop-thumb", alt: e.plate_text })),
  h("td", { class: "plate-text" }, e.plate_text || "?"),
  h("td", {}, e.province || "–"),
  h("td", {}, VEHICLES.includes(e.vehicle_class) ? t(`cameras.vehicle.${e.vehicle_class}`) : e.vehicle_class || "–"),
  h("td", {}, fmtTime(e.frame_time)), h("td", {}, pct(e.confidence)), h("td", {}, playButton(e.camera_id, e.frame_time)));
}

function plateTable() {
  return h("div", { class: "table-wrap" }, h("table", { id: "camera-plates" },
    h("thead", {}, h("tr", {}, [t("plates.col.crop"), t("plates.col.plate"), t("common.province"),
      t("cameras.col.vehicle"), t("common.time"), t("common.confidence"), ""].map((c) => h("th", {}, c)))),
    h("tbody", {})));
}

function faceCard(e) {
  return h("div", { class: "face-card", dataset: { eventId: e.event_id } },
    authImg(cropUrl(e), { class: "face-thumb" }),
    h("div", {}, h("div", {}, fmtTime(e.frame_time)),
      h("div", { class: "muted" }, `${t("cameras.face_quality")} ${pct(e.quality)}`),
      playButton(e.camera_id, e.frame_time)));
}

/**
 * A list of a camera's recent events of one kind, with "older events" paging (the server scans a bounded number of
 * stored events per request and says where to continue).
 */
function eventList(cameraId, kind) {
  const box = h("div", { class: "camera-events", dataset: { kind } }, h("p", { class: "muted" }, t("common.loading")));
  let before = null;
  const load = async (more) => {
    const data = await recentEvents(cameraId, kind, more ? before : undefined);
    before = data.next_before;
    const items = data.items || [];
    let holder = box.querySelector(kind === "plate" ? "#camera-plates tbody" : "#camera-faces");
    if (!more || !holder) {
      const body = kind === "plate" ? plateTable() : h("div", { class: "face-results", id: "camera-faces" });
      clear(box, body);
      holder = kind === "plate" ? body.querySelector("tbody") : body;
    }
    holder.append(...items.map((e) => (kind === "plate" ? plateRow(e) : faceCard(e))));
    box.querySelector(".events-more")?.remove();
    box.querySelector(".events-note")?.remove();
    if (!holder.children.length && !before) box.prepend(h("div", { class: "empty events-note" }, t("common.none")));
    else if (data.capped) {
      box.append(h("p", { class: "muted events-note" }, t("cameras.scan_capped", { n: data.scan_cap })));
    }
    if (before) {
      box.append(h("button", { type: "button", class: "btn btn-secondary btn-small events-more",
        onclick: async (event) => {
          event.target.disabled = true;
          try { await load(true); } catch (err) { box.append(errorBox(err)); event.target.disabled = false; }
        } }, t("cameras.older")));
    }
  };
  /** Reload the newest page, unless the user has paged back (then the list is left as it is). */
  const refresh = async () => {
    const paged = box.querySelectorAll(kind === "plate" ? "#camera-plates tbody tr" : "#camera-faces .face-card").length
      > EVENTS_PAGE;
    if (paged) return;
    try { await load(false); } catch (err) { clear(box, errorBox(err)); }
  };
  return { box, refresh };
}

async function renderDetail(container, ctx, cameraId) {
  const cameras = await listCameras(true);
  const cam = cameras.find((c) => c.id === cameraId);
  if (!cam) {
    clear(container, errorBox({ message: t("err.404") }),
      h("a", { class: "btn btn-secondary", href: "#/cameras" }, t("common.back")));
    return null;
  }
  const img = snapshotBox(cam, "camera-detail-snapshot");
  const stats = h("div", { class: "panel", id: "camera-health" });
  const plates = eventList(cameraId, "plate");
  const faces = ctx.can("faces") ? eventList(cameraId, "face") : null;
  const paintHealth = (c) => {
    const hl = health(c);
    const open = Boolean(stats.querySelector('[data-stat="last-error"] details')?.open);
    clear(stats, h("div", { class: "row" }, h("h2", {}, c.name), statusBadge(hl.status)),
      h("p", {}, `${t("cameras.fps")}: ${num(hl.fps)} (${t("cameras.input_fps")}: ${num(hl.inputFps)})`),
      h("p", {}, `${t("cameras.drops")}: ${hl.drops ?? "–"}`),
      h("p", {}, `${t("cameras.reconnects")}: ${hl.reconnects ?? "–"}`),
      h("p", {}, `${t("cameras.last_frame")}: ${fmtTime(hl.lastFrame)}`),
      recordingLine(hl),
      hl.lastError ? lastErrorBox(hl.lastError, open) : null);
  };
  clear(container,
    h("div", { class: "view-head" }, h("a", { class: "btn btn-secondary", href: "#/cameras" }, `← ${t("common.back")}`),
      h("h1", {}, cam.name)),
    h("div", { class: "camera-detail" }, h("div", {}, img), stats),
    h("div", { class: "panel", id: "camera-recent-plates" }, h("h2", {}, t("cameras.recent_plates")), plates.box),
    faces ? h("div", { class: "panel", id: "camera-recent-faces" }, h("h2", {}, t("cameras.recent_faces")), faces.box)
      : null);
  paintHealth(cam);
  const loadEvents = () => Promise.all([plates.refresh(), faces?.refresh()]);
  loadEvents();
  const timer = setInterval(async () => {
    try {
      const fresh = (await listCameras(true)).find((c) => c.id === cameraId);
      if (fresh) { paintHealth(fresh); showSnapshot(img, fresh); }
    } catch { /* shown on next full load */ }
  }, REFRESH_MS);
  const eventsTimer = setInterval(loadEvents, 15_000);
  return () => { clearInterval(timer); clearInterval(eventsTimer); };
}

export const camerasView = {
  id: "cameras",
  feature: "cameras",
  navKey: "nav.cameras",
  render(container, ctx, { args }) {
    return args.length ? renderDetail(container, ctx, args[0]) : renderGrid(container);
  },
};
