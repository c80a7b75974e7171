// Watchlists (admin): plate and person lists; add, edit and remove entries (persons with photos); see matches.

import { ROUTES, api } from "../api.js";
import {
  attempt, clear, dialog, errorBox, field, fmtTime, fromLocalInput, h, pct, severityBadge, severitySelect, toLocalInput, toast,
} from "../dom.js";
import { t } from "../i18n.js";
import { authImg, cameraName, cropUrl, itemsOf, listCameras } from "./common.js";

function entryLabel(entry, persons) {
  if (entry.plate) return entry.plate;
  const person = persons.get(entry.person_id);
  return entry.name || (person && person.name) || entry.person_id;
}

/** Inputs shared by plate and person entries: reason, severity, expiry and cameras (none ticked = every camera). */
function entryFields(entry, cameras) {
  const reason = h("input", { name: "reason", value: entry?.reason || "", id: "wl-reason", maxlength: 500 });
  const severity = severitySelect(entry?.severity || "high");
  severity.id = "wl-severity";
  const expires = h("input", { type: "datetime-local", name: "expires_at", id: "wl-expires", step: 1,
    value: entry?.expires_at ? toLocalInput(entry.expires_at) : "" });
  const chosen = new Set(entry?.cameras || []);
  const boxes = cameras.map((c) => h("input", { type: "checkbox", name: "cameras", value: c.id, checked: chosen.has(c.id) }));
  const cameraBox = h("div", { class: "check-list", id: "wl-cameras" },
    cameras.map((c, i) => h("label", { class: "check" }, boxes[i], c.name)));
  const fields = [field("common.reason", reason), field("common.severity", severity),
    field("watchlists.expires", expires, t("watchlists.expires_hint")),
    field("common.cameras", cameraBox, t("watchlists.cameras_hint"))];
  const values = () => {
    const ticked = boxes.filter((b) => b.checked).map((b) => b.value);
    return { reason: reason.value.trim(), severity: severity.value, expires_at: fromLocalInput(expires.value),
      cameras: ticked.length ? ticked : null };
  };
  return { fields, values };
}

/** Only the fields whose value differs from the entry's (what a PATCH sends). */
function changed(entry, body) {
  const same = (a, b) => (typeof a === "number" && typeof b === "number" ? Math.abs(a - b) < 1e-6
    : JSON.stringify(a ?? null) === JSON.stringify(b ?? null));
  return Object.fromEntries(Object.entries(body).filter(([key, value]) => !same(entry[key], value)));
}

async function plateDialog(list, entry, cameras) {
  const plate = h("input", { name: "plate", required: true, value: entry?.plate || "", class: "plate-text", id: "wl-plate" });
  const province = h("input", { name: "province", value: entry?.province || "", id: "wl-province", maxlength: 64 });
  const fuzzy = h("input", { type: "checkbox", name: "fuzzy", checked: Boolean(entry?.fuzzy), id: "wl-fuzzy" });
  const distance = h("input", { type: "number", name: "max_distance", min: 0, max: 1.9, step: 0.1, id: "wl-distance",
    value: entry?.max_distance ?? 1.0 });
  const common = entryFields(entry, cameras);
  return dialog(entry ? t("watchlists.edit_plate") : t("watchlists.add_plate"), [
    field("watchlists.plate", plate), field("watchlists.province", province, t("watchlists.province_hint")),
    h("label", { class: "check field" }, fuzzy, t("watchlists.fuzzy")),
    field("watchlists.max_distance", distance), ...common.fields], {
    onSubmit: async () => {
      const body = { plate: plate.value.trim(), province: province.value.trim() || null, fuzzy: fuzzy.checked,
        max_distance: Number(distance.value), ...common.values() };
      if (!entry) return api(ROUTES.watchlistPlates(list.id), { method: "POST", body });
      // The entry is changed in place (same id, so its past matches stay linked to it).
      const patch = changed(entry, body);
      // the expiry input has whole seconds: an unchanged expiry with a fraction is not a change
      if (entry.expires_at && body.expires_at && Math.abs(entry.expires_at - body.expires_at) < 1) delete patch.expires_at;
      if (patch.plate && patch.plate.replace(/\s/g, "") === entry.plate) delete patch.plate;
      // a new plate text without a province unties the entry from its province: send the one still shown
      if (patch.plate && body.province && !("province" in patch)) patch.province = body.province;
      if (!Object.keys(patch).length) return entry;
      return api(ROUTES.watchlistEntry(list.id, entry.entry_id), { method: "PATCH", body: patch });
    },
  });
}

