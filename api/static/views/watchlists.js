// Watchlists (admin): plate and person lists; add, edit and remove entries (persons with photos); see matches.

import { ROUTES, api } from "../api.js";
import { attempt, clear, dialog, errorBox, field, fmtTime, h, pct, severityBadge, severitySelect, toast } from "../dom.js";
import { t } from "../i18n.js";
import { authImg, cameraName, cropUrl, itemsOf } from "./common.js";

function entryLabel(entry, persons) {
  if (entry.plate) return entry.plate;
  const person = persons.get(entry.person_id);
  return entry.name || (person && person.name) || entry.person_id;
}

async function plateDialog(list, entry) {
  const plate = h("input", { name: "plate", required: true, value: entry?.plate || "", class: "plate-text", id: "wl-plate" });
  const fuzzy = h("input", { type: "checkbox", name: "fuzzy", checked: Boolean(entry?.fuzzy) });
  const reason = h("input", { name: "reason", value: entry?.reason || "", id: "wl-reason" });
  const severity = severitySelect(entry?.severity || "high");
  severity.id = "wl-severity";
  return dialog(entry ? t("common.edit") : t("watchlists.add_plate"), [
    field("watchlists.plate", plate), h("label", { class: "check field" }, fuzzy, t("watchlists.fuzzy")),
    field("common.reason", reason), field("common.severity", severity)], {
    onSubmit: async () => {
      const body = { plate: plate.value.trim(), fuzzy: fuzzy.checked, reason: reason.value.trim(), severity: severity.value };
      // The API has no entry update: an edit adds the new entry, then removes the old one (never the reverse,
      // so a failure cannot drop the plate from the list).
      const saved = await api(ROUTES.watchlistPlates(list.id), { method: "POST", body });
      if (entry && saved.entry_id !== entry.entry_id) {
        await api(ROUTES.watchlistEntry(list.id, entry.entry_id), { method: "DELETE" });
      }
      return saved;
    },
  });
}

async function personDialog(list, entry, persons) {
  const person = entry ? persons.get(entry.person_id) : null;
  const name = h("input", { name: "name", required: true, value: person?.name || entry?.name || "", id: "wl-person-name" });
  const photos = h("input", { type: "file", name: "photos", multiple: true, accept: "image/jpeg,image/png", id: "wl-photos",
    required: !entry });
  const reason = h("input", { name: "reason", value: entry?.reason || "" });
  const severity = severitySelect(entry?.severity || "high");
  const threshold = h("input", { type: "number", name: "threshold", min: 0.2, max: 0.95, step: 0.01,
    value: entry?.threshold ?? 0.45 });
  return dialog(entry ? t("common.edit") : t("watchlists.add_person"), [
    field("common.name", name), field("watchlists.photos", photos), field("common.reason", reason),
    field("common.severity", severity), field("watchlists.threshold", threshold)], {
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
      const body = { person_id: personId, reason: reason.value.trim(), severity: severity.value,
        threshold: Number(threshold.value) };
      // A person entry's id is the person id, so posting it again replaces the entry in place.
      return api(ROUTES.watchlistPersons(list.id), { method: "POST", body });
    },
  });
}

async function showMatches(entry, label) {
  const box = h("div", {}, h("p", { class: "muted" }, t("common.loading")));
  const pending = dialog(`${t("watchlists.matches")}: ${label}`, box, { submitLabel: t("common.close") });
  try {
    // GET /api/alerts has no entry filter yet: read the latest 1000 alerts and keep this entry's.
    const data = await api(ROUTES.alerts, { query: { limit: 1000 } });
    const rows = itemsOf(data, "alerts").map((r) => r.alert || r).filter((a) => a.entry_id === entry.entry_id)
      .sort((a, b) => b.created_at - a.created_at);
    clear(box, rows.length ? h("table", { class: "matches" }, h("tbody", {}, rows.map((a) => h("tr", {},
      h("td", {}, authImg(cropUrl(a), { class: "crop-thumb" })), h("td", {}, cameraName(a.camera_id)),
      h("td", {}, fmtTime(a.created_at)), h("td", {}, pct(a.score))))))
      : h("div", { class: "empty" }, t("watchlists.no_matches")));
  } catch (err) {
    clear(box, errorBox(err));
  }
  await pending;
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
          ? () => plateDialog(list).then((ok) => ok && (toast(t("ok.saved"), "ok", 3000), paintMain()))
          : () => personDialog(list, null, persons).then(async (ok) => ok && (toast(t("ok.saved"), "ok", 3000), await loadPersons(), paintMain()));
        const edit = (entry) => (list.kind === "plate" ? plateDialog(list, entry) : personDialog(list, entry, persons))
          .then(async (ok) => { if (ok) { toast(t("ok.saved"), "ok", 3000); await loadPersons(); paintMain(); } });
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
            h("button", { class: "btn btn-danger btn-small", type: "button", id: "wl-delete", onclick: async () => {
              if (!window.confirm(t("common.confirm_delete", { name: list.name }))) return;
              const done = await attempt(() => api(ROUTES.watchlist(list.id), { method: "DELETE" }).then(() => true),
                { okMessage: t("ok.removed") });
              if (done) { selected = null; await load(); }
            } }, t("common.delete"))),
          list.description ? h("p", { class: "muted" }, list.description) : null,
          entries.length ? h("div", { class: "table-wrap" }, h("table", { id: "wl-entries" },
            h("thead", {}, h("tr", {}, [t("watchlists.entries"), t("common.reason"), t("common.severity"), ""].map((c) => h("th", {}, c)))),
            h("tbody", {}, entries.map((entry) => h("tr", { dataset: { entryId: entry.entry_id } },
              h("td", { class: list.kind === "plate" ? "plate-text" : "" }, entryLabel(entry, persons),
                entry.fuzzy ? h("span", { class: "muted" }, " ≈") : null),
              h("td", {}, entry.reason || "–"), h("td", {}, severityBadge(entry.severity)),
              h("td", { class: "row" },
                h("button", { class: "btn btn-small btn-secondary", type: "button",
                  onclick: () => showMatches(entry, entryLabel(entry, persons)) }, t("watchlists.matches")),
                h("button", { class: "btn btn-small btn-secondary", type: "button", onclick: () => edit(entry) }, t("common.edit")),
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

    await loadPersons();
    await load();
    return null;
  },
};
