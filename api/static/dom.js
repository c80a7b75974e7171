// Small DOM helpers shared by the views: element builder, formatting, toasts, dialogs, error boxes.

import { locale, t } from "./i18n.js";

/** Build an element: h("div", {class: "x", onclick: fn, dataset: {id: 1}}, "text", child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of `el`. */
export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Epoch seconds -> local date and time in the page language. */
export function fmtTime(epoch, { seconds = true, date = true, zone = date, ms = false } = {}) {
  if (epoch === undefined || epoch === null || Number.isNaN(Number(epoch))) return "–";
  const options = { hour: "2-digit", minute: "2-digit", hour12: false };
  if (seconds || ms) options.second = "2-digit";
  if (ms) options.fractionalSecondDigits = 3; // after the seconds, before the zone: "00:00:15.792 GMT+7"
  if (date) Object.assign(options, { day: "numeric", month: "short", year: "numeric" });
  if (zone) options.timeZoneName = "short"; // a full time says its zone ("GMT+7", "UTC"): evidence is unambiguous
  return new Intl.DateTimeFormat(locale(), options).format(new Date(Number(epoch) * 1000));
}

/** The time zone the page shows times in (this computer's), e.g. "Asia/Bangkok, GMT+7". */
export function zoneLabel() {
  const name = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  const part = new Intl.DateTimeFormat("en-GB", { timeZoneName: "shortOffset" }).formatToParts(new Date())
    .find((p) => p.type === "timeZoneName");
  const offset = part ? part.value : "";
  if (/^(Etc\/)?(UTC|GMT)$/.test(name) || !offset) return name || offset;
  return name ? `${name}, ${offset}` : offset;
}

/** Seconds ago as "12 s", "5 min", "3 h". */
export function fmtAgo(epoch) {
  if (!epoch) return "–";
  const seconds = Math.max(0, Date.now() / 1000 - Number(epoch));
  const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: "auto", style: "short" });
  if (seconds < 60) return rtf.format(-Math.round(seconds), "second");
  if (seconds < 3600) return rtf.format(-Math.round(seconds / 60), "minute");
  if (seconds < 86400) return rtf.format(-Math.round(seconds / 3600), "hour");
  return rtf.format(-Math.round(seconds / 86400), "day");
}

/** 0.873 -> "87%". */
export function pct(value) {
  if (value === undefined || value === null) return "–";
  return `${Math.round(Number(value) * 100)}%`;
}

/** Number in the page language with `digits` decimals. */
export function num(value, digits = 1) {
  if (value === undefined || value === null || Number.isNaN(Number(value))) return "–";
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits, minimumFractionDigits: digits })
    .format(Number(value));
}

/** Epoch seconds -> value for <input type="datetime-local"> (local time, seconds precision). */
export function toLocalInput(epoch) {
  const d = new Date(Number(epoch) * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Value of <input type="datetime-local"> -> epoch seconds, or null when empty. */
export function fromLocalInput(value) {
  if (!value) return null;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? null : ms / 1000;
}

/** Severity badge element. */
export function severityBadge(severity) {
  const sev = severity || "medium";
  return h("span", { class: `badge sev-${sev}`, dataset: { severity: sev } }, t(`severity.${sev}`));
}

/** Show a short message in the corner: kind is "info", "ok" or "error". */
export function toast(message, kind = "info", ms = 6000) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const el = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.append(el);
  while (box.children.length > 5) box.firstElementChild.remove();
  setTimeout(() => el.remove(), ms);
}

/** An error's message in the page's language, and the server's own words (if any) in small print under it. */
export function errorContent(err) {
  const message = err && err.message ? err.message : String(err);
  const server = err && err.serverText && err.serverText !== message ? err.serverText : "";
  return [message, server ? h("small", { class: "err-server", lang: "en" }, server) : null];
}

/** A visible error box (used inside views, so a failure never leaves a blank area). */
export function errorBox(err) {
  return h("div", { class: "error-box", role: "alert" }, errorContent(err));
}

/** Run an async action, showing its error as a toast; returns the result or undefined. */
export async function attempt(fn, { okMessage } = {}) {
  try {
    const result = await fn();
    if (okMessage) toast(okMessage, "ok", 3000);
    return result;
  } catch (err) {
    if (err && err.name === "AbortError") return undefined;
    toast(errorContent(err), "error");
    return undefined;
  }
}

/**
 * Open a modal dialog with `content` (elements) and buttons. Resolves with the value of the clicked button,
 * or null when cancelled. `onSubmit` (optional) may throw to keep the dialog open with the error shown.
 */
export function dialog(title, content, { submitLabel, onSubmit } = {}) {
  return new Promise((resolve) => {
    const errorArea = h("div", { class: "dialog-error", role: "alert" });
    const form = h("form", { method: "dialog", class: "dialog-body" }, h("h2", {}, title), content, errorArea,
      h("div", { class: "dialog-buttons" },
        h("button", { type: "button", class: "btn btn-secondary", value: "cancel", dataset: { role: "cancel" } },
          t("common.cancel")),
        h("button", { type: "submit", class: "btn btn-primary", value: "ok", dataset: { role: "submit" } },
          submitLabel || t("common.save"))));
    const dlg = h("dialog", { class: "dialog" }, form);
    document.body.append(dlg);
    const finish = (value) => { dlg.close(); dlg.remove(); resolve(value); };
    form.querySelector("[data-role=cancel]").addEventListener("click", () => finish(null));
    dlg.addEventListener("cancel", (event) => { event.preventDefault(); finish(null); });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const submit = form.querySelector("[data-role=submit]");
      submit.disabled = true;
      try {
        const value = onSubmit ? await onSubmit(form) : true;
        finish(value ?? true);
      } catch (err) {
        clear(errorArea, errorContent(err));
        submit.disabled = false;
      }
    });
    dlg.showModal();
    const first = form.querySelector("input, textarea, select");
    if (first) first.focus();
  });
}

/** A labelled form field. */
export function field(labelKey, input, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, t(labelKey)), input,
    hint ? h("span", { class: "field-hint" }, hint) : null);
}

/** <select> of severities. */
export function severitySelect(value = "medium", name = "severity") {
  return h("select", { name }, ["low", "medium", "high", "critical"].map((s) =>
    h("option", { value: s, selected: s === value }, t(`severity.${s}`))));
}
