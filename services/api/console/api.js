// Calls to the JSON API, from this browser tab. When the API wants credentials (401), the user signs in
// (basic: username + password; or a bearer token); the Authorization header is kept in sessionStorage, so
// only this tab has it and it is gone when the tab closes. The server never puts a secret in a page.
import { h } from "./dom.js";

// The API's base path: the console lives at <base>/ui/.
export const BASE = location.pathname.replace(/\/ui(\/.*)?$/, "");
const KEY = "fastlane.authorization";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function signedIn() {
  return sessionStorage.getItem(KEY) !== null;
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

// One sign-in at a time: requests that meet a 401 together wait for the same form.
let pendingSignIn = null;

function basic(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  return "Basic " + btoa(String.fromCharCode(...bytes));
}

function askCredentials(refused) {
  return new Promise((resolve, reject) => {
    const user = h("input", { name: "username", autocomplete: "username" });
    const password = h("input", { name: "password", type: "password", autocomplete: "current-password" });
    const token = h("input", { name: "token", type: "password", autocomplete: "off" });
    const dialog = h(
      "dialog",
      { class: "sign-in" },
      h(
        "form",
        { method: "dialog" },
        h("h3", {}, "Sign in to the fastlane API"),
        h(
          "p",
          { class: refused ? "error-text" : "muted" },
          refused ? "Those credentials were refused; try again." : "The API asks for credentials (401).",
        ),
        h("label", {}, "Username", user),
        h("label", {}, "Password", password),
        h("p", { class: "muted or" }, "or"),
        h("label", {}, "Bearer token", token),
        h("p", { class: "muted small" }, "Kept for this browser tab only (sessionStorage)."),
        h(
          "div",
          { class: "buttons" },
          h("button", { value: "cancel", type: "submit", class: "secondary" }, "Cancel"),
          h("button", { value: "sign-in", type: "submit" }, "Sign in"),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (dialog.returnValue !== "sign-in") return reject(new ApiError(401, "authentication required"));
      if (token.value.trim()) return resolve("Bearer " + token.value.trim());
      resolve(basic(user.value, password.value));
    });
    document.body.append(dialog);
    dialog.showModal();
    user.focus();
  });
}

async function signIn(sentWith) {
  if (pendingSignIn) return pendingSignIn;
  // Another request signed in since this one was sent: try again with what it got.
  if (sessionStorage.getItem(KEY) !== sentWith) return;
  pendingSignIn = askCredentials(sentWith !== null)
    .then((authorization) => {
      sessionStorage.setItem(KEY, authorization);
      document.dispatchEvent(new Event("fastlane:signed-in"));
    })
    .finally(() => {
      pendingSignIn = null;
    });
  return pendingSignIn;
}

// fetch() with this tab's credentials; a 401 asks for (new) credentials and sends the request again.
// `credentials: "omit"` also keeps the browser's own basic-auth prompt away: the form above is the only one.
export async function request(method, path, { body, signal, accept = "application/json" } = {}) {
  for (;;) {
    const authorization = sessionStorage.getItem(KEY);
    const headers = { Accept: accept };
    if (authorization) headers.Authorization = authorization;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      signal,
    });
    if (response.status !== 401) return response;
    await signIn(authorization);
  }
}

// A JSON call: the parsed answer, or an ApiError carrying the API's own message.
export async function api(method, path, options = {}) {
  const response = await request(method, path, options);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = (data && (data.error || data.detail)) || text || response.statusText;
    throw new ApiError(response.status, typeof message === "string" ? message : JSON.stringify(message), data);
  }
  return data;
}

export const get = (path, options) => api("GET", path, options);

// Runs `work` over `items` with at most `limit` calls in flight; results in the items' order.
export async function bounded(items, limit, work) {
  const results = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { ok: true, value: await work(items[i]) };
      } catch (error) {
        results[i] = { ok: false, error };
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export function path(...segments) {
  return "/" + segments.map((s) => encodeURIComponent(String(s))).join("/");
}
