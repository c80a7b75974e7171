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