async function personDialog(list, entry, persons, cameras) {
  const person = entry ? persons.get(entry.person_id) : null;
  const name = h("input", { name: "name", required: true, value: person?.name || entry?.name || "", id: "wl-person-name" });
  const photos = h("input", { type: "file", name: "photos", multiple: true, accept: "image/jpeg,image/png", id: "wl-photos",
    required: !entry });
  const threshold = h("input", { type: "number", name: "threshold", min: 0.2, max: 0.95, step: 0.01,
    value: entry?.threshold ?? 0.45 });
  const common = entryFields(entry, cameras);
  return dialog(entry ? t("watchlists.edit_person") : t("watchlists.add_person"), [
    field("common.name", name), field("watchlists.photos", photos), field("watchlists.threshold", threshold),
    ...common.fields], {
    onSubmit: async () => {
      let personId = entry?.person_id;
      const photoForm = () => {
        const form = new FormData();
        [...photos.files].forEach((file) => form.append("photos", file, file.name));
        return form;
      };
      if (!personId) {
        const form = photoForm();
        form.append("name", name.value.trim());
        personId = (await api(ROUTES.persons, { method: "POST", body: form })).id;
      } else {
        if (name.value.trim() !== person?.name) {
          await api(ROUTES.person(personId), { method: "PATCH", body: { name: name.value.trim() } });
        }
        if (photos.files.length) await api(ROUTES.personPhotos(personId), { method: "PUT", body: photoForm() });
      }
      const body = { threshold: Number(threshold.value), ...common.values() };
      if (!entry) return api(ROUTES.watchlistPersons(list.id), { method: "POST", body: { person_id: personId, ...body } });
      const patch = changed(entry, body);
      if (!Object.keys(patch).length) return entry;
      return api(ROUTES.watchlistEntry(list.id, entry.entry_id), { method: "PATCH", body: patch });
    },
  });
}

async function showMatches(list, entry, label) {
  const box = h("div", { id: "wl-matches" }, h("p", { class: "muted" }, t("common.loading")));
  const pending = dialog(`${t("watchlists.matches")}: ${label}`, box, { submitLabel: t("common.close") });
  try {
    // The server reads a bounded number of the newest alerts for this filter and says whether it read them all.
    const response = await api(ROUTES.alerts, { query: { entry_id: entry.entry_id, watchlist_id: list.id, limit: 200 },
      raw: true });
    const rows = (await response.json()).map((r) => ({ ...r.alert, ack: r.ack }))
      .sort((a, b) => b.created_at - a.created_at);
    const complete = response.headers.get("X-Alerts-Scan-Complete") !== "false";
    clear(box, rows.length ? h("table", { class: "matches" }, h("tbody", {}, rows.map((a) => h("tr", { dataset: { alertId: a.alert_id } },
      h("td", {}, authImg(cropUrl(a), { class: "crop-thumb" })), h("td", {}, a.label || ""),
      h("td", {}, cameraName(a.camera_id)), h("td", {}, fmtTime(a.created_at)), h("td", {}, pct(a.score)),
      h("td", {}, a.ack ? `✔ ${a.ack.by}` : "")))))
      : h("div", { class: "empty" }, t("watchlists.no_matches")),
    complete ? null : h("p", { class: "muted" }, t("watchlists.matches_partial", {
      n: response.headers.get("X-Alerts-Scanned") || "?" })));
  } catch (err) {
    clear(box, errorBox(err));
  }
  await pending;
}

