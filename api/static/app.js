// Control-room page: sign-in, role-based navigation, hash router, language switch and the global alert feed.

import { ROUTES, api, setToken, getToken, setUnauthorizedHandler } from "./api.js";
import { applyI18n, lang, onLangChange, setLang, t } from "./i18n.js";
import { clear, errorBox, h, toast, zoneLabel } from "./dom.js";
import { AlertFeed, beep, unlockAudio } from "./live.js";
import { alertsView } from "./views/alerts.js";
import { camerasView } from "./views/cameras.js";
import { platesView } from "./views/plates.js";
import { facesView } from "./views/faces.js";
import { evidenceView } from "./views/evidence.js";
import { playbackView } from "./views/playback.js";
import { watchlistsView } from "./views/watchlists.js";
import { usersView } from "./views/users.js";
import { wallView } from "./views/wall.js";

/** What each role may use (admin includes investigator, which includes operator). */
const FEATURES = {
  operator: ["alerts", "cameras", "plates", "playback"],
  investigator: ["alerts", "cameras", "plates", "faces", "plate_history", "evidence", "playback"],
  admin: ["alerts", "cameras", "plates", "faces", "plate_history", "evidence", "watchlists", "users", "playback"],
};

const VIEWS = [alertsView, camerasView, playbackView, platesView, facesView, evidenceView, watchlistsView, usersView];

// the video wall (views/wall.js): every role, right after the camera grid
Object.values(FEATURES).forEach((features) => features.push("wall"));
VIEWS.splice(VIEWS.indexOf(camerasView) + 1, 0, wallView);

const state = {
  user: null,
  cleanup: null,
  alerts: new Map(),
  alertListeners: new Set(),
  soundOn: localStorage.getItem("cctv.sound") !== "off",
  feed: null,
  ackTimer: null,
};

/** How often acknowledgements made elsewhere (another operator's screen) are fetched. */
const ACK_REFRESH_MS = 15_000;

/** Context handed to every view. */
const ctx = {
  get user() { return state.user; },
  get role() { return state.user ? state.user.role : null; },
  can(feature) { return Boolean(state.user && (FEATURES[state.user.role] || []).includes(feature)); },
  go(hash) { location.hash = hash; },
  alerts() {
    return [...state.alerts.values()].sort((a, b) => (b.alert.created_at || 0) - (a.alert.created_at || 0));
  },
  onAlerts(fn) { state.alertListeners.add(fn); return () => state.alertListeners.delete(fn); },
  addAlerts(items) { items.forEach((item) => mergeAlert(item)); notifyAlerts(); },
  updateAlert(alertId, patch) {
    const item = state.alerts.get(alertId);
    if (item) Object.assign(item, patch);
    notifyAlerts();
  },
  get soundOn() { return state.soundOn; },
  set soundOn(value) { state.soundOn = value; localStorage.setItem("cctv.sound", value ? "on" : "off"); },
};
window.__cctv = ctx;

/** Watchlist names learned from the REST backlog, for live alerts (the feed carries only the watchlist id). */
const watchlistNames = new Map();

function mergeAlert(item) {
  const existing = state.alerts.get(item.alert.alert_id);
  if (item.watchlist_name) watchlistNames.set(item.alert.watchlist_id, item.watchlist_name);
  const name = item.watchlist_name || (existing && existing.watchlist_name) || watchlistNames.get(item.alert.watchlist_id);
  const merged = existing ? { ...existing, ...item, ack: item.ack || existing.ack } : { ...item };
  if (name) merged.watchlist_name = name;
  state.alerts.set(item.alert.alert_id, merged);
  if (state.alerts.size > 1000) {
    const oldest = ctx.alerts().slice(1000);
    oldest.forEach((old) => state.alerts.delete(old.alert.alert_id));
  }
}

function notifyAlerts() {
  updateNavCount();
  state.alertListeners.forEach((fn) => {
    try { fn(); } catch (err) { console.error(err); }
  });
}

