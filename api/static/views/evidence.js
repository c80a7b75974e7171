// Evidence: export a camera's time window (background job with progress), download with SHA-256, group into cases.

import { ROUTES, api, downloadFile } from "../api.js";
import { attempt, clear, dialog, errorBox, field, fmtTime, fromLocalInput, h, toLocalInput, toast } from "../dom.js";
import { t } from "../i18n.js";
import { cameraName, cameraSelect, itemsOf, listCameras, refreshCameraSelect, watchCameras } from "./common.js";
import { playButton } from "./playback.js";

const POLL_MS = 1000;

/** Export job fields under whichever names the API uses. */
function job(data) {
  const j = data.export || data.job || data;
  const status = String(j.status || j.state || "queued").toLowerCase();
  const progress = Number(j.progress ?? 0);
  return {
    ...j,
    id: j.id || j.export_id || j.job_id,
    status: status === "completed" || status === "finished" ? "done" : status === "error" ? "failed" : status,
    progress: progress > 1 ? progress / 100 : progress,
    sha256: j.sha256 || j.sha_256 || "",
    error: j.error || j.message || "",
    camera_id: j.camera_id || j.camera,
  };
}

function exportRow(data, ctx, cases, refreshCases) {
  const j = job(data);
  const bar = h("div", { style: { width: `${Math.round(j.progress * 100)}%` } });
  const state = h("span", { class: "export-state", dataset: { status: j.status } });
  const body = h("div", { class: "export-item", dataset: { exportId: j.id, status: j.status } },
    h("div", { class: "row" }, h("strong", {}, cameraName(j.camera_id)),
      h("span", {}, `${fmtTime(j.start)} → ${fmtTime(j.end, { date: false })}`), state));
  if (j.status === "done") {
    state.textContent = t("evidence.status.done");
    if (j.complete === false) { // part of the window is not recorded: say so, never plain "Ready"
      state.textContent += ` · ${t("evidence.status.partial")}`;
      state.dataset.complete = "false";
      if (j.covered_start != null && j.covered_end != null) {
        state.title = `${fmtTime(j.covered_start)} → ${fmtTime(j.covered_end, { date: false })}`;
      }
    }
    const filename = j.filename || `${j.camera_id}_${Math.floor(j.start)}_${Math.floor(j.end)}.mp4`;
    // only open cases take items (a closed case's contents are final; the server answers 409)
    const caseSel = h("select", { class: "case-select" }, h("option", { value: "" }, t("evidence.add_to_case")),
      cases.filter((c) => c.status !== "closed").map((c) => h("option", { value: c.id }, c.name || c.id)));
    caseSel.addEventListener("change", async () => {
      if (!caseSel.value) return;
      await attempt(() => api(ROUTES.caseItems(caseSel.value), { method: "POST", body: { kind: "clip", ref: j.id } }),
        { okMessage: t("ok.saved") });
      caseSel.value = "";
      refreshCases();
    });
    body.append(
      h("div", {}, h("span", { class: "field-label" }, `${t("evidence.sha256")}: `),
        h("code", { class: "mono sha256", dataset: { sha256: j.sha256 } }, j.sha256)),
      h("div", { class: "row" },
        h("button", { class: "btn btn-primary btn-small download", type: "button",
          onclick: () => attempt(() => downloadFile(j.download_url || ROUTES.exportDownload(j.id), filename)) },
        `↓ ${t("evidence.download")}`),
        h("button", { class: "btn btn-secondary btn-small manifest", type: "button",
          onclick: () => attempt(() => downloadFile(ROUTES.exportManifest(j.id), `${filename}.sha256.json`)) },
        t("evidence.manifest")),
        caseSel));
  } else if (j.status === "failed") {
    state.textContent = t("evidence.status.failed");
    body.append(errorBox({ message: t("evidence.failed", { msg: j.error || "?" }) }));
  } else {
    state.textContent = `${t(`evidence.status.${j.status}`)} · ${t("evidence.progress", { p: Math.round(j.progress * 100) })}`;
    body.append(h("div", { class: "progress", role: "progressbar", "aria-valuenow": Math.round(j.progress * 100) }, bar));
  }
  return body;
}

/**
 * The export dialog opened from elsewhere (playback's in and out points): camera and window prefilled; the job is
 * created with the same route as the evidence screen and followed there. Resolves with the job or null.
 */
