// Alert wall: live watchlist hits (crop, camera, watchlist, time, reason, severity), highlight + beep, acknowledge
// once with a note, follow-up notes, older alerts page by page.

import { ApiError, ROUTES, api } from "../api.js";
import { clear, dialog, errorBox, field, fmtAgo, fmtTime, h, pct, severityBadge, toast } from "../dom.js";
import { t } from "../i18n.js";
import { beep } from "../live.js";
import { authImg, cameraName, cropUrl, listCameras } from "./common.js";
import { playButton } from "./playback.js";

/** Longest acknowledgement or follow-up note the API takes (api.schemas.alerts.NOTE_MAX_CHARS). */
const NOTE_MAX_CHARS = 2000;

function alertCard(item, ctx, fresh) {
  const a = item.alert;
  const sev = a.severity || "medium";
  const card = h("article", {
    class: `alert-card sev-${sev}${item.ack ? " acked" : ""}${fresh && !item.ack && (sev === "high" || sev === "critical") ? " flash" : ""}`,
    dataset: { alertId: a.alert_id, severity: sev, kind: a.kind },
  },
  authImg(cropUrl(a), { class: "alert-crop", alt: a.label || a.kind }),
  h("div", { class: "alert-body" },
    h("div", { class: "row" },
      h("span", { class: "alert-label" }, a.label || t(`alerts.kind.${a.kind}`)),
      severityBadge(sev),
      h("span", { class: "badge" }, t(`alerts.kind.${a.kind}`))),
    h("div", { class: "alert-meta" },
      h("span", { class: "alert-camera" }, `${t("common.camera")}: ${cameraName(a.camera_id)}`),
      h("time", { datetime: new Date(a.created_at * 1000).toISOString(), title: fmtAgo(a.created_at) },
        fmtTime(a.created_at)),
      a.score !== undefined && a.score !== null ? h("span", {}, t("alerts.score", { p: pct(a.score).replace("%", "") })) : null),
    a.province ? h("div", { class: "alert-province" }, `${t("alerts.province")}: ${a.province}`) : null,
    a.province_unconfirmed ? h("p", { class: "alert-unconfirmed", role: "note" },
      `⚠ ${t("alerts.province_unconfirmed", { p: a.entry_province || "" })}`) : null,
    h("div", { class: "alert-watchlist" }, `${t("alerts.watchlist")}: ${item.watchlist_name || a.watchlist_id}`),
    a.reason ? h("p", { class: "alert-reason" }, `${t("common.reason")}: ${a.reason}`) : null,
    ctx.can("playback") ? h("div", { class: "row" }, playButton(a.camera_id, a.frame_time ?? a.created_at)) : null,
    item.ack ? ackBlock(item, ctx)
      : h("button", { class: "btn btn-primary btn-small", type: "button", dataset: { action: "ack" },
        onclick: () => acknowledge(item, ctx) }, t("alerts.ack"))));
  return card;
}

/** The acknowledgement (who, when, note) and its follow-up notes, with a button to add one. */
function ackBlock(item, ctx) {
  const ack = item.ack;
  const notes = Array.isArray(ack.notes) ? ack.notes : [];
  return h("div", { class: "alert-ack", dataset: { ackBy: ack.by || "", ackAt: ack.at || "" } },
    h("span", {}, `✔ ${t("alerts.acked", { by: ack.by || "" })}`),
    ack.at ? h("time", { class: "ack-time", datetime: new Date(ack.at * 1000).toISOString() },
      ` · ${fmtTime(ack.at)}`) : null,
    ack.note ? h("p", { class: "ack-note" }, `${t("alerts.ack_note_label")}: ${ack.note}`) : null,
    notes.length ? h("ul", { class: "ack-notes" }, notes.map((n) => h("li", { class: "ack-follow-up" },
      `${n.by} · ${fmtTime(n.at)}: ${n.note}`))) : null,
    h("button", { class: "btn btn-secondary btn-small", type: "button", dataset: { action: "note" },
      onclick: () => addNote(item, ctx) }, t("alerts.add_note")));
}