function updateNavCount() {
  const link = document.querySelector('#nav a[data-view="alerts"] .count');
  if (!link) return;
  const open = [...state.alerts.values()].filter((item) => !item.ack).length;
  link.textContent = open ? String(open) : "";
  link.hidden = !open;
}

// ---- connection indicator ----
function setConn(status, info = {}) {
  const el = document.getElementById("conn");
  el.hidden = false;
  el.className = `conn conn-${status}${status === "limited" ? " conn-offline" : ""}`; // limited: red as offline
  el.dataset.state = status;
  el.textContent = status === "live" ? t("conn.live")
    : status === "waiting" ? t("conn.reconnecting", { s: info.seconds })
      : status === "limited" ? t("conn.limited", { s: info.seconds })
        : status === "connecting" ? t("conn.connecting") : t("conn.offline");
  // too many live alert streams open (server close code 4429): why, and what to do, as the title and once as a toast
  const why = status === "limited" ? limitText(info) : "";
  el.title = why;
  if (why && info.first) toast(why, "error", 15000);
}

function limitText(info) {
  if (info.scope === "user") {
    return info.limit ? t("conn.limited_user", { n: info.limit }) : t("conn.limited_user_unknown");
  }
  return t("conn.limited_total");
}

/** The latest alerts from the REST backlog (with acknowledgements); returns the newest stream id seen. */
async function loadBacklog() {
  const data = await api(ROUTES.alerts, { query: { limit: 300 } });
  const items = (Array.isArray(data) ? data : []).map((row) => ({
    id: row.id, alert: row.alert, ack: row.ack || null, watchlist_name: row.watchlist_name || null,
  }));
  ctx.addAlerts(items);
  return items.length ? items[items.length - 1].id : "";
}

/** Most alert ids one acknowledgement lookup takes (api.schemas.alerts.ALERT_IDS_MAX). */
const ALERT_IDS_MAX = 1000;

/**
 * Acknowledgements (who, when, note, follow-up notes) and watchlist names of every alert shown, however old, asked
 * for by id: the live feed only carries new alerts, so an acknowledgement made on another screen reaches this wall
 * this way. New alerts are left to the live feed (so they still flash and beep).
 */
async function refreshAcks() {
  const ids = [...state.alerts.keys()];
  let changed = false;
  for (let i = 0; i < ids.length; i += ALERT_IDS_MAX) {
    const data = await api(ROUTES.alertAcks, { method: "POST", body: { alert_ids: ids.slice(i, i + ALERT_IDS_MAX) } });
    (Array.isArray(data) ? data : []).forEach((row) => { changed = refreshAck(row) || changed; });
  }
  if (changed) notifyAlerts();
}

/** Take a shown alert's acknowledgement and watchlist name from the server's ``row``; whether anything changed. */
function refreshAck(row) {
  const known = state.alerts.get(row.alert.alert_id);
  if (!known) return false;
  let changed = false;
  const notes = (ack) => (ack && Array.isArray(ack.notes) ? ack.notes.length : 0);
  if (row.ack && (!known.ack || notes(row.ack) > notes(known.ack))) { known.ack = row.ack; changed = true; }
  if (row.watchlist_name && !known.watchlist_name) {
    known.watchlist_name = row.watchlist_name;
    watchlistNames.set(row.alert.watchlist_id, row.watchlist_name);
    changed = true;
  }
  return changed;
}