export async function exportDialog(ctx, { cameras, camera, start, end }) {
  const select = cameraSelect(cameras, { name: "camera", value: camera });
  select.id = "export-dialog-camera";
  const from = h("input", { type: "datetime-local", step: 1, id: "export-dialog-start", value: toLocalInput(start) });
  const to = h("input", { type: "datetime-local", step: 1, id: "export-dialog-end", value: toLocalInput(end) });
  const created = await dialog(t("evidence.export_title"), [field("common.camera", select), field("common.from", from),
    field("common.to", to)], {
    submitLabel: t("evidence.start"),
    onSubmit: async () => {
      const s = fromLocalInput(from.value);
      const e = fromLocalInput(to.value);
      if (!select.value || s === null || e === null) throw new Error(t("evidence.window_required"));
      // the inputs hold whole seconds: keep the exact in/out points unless they were changed
      const exact = (value, input) => (Math.abs(fromLocalInput(input.value) - Math.floor(value)) < 0.5 ? value : null);
      return api(ROUTES.exports, { method: "POST", body: { camera_id: select.value,
        start: exact(start, from) ?? s, end: exact(end, to) ?? e } });
    },
  });
  if (created) toast(t("evidence.export_started"), "ok", 5000);
  return created || null;
}

/** Where a case item happened (camera, time) when the page knows it: events carry their record; clips their job. */
function itemPlace(item, jobs) {
  if (item.event && item.event.camera_id) return { camera: item.event.camera_id, time: item.event.frame_time };
  const j = item.kind === "clip" ? jobs.get(item.ref) : null;
  return j && j.camera_id ? { camera: j.camera_id, time: Number(j.start), end: Number(j.end) } : null;
}

/** "4 items · Clip × 2, Plate read × 2": the count of a case's items, per kind when there are several kinds. */
function itemCount(items) {
  const total = items.length === 1 ? t("evidence.item_count_one") : t("evidence.item_count", { n: items.length });
  const kinds = new Map();
  items.forEach((it) => kinds.set(it.kind, (kinds.get(it.kind) || 0) + 1));
  if (kinds.size < 2) return kinds.size ? `${total} · ${t(`evidence.kind.${[...kinds.keys()][0]}`)}` : total;
  return `${total} · ${[...kinds].map(([kind, n]) => `${t(`evidence.kind.${kind}`)} × ${n}`).join(", ")}`;
}

/** One case item: its kind, camera and time (with a play button) where the page knows them, else its kind alone
 * (the raw id stays in the tooltip and data-ref, not in the text). */
function caseItem(item, jobs) {
  const place = itemPlace(item, jobs);
  const label = t(`evidence.kind.${item.kind}`);
  const attrs = { class: "case-item", title: item.ref, dataset: { ref: item.ref, kind: item.kind } };
  if (!place) return h("span", attrs, label);
  const when = place.end ? `${fmtTime(place.time)} – ${fmtTime(place.end, { date: false })}` : fmtTime(place.time);
  return h("span", attrs, `${label} · ${cameraName(place.camera)} · ${when} `,
    playButton(place.camera, place.time));
}

/** Open (its items under legal hold) or closed (when), as a badge. */
function caseState(c) {
  const closed = c.status === "closed";
  return h("span", { class: `badge case-state ${closed ? "case-closed" : "case-open"}`, dataset: { status: closed ? "closed" : "open" } },
    closed ? t("evidence.case_closed", { when: c.closed_at ? fmtTime(c.closed_at, { seconds: false }) : "" }).trim() : t("evidence.case_open"));
}

/** Close a case after the user confirmed it (closing lifts its legal hold and is final). */
async function closeCase(c, refreshCases) {
  if (!window.confirm(t("evidence.case_close_confirm", { name: c.name || c.id }))) return;
  await attempt(() => api(`${ROUTES.case(c.id)}/close`, { method: "POST" }), { okMessage: t("evidence.case_closed_ok") });
  refreshCases();
}

