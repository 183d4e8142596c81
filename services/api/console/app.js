// The console's entry point: the hash router, the header (navigation, health, sign-out) and the page lifecycle
// (each page gets a context whose timers and requests stop when the reader goes elsewhere).
import { BASE, signedIn, signOut } from "./api.js";
import { errorBox, h, replace } from "./dom.js";
import { executionPage } from "./executions.js";
import { jobPage } from "./jobs.js";
import { newJobPage } from "./newjob.js";
import { statusPage } from "./status.js";
import { searchPage, taskPage, tasksPage } from "./tasks.js";

const ROUTES = [
  [/^\/?$/, tasksPage, "tasks"],
  [/^\/tasks$/, tasksPage, "tasks"],
  [/^\/search$/, searchPage, "tasks"],
  [/^\/tasks\/([^/]+)$/, taskPage, "tasks"],
  [/^\/tasks\/([^/]+)\/jobs\/([^/]+)$/, jobPage, "tasks"],
  [/^\/tasks\/([^/]+)\/jobs\/([^/]+)\/executions\/([^/]+)$/, executionPage, "tasks"],
  [/^\/status$/, statusPage, "status"],
  [/^\/new$/, newJobPage, "new"],
];

const main = document.getElementById("main");
let current = null;

function context(params) {
  const controller = new AbortController();
  const signal = controller.signal;
  const timers = [];
  return {
    params,
    signal,
    stop: () => {
      controller.abort();
      timers.forEach(clearInterval);
    },
    render: (...children) => {
      if (!signal.aborted) replace(main, ...children);
    },
    // Calls `work` every `ms` while the page is shown; a call still running is not overlapped.
    every: (ms, work) => {
      let busy = false;
      const timer = setInterval(async () => {
        if (busy || signal.aborted) return;
        busy = true;
        try {
          await work();
        } catch (error) {
          if (!signal.aborted) console.warn("refresh failed", error);
        } finally {
          busy = false;
        }
      }, ms);
      timers.push(timer);
    },
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
}

async function show() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [routePath, query = ""] = hash.split("?", 2);
  current?.stop();
  const ctx = context(new URLSearchParams(query));
  current = ctx;
  for (const [pattern, page, section] of ROUTES) {
    const match = routePath.match(pattern);
    if (!match) continue;
    document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === section));
    const args = match.slice(1).map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
    replace(main, h("p", { class: "muted" }, "Loading…"));
    try {
      await page(ctx, ...args);
    } catch (error) {
      if (!ctx.signal.aborted) replace(main, errorBox(error));
    }
    document.title = `${document.querySelector("main h1")?.textContent || "fastlane"} · fastlane console`;
    updateSignOut();
    return;
  }
  replace(main, errorBox(new Error(`no page at ${routePath}`)));
}

async function checkHealth() {
  const dot = document.getElementById("health");
  try {
    const response = await fetch(`${BASE}/healthcheck`, { cache: "no-store", credentials: "omit" });
    const body = await response.json();
    dot.className = response.ok ? "health ok" : "health bad";
    dot.title = response.ok ? "API healthy: Kafka and Cassandra answer" : `API unhealthy: ${body.errors.join("; ")}`;
  } catch (error) {
    dot.className = "health bad";
    dot.title = `API unreachable: ${error.message}`;
  }
}

function updateSignOut() {
  document.getElementById("sign-out").hidden = !signedIn();
}

document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  updateSignOut();
  show();
});
document.addEventListener("fastlane:signed-in", updateSignOut);
window.addEventListener("hashchange", show);
show();
checkHealth();
setInterval(checkHealth, 15000);