/** The alert as the server has it now (with the acknowledgement that stands), or null. */
async function fetchAlert(item) {
  const a = item.alert;
  const rows = await api(ROUTES.alerts, {
    query: { camera_id: a.camera_id, start: a.created_at, end: a.created_at, limit: 50 },
  });
  return (Array.isArray(rows) ? rows : []).find((row) => row.alert.alert_id === a.alert_id) || null;
}

async function addNote(item, ctx) {
  const note = h("textarea", { name: "note", rows: 3, maxlength: NOTE_MAX_CHARS, required: true });
  const result = await dialog(t("alerts.note_title"), [
    h("p", {}, `${item.alert.label} · ${cameraName(item.alert.camera_id)} · ${fmtTime(item.alert.created_at)}`),
    field("alerts.ack_note", note),
  ], {
    submitLabel: t("alerts.add_note"),
    onSubmit: async () => api(`${ROUTES.alerts}/${encodeURIComponent(item.alert.alert_id)}/notes`,
      { method: "POST", body: { note: note.value.trim() } }),
  });
  if (result && result.by) ctx.updateAlert(item.alert.alert_id, { ack: result });
}

async function acknowledge(item, ctx) {
  const note = h("textarea", { name: "note", rows: 3, maxlength: NOTE_MAX_CHARS });
  const result = await dialog(t("alerts.ack_title"), [
    h("p", {}, `${item.alert.label} · ${cameraName(item.alert.camera_id)} · ${fmtTime(item.alert.created_at)}`),
    field("alerts.ack_note", note),
  ], {
    submitLabel: t("alerts.ack"),
    onSubmit: async () => {
      try {
        return await api(ROUTES.alertAck(item.alert.alert_id), { method: "POST", body: { note: note.value.trim() } });
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 409) throw err;
        // someone else acknowledged it first: show theirs (the first acknowledgement stands)
        const current = await fetchAlert(item).catch(() => null);
        toast(err.message, "info", 6000);
        return { conflict: true, ack: current && current.ack ? current.ack : null };
      }
    },
  });
  if (!result) return;
  if (result.conflict) {
    if (result.ack) ctx.updateAlert(item.alert.alert_id, { ack: result.ack });
    return;
  }
  const ack = result && result.by ? result : { by: ctx.user.username, note: note.value.trim(), at: Date.now() / 1000 };
  ctx.updateAlert(item.alert.alert_id, { ack });
  toast(t("ok.acked"), "ok", 3000);
}

/** What a card shows that can change (watchlist name, acknowledgement, follow-up notes): rebuilt when it does. */
function ackSignature(item) {
  return `${item.watchlist_name || ""}|${item.ack ? `${item.ack.by}|${(item.ack.notes || []).length}` : ""}`;
}

/** Stream ids ("ms-seq") in stream order. */
function streamOrder(a, b) {
  const [am, as] = String(a).split("-").map(Number);
  const [bm, bs] = String(b).split("-").map(Number);
  return am - bm || as - bs;
}

/** Page size of the "older alerts" button. */
const OLDER_PAGE = 300;

/**
 * Load the alerts just before the oldest one shown (or before where the last scan stopped, when that is older);
 * false when there are no more. A camera-limited user's listing is a scan of at most CCTV_ALERT_FILTER_SCAN alerts:
 * when it stops at that cap (`X-Alerts-Scan-Next`), even with no alert of the user's cameras found, the next page
 * goes on from there (`paging.scanNext`), so alerts behind many of other cameras are still reached.
 */
async function loadOlder(ctx, paging) {
  const shown = ctx.alerts().map((item) => item.id).filter(Boolean).sort(streamOrder);
  const from = [paging.scanNext, shown[0]].filter(Boolean).sort(streamOrder)[0];
  const response = await api(ROUTES.alerts, { query: { before: from, limit: OLDER_PAGE }, raw: true });
  const rows = await response.json();
  paging.scanNext = response.headers.get("X-Alerts-Scan-Next") || null;
  const items = (Array.isArray(rows) ? rows : []).map((row) => ({ ...row, ack: row.ack || null }));
  ctx.addAlerts(items);
  if (paging.scanNext) return true; // the scan stopped at its cap: older alerts may lie beyond
  const oldest = ctx.alerts().map((item) => item.id).filter(Boolean).sort(streamOrder)[0];
  // the wall keeps a bounded number of alerts: when the page did not get older, there is nothing more to show
  return items.length === OLDER_PAGE && oldest !== shown[0];
}

