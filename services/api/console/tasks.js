// Tasks (newest first, a page at a time), search (whole words of task ids), and one task with its jobs.
import { bounded, get, path } from "./api.js";
import { badge, card, code, empty, h, link, route, table, time } from "./dom.js";
import { schedule } from "./jobs.js";

function pager(answer, hrefFor) {
  const { page, pages, total } = answer;
  return h(
    "nav",
    { class: "pager" },
    answer.hasPrev ? link("← Newer", hrefFor(page - 1), { class: "button secondary", rel: "prev" }) : h("span"),
    h("span", { class: "page-of" }, `Page ${page} of ${Math.max(pages, 1)} · ${total} task${total === 1 ? "" : "s"}`),
    answer.hasNext ? link("Older →", hrefFor(page + 1), { class: "button secondary", rel: "next" }) : h("span"),
  );
}

function searchForm(word) {
  const input = h("input", {
    type: "search",
    name: "query",
    value: word || "",
    placeholder: "A word of a task id, e.g. billing",
    "aria-label": "Search tasks",
  });
  return h(
    "form",
    {
      class: "search",
      role: "search",
      onsubmit: (event) => {
        event.preventDefault();
        const query = input.value.trim();
        location.hash = query ? `#/search?query=${encodeURIComponent(query)}` : "#/tasks";
      },
    },
    input,
    h("button", { type: "submit" }, "Search"),
    word ? link("Clear", "#/tasks", { class: "button secondary" }) : null,
  );
}

function taskTable(items) {
  if (!items.length) return empty("No task.");
  return table(
    ["Task", "Jobs", "Created", "Last modified"],
    items.map((t) =>
      h(
        "tr",
        {},
        h("td", {}, link(t.taskId, route("tasks", t.taskId), { class: "task-link" })),
        h("td", { class: "num" }, t.jobsCount),
        h("td", {}, time(t.createdAt)),
        h("td", {}, time(t.lastModifiedAt)),
      ),
    ),
    { class: "tasks" },
  );
}

export async function tasksPage(ctx) {
  const page = Number(ctx.params.get("page")) || 1;
  const answer = await get(`/tasks?page=${page}`, { signal: ctx.signal });
  ctx.render(
    h("div", { class: "title-row" }, h("h1", {}, "Tasks"), link("New job", "#/new", { class: "button" })),
    searchForm(""),
    card(null, taskTable(answer.items), pager(answer, (p) => `#/tasks?page=${p}`)),
  );
}

export async function searchPage(ctx) {
  const word = ctx.params.get("query") || "";
  const page = Number(ctx.params.get("page")) || 1;
  const head = h("div", { class: "title-row" }, h("h1", {}, "Tasks matching ", code(word)));
  let answer;
  try {
    answer = await get(`/search?query=${encodeURIComponent(word)}&page=${page}`, { signal: ctx.signal });
  } catch (error) {
    if (error.status !== 400) throw error;
    ctx.render(head, searchForm(word), h("div", { class: "error-box", role: "alert" }, error.message));
    return;
  }
  const href = (p) => `#/search?query=${encodeURIComponent(word)}&page=${p}`;
  ctx.render(head, searchForm(word), card(null, taskTable(answer.items), pager(answer, href)));
}

export async function taskPage(ctx, taskId) {
  const task = await get(path("tasks", taskId), { signal: ctx.signal });
  const rows = task.jobs.map((j) => ({
    id: j.id,
    row: h(
      "tr",
      {},
      h("td", { class: "nowrap" }, link(j.id, route("tasks", taskId, "jobs", j.id), { class: "mono" })),
      h("td", { colspan: 4, class: "muted" }, "loading…"),
    ),
  }));
  ctx.render(
    h("nav", { class: "crumbs" }, link("Tasks", "#/tasks"), " / "),
    h(
      "div",
      { class: "title-row" },
      h("h1", {}, "Task ", h("span", { class: "ident" }, taskId)),
      link("New job in this task", `#/new?task=${encodeURIComponent(taskId)}`, { class: "button" }),
    ),
    card(
      `${task.jobs.length} job${task.jobs.length === 1 ? "" : "s"}`,
      task.jobs.length
        ? table(["Job", "Image", "Command", "Schedule", "Last execution"], rows.map((r) => r.row), { class: "jobs" })
        : empty("No job."),
    ),
  );
  // Each job's details, at most six requests in flight.
  await bounded(rows, 6, async (r) => {
    try {
      const { job } = await get(path("tasks", taskId, "jobs", r.id), { signal: ctx.signal });
      const last = job.executions[0];
      r.row.replaceChildren(
        h("td", { class: "nowrap" }, link(r.id, route("tasks", taskId, "jobs", r.id), { class: "mono" })),
        h("td", { class: "nowrap" }, code(job.image || "")),
        h("td", { class: "command" }, code(job.command || "")),
        h("td", {}, schedule(job)),
        h("td", {}, last ? link(badge(last.status), route("tasks", taskId, "jobs", r.id, "executions", last.executionId)) : h("span", { class: "muted" }, "none yet")),
      );
    } catch (error) {
      if (ctx.signal.aborted) return;
      r.row.lastChild.textContent = `could not read the job: ${error.message}`;
    }
  });
}
