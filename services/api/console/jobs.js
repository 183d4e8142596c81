// A job: its definition, its schedule, its executions newest first, and the stop / retry / stop-one actions.
import { api, get, path } from "./api.js";
import {
  badge,
  card,
  code,
  confirmAction,
  duration,
  empty,
  epoch,
  facts,
  FINAL,
  h,
  json,
  link,
  notice,
  replace,
  route,
  table,
  time,
} from "./dom.js";

// How a job is scheduled, in a few words (the task page and the job page).
export function schedule(job) {
  if (job.cron) {
    const zone = job.cronTimezone && job.cronTimezone !== "UTC" ? ` (${job.cronTimezone})` : "";
    return h(
      "span",
      { class: "schedule" },
      "cron ",
      code(job.cron + zone),
      job.nextRunAt ? [h("br"), h("span", { class: "muted" }, "next "), time(job.nextRunAt)] : null,
    );
  }
  if (job.startAt !== null && job.startAt !== undefined) return h("span", { class: "schedule" }, "at ", epoch(job.startAt));
  return h("span", { class: "schedule" }, "now");
}

function keyValues(object, emptyText = "none") {
  const entries = Object.entries(object || {});
  if (!entries.length) return h("span", { class: "muted" }, emptyText);
  return h(
    "table",
    { class: "kv" },
    h("tbody", {}, entries.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, code(String(v)))))),
  );
}

function webhooks(hooks) {
  const rows = Object.entries(hooks || {}).flatMap(([event, list]) =>
    list.map((w) =>
      h(
        "tr",
        {},
        h("td", {}, event),
        h("td", { class: "wrap" }, code(w.url)),
        h("td", {}, Object.keys(w.headers || {}).join(", ") || "—"),
        h("td", { class: "num" }, w.retries ?? "default"),
      ),
    ),
  );
  return rows.length ? table(["Event", "URL", "Headers", "Retries"], rows, { class: "compact" }) : h("span", { class: "muted" }, "none");
}

function mails(notify) {
  const entries = Object.entries(notify || {}).filter(([, list]) => list.length);
  if (!entries.length) return h("span", { class: "muted" }, "none");
  return entries.map(([event, list]) => h("div", {}, `${event}: `, list.join(", ")));
}

function definition(job) {
  const backoff = job.retryBackoff;
  return h(
    "div",
    { class: "columns" },
    card(
      "Definition",
      facts([
        ["Image", code(job.image || "")],
        ["Command", h("code", { class: "wrap" }, job.command || "")],
        ["Envs", keyValues(job.envs)],
        ["Metadata", Object.keys(job.metadata?.custom || {}).length ? json(job.metadata.custom) : h("span", { class: "muted" }, "none")],
        ["DNS entries", keyValues(job.additionalDNSEntries)],
        job.resources ? ["Resources", `${job.resources.cpus ?? "—"} CPUs, ${job.resources.memoryMB ?? "—"} MB`] : null,
        ["Created", time(job.createdAt)],
        ["Modified", time(job.lastModifiedAt)],
        ["Requested from", job.requestIPAddress || "—"],
      ]),
    ),
    card(
      "Schedule",
      facts([
        ["Runs", schedule(job)],
        ["Cron", job.cron ? code(job.cron) : h("span", { class: "muted" }, "—")],
        ["Next run", job.cron ? time(job.nextRunAt) : h("span", { class: "muted" }, "—")],
        ["Start at", epoch(job.startAt)],
        ["Scheduled", job.scheduled ? "yes" : "no"],
        ["Retries", `${job.retries}${backoff ? ` (backoff ${backoff.minMs} ms × ${backoff.factor}, at most ${backoff.maxMs} ms)` : ""}`],
        ["Timeout", job.timeout ? `${job.timeout} s` : h("span", { class: "muted" }, "server default")],
        ["Expiration", epoch(job.expiration)],
        ["Concurrency", job.concurrencyPolicy],
        ["Webhooks", webhooks(job.webhooks)],
        ["E-mail", mails(job.notify)],
      ]),
    ),
  );
}

