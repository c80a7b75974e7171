// Plate search: one box (exact, partial, wildcard, fuzzy), filters, result table with crops, sightings timeline.

import { ROUTES, api } from "../api.js";
import { clear, errorBox, field, fmtTime, fromLocalInput, h, pct, toLocalInput } from "../dom.js";
import { t } from "../i18n.js";
import {
  authImg, cameraName, cameraSelect, cropUrl, itemsOf, listCameras, plateEventOf as eventOf, refreshCameraSelect,
  snapshotUrl, watchCameras,
} from "./common.js";
import { playButton } from "./playback.js";

const SVG = "http://www.w3.org/2000/svg";
const PAGE = 50;
const HISTORY = 500; // sightings a timeline shows: the newest ones

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  Object.entries(attrs).forEach(([k, v]) => el.setAttribute(k, String(v)));
  if (text !== undefined) el.textContent = text;
  return el;
}


function exportLink(e) {
  const start = Math.floor((e.started_at ?? e.frame_time) - 5);
  const end = Math.ceil((e.ended_at ?? e.frame_time) + 5);
  return `#/evidence?camera=${encodeURIComponent(e.camera_id)}&start=${start}&end=${end}`;
}

function shorten(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/** Sightings of one plate as camera lanes on a time axis (SVG) plus a list. */
export function timeline(plate, sightings) {
  const wrap = h("div", { class: "timeline", id: "plate-timeline", dataset: { plate, count: sightings.length } });
  wrap.append(h("h2", {}, t("plates.timeline", { plate })));
  if (!sightings.length) {
    wrap.append(h("div", { class: "empty" }, t("plates.timeline_empty")));
    return wrap;
  }
  const events = sightings.map(eventOf).sort((a, b) => a.frame_time - b.frame_time);
  const cams = [...new Set(events.map((e) => e.camera_id))];
  const width = 1000;
  const left = 250;
  const lane = 34;
  const height = cams.length * lane + 40;
  const t0 = events[0].frame_time;
  const t1 = Math.max(events[events.length - 1].frame_time, t0 + 60);
  const x = (time) => left + ((time - t0) / (t1 - t0)) * (width - left - 20);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": t("plates.timeline", { plate }) });
  cams.forEach((cam, i) => {
    const y = 20 + i * lane;
    chart.append(svg("text", { x: 4, y: y + 5, class: "lane-label" }, shorten(cameraName(cam), 30)));
    chart.append(svg("line", { x1: left, x2: width - 20, y1: y, y2: y, class: "axis" }));
  });
  for (let k = 0; k <= 4; k += 1) {
    const time = t0 + ((t1 - t0) * k) / 4;
    const anchor = k === 0 ? "start" : k === 4 ? "end" : "middle";
    chart.append(svg("text", { x: x(time), y: height - 6, class: "tick", "text-anchor": anchor },
      fmtTime(time, { date: (t1 - t0) > 86400 })));
  }
  events.forEach((e) => {
    const dot = svg("circle", { cx: x(e.frame_time), cy: 20 + cams.indexOf(e.camera_id) * lane, r: 7, class: "dot" });
    dot.append(svg("title", {}, `${cameraName(e.camera_id)} · ${fmtTime(e.frame_time)}`));
    chart.append(dot);
  });
  wrap.append(chart);
  wrap.append(h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, t("plates.col.crop")), h("th", {}, t("common.camera")),
      h("th", {}, t("common.time")), h("th", {}, t("common.confidence")), h("th", {}, t("common.actions")))),
    h("tbody", {}, events.slice().reverse().map((e) => h("tr", { dataset: { eventId: e.event_id } },
      h("td", {}, authImg(cropUrl(e), { class: "crop-thumb" })),
      h("td", {}, cameraName(e.camera_id)), h("td", {}, fmtTime(e.frame_time)), h("td", {}, pct(e.confidence)),
      h("td", {}, playButton(e.camera_id, e.frame_time), " ",
        h("a", { class: "btn btn-small btn-secondary", href: exportLink(e) }, t("common.export_clip")))))))));
  return wrap;
}

