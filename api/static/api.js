// Thin client of the control-room API: bearer token, JSON, uploads, images and errors in plain words.
// Every route the page uses is named in ROUTES, so the contract with /openapi.json lives in one place.

import { hasKey, t } from "./i18n.js";

export const ROUTES = {
  login: "/api/auth/login",
  me: "/api/auth/me",
  logout: "/api/auth/logout",
  password: "/api/auth/password",
  audit: "/api/audit",
  alerts: "/api/alerts",
  alertAck: (id) => `/api/alerts/${enc(id)}/ack`,
  alertAcks: "/api/alerts/acks",
  alertsWs: "/api/alerts/ws",
  liveWs: (id) => `/api/live/${enc(id)}/ws`,
  liveInfo: (id) => `/api/live/${enc(id)}/info`,
  liveLayout: "/api/live/layout",
  cameras: "/api/cameras",
  camera: (id) => `/api/cameras/${enc(id)}`,
  cameraSnapshot: (id) => `/api/cameras/${enc(id)}/snapshot`,
  plateSearch: "/api/plates/search",
  plateHistory: (plate) => `/api/plates/${enc(plate)}/history`,
  faceSearch: "/api/faces/search",
  media: (path) => `/api/media/${path.split("/").map(enc).join("/")}`,
  watchlists: "/api/watchlists",
  watchlist: (id) => `/api/watchlists/${enc(id)}`,
  watchlistEntries: (id) => `/api/watchlists/${enc(id)}/entries`,
  watchlistPlates: (id) => `/api/watchlists/${enc(id)}/plates`,
  watchlistPersons: (id) => `/api/watchlists/${enc(id)}/persons`,
  watchlistEntry: (id, eid) => `/api/watchlists/${enc(id)}/entries/${enc(eid)}`,
  persons: "/api/persons",
  person: (id) => `/api/persons/${enc(id)}`,
  personPhotos: (id) => `/api/persons/${enc(id)}/photos`,
  exports: "/api/exports",
  export: (id) => `/api/exports/${enc(id)}`,
  exportDownload: (id) => `/api/exports/${enc(id)}/download`,
  exportManifest: (id) => `/api/exports/${enc(id)}/manifest`,
  cameraEvents: (id) => `/api/cameras/${enc(id)}/events`,
  recordingTimeline: (id) => `/api/recordings/${enc(id)}/timeline`,
  recordingStream: (id) => `/api/recordings/${enc(id)}/stream`,
  cases: "/api/cases",
  case: (id) => `/api/cases/${enc(id)}`,
  caseItems: (id) => `/api/cases/${enc(id)}/items`,
  casePackage: (id) => `/api/cases/${enc(id)}/package`,
  users: "/api/users",
  user: (name) => `/api/users/${enc(name)}`,
};

function enc(value) {
  return encodeURIComponent(String(value));
}

const TOKEN_KEY = "cctv.token";
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let onUnauthorized = () => {};

/** The bearer token of the signed-in user ("" when signed out). */
export function getToken() {
  return token;
}

/** Remember (or forget, with "") the bearer token for this browser tab. */
export function setToken(value) {
  token = value || "";
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Called once when any request answers 401 (the app goes back to the sign-in screen). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/**
 * An API failure with a message a person understands in the page's language (`message`) and the raw facts for logs;
 * `retryAfter` is the Retry-After header in seconds (429, 503) so that a page can say how long to wait in its own
 * words, else null; `code` the error body's machine code (api/schemas/errors.py ERROR_CODES) or ""; `serverText`
 * the server's own (English) words, shown in small print under the message.
 */
export class ApiError extends Error {
  constructor(status, message, detail, retryAfter = null, { code = "", serverText = "" } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
    this.code = code;
    this.serverText = serverText;
  }
}

/** Retry-After in whole seconds (the delta form; an HTTP date is turned into seconds from now), or null. */
export function retryAfterSeconds(value) {
  if (!value) return null;
  const seconds = /^\d+$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.max(0, Math.ceil(seconds)) : null;
}

/** Turn FastAPI's `detail` (a string, or a list of validation errors) into one readable line. */
export function describeDetail(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      if (typeof d === "string") return d;
      const loc = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body" && p !== "query").join(" › ") : "";
      return loc ? `${loc}: ${d.msg}` : d.msg || JSON.stringify(d);
    }).join("; ");
  }
  if (typeof detail === "object") return detail.message || detail.msg || JSON.stringify(detail);
  return String(detail);
}