export async function jobPage(ctx, taskId, jobId) {
  const page = Number(ctx.params.get("page")) || 1;
  const jobPath = path("tasks", taskId, "jobs", jobId);
  const top = h("div");
  const messages = h("div", { class: "messages" });
  const body = h("div");

  async function act(title, question, label, method, actionPath, done) {
    if (!(await confirmAction(title, question, label))) return;
    try {
      const answer = await api(method, actionPath);
      notice(messages, "ok", done(answer), answer);
      await refresh();
    } catch (error) {
      notice(messages, "error", `${title} failed: ${error.status ? `${error.status} ` : ""}${error.message}`, error.body ?? undefined);
    }
  }

  const actions = h(
    "div",
    { class: "actions" },
    h(
      "button",
      {
        type: "button",
        class: "danger",
        onclick: () =>
          act(
            "Stop job",
            "Stop this job: its running execution, and every future one (schedule, cron, retries)?",
            "Stop job",
            "POST",
            `${jobPath}/stop`,
            () => "Stop requested: the job's execution stops and nothing more is scheduled.",
          ),
      },
      "Stop job",
    ),
    h(
      "button",
      {
        type: "button",
        onclick: () =>
          act("Retry", "Run this job again now, as a new execution?", "Retry", "POST", `${jobPath}/retry`, (a) =>
            h("span", {}, "A new execution was ordered: ", link(a.executionId, route("tasks", taskId, "jobs", jobId, "executions", a.executionId), { class: "mono" })),
          ),
      },
      "Retry",
    ),
  );

  function executionRows(job) {
    return job.executions.map((e) =>
      h(
        "tr",
        { "data-execution": e.executionId },
        h("td", {}, link(e.executionId, route("tasks", taskId, "jobs", jobId, "executions", e.executionId), { class: "mono" })),
        h("td", {}, badge(e.status)),
        h("td", { class: "num" }, e.attempt ?? "—"),
        h("td", {}, time(e.createdAt)),
        h("td", {}, time(e.startedAt)),
        h("td", {}, duration(e)),
        h("td", { class: "num" }, e.exitCode ?? "—"),
        h("td", {}, e.metadata?.dockerHost || "—"),
        h(
          "td",
          {},
          FINAL.has(e.status)
            ? null
            : h(
                "button",
                {
                  type: "button",
                  class: "small danger",
                  onclick: () =>
                    act(
                      "Stop execution",
                      `Stop execution ${e.executionId}? A cron keeps its schedule.`,
                      "Stop execution",
                      "POST",
                      `${jobPath}/executions/${encodeURIComponent(e.executionId)}/stop`,
                      () => `Stop requested for execution ${e.executionId}.`,
                    ),
                },
                "Stop",
              ),
        ),
      ),
    );
  }

  function executionsCard(job) {
    const pages = Math.max(1, Math.ceil(job.executionCount / job.executionsPerPage));
    const href = (p) => `${route("tasks", taskId, "jobs", jobId)}?page=${p}`;
    return card(
      `Executions (${job.executionCount})`,
      job.executions.length
        ? table(["Execution", "Status", "Attempt", "Created", "Started", "Duration", "Exit", "Host", ""], executionRows(job), { class: "executions" })
        : empty(job.scheduled ? "None yet: the job is scheduled." : "None."),
      pages > 1
        ? h(
            "nav",
            { class: "pager" },
            page > 1 ? link("← Newer", href(page - 1), { class: "button secondary" }) : h("span"),
            h("span", { class: "page-of" }, `Page ${page} of ${pages}`),
            page < pages ? link("Older →", href(page + 1), { class: "button secondary" }) : h("span"),
          )
        : null,
    );
  }

  async function refresh() {
    const { job } = await get(`${jobPath}?page=${page}`, { signal: ctx.signal });
    const last = job.executions[0];
    replace(
      top,
      h("nav", { class: "crumbs" }, link("Tasks", "#/tasks"), " / ", link(taskId, route("tasks", taskId), { class: "task-link" }), " / "),
      h(
        "div",
        { class: "title-row" },
        h("h1", {}, "Job ", h("span", { class: "ident mono" }, jobId)),
        last ? badge(last.status, { id: "job-status", title: "the last execution's status" }) : null,
      ),
    );
    replace(body, executionsCard(job), definition(job));
    return job;
  }

  await refresh();
  ctx.render(top, actions, messages, body);
  ctx.every(2000, refresh);
}