export const platesView = {
  id: "plates",
  feature: "plates",
  navKey: "nav.plates",
  async render(container, ctx, { params }) {
    const cameras = await listCameras().catch(() => []);
    const q = h("input", { name: "q", id: "plate-query", class: "plate-text", autocomplete: "off", spellcheck: "false",
      placeholder: t("plates.placeholder"), value: params.get("q") || "" });
    const mode = h("select", { name: "mode", id: "plate-mode" }, ["auto", "exact", "partial", "fuzzy"].map((m) =>
      h("option", { value: m, selected: m === (params.get("mode") || "auto") }, t(`plates.mode.${m}`))));
    const camSel = cameraSelect(cameras, { name: "cameras", multiple: true });
    camSel.id = "plate-cameras";
    const from = h("input", { type: "datetime-local", name: "from", step: 1 });
    const to = h("input", { type: "datetime-local", name: "to", step: 1 });
    const province = h("input", { name: "province", id: "plate-province", placeholder: t("common.any") });
    const reason = h("input", { name: "reason", id: "plate-reason", minlength: 3, maxlength: 500, autocomplete: "off",
      placeholder: t("common.reason_placeholder"), value: params.get("reason") || "" });
    const status = h("div", { class: "muted", id: "plate-status" });
    const results = h("div", { id: "plate-results" });
    const detail = h("div", { id: "plate-detail" });
    let offset = 0;
    let cursor = null; // next_cursor of the last page: "More" reads on from there, unmoved by new reads
    let firstTotal = null;
    let lastQuery = null;
    let controller = null;

    const query = () => {
      let text = q.value.trim();
      let chosen = mode.value;
      if (text.startsWith("~")) { text = text.slice(1).trim(); chosen = "fuzzy"; }
      return {
        q: text, mode: chosen, cameras: [...camSel.selectedOptions].map((o) => o.value),
        start: fromLocalInput(from.value), end: fromLocalInput(to.value), province: province.value.trim(),
      };
    };

    const showHistory = async (plate) => {
      if (reason.value.trim().length < 3) {
        clear(detail, h("div", { class: "error-box", role: "alert", id: "plate-need-reason" }, t("common.need_reason")));
        reason.focus();
        return;
      }
      clear(detail, h("p", { class: "muted" }, t("common.loading")));
      try {
        const why = reason.value.trim();
        let data = await api(ROUTES.plateHistory(plate), { query: { limit: HISTORY, reason: why } });
        if (data.total != null && data.total > HISTORY) { // oldest first: a busy plate's newest sightings matter most
          data = await api(ROUTES.plateHistory(plate), { query: { limit: HISTORY, offset: data.total - HISTORY, reason: why } });
        }
        const chart = timeline(plate, itemsOf(data, "sightings"));
        if (data.total != null && data.total > HISTORY) { // said under the title, not after 500 rows
          chart.querySelector("h2").after(h("p", { class: "muted", id: "plate-timeline-partial" },
            t("plates.timeline_newest", { n: HISTORY, total: data.total })));
        }
        clear(detail, h("div", { class: "panel" }, chart));
        detail.scrollIntoView({ behavior: "smooth", block: "start" });
      } catch (err) {
        clear(detail, errorBox(err));
      }
    };

    const showFrame = (e) => {
      const panel = h("div", { class: "panel", id: "plate-frame-panel" },
        h("h2", {}, `${e.plate_text} · ${cameraName(e.camera_id)} · ${fmtTime(e.frame_time)}`),
        h("div", { class: "snapshot-box", style: { maxWidth: "64rem" } },
          authImg(snapshotUrl(e), { id: "plate-frame", alt: e.plate_text })),
        ctx.can("playback") ? h("p", {}, playButton(e.camera_id, e.frame_time)) : null);
      clear(detail, panel);
      detail.scrollIntoView({ behavior: "smooth", block: "start" });
    };

    const row = (hit) => {
      const e = eventOf(hit);
      const frame = snapshotUrl(e)
        ? h("button", { class: "btn btn-small btn-secondary frame-link", type: "button",
          onclick: (ev) => { ev.stopPropagation(); showFrame(e); } }, t("plates.frame"))
        : null;
      const tr = h("tr", { class: ctx.can("plate_history") ? "clickable" : "", dataset: { plate: e.plate_text, eventId: e.event_id } },
        h("td", {}, authImg(cropUrl(e), { class: "crop-thumb", alt: e.plate_text })),
        h("td", {}, h("span", { class: "plate-text" }, e.plate_text),
          hit.distance ? h("div", { class: "muted" }, t("plates.distance", { d: Number(hit.distance).toFixed(1) })) : null),
        h("td", {}, e.province || e.province_latin || "–"),
        h("td", {}, cameraName(e.camera_id)),
        h("td", {}, fmtTime(e.frame_time)),
        h("td", {}, pct(e.confidence)),
        h("td", {}, frame, " ", ctx.can("playback") ? playButton(e.camera_id, e.frame_time) : null, " ",
          ctx.can("evidence")
            ? h("a", { class: "btn btn-small btn-secondary", href: exportLink(e), onclick: (ev) => ev.stopPropagation() },
              t("common.export_clip"))
            : null));
      if (ctx.can("plate_history")) {
        tr.addEventListener("click", () => {
          results.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
          tr.classList.add("selected");
          showHistory(e.plate_text);
        });
      }
      return tr;
    };

    /** "Did you mean 1กข1234?" (a query typed with the English layout on), its plate a link that searches it. */
    const didYouMean = (data) => {
      if (!data.did_you_mean) return null;
      const link = h("a", { href: "#", id: "plate-did-you-mean", class: "plate-text", onclick: (ev) => {
        ev.preventDefault();
        q.value = data.did_you_mean;
        run();
      } }, data.did_you_mean);
      const [before, after = ""] = t("plates.did_you_mean").split("{plate}");
      return h("p", { class: "did-you-mean" }, before, link, after);
    };

    const run = async (append = false) => {
      const p = query();
      if (!p.q) {
        status.textContent = t("plates.need_query");
        return;
      }
      if (!append) { offset = 0; cursor = null; clear(detail); }
      if (append && lastQuery) Object.assign(p, lastQuery); // "More" pages the search shown, not the edited form
      lastQuery = p;
      if (controller) controller.abort();
      controller = new AbortController();
      status.textContent = t("common.loading");
      try {
        const data = await api(ROUTES.plateSearch, {
          signal: controller.signal,
          query: { q: p.q, mode: p.mode, cameras: p.cameras.length ? p.cameras : undefined,
            start: p.start ?? undefined, end: p.end ?? undefined, province: p.province || undefined,
            cursor: append && cursor ? cursor : undefined, limit: PAGE },
        });
        const hits = itemsOf(data);
        if (!append) firstTotal = data.total ?? null; // a cursor page counts from its cursor on: keep the first
        const total = firstTotal ?? hits.length + offset;
        const notes = Array.isArray(data.notes) && data.notes.length ? ` · ${data.notes.join("; ")}` : "";
        status.textContent = `${t("common.results", { n: total })}${data.truncated ? "+" : ""}${notes}`;
        let tbody = results.querySelector("tbody");
        if (!append || !tbody) {
          if (!hits.length) { clear(results, h("div", { class: "empty" }, t("plates.empty")), didYouMean(data)); return; }
          tbody = h("tbody");
          clear(results, h("div", { class: "table-wrap" }, h("table", { id: "plate-table" },
            h("thead", {}, h("tr", {}, [t("plates.col.crop"), t("plates.col.plate"), t("common.province"), t("common.camera"),
              t("common.time"), t("common.confidence"), ""].map((c) => h("th", {}, c)))), tbody)));
        }
        hits.forEach((hit) => tbody.append(row(hit)));
        results.querySelector(".more")?.remove();
        offset += hits.length;
        cursor = data.next_cursor ?? null;
        if (hits.length && cursor && data.has_more !== false) {
          results.append(h("button", { class: "btn btn-secondary more", type: "button", onclick: () => run(true) }, t("common.more")));
        }
      } catch (err) {
        if (err.name === "AbortError") return;
        status.textContent = "";
        clear(results, errorBox(err));
      }
    };

    const form = h("form", { class: "panel", id: "plate-form", onsubmit: (ev) => { ev.preventDefault(); run(); } },
      h("div", { class: "row" },
        h("div", { class: "grow" }, field("plates.query", q, t("plates.hint"))),
        field("plates.mode", mode),
        h("button", { class: "btn btn-primary", type: "submit", id: "plate-search" }, t("common.search"))),
      h("div", { class: "row" }, field("common.cameras", camSel), field("common.from", from), field("common.to", to),
        field("common.province", province)),
      ctx.can("plate_history")
        ? h("div", { class: "row" }, h("div", { class: "grow" }, field("common.reason", reason, t("plates.reason_hint"))))
        : null);
    clear(container, h("div", { class: "view-head" }, h("h1", {}, t("plates.title"))), form, status, results, detail);
    if (params.get("start")) from.value = toLocalInput(Number(params.get("start")));
    if (q.value) await run();
    if (params.get("history") && ctx.can("plate_history")) showHistory(params.get("history"));
    q.focus();
    const stopCameras = watchCameras((fresh) => refreshCameraSelect(camSel, fresh));
    return () => { stopCameras(); if (controller) controller.abort(); void lastQuery; };
  },
};