/** The names of the fields a 422/400 body names: its `errors[].field`, else FastAPI's `detail[].loc`. */
export function invalidFields(body, detail) {
  const skip = new Set(["body", "query", "path", "form", "header"]);
  const fromErrors = Array.isArray(body && body.errors) ? body.errors.map((e) => e && e.field) : [];
  const fromLoc = Array.isArray(detail)
    ? detail.map((d) => (d && Array.isArray(d.loc) ? d.loc.filter((p) => !skip.has(p)).join(".") : "")) : [];
  return [...new Set((fromErrors.length ? fromErrors : fromLoc).filter((f) => typeof f === "string" && f))];
}

/** "<field label> is not valid" in the page's language (the label of `field.<name>`, else the name itself). */
function invalidMessage(fields) {
  if (!fields.length) return t("err.422");
  const labels = fields.map((name) => (hasKey(`field.${name}`) ? t(`field.${name}`) : name));
  return t("err.field_invalid", { field: labels.join(", ") });
}

/**
 * The person-readable message, in the page's language, for an HTTP status and the error body (`body`: its machine
 * `code`, the fields of a 422); the server's own words are left to `serverTextFor` (small print).
 */
export function messageFor(status, detail, body = null, retryAfter = null) {
  const code = body && typeof body.code === "string" ? body.code : "";
  if (status === 0) return t("err.network");
  if (code && hasKey(`err.code.${code}`)) {
    return t(`err.code.${code}`, { by: (body.ack && body.ack.by) || "?" });
  }
  if (status === 422 || status === 400) return invalidMessage(invalidFields(body, detail));
  if (status === 429 && retryAfter != null) return t("err.429_wait", { s: retryAfter });
  if ([401, 403, 404, 409, 413, 415, 429, 503].includes(status)) return t(`err.${status}`);
  if (status >= 500) return t("err.5xx", { status });
  return t("err.generic", { detail: describeDetail(detail) || status });
}

/** The server's own words for the small print under a translated message ("" for 401 and for 5xx failures). */
export function serverTextFor(status, detail) {
  if (status === 401 || (status >= 500 && status !== 503)) return "";
  return describeDetail(detail);
}

/**
 * Call the API. `body` may be a plain object (sent as JSON) or FormData (multipart).
 * Returns parsed JSON (or null for 204); throws ApiError with a readable message.
 */
export async function api(path, { method = "GET", body, query, signal, raw = false } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    Object.entries(query).forEach(([key, value]) => {
      if (value === undefined || value === null || value === "") return;
      if (Array.isArray(value)) value.forEach((v) => params.append(key, v));
      else params.append(key, value);
    });
    const qs = params.toString();
    if (qs) url += (url.includes("?") ? "&" : "?") + qs;
  }
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload = body;
  if (body !== undefined && !(body instanceof FormData) && !(body instanceof URLSearchParams)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, t("err.network"), String(err));
  }
  if (!response.ok) {
    let detail = null;
    let data = null;
    try {
      data = await response.json();
      detail = data.detail ?? data.error ?? data.message ?? data;
    } catch {
      detail = response.statusText;
    }
    if (response.status === 401 && token) onUnauthorized();
    const body = data && typeof data === "object" && !Array.isArray(data) ? data : null;
    const retryAfter = retryAfterSeconds(response.headers.get("Retry-After"));
    throw new ApiError(response.status, messageFor(response.status, detail, body, retryAfter), detail, retryAfter,
      { code: (body && typeof body.code === "string" && body.code) || "",
        serverText: serverTextFor(response.status, detail) });
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

const imageCache = new Map();

/**
 * Show an authenticated image (crop, snapshot) in `img`: fetched with the bearer token and shown from a blob URL.
 * `cacheable` keeps crops (immutable) in memory; snapshots pass false and are refreshed.
 */
export async function loadImage(img, url, { cacheable = true } = {}) {
  if (!url) return;
  img.dataset.src = url;
  try {
    let objectUrl = cacheable ? imageCache.get(url) : undefined;
    if (!objectUrl) {
      const response = await api(url, { raw: true });
      const blob = await response.blob();
      objectUrl = URL.createObjectURL(blob);
      if (cacheable) {
        imageCache.set(url, objectUrl);
        if (imageCache.size > 500) {
          const [oldKey, oldUrl] = imageCache.entries().next().value;
          imageCache.delete(oldKey);
          URL.revokeObjectURL(oldUrl);
        }
      }
    }
    if (img.dataset.src !== url) return;
    const previous = img.dataset.blob;
    img.src = objectUrl;
    img.classList.remove("img-missing");
    if (!cacheable) {
      img.dataset.blob = objectUrl;
      if (previous && previous !== objectUrl) URL.revokeObjectURL(previous);
    }
  } catch (err) {
    img.classList.add("img-missing");
    img.alt = err.message;
    img.title = err.message;
  }
}

/** Download an authenticated file (evidence clip) and save it under `filename`. */
export async function downloadFile(url, filename) {
  const response = await api(url, { raw: true });
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 10_000);
  return blob;
}
