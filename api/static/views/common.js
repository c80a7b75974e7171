// Helpers shared by several views: image URLs of events, camera list cache, crop images.

import { ROUTES, api, loadImage } from "../api.js";
import { h } from "../dom.js";

/** URL of an event's crop (prefers the API's own URL field, else the media route for the relative path). */
export function cropUrl(obj) {
  if (!obj) return "";
  return obj.crop_url || (obj.crop_path ? ROUTES.media(obj.crop_path) : "");
}

/** URL of an event's full-frame snapshot. */
export function snapshotUrl(obj) {
  if (!obj) return "";
  return obj.snapshot_url || (obj.snapshot_path ? ROUTES.media(obj.snapshot_path) : "");
}

/** An <img> that loads an authenticated URL. */
export function authImg(url, attrs = {}) {
  const img = h("img", { alt: "", loading: "lazy", ...attrs });
  if (url) loadImage(img, url);
  else img.classList.add("img-missing");
  return img;
}

let cameraCache = null;
let cameraCacheAt = 0;

/** The camera list (cached 30 s). Each camera has at least `id` and `name`. */
export async function listCameras(force = false) {
  if (!force && cameraCache && Date.now() - cameraCacheAt < 30_000) return cameraCache;
  const data = await api(ROUTES.cameras);
  cameraCache = (Array.isArray(data) ? data : data.cameras || data.items || []).map((c) => ({
    ...c, id: c.id || c.camera_id, name: c.name || c.id || c.camera_id,
  }));
  cameraCacheAt = Date.now();
  return cameraCache;
}

/** How often an open page asks for the camera list again (a camera added or enabled meanwhile appears). */
export const CAMERA_REFRESH_MS = 60_000;

/** What of a camera list the page shows (ids, names, enabled): health changes are no change of the list. */
function cameraSignature(cameras) {
  return JSON.stringify(cameras.map((c) => [c.id, c.name, c.enabled !== false]));
}

/**
 * Call `onChange(cameras)` when the camera list changes while a view is open: asked for every CAMERA_REFRESH_MS and
 * at once when the tab is shown again (a hidden tab asks nothing). Returns the function that stops watching.
 */
export function watchCameras(onChange, { everyMs = CAMERA_REFRESH_MS } = {}) {
  let last = cameraSignature(cameraCache || []);
  let busy = false;
  let stopped = false;
  const check = async () => {
    if (busy || stopped || document.visibilityState === "hidden") return;
    busy = true;
    try {
      const fresh = await listCameras(true);
      const signature = cameraSignature(fresh);
      if (!stopped && signature !== last) {
        last = signature;
        onChange(fresh);
      }
    } catch { /* the next check tries again; the page keeps the list it has */ } finally {
      busy = false;
    }
  };
  const timer = setInterval(check, everyMs);
  const onVisibility = () => { if (document.visibilityState === "visible") check(); };
  document.addEventListener("visibilitychange", onVisibility);
  return () => {
    stopped = true;
    clearInterval(timer);
    document.removeEventListener("visibilitychange", onVisibility);
  };
}

/** Give a camera <select> (from `cameraSelect`) the options of `cameras`, keeping what is selected (a chosen camera
 * no longer listed stays chosen, named by its id) and any leading "all cameras" option. */
export function refreshCameraSelect(select, cameras) {
  const chosen = [...select.selectedOptions].map((o) => o.value).filter(Boolean);
  const lead = select.options.length && select.options[0].value === "" ? [select.options[0]] : [];
  const gone = chosen.filter((id) => !cameras.some((c) => c.id === id));
  select.replaceChildren(...lead,
    ...cameras.map((c) => h("option", { value: c.id, selected: chosen.includes(c.id) }, c.name)),
    ...gone.map((id) => h("option", { value: id, selected: true }, id)));
  if (!chosen.length && lead.length) select.value = "";
}

/** Display name of a camera id (falls back to the id). */
export function cameraName(id) {
  const cam = (cameraCache || []).find((c) => c.id === id);
  return cam ? cam.name : id;
}

/** Items of a list answer that may be a bare array or {items|results|hits: [...]}. */
export function itemsOf(data, ...names) {
  if (Array.isArray(data)) return data;
  for (const name of [...names, "items", "results", "hits", "events"]) {
    if (data && Array.isArray(data[name])) return data[name];
  }
  return [];
}

/** <select> of cameras; `multiple` for filters. */
export function cameraSelect(cameras, { name = "camera", multiple = false, value = "", allLabel } = {}) {
  const select = h("select", { name, multiple, size: multiple ? Math.min(6, cameras.length || 1) : undefined });
  if (!multiple && allLabel) select.append(h("option", { value: "" }, allLabel));
  cameras.forEach((c) => select.append(h("option", { value: c.id, selected: c.id === value }, c.name)));
  return select;
}

/** Event fields of a plate search hit (a hit may wrap the event or be flat with `plate`). */
export function plateEventOf(hit) {
  const e = { ...(hit.event || {}), ...hit };
  e.plate_text = e.plate_text || hit.plate || "";
  return e;
}