export const evidenceView = {
  id: "evidence",
  feature: "evidence",
  navKey: "nav.evidence",
  async render(container, ctx, { params }) {
    const cameras = await listCameras().catch(() => []);
    const camera = cameraSelect(cameras, { name: "camera", value: params.get("camera") || "" });
    camera.id = "export-camera";
    const now = Date.now() / 1000;
    const start = h("input", { type: "datetime-local", step: 1, id: "export-start",
      value: toLocalInput(Number(params.get("start")) || now - 120) });
    const end = h("input", { type: "datetime-local", step: 1, id: "export-end",
      value: toLocalInput(Number(params.get("end")) || now - 60) });
    const formError = h("div");
    const exportsBox = h("div", { id: "export-list" });
    const casesBox = h("div", { id: "case-list" });
    const timers = new Set();
    let cases = [];
    const jobs = new Map();

    const paintExports = () => {
      const list = [...jobs.values()].sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
      if (!list.length) clear(exportsBox, h("div", { class: "empty" }, t("evidence.no_exports")));
      else clear(exportsBox, list.map((j) => exportRow(j, ctx, cases, refreshCases)));
    };

    const refreshCases = async () => {
      try {
        cases = itemsOf(await api(ROUTES.cases), "cases");
        if (!cases.length) clear(casesBox, h("div", { class: "empty" }, t("evidence.no_cases")));
        else {
          clear(casesBox, h("ul", { class: "list-nav" }, cases.map((c) => {
            const items = c.items || [];
            return h("li", { dataset: { caseId: c.id, items: items.length, status: c.status || "open" } },
              h("div", { class: "export-item" },
              h("div", { class: "row" }, h("strong", {}, c.name || c.id), caseState(c)),
              c.description ? h("div", { class: "muted" }, c.description) : null,
              h("div", { class: "muted case-count" }, itemCount(items)),
              h("div", { class: "row case-items" }, items.map((it) => caseItem(it, jobs))),
              items.length ? h("button", { class: "btn btn-secondary btn-small case-package", type: "button",
                onclick: () => attempt(() => downloadFile(ROUTES.casePackage(c.id), `case_${c.id}.zip`)) },
              `↓ ${t("evidence.package")}`) : null,
              c.status !== "closed" ? h("button", { class: "btn btn-secondary btn-small case-close", type: "button",
                onclick: () => closeCase(c, refreshCases) }, t("evidence.case_close")) : null));
          })));
        }
        paintExports();
      } catch (err) {
        clear(casesBox, errorBox(err));
      }
    };

    const follow = (id) => {
      const tick = async () => {
        try {
          const j = job(await api(ROUTES.export(id)));
          jobs.set(id, j);
          paintExports();
          if (j.status === "done" || j.status === "failed") return;
        } catch (err) {
          toast(err.message, "error");
        }
        const timer = setTimeout(() => { timers.delete(timer); tick(); }, POLL_MS);
        timers.add(timer);
      };
      tick();
    };

    const submit = async (ev) => {
      ev.preventDefault();
      clear(formError);
      const s = fromLocalInput(start.value);
      const e = fromLocalInput(end.value);
      if (!camera.value || s === null || e === null) {
        clear(formError, errorBox({ message: t("evidence.window_required") }));
        return;
      }
      try {
        const j = job(await api(ROUTES.exports, { method: "POST", body: { camera_id: camera.value, start: s, end: e } }));
        jobs.set(j.id, { ...j, camera_id: j.camera_id || camera.value, start: j.start ?? s, end: j.end ?? e,
          created_at: j.created_at || Date.now() / 1000 });
        paintExports();
        follow(j.id);
      } catch (err) {
        clear(formError, errorBox(err));
      }
    };

    const newCase = async () => {
      const name = h("input", { name: "name", required: true, maxlength: 200, id: "case-name" });
      const description = h("textarea", { name: "description", rows: 3, maxlength: 5000, id: "case-description" });
      const created = await dialog(t("evidence.new_case"), [field("evidence.case_title", name),
        field("evidence.case_description", description)], {
        onSubmit: () => api(ROUTES.cases, { method: "POST",
          body: { name: name.value.trim(), description: description.value.trim() } }),
      });
      if (created) { toast(t("ok.saved"), "ok", 3000); refreshCases(); }
    };

    clear(container, h("div", { class: "view-head" }, h("h1", {}, t("evidence.title"))),
      h("div", { class: "split" },
        h("div", {},
          h("form", { class: "panel", id: "export-form", onsubmit: submit },
            field("common.camera", camera), field("common.from", start), field("common.to", end), formError,
            h("button", { class: "btn btn-primary btn-block", type: "submit", id: "export-start-btn" }, t("evidence.start"))),
          h("div", { class: "panel" }, h("div", { class: "row" }, h("h2", {}, t("evidence.cases")),
            h("button", { class: "btn btn-secondary btn-small", type: "button", id: "case-new", onclick: newCase },
              `+ ${t("evidence.new_case")}`)), casesBox)),
        h("div", { class: "panel" }, h("h2", {}, t("evidence.exports")), exportsBox)));

    try {
      itemsOf(await api(ROUTES.exports, { query: { limit: 20 } }), "exports").forEach((raw) => {
        const j = job(raw);
        jobs.set(j.id, j);
        if (j.status !== "done" && j.status !== "failed") follow(j.id);
      });
    } catch (err) {
      clear(exportsBox, errorBox(err));
    }
    await refreshCases();
    const stopCameras = watchCameras((fresh) => refreshCameraSelect(camera, fresh));
    return () => { stopCameras(); timers.forEach((timer) => clearTimeout(timer)); };
  },
};