/** Where a plate list's CSV import and export live. */
const importUrl = (list) => `${ROUTES.watchlistPlates(list.id)}/import`;
const exportUrl = (list) => `${ROUTES.watchlistPlates(list.id)}/export`;

/** The counts and first row errors of an import (or its dry run). */
function importSummary(result, key) {
  const rows = (result.errors || []).map((e) => h("tr", {}, h("td", {}, String(e.line)), h("td", {}, e.column || "–"),
    h("td", {}, e.reason)));
  return h("div", { id: "wl-import-summary" },
    h("p", { id: "wl-import-counts" }, t(key, result)),
    rows.length ? h("div", { class: "table-wrap" }, h("table", { id: "wl-import-errors" },
      h("thead", {}, h("tr", {}, [t("watchlists.import_line"), t("watchlists.import_column"), t("watchlists.import_problem")]
        .map((c) => h("th", {}, c)))), h("tbody", {}, rows))) : null,
    result.errors_truncated ? h("p", { class: "muted" }, t("watchlists.import_more")) : null);
}

/** Import a CSV hot list: pick the file and the modes, preview (a dry run) and confirm. Resolves truthy once
 * something was written. */
async function importDialog(list) {
  const file = h("input", { type: "file", name: "file", accept: ".csv,text/csv", required: true, id: "wl-import-file" });
  const duplicate = h("select", { name: "on_duplicate", id: "wl-import-duplicate" },
    ["skip", "update"].map((m) => h("option", { value: m }, t(`watchlists.on_duplicate.${m}`))));
  const skipInvalid = h("input", { type: "checkbox", name: "skip_invalid", id: "wl-import-skip-invalid" });
  const send = (dryRun, skip) => {
    const form = new FormData();
    form.append("file", file.files[0], file.files[0].name);
    // the preview always counts every row (invalid ones skipped), so that it can show them all
    return api(importUrl(list), { method: "POST", body: form, query: { dry_run: dryRun, on_duplicate: duplicate.value,
      invalid: skip ? "skip" : "refuse" } });
  };
  const preview = await dialog(t("watchlists.import"), [field("watchlists.import_file", file, t("watchlists.import_hint")),
    field("watchlists.on_duplicate", duplicate), h("label", { class: "check field" }, skipInvalid, t("watchlists.skip_invalid"))],
  { submitLabel: t("watchlists.preview"), onSubmit: () => send(true, true) });
  if (!preview) return null;
  const warning = preview.invalid && !skipInvalid.checked
    ? h("p", { class: "dialog-error", id: "wl-import-warning" }, t("watchlists.import_refused")) : null;
  const done = await dialog(t("watchlists.import_preview", { name: file.files[0].name }),
    [importSummary(preview, "watchlists.import_counts"), warning],
    { submitLabel: t("watchlists.import_confirm"), onSubmit: () => send(false, skipInvalid.checked) });
  if (done) toast(t("watchlists.import_done", done), "ok", 6000);
  return done;
}

