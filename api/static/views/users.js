// Users (admin): list, create and remove accounts and set their role.

import { ROUTES, api } from "../api.js";
import { attempt, clear, dialog, errorBox, field, h, toast } from "../dom.js";
import { t } from "../i18n.js";
import { itemsOf } from "./common.js";

const ROLES = ["operator", "investigator", "admin"];

export const usersView = {
  id: "users",
  feature: "users",
  navKey: "nav.users",
  async render(container, ctx) {
    const box = h("div", { class: "panel", id: "user-list" });
    const load = async () => {
      try {
        const users = itemsOf(await api(ROUTES.users), "users");
        if (!users.length) { clear(box, h("div", { class: "empty" }, t("users.empty"))); return; }
        clear(box, h("div", { class: "table-wrap" }, h("table", {},
          h("thead", {}, h("tr", {}, [t("login.username"), t("users.role"), t("common.cameras"), ""].map((c) => h("th", {}, c)))),
          h("tbody", {}, users.map((u) => h("tr", { dataset: { username: u.username } },
            h("td", {}, u.username), h("td", {}, t(`role.${u.role}`)),
            h("td", {}, u.cameras ? u.cameras.join(", ") : t("common.all_cameras")),
            h("td", {}, u.username === ctx.user.username ? null : h("button", { class: "btn btn-small btn-danger", type: "button",
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
      const password = h("input", { name: "password", type: "password", required: true, autocomplete: "new-password" });
      const role = h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r }, t(`role.${r}`))));
      const ok = await dialog(t("users.new"), [field("login.username", username),
        field("login.password", password, t("users.password_hint")), field("users.role", role)], {
        onSubmit: () => api(ROUTES.users, { method: "POST", body: { username: username.value.trim(),
          password: password.value, role: role.value } }),
      });
      if (ok) { toast(t("ok.saved"), "ok", 3000); load(); }
    };
    clear(container, h("div", { class: "view-head" }, h("h1", {}, t("users.title")),
      h("button", { class: "btn btn-primary", type: "button", onclick: create }, `+ ${t("users.new")}`)), box);
    await load();
    return null;
  },
};
