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

const MAX_FACE_BUTTONS = 12; // a crowd photo: the first (largest) faces can be picked; the API allows up to 64
const PAGE = 50;
const DEFAULT_THRESHOLD = 0.45; // the API's default (ApiSettings.face_threshold)

/** The query photo with the searched face boxed (box in the photo's pixels, drawn in percent of its size). */
function queryPhoto(url, name, face) {
  const img = h("img", { src: url, class: "query-photo", alt: name, id: "face-query-img" });
  const frame = h("div", { class: "face-query", id: "face-query" }, img);
  const place = () => {
    const [x1, y1, x2, y2] = face.box;
    const w = img.naturalWidth;
    const ht = img.naturalHeight;
    if (!w || !ht) return;
    frame.append(h("div", { class: "face-query-box", id: "face-query-box", dataset: { index: face.index },
      style: { left: `${(100 * x1) / w}%`, top: `${(100 * y1) / ht}%`,
        width: `${(100 * (x2 - x1)) / w}%`, height: `${(100 * (y2 - y1)) / ht}%` } }));
  };
  if (img.complete) place(); else img.addEventListener("load", place, { once: true });
  return frame;
}

/** "Face 1 of 4" and, when the photo has several faces, a button per face to search that one instead. */
function facePicker(data, onPick) {
  const n = data.faces_found;
  const note = h("div", { class: "muted", id: "face-which" },
    t("faces.face_of", { i: data.face.index + 1, n }));
  if (n < 2) return note;
  const buttons = Array.from({ length: Math.min(n, MAX_FACE_BUTTONS) }, (_, i) =>
    h("button", { type: "button", class: `btn btn-small ${i === data.face.index ? "btn-primary" : "btn-secondary"}`,
      dataset: { faceIndex: i }, "aria-pressed": String(i === data.face.index),
      onclick: () => onPick(i) }, t("faces.face_n", { i: i + 1 })));
  return h("div", {}, note, h("div", { class: "row face-pick", id: "face-pick" },
    h("span", { class: "muted" }, t("faces.pick_face")), buttons));
}

export const facesView = {
  id: "faces",
  feature: "faces",
  navKey: "nav.faces",
  async render(container, ctx) {
    await listCameras().catch(() => []);
    const input = h("input", { type: "file", accept: "image/jpeg,image/png,image/webp", id: "face-file", hidden: true });
    const drop = h("div", { class: "dropzone", id: "face-drop", tabindex: 0, role: "button" }, t("faces.drop"));
    const threshold = h("input", { type: "range", min: 0.2, max: 0.9, step: 0.05, value: DEFAULT_THRESHOLD,
      id: "face-threshold" });
    const thresholdOut = h("output", {}, pct(DEFAULT_THRESHOLD));
    const reason = h("input", { name: "reason", id: "face-reason", required: true, minlength: 3, maxlength: 500,
      autocomplete: "off", placeholder: t("common.reason_placeholder") });
    const preview = h("div", { id: "face-preview" });
    const status = h("div", { class: "muted", id: "face-status" });
    const results = h("div", { id: "face-results" });
    let lastFile = null;
    let faceIndex = 0;
    let generation = 0;

    const request = (file, offset) => {
      const form = new FormData();
      form.append("image", file, file.name);
      form.append("threshold", threshold.value);
      form.append("reason", reason.value.trim());
      form.append("limit", String(PAGE));
      form.append("offset", String(offset));
      form.append("face_index", String(faceIndex));
      return api(ROUTES.faceSearch, { method: "POST", body: form });
    };

    /** Results so far, and a "more" button while the API says more matches rank after them. */
    const paint = (grid, shown, data, file, gen) => {
      status.textContent = t("common.results", { n: shown });
      if (!data.has_more) return;
      const more = h("button", { type: "button", class: "btn btn-secondary", id: "face-more" }, t("common.more"));
      more.addEventListener("click", async () => {
        more.disabled = true;
        try {
          const next = await request(file, data.next_offset);
          if (gen !== generation) return;
          more.remove();
          const hits = itemsOf(next, "matches");
          grid.append(...hits.map((hit) => resultCard(hit, ctx)));
          paint(grid, shown + hits.length, next, file, gen);
        } catch (err) {
          more.disabled = false;
          results.append(errorBox(err));
        }
      });
      results.append(more);
    };

    const search = async (file, index = 0) => {
      if (!file) return;
      if (file !== lastFile) index = 0;
      lastFile = file;
      faceIndex = index;
      if (reason.value.trim().length < 3) {
        status.textContent = t("common.need_reason");
        reason.focus();
        return;
      }
      const gen = ++generation;
      const url = URL.createObjectURL(file);
      clear(preview, h("p", { class: "field-label" }, t("faces.query_photo")),
        h("img", { src: url, class: "query-photo", alt: file.name }));
      status.textContent = t("faces.searching");
      clear(results);
      try {
        const data = await request(file, 0);
        if (gen !== generation) return;
        if (data.face) {
          clear(preview, h("p", { class: "field-label" }, t("faces.query_photo")),
            queryPhoto(url, file.name, data.face), facePicker(data, (i) => search(file, i)));
        }
        const hits = itemsOf(data, "matches");
        const grid = h("div", { class: "face-results" }, hits.map((hit) => resultCard(hit, ctx)));
        if (!hits.length) clear(results, h("div", { class: "empty" }, t("faces.empty")));
        else clear(results, grid);
        paint(grid, hits.length, data, file, gen);
      } catch (err) {
        if (gen !== generation) return;
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
    threshold.addEventListener("change", () => search(lastFile, faceIndex));

    clear(container, h("div", { class: "view-head" }, h("h1", {}, t("faces.title"))),
      h("div", { class: "panel" }, h("div", { class: "row" }, h("div", { class: "grow" },
        field("common.reason", reason, t("common.reason_hint")))), drop, input,
        h("div", { class: "row" }, field("faces.threshold", h("span", { class: "row" }, threshold, thresholdOut)))),
      h("div", { class: "row" }, preview), status, results);
    return null;
  },
};
