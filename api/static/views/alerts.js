// Alert wall: live watchlist hits (crop, camera, time, reason, severity), highlight + beep, acknowledge with a note.

import { ROUTES, api } from "../api.js";
import { clear, dialog, errorBox, field, fmtAgo, fmtTime, h, pct, severityBadge, toast } from "../dom.js";
import { t } from "../i18n.js";
import { beep } from "../live.js";
import { authImg, cameraName, cropUrl, listCameras } from "./common.js";
import { playButton } from "./playback.js";

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
    a.reason ? h("p", { class: "alert-reason" }, `${t("common.reason")}: ${a.reason}`) : null,
    ctx.can("playback") ? h("div", { class: "row" }, playButton(a.camera_id, a.created_at)) : null,
    item.ack
      ? h("div", { class: "alert-ack", dataset: { ackBy: item.ack.by || "", ackAt: item.ack.at || "" } },
        h("span", {}, `✔ ${t("alerts.acked", { by: item.ack.by || "" })}`),
        item.ack.at ? h("time", { class: "ack-time", datetime: new Date(item.ack.at * 1000).toISOString() },
          ` · ${fmtTime(item.ack.at)}`) : null,
        item.ack.note ? h("p", { class: "ack-note" }, `${t("alerts.ack_note_label")}: ${item.ack.note}`) : null)
      : h("button", { class: "btn btn-primary btn-small", type: "button", dataset: { action: "ack" },
        onclick: () => acknowledge(item, ctx) }, t("alerts.ack"))));
  return card;
}

async function acknowledge(item, ctx) {
  const note = h("textarea", { name: "note", rows: 3, maxlength: 500 });
  const result = await dialog(t("alerts.ack_title"), [
    h("p", {}, `${item.alert.label} · ${cameraName(item.alert.camera_id)} · ${fmtTime(item.alert.created_at)}`),
    field("alerts.ack_note", note),
  ], {
    submitLabel: t("alerts.ack"),
    onSubmit: async () => api(ROUTES.alertAck(item.alert.alert_id), { method: "POST", body: { note: note.value.trim() } }),
  });
  if (!result) return;
  const ack = result && result.by ? result : { by: ctx.user.username, note: note.value.trim(), at: Date.now() / 1000 };
  ctx.updateAlert(item.alert.alert_id, { ack });
  toast(t("ok.acked"), "ok", 3000);
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
        if (!entry || Boolean(entry.acked) !== Boolean(item.ack)) {
          const fresh = !seen.has(id);
          seen.add(id);
          const el = alertCard(item, ctx, fresh);
          if (entry) entry.el.replaceWith(el);
          entry = { el, acked: Boolean(item.ack) };
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

    clear(container,
      h("div", { class: "view-head" }, h("h1", {}, t("alerts.title")),
        h("label", { class: "check" }, onlyOpen, t("alerts.unacked_only")), soundBtn),
      problem, list);
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