/** Download the plate list as CSV (fetched with the session's credentials, then saved). */
async function exportCsv(list) {
  await attempt(async () => {
    const blob = await (await api(exportUrl(list), { raw: true })).blob();
    const link = h("a", { href: URL.createObjectURL(blob), download: `watchlist-${list.name || list.id}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  });
}

/** Entries stored before the flag existed have no `enabled`: they are active. */
const isEnabled = (entry) => entry.enabled !== false;

function expiryText(entry) {
  if (!entry.expires_at) return t("watchlists.never");
  return entry.expires_at * 1000 < Date.now() ? `${t("watchlists.expired")} ${fmtTime(entry.expires_at)}`
    : fmtTime(entry.expires_at);
}

export const watchlistsView = {
  id: "watchlists",
  feature: "watchlists",
  navKey: "nav.watchlists",
  async render(container, ctx, { args }) {
    const side = h("div", { class: "panel" });
    const main = h("div", { class: "panel", id: "watchlist-detail" });
    clear(container, h("div", { class: "view-head" }, h("h1", {}, t("watchlists.title")),
      h("button", { class: "btn btn-primary", type: "button", id: "wl-new", onclick: () => createList() }, `+ ${t("watchlists.new")}`)),
    h("div", { class: "split" }, side, main));
    let lists = [];
    let persons = new Map();
    let cameras = [];
    let selected = args[0] || null;

    const loadPersons = async () => {
      try {
        persons = new Map(itemsOf(await api(ROUTES.persons), "persons").map((p) => [p.id || p.person_id, p]));
      } catch { persons = new Map(); }
    };

    const paintSide = () => {
      if (!lists.length) { clear(side, h("div", { class: "empty" }, t("watchlists.empty"))); return; }
      clear(side, h("ul", { class: "list-nav", id: "watchlist-list" }, lists.map((w) => h("li", {},
        h("button", { type: "button", class: w.id === selected ? "active" : "", dataset: { watchlistId: w.id },
          onclick: () => { selected = w.id; history.replaceState(null, "", `#/watchlists/${w.id}`); paintSide(); paintMain(); } },
        h("strong", {}, w.name), h("div", { class: "muted" }, t(`watchlists.kind.${w.kind}`)))))));
    };

    const paintMain = async () => {
      const list = lists.find((w) => w.id === selected);
      if (!list) { clear(main, h("div", { class: "empty" }, t("watchlists.pick"))); return; }
      clear(main, h("p", { class: "muted" }, t("common.loading")));
      try {
        const entries = itemsOf(await api(ROUTES.watchlistEntries(list.id)), "entries");
        const add = list.kind === "plate"
          ? () => plateDialog(list, null, cameras).then((ok) => ok && (toast(t("ok.saved"), "ok", 3000), paintMain()))
          : () => personDialog(list, null, persons, cameras).then(async (ok) => ok && (toast(t("ok.saved"), "ok", 3000), await loadPersons(), paintMain()));
        const edit = (entry) => (list.kind === "plate" ? plateDialog(list, entry, cameras) : personDialog(list, entry, persons, cameras))
          .then(async (ok) => { if (ok) { toast(t("ok.saved"), "ok", 3000); await loadPersons(); paintMain(); } });
        // Pause (kept and listed, never alerts) or resume an entry in place.
        const toggle = async (entry) => {
          const done = await attempt(() => api(ROUTES.watchlistEntry(list.id, entry.entry_id), { method: "PATCH",
            body: { enabled: !isEnabled(entry) } }).then(() => true), { okMessage: t("ok.saved") });
          if (done) paintMain();
        };
        const remove = async (entry) => {
          if (!window.confirm(t("common.confirm_delete", { name: entryLabel(entry, persons) }))) return;
          const done = await attempt(() => api(ROUTES.watchlistEntry(list.id, entry.entry_id), { method: "DELETE" }).then(() => true),
            { okMessage: t("ok.removed") });
          if (done) paintMain();
        };
        clear(main,
          h("div", { class: "row" }, h("h2", {}, list.name), h("span", { class: "muted" }, t(`watchlists.kind.${list.kind}`)),
            h("button", { class: "btn btn-primary btn-small", type: "button", id: "wl-add", onclick: add },
              `+ ${list.kind === "plate" ? t("watchlists.add_plate") : t("watchlists.add_person")}`),
            list.kind === "plate" ? h("button", { class: "btn btn-secondary btn-small", type: "button", id: "wl-import",
              onclick: () => importDialog(list).then((ok) => ok && paintMain()) }, t("watchlists.import")) : null,
            list.kind === "plate" ? h("a", { class: "btn btn-secondary btn-small", href: exportUrl(list), id: "wl-export",
              onclick: (event) => { event.preventDefault(); exportCsv(list); } }, t("watchlists.export")) : null,
            h("button", { class: "btn btn-danger btn-small", type: "button", id: "wl-delete", onclick: async () => {
              if (!window.confirm(t("common.confirm_delete", { name: list.name }))) return;
              const done = await attempt(() => api(ROUTES.watchlist(list.id), { method: "DELETE" }).then(() => true),
                { okMessage: t("ok.removed") });
              if (done) { selected = null; await load(); }
            } }, t("common.delete"))),
          list.description ? h("p", { class: "muted" }, list.description) : null,
          entries.length ? h("div", { class: "table-wrap" }, h("table", { id: "wl-entries" },
            h("thead", {}, h("tr", {}, [t("watchlists.entries"), t("common.reason"), t("common.severity"),
              t("watchlists.expires"), t("common.cameras"), t("watchlists.state"), ""].map((c) => h("th", {}, c)))),
            h("tbody", {}, entries.map((entry) => h("tr", { dataset: { entryId: entry.entry_id, enabled: String(isEnabled(entry)) },
              class: isEnabled(entry) ? "" : "muted" },
              h("td", { class: list.kind === "plate" ? "plate-text" : "" }, entryLabel(entry, persons),
                entry.province ? h("span", { class: "muted entry-province" }, ` ${entry.province}`) : null,
                entry.fuzzy ? h("span", { class: "muted" }, " ≈") : null),
              h("td", { class: "entry-reason" }, entry.reason || "–"), h("td", {}, severityBadge(entry.severity)),
              h("td", { class: "entry-expires" }, expiryText(entry)),
              h("td", { class: "entry-cameras" }, entry.cameras ? entry.cameras.map(cameraName).join(", ") : t("common.all_cameras")),
              h("td", { class: "entry-state" }, isEnabled(entry) ? t("watchlists.active") : t("watchlists.paused")),
              h("td", { class: "row" },
                h("button", { class: "btn btn-small btn-secondary", type: "button", dataset: { action: "toggle" },
                  onclick: () => toggle(entry) }, isEnabled(entry) ? t("watchlists.pause") : t("watchlists.resume")),
                h("button", { class: "btn btn-small btn-secondary", type: "button", dataset: { action: "matches" },
                  onclick: () => showMatches(list, entry, entryLabel(entry, persons)) }, t("watchlists.matches")),
                h("button", { class: "btn btn-small btn-secondary", type: "button", dataset: { action: "edit" },
                  onclick: () => edit(entry) }, t("common.edit")),
                h("button", { class: "btn btn-small btn-danger", type: "button", onclick: () => remove(entry) }, t("common.delete"))))))))
            : h("div", { class: "empty" }, t("watchlists.entries_empty")));
      } catch (err) {
        clear(main, errorBox(err));
      }
    };

    const load = async () => {
      try {
        lists = itemsOf(await api(ROUTES.watchlists), "watchlists");
      } catch (err) {
        clear(side, errorBox(err));
        return;
      }
      if (!selected && lists.length) selected = lists[0].id;
      paintSide();
      await paintMain();
    };

    const createList = async () => {
      const name = h("input", { name: "name", required: true, id: "wl-name" });
      const kind = h("select", { name: "kind", id: "wl-kind" }, ["plate", "face"].map((k) => h("option", { value: k }, t(`watchlists.kind.${k}`))));
      const description = h("input", { name: "description" });
      const created = await dialog(t("watchlists.new"), [field("common.name", name), field("watchlists.kind", kind),
        field("watchlists.description", description)], {
        onSubmit: () => api(ROUTES.watchlists, { method: "POST",
          body: { name: name.value.trim(), kind: kind.value, description: description.value.trim() } }),
      });
      if (created) { selected = created.id || selected; toast(t("ok.saved"), "ok", 3000); await load(); }
    };

    try { cameras = await listCameras(); } catch { cameras = []; }
    await loadPersons();
    await load();
    return null;
  },
};