async function startFeed() {
  if (state.feed) state.feed.stop();
  clearInterval(state.ackTimer);
  state.ackTimer = setInterval(() => { refreshAcks().catch(() => { /* the feed shows the connection state */ }); },
    ACK_REFRESH_MS);
  let newest = "";
  try {
    newest = await loadBacklog();
  } catch (err) {
    toast(err.message, "error");
  }
  state.feed = new AlertFeed({
    onState: setConn,
    onAlert: (item, { replayed }) => {
      const isNew = !state.alerts.has(item.alert.alert_id);
      mergeAlert(item);
      notifyAlerts();
      if (isNew && !replayed && !item.ack) announce(item);
    },
    onReplayDone: (count) => { if (count) toast(t("alerts.replayed", { n: count }), "info"); },
    onUnauthorized: () => { setToken(""); showLogin(t("err.401")); },
  });
  // Replay from the newest alert already shown; with an empty backlog from the stream's start ("0-0"), so an
  // alert raised during a reconnect is never lost.
  state.feed.markSeen(newest || "0-0");
  state.feed.start();
  window.__cctvFeed = state.feed;
}

function announce(item) {
  const sev = item.alert.severity;
  if ((sev === "high" || sev === "critical") && state.soundOn) beep(sev);
  document.dispatchEvent(new CustomEvent("cctv-alert", { detail: item }));
}

// ---- navigation and routing ----
function renderNav() {
  const nav = document.getElementById("nav");
  clear(nav, VIEWS.filter((v) => ctx.can(v.feature)).map((v) =>
    h("a", { href: `#/${v.id}`, dataset: { view: v.id } }, h("span", { class: "label" }, t(v.navKey)),
      h("span", { class: "count", hidden: true }))));
  nav.hidden = false;
  updateNavCount();
  markActiveNav();
}

function markActiveNav() {
  const current = parseHash().view;
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === current));
}

function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [view, ...rest] = path.split("/").map(decodeURIComponent);
  return { view: view || "alerts", args: rest.filter(Boolean), params: new URLSearchParams(query) };
}

async function route() {
  if (!state.user) return;
  const { view: id, args, params } = parseHash();
  const view = VIEWS.find((v) => v.id === id && ctx.can(v.feature)) || VIEWS.find((v) => ctx.can(v.feature));
  if (view.id !== id) {
    location.replace(`#/${view.id}`);
    return;
  }
  markActiveNav();
  if (state.cleanup) {
    try { state.cleanup(); } catch (err) { console.error(err); }
    state.cleanup = null;
  }
  const container = document.getElementById("view");
  container.dataset.view = view.id;
  clear(container, h("p", { class: "muted" }, t("common.loading")));
  try {
    state.cleanup = (await view.render(container, ctx, { args, params })) || null;
  } catch (err) {
    console.error(err);
    clear(container, errorBox({ message: t("err.page", { detail: err.message || err }) }));
  }
}

// ---- session ----
async function showLoggedIn(user) {
  if (user.must_change_password) {
    showPasswordChange();
    return;
  }
  state.user = user;
  document.getElementById("login-view").hidden = true;
  document.getElementById("password-view").hidden = true;
  document.getElementById("view").hidden = false;
  document.getElementById("logout").hidden = false;
  const who = document.getElementById("who");
  who.hidden = false;
  who.dataset.role = user.role;
  who.textContent = `${user.display_name || user.username} · ${t(`role.${user.role}`)}`;
  showZone();
  document.body.dataset.role = user.role;
  renderNav();
  await startFeed();
  await route();
}

/** The header says which time zone every time on the page is in (this computer's clock). */
function showZone() {
  const tz = document.getElementById("tz");
  tz.textContent = t("common.times_in", { zone: zoneLabel() });
  tz.hidden = false;
}

function showLogin(message) {
  state.user = null;
  if (state.feed) state.feed.stop();
  state.feed = null;
  clearInterval(state.ackTimer);
  state.ackTimer = null;
  if (state.cleanup) { try { state.cleanup(); } catch { /* view already gone */ } }
  state.cleanup = null;
  state.alerts.clear();
  delete document.body.dataset.role;
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  document.getElementById("tz").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("conn").hidden = true;
  document.getElementById("view").hidden = true;
  document.getElementById("password-view").hidden = true;
  document.getElementById("login-view").hidden = false;
  const box = document.getElementById("login-error");
  box.hidden = !message;
  box.textContent = message || "";
  document.getElementById("login-username").focus();
}

