// Users (admin): list, create, disable and remove accounts; change a user's role and the cameras they may see; the audit
// trail (newest first), with the reason or case number given for plate histories and face searches.

import { ROUTES, api } from "../api.js";
import { attempt, clear, dialog, errorBox, field, fmtTime, h, toast } from "../dom.js";
import { t } from "../i18n.js";
import { cameraName, itemsOf, listCameras } from "./common.js";

const ROLES = ["operator", "investigator", "admin"];

/** Role select and camera choice ("all cameras" or the ticked ones) of a user; `values()` gives the API fields. */
function accessFields(user, cameras) {
  const role = h("select", { name: "role", id: "user-role" }, ROLES.map((r) =>
    h("option", { value: r, selected: user?.role === r }, t(`role.${r}`))));
  const all = h("input", { type: "checkbox", name: "all_cameras", id: "user-all-cameras", checked: !user?.cameras });
  const chosen = new Set(user?.cameras || []);
  const boxes = cameras.map((c) => h("input", { type: "checkbox", name: "cameras", value: c.id, checked: chosen.has(c.id),
    disabled: !user?.cameras }));
  all.addEventListener("change", () => boxes.forEach((b) => { b.disabled = all.checked; }));
  const list = h("div", { class: "check-list", id: "user-cameras" },
    cameras.map((c, i) => h("label", { class: "check" }, boxes[i], c.name)));
  return {
    fields: [field("users.role", role), h("label", { class: "check field" }, all, t("common.all_cameras")),
      field("common.cameras", list, t("users.cameras_hint"))],
    values: () => (all.checked ? { role: role.value, all_cameras: true }
      : { role: role.value, cameras: boxes.filter((b) => b.checked).map((b) => b.value) }),
  };
}

/** The latest audit records as a table (reason/case shown in its own column). */
async function loadAudit(box) {
  try {
    const rows = await api(ROUTES.audit, { query: { order: "newest", limit: 200 } });
    if (!rows.length) { clear(box, h("div", { class: "empty" }, t("audit.empty"))); return; }
    const details = (p) => Object.entries(p || {}).filter(([k, v]) => k !== "reason" && v !== null && v !== "")
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" · ");
    clear(box, h("h2", {}, t("audit.title")), h("div", { class: "table-wrap" }, h("table", { id: "audit-table" },
      h("thead", {}, h("tr", {}, ["time", "user", "action", "address", "status", "reason", "results", "details"]
        .map((c) => h("th", {}, t(`audit.col.${c}`))))),
      h("tbody", {}, rows.map((a) => h("tr", { dataset: { action: a.action } },
        h("td", {}, fmtTime(a.at)), h("td", {}, a.user), h("td", {}, a.action), h("td", {}, a.ip || ""),
        h("td", {}, a.status ?? ""), h("td", { class: "audit-reason" }, (a.params && a.params.reason) || ""),
        h("td", {}, a.results ?? ""), h("td", { class: "muted" }, details(a.params))))))));
  } catch (err) {
    clear(box, errorBox(err));
  }
}

export const usersView = {
  id: "users",
  feature: "users",
  navKey: "nav.users",
  async render(container, ctx) {
    const box = h("div", { class: "panel", id: "user-list" });
    let cameras = [];
    try { cameras = await listCameras(); } catch { cameras = []; }
    const edit = async (u) => {
      const access = accessFields(u, cameras);
      const ok = await dialog(`${t("users.edit")}: ${u.username}`, access.fields, {
        onSubmit: () => api(ROUTES.user(u.username), { method: "PATCH", body: access.values() }),
      });
      if (ok) { toast(t("ok.saved"), "ok", 3000); load(); }
    };
    const load = async () => {
      try {
        const users = itemsOf(await api(ROUTES.users), "users");
        if (!users.length) { clear(box, h("div", { class: "empty" }, t("users.empty"))); return; }
        clear(box, h("div", { class: "table-wrap" }, h("table", {},
          h("thead", {}, h("tr", {}, [t("login.username"), t("users.role"), t("common.cameras"), ""].map((c) => h("th", {}, c)))),
          h("tbody", {}, users.map((u) => h("tr", { dataset: { username: u.username, disabled: u.disabled ? "1" : "0" } },
            h("td", {}, u.username, u.disabled ? h("span", { class: "badge user-disabled" }, t("users.disabled")) : null),
            h("td", {}, t(`role.${u.role}`)),
            h("td", { class: "user-cameras" }, u.cameras
              ? (u.cameras.length ? u.cameras.map(cameraName).join(", ") : t("users.no_cameras")) : t("common.all_cameras")),
            h("td", { class: "row" },
              h("button", { class: "btn btn-small btn-secondary", type: "button", dataset: { action: "edit" },
                onclick: () => edit(u) }, t("common.edit")),
              u.username === ctx.user.username ? null : h("button", { class: "btn btn-small btn-secondary", type: "button",
                dataset: { action: u.disabled ? "enable" : "disable" },
                onclick: async () => {
                  if (await attempt(() => api(ROUTES.user(u.username), { method: "PATCH", body: { disabled: !u.disabled } })
                    .then(() => true), { okMessage: t("ok.saved") })) load();
                } }, t(u.disabled ? "users.enable" : "users.disable")),
              u.username === ctx.user.username ? null : h("button", { class: "btn btn-small btn-danger", type: "button",
                onclick: async () => {
                  if (!window.confirm(t("common.confirm_delete", { name: u.username }))) return;
                  if (await attempt(() => api(ROUTES.user(u.username), { method: "DELETE" }).then(() => true),
                    { okMessage: t("ok.removed") })) load();
                } }, t("common.delete")))))))));
      } catch (err) {
        clear(box, errorBox(err));
      }
    };
    const create = async () => {
      const username = h("input", { name: "username", required: true, autocomplete: "off" });
      const password = h("input", { name: "password", type: "password", required: true, minlength: 12,
        autocomplete: "new-password" });
      const access = accessFields(null, cameras);
      const ok = await dialog(t("users.new"), [field("login.username", username),
        field("login.password", password, t("users.password_hint")), ...access.fields], {
        onSubmit: () => {
          const { role, cameras: limit } = access.values();
          return api(ROUTES.users, { method: "POST", body: { username: username.value.trim(), password: password.value,
            role, cameras: limit ?? null } });
        },
      });
      if (ok) { toast(t("ok.saved"), "ok", 3000); load(); }
    };
    const audit = h("div", { class: "panel", id: "audit-list" });
    clear(container, h("div", { class: "view-head" }, h("h1", {}, t("users.title")),
      h("button", { class: "btn btn-primary", type: "button", id: "user-new", onclick: create }, `+ ${t("users.new")}`)), box,
    audit);
    await load();
    await loadAudit(audit);
    return null;
  },
};