export const alertsView = {
  id: "alerts",
  feature: "alerts",
  navKey: "nav.alerts",
  async render(container, ctx) {
    const seen = new Set(ctx.alerts().map((item) => item.alert.alert_id));
    const onlyOpen = h("input", { type: "checkbox", id: "alerts-open-only" });
    const soundBtn = h("button", { class: "btn btn-secondary", type: "button", id: "alerts-sound" });
    const list = h("div", { class: "alert-list", id: "alert-list", "aria-live": "polite" });
    const problem = h("div");
    const paintSound = () => {
      soundBtn.textContent = ctx.soundOn ? t("alerts.sound_on") : t("alerts.sound_off");
      soundBtn.setAttribute("aria-pressed", String(ctx.soundOn));
    };
    soundBtn.addEventListener("click", () => {
      ctx.soundOn = !ctx.soundOn;
      paintSound();
      if (ctx.soundOn) beep("high");
    });
    paintSound();

    // Cards are kept per alert and only rebuilt when their acknowledgement changes, so a busy wall does not
    // flicker or reload crops on every new alert.
    const cards = new Map();
    const paint = () => {
      const items = ctx.alerts().filter((item) => !onlyOpen.checked || !item.ack);
      if (!items.length) {
        cards.clear();
        clear(list, h("div", { class: "empty" }, t("alerts.empty")));
        return;
      }
      const wanted = new Set(items.map((item) => item.alert.alert_id));
      for (const [id, entry] of cards) {
        if (!wanted.has(id)) { entry.el.remove(); cards.delete(id); }
      }
      list.querySelector(".empty")?.remove();
      let previous = null;
      for (const item of items) {
        const id = item.alert.alert_id;
        let entry = cards.get(id);
        const sig = `${ackSignature(item)}|${cameraName(item.alert.camera_id)}`; // the name once cameras are known
        if (!entry || entry.sig !== sig) {
          const fresh = !seen.has(id);
          seen.add(id);
          const el = alertCard(item, ctx, fresh);
          if (entry) entry.el.replaceWith(el);
          entry = { el, sig };
          cards.set(id, entry);
        }
        const expectedNext = previous ? previous.nextElementSibling : list.firstElementChild;
        if (expectedNext !== entry.el) {
          if (previous) previous.after(entry.el);
          else list.prepend(entry.el);
        }
        previous = entry.el;
      }
    };
    onlyOpen.addEventListener("change", paint);
    const paging = { scanNext: null }; // where the last capped scan of "Older alerts" stopped
    const olderBtn = h("button", { class: "btn btn-secondary", type: "button", id: "alerts-older" }, t("alerts.older"));
    olderBtn.addEventListener("click", async () => {
      olderBtn.disabled = true;
      try {
        const more = await loadOlder(ctx, paging);
        olderBtn.disabled = !more;
        if (!more) olderBtn.textContent = t("alerts.no_older");
      } catch (err) {
        olderBtn.disabled = false;
        clear(problem, errorBox(err));
      }
    });

    clear(container,
      h("div", { class: "view-head" }, h("h1", {}, t("alerts.title")),
        h("label", { class: "check" }, onlyOpen, t("alerts.unacked_only")), soundBtn),
      problem, list, h("div", { class: "row alerts-more" }, olderBtn));
    paint();
    const off = ctx.onAlerts(paint);
    try {
      await listCameras();
      paint();
    } catch (err) {
      clear(problem, errorBox(err));
    }
    const ticker = setInterval(() => {
      list.querySelectorAll("time").forEach((el) => { el.title = fmtAgo(new Date(el.dateTime).getTime() / 1000); });
    }, 30_000);
    return () => { off(); clearInterval(ticker); };
  },
};