async function login(event) {
  event.preventDefault();
  unlockAudio();
  const button = document.getElementById("login-submit");
  const box = document.getElementById("login-error");
  const username = document.getElementById("login-username").value.trim();
  const password = document.getElementById("login-password").value;
  button.disabled = true;
  button.textContent = t("login.busy");
  box.hidden = true;
  try {
    const data = await api(ROUTES.login, { method: "POST", body: { username, password } });
    setToken(data.access_token || data.token);
    const user = data.user || await api(ROUTES.me);
    document.getElementById("login-password").value = "";
    await showLoggedIn(user);
  } catch (err) {
    box.hidden = false;
    if (err.status === 401 || err.status === 400) box.textContent = t("login.failed");
    // the server's English detail is not shown: the wait comes from Retry-After, in the page's language
    else if (err.status === 429) box.textContent = err.retryAfter != null ? t("login.too_many", { s: err.retryAfter }) : t("err.429");
    else box.textContent = err.message;
  } finally {
    button.disabled = false;
    button.textContent = t("login.submit");
  }
}

/** First sign-in with a generated password: only the change-password form until the user has chosen their own. */
function showPasswordChange() {
  state.user = null;
  ["nav", "who", "tz", "conn", "view", "login-view"].forEach((id) => { document.getElementById(id).hidden = true; });
  document.getElementById("logout").hidden = false;
  document.getElementById("password-view").hidden = false;
  document.getElementById("password-error").hidden = true;
  document.getElementById("password-current").focus();
}

async function changePassword(event) {
  event.preventDefault();
  const box = document.getElementById("password-error");
  const current = document.getElementById("password-current");
  const fresh = document.getElementById("password-new");
  const repeat = document.getElementById("password-repeat");
  box.hidden = true;
  if (fresh.value !== repeat.value) {
    box.hidden = false;
    box.textContent = t("password.mismatch");
    return;
  }
  const button = document.getElementById("password-submit");
  button.disabled = true;
  try {
    const data = await api(ROUTES.password, { method: "POST",
      body: { current_password: current.value, new_password: fresh.value } });
    setToken(data.access_token);
    [current, fresh, repeat].forEach((input) => { input.value = ""; });
    toast(t("password.changed"), "ok", 4000);
    await showLoggedIn(await api(ROUTES.me));
  } catch (err) {
    box.hidden = false;
    box.textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

async function logout() {
  try { await api(ROUTES.logout, { method: "POST" }); } catch { /* token is dropped anyway */ }
  setToken("");
  showLogin();
}

async function boot() {
  applyI18n();
  document.getElementById("lang-switch").addEventListener("click", () => setLang(lang() === "th" ? "en" : "th"));
  document.getElementById("login-form").addEventListener("submit", login);
  document.getElementById("password-form").addEventListener("submit", changePassword);
  document.getElementById("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  onLangChange(() => {
    if (!state.user) return;
    renderNav();
    const who = document.getElementById("who");
    who.textContent = `${state.user.display_name || state.user.username} · ${t(`role.${state.user.role}`)}`;
    showZone();
    const conn = document.getElementById("conn");
    if (conn.dataset.state) setConn(conn.dataset.state, {});
    route();
  });
  setUnauthorizedHandler(() => {
    setToken("");
    showLogin(t("err.401"));
  });
  window.addEventListener("unhandledrejection", (event) => {
    const reason = event.reason;
    if (reason && reason.name === "AbortError") return;
    toast(reason && reason.message ? reason.message : String(reason), "error");
  });
  window.addEventListener("error", (event) => toast(t("err.page", { detail: event.message }), "error"));
  if (getToken()) {
    try {
      await showLoggedIn(await api(ROUTES.me));
      return;
    } catch (err) {
      setToken("");
      showLogin(err.status === 401 ? "" : err.message);
      return;
    }
  }
  showLogin();
}

boot();
