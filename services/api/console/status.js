// The farm: Docker hosts (availability, circuit, blacklist and its action), running containers, counts, queues.
import { api, get } from "./api.js";
import { card, code, confirmAction, empty, h, link, notice, replace, route, table, time } from "./dom.js";

function hostName(host) {
  return host.port === null || host.port === undefined ? host.host : `${host.host}:${host.port}`;
}

function yesNo(value, good) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "—");
  return h("span", { class: `flag ${value === good ? "flag-good" : "flag-bad"}` }, value ? "yes" : "no");
}

export async function statusPage(ctx) {
  const messages = h("div", { class: "messages" });
  const body = h("div");

  async function setBlacklisted(name, blacklisted) {
    const question = blacklisted
      ? `Take ${name} out of rotation? It gets no new executions; running ones finish.`
      : `Put ${name} back into rotation?`;
    const label = blacklisted ? "Blacklist" : "Un-blacklist";
    if (!(await confirmAction(`${label} ${name}`, question, label))) return;
    try {
      const answer = await api(blacklisted ? "POST" : "DELETE", "/docker-executor/blacklist", { body: { host: name } });
      notice(messages, "ok", `${name} ${blacklisted ? "blacklisted" : "back in rotation"}.`, answer);
      await refresh();
    } catch (error) {
      notice(messages, "error", `${label} failed: ${error.status ? `${error.status} ` : ""}${error.message}`, error.body ?? undefined);
    }
  }

  function hosts(list) {
    if (!list.length) return empty("No runner has reported a Docker host yet.");
    return table(
      ["Host", "Farm", "Available", "Blacklisted", "Circuit", "Running", "Last seen", "Error", ""],
      list.map((host) => {
        const name = hostName(host);
        return h(
          "tr",
          { "data-host": name },
          h("td", {}, code(name)),
          h("td", {}, host.farm ?? "—"),
          h("td", {}, yesNo(host.available, true)),
          h("td", {}, yesNo(host.blacklisted, false)),
          h("td", {}, host.circuit ? h("span", { class: `circuit circuit-${host.circuit}` }, host.circuit) : "—"),
          h("td", { class: "num" }, host.running === null || host.running === undefined ? "—" : `${host.running} / ${host.capacity ?? "?"}`),
          h("td", {}, time(host.lastSeenAt)),
          h("td", { class: "wrap error-text" }, host.error || ""),
          h(
            "td",
            {},
            h(
              "button",
              { type: "button", class: host.blacklisted ? "small" : "small danger", onclick: () => setBlacklisted(name, !host.blacklisted) },
              host.blacklisted ? "Un-blacklist" : "Blacklist",
            ),
          ),
        );
      }),
      { class: "hosts" },
    );
  }

  function running(list) {
    if (!list.length) return empty("No container is running.");
    return table(
      ["Task", "Execution", "Host", "Container", "Started"],
      list.map((r) =>
        h(
          "tr",
          {},
          h("td", {}, link(r.taskId, route("tasks", r.taskId), { class: "task-link" })),
          h("td", {}, link(r.executionId, route("tasks", r.taskId, "jobs", r.jobId, "executions", r.executionId), { class: "mono" })),
          h("td", {}, r.host),
          h("td", {}, code((r.containerId || "").slice(0, 12))),
          h("td", {}, time(r.startedAt)),
        ),
      ),
      { class: "compact running" },
    );
  }

  function queues(map) {
    const entries = Object.entries(map || {});
    if (!entries.length) return empty("Queue lengths are unavailable (the broker did not answer in time).");
    return table(
      ["Topic", "Lag (messages not yet consumed)"],
      entries.map(([name, q]) => h("tr", {}, h("td", {}, code(name)), h("td", { class: "num" }, q.length))),
      { class: "compact" },
    );
  }

  function scheduled(list) {
    if (!list.length) return empty("No job is scheduled.");
    const shown = list.slice(0, 20);
    return h(
      "ul",
      { class: "plain" },
      shown.map((s) => h("li", {}, link(s.taskId, route("tasks", s.taskId), { class: "task-link" }), " · ", link(s.jobId, route("tasks", s.taskId, "jobs", s.jobId), { class: "mono" }))),
      list.length > shown.length ? h("li", { class: "muted" }, `and ${list.length - shown.length} more`) : null,
    );
  }

  function stat(label, value) {
    return h("div", { class: "stat" }, h("div", { class: "stat-value" }, value), h("div", { class: "stat-label" }, label));
  }

  async function refresh() {
    const status = await get("/status", { signal: ctx.signal });
    replace(
      body,
      h(
        "div",
        { class: "stats" },
        stat("tasks", status.tasks.count),
        stat("jobs", status.jobs.count),
        stat("jobs scheduled", status.jobs.scheduled.length),
        stat("containers running", status.containers.running.length),
        stat("hosts available", `${status.hosts.filter((x) => x.available).length} / ${status.hosts.length}`),
      ),
      card("Docker hosts", hosts(status.hosts)),
      card("Running containers", running(status.containers.running)),
      h("div", { class: "columns" }, card("Queues", queues(status.queues)), card("Scheduled jobs", scheduled(status.jobs.scheduled))),
    );
  }

  await refresh();
  ctx.render(h("div", { class: "title-row" }, h("h1", {}, "Status")), messages, body);
  ctx.every(5000, refresh);
}
