// Building the page: every value from the API (task ids, commands, output) is hostile input, so it only ever
// becomes text (Node.append of a string, textContent, setAttribute), never markup: no innerHTML anywhere.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "value" || key === "checked" || key === "disabled") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// Links inside the console: hash routes whose segments are encoded, so an id cannot break out of them.
export function route(...segments) {
  return "#/" + segments.map((s) => encodeURIComponent(String(s))).join("/");
}

export function link(text, href, attrs = {}) {
  return h("a", { href, ...attrs }, text);
}

export const FINAL = new Set(["done", "failed", "timedout", "expired", "stopped"]);
const KNOWN = new Set(["enqueued", "pulling", "running", ...FINAL]);

export function badge(status, attrs = {}) {
  const known = KNOWN.has(status) ? status : "unknown";
  return h("span", { class: `badge badge-${known}`, ...attrs }, status || "none");
}

function pad(n) {
  return String(n).padStart(2, "0");
}

// Times are shown in UTC, as the API records them; the exact ISO string is in the tooltip.
export function time(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h("span", {}, iso);
  const text =
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return h("time", { datetime: iso, title: iso }, text);
}

export function epoch(seconds) {
  if (seconds === null || seconds === undefined) return h("span", { class: "muted" }, "—");
  return time(new Date(seconds * 1000).toISOString());
}

export function span(ms) {
  if (ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  if (s < 1) return `${ms} ms`;
  if (s < 60) return `${(ms / 1000).toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

// How long an execution ran, or has been running.
export function duration(execution) {
  const { startedAt, finishedAt, status } = execution;
  if (!startedAt) return h("span", { class: "muted" }, "—");
  const start = Date.parse(startedAt);
  if (finishedAt) return span(Date.parse(finishedAt) - start);
  if (FINAL.has(status)) return h("span", { class: "muted" }, "—");
  return h("span", { class: "running-for" }, `running for ${span(Date.now() - start)}`);
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

export function errorBox(error) {
  const status = error && error.status ? `${error.status}: ` : "";
  return h("div", { class: "error-box", role: "alert" }, status + (error && error.message ? error.message : String(error)));
}

export function facts(rows) {
  return h(
    "dl",
    { class: "facts" },
    rows.filter(Boolean).map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]),
  );
}

export function table(headers, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows),
  );
}

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, children);
}

export function code(text) {
  return h("code", {}, text);
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

// A modal question answered by a click (a <dialog>, not window.confirm: it can be styled and screenshotted).
export function confirmAction(title, message, confirmLabel = "Confirm") {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm" },
      h(
        "form",
        { method: "dialog" },
        h("h3", {}, title),
        h("p", {}, message),
        h(
          "div",
          { class: "buttons" },
          h("button", { value: "cancel", type: "submit", class: "secondary" }, "Cancel"),
          h("button", { value: "confirm", type: "submit", class: "danger" }, confirmLabel),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// The outcome of an action: what the API answered, success or error.
export function notice(area, kind, message, body) {
  replace(
    area,
    h(
      "div",
      { class: `notice notice-${kind}`, role: "status" },
      h("span", {}, message),
      body === undefined ? null : h("details", {}, h("summary", {}, "API answer"), json(body)),
    ),
  );
}
