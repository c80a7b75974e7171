// Face search: drop a photo, see matching face events with similarity, camera and time.

import { ROUTES, api } from "../api.js";
import { clear, errorBox, field, fmtTime, h, pct } from "../dom.js";
import { t } from "../i18n.js";
import { authImg, cameraName, cropUrl, itemsOf, listCameras } from "./common.js";
import { playButton } from "./playback.js";

function resultCard(hit, ctx) {
  const e = { ...(hit.event || {}), ...hit };
  const similarity = hit.similarity ?? hit.score;
  const start = Math.floor((e.started_at ?? e.frame_time) - 5);
  const end = Math.ceil((e.ended_at ?? e.frame_time) + 5);
  return h("div", { class: "face-card", dataset: { eventId: e.event_id, similarity } },
    authImg(cropUrl(e), { class: "face-thumb", alt: "" }),
    h("div", {},
      h("div", { class: "similarity" }, pct(similarity)),
      h("div", {}, cameraName(e.camera_id)),
      h("div", { class: "muted" }, fmtTime(e.frame_time)),
      ctx.can("playback") ? playButton(e.camera_id, e.frame_time) : null,
      ctx.can("evidence")
        ? h("a", { class: "btn btn-small btn-secondary",
          href: `#/evidence?camera=${encodeURIComponent(e.camera_id)}&start=${start}&end=${end}` }, t("common.export_clip"))
        : null));
}

export const facesView = {
  id: "faces",
  feature: "faces",
  navKey: "nav.faces",
  async render(container, ctx) {
    await listCameras().catch(() => []);
    const input = h("input", { type: "file", accept: "image/jpeg,image/png,image/webp", id: "face-file", hidden: true });
    const drop = h("div", { class: "dropzone", id: "face-drop", tabindex: 0, role: "button" }, t("faces.drop"));
    const threshold = h("input", { type: "range", min: 0.2, max: 0.9, step: 0.05, value: 0.4, id: "face-threshold" });
    const thresholdOut = h("output", {}, pct(0.4));
    const reason = h("input", { name: "reason", id: "face-reason", required: true, minlength: 3, maxlength: 500,
      autocomplete: "off", placeholder: t("common.reason_placeholder") });
    const preview = h("div", { id: "face-preview" });
    const status = h("div", { class: "muted", id: "face-status" });
    const results = h("div", { id: "face-results" });
    let lastFile = null;

    const search = async (file) => {
      if (!file) return;
      lastFile = file;
      if (reason.value.trim().length < 3) {
        status.textContent = t("common.need_reason");
        reason.focus();
        return;
      }
      const url = URL.createObjectURL(file);
      clear(preview, h("p", { class: "field-label" }, t("faces.query_photo")),
        h("img", { src: url, class: "query-photo", alt: file.name }));
      status.textContent = t("faces.searching");
      clear(results);
      const form = new FormData();
      form.append("image", file, file.name);
      form.append("threshold", threshold.value);
      form.append("reason", reason.value.trim());
      form.append("limit", "50");
      try {
        const data = await api(ROUTES.faceSearch, { method: "POST", body: form });
        const hits = itemsOf(data, "matches");
        status.textContent = t("common.results", { n: hits.length });
        if (!hits.length) clear(results, h("div", { class: "empty" }, t("faces.empty")));
        else clear(results, h("div", { class: "face-results" }, hits.map((hit) => resultCard(hit, ctx))));
      } catch (err) {
        status.textContent = "";
        clear(results, errorBox(err));
      }
    };

    drop.addEventListener("click", () => input.click());
    drop.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") input.click(); });
    drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (ev) => {
      ev.preventDefault();
      drop.classList.remove("over");
      search(ev.dataTransfer.files[0]);
    });
    input.addEventListener("change", () => search(input.files[0]));
    threshold.addEventListener("input", () => { thresholdOut.textContent = pct(threshold.value); });
    threshold.addEventListener("change", () => search(lastFile));

    clear(container, h("div", { class: "view-head" }, h("h1", {}, t("faces.title"))),
      h("div", { class: "panel" }, h("div", { class: "row" }, h("div", { class: "grow" },
        field("common.reason", reason, t("common.reason_hint")))), drop, input,
        h("div", { class: "row" }, field("faces.threshold", h("span", { class: "row" }, threshold, thresholdOut)))),
      h("div", { class: "row" }, preview), status, results);
    return null;
  },
};
