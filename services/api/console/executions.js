// One execution: its status, times, host, container, deliveries, and its output followed live (SSE) to the end.
import { api, get, path } from "./api.js";
import {
  badge,
  card,
  code,
  confirmAction,
  duration,
  empty,
  facts,
  FINAL,
  h,
  link,
  notice,
  replace,
  route,
  table,
  time,
} from "./dom.js";
import { NotAStream, readEvents } from "./sse.js";

const STAGE = { enqueued: 0, pulling: 1, running: 2 };

// Of two statuses of one execution, the one further on (the recorded one may lag the live stream).
function furthest(a, b) {
  const stage = (s) => (FINAL.has(s) ? 3 : (STAGE[s] ?? -1));
  return stage(b) > stage(a) ? b : a;
}

function deliveries(list) {
  if (!list || !list.length) return empty("No webhook or e-mail for this execution.");
  return table(
    ["Channel", "Event", "Target", "State", "Attempts", "HTTP status", "Last error", "Updated"],
    list.map((d) =>
      h(
        "tr",
        {},
        h("td", {}, d.channel),
        h("td", {}, d.event),
        h("td", { class: "wrap" }, code(d.target)),
        h("td", {}, h("span", { class: `state state-${d.state}` }, d.state)),
        h("td", { class: "num" }, d.attempts ?? "—"),
        h("td", { class: "num" }, d.statusCode ?? "—"),
        h("td", { class: "wrap" }, d.lastError || "—"),
        h("td", {}, time(d.updatedAt)),
      ),
    ),
    { class: "compact deliveries" },
  );
}

// The log panel: output appended as text, stderr marked, kept scrolled to the bottom unless the reader scrolled up.
class LogView {
  constructor() {
    this.pre = h("pre", { id: "log", class: "log", "aria-live": "off" });
    this.state = h("span", { id: "log-state", class: "muted" }, "connecting…");
    this.received = 0; // bytes of output shown: a message sent again after a reconnection is not shown twice
    this.encoder = new TextEncoder();
    this.element = card(null, h("div", { class: "card-head" }, h("h2", {}, "Output"), this.state), this.pre);
  }

  atBottom() {
    return this.pre.scrollHeight - this.pre.scrollTop - this.pre.clientHeight < 24;
  }

  add(text, stream, extraClass = "") {
    const follow = this.atBottom();
    this.pre.append(h("span", { class: `${stream}${extraClass}` }, text));
    if (follow) this.pre.scrollTop = this.pre.scrollHeight;
  }

  output(message) {
    const size = this.encoder.encode(message.text).length;
    if (message.offset !== undefined && message.offset + size <= this.received) return;
    if (message.skipped) this.add(`[${message.skipped} bytes skipped]\n`, "note");
    this.add(message.text, message.stream === "stderr" ? "stderr" : "stdout");
    this.received = Math.max(this.received, (message.offset ?? this.received) + size);
  }

  note(text) {
    this.add(`${text}\n`, "note");
  }

  setState(text, kind = "muted") {
    this.state.className = kind;
    this.state.textContent = text;
  }
}

export async function executionPage(ctx, taskId, jobId, executionId) {
  const executionPath = path("tasks", taskId, "jobs", jobId, "executions", executionId);
  const top = h("div");
  const messages = h("div", { class: "messages" });
  const details = h("div");
  const log = new LogView();
  let ended = null; // the `end` message, once the stream told it: it may be ahead of the recorded status
  let streamed = null; // the status the stream's last `execution` message told

  function render(execution) {
    const status = furthest(furthest(execution.status, streamed), ended?.status);
    const shown = { ...execution, status };
    const running = !FINAL.has(status);
    replace(
      top,
      h(
        "nav",
        { class: "crumbs" },
        link("Tasks", "#/tasks"),
        " / ",
        link(taskId, route("tasks", taskId), { class: "task-link" }),
        " / ",
        link(`job ${jobId.slice(0, 8)}`, route("tasks", taskId, "jobs", jobId), { class: "mono" }),
        " / ",
      ),
      h(
        "div",
        { class: "title-row" },
        h("h1", {}, "Execution ", h("span", { class: "ident mono" }, executionId)),
        badge(status, { id: "execution-status" }),
        running
          ? h("button", { type: "button", class: "danger", id: "stop-execution", onclick: stop }, "Stop execution")
          : null,
      ),
    );
    const exit = execution.exitCode ?? ended?.exitCode;
    replace(
      details,
      h(
        "div",
        { class: "columns" },
        card(
          "Execution",
          facts([
            ["Status", badge(status)],
            ["Created", time(execution.createdAt)],
            ["Started", time(execution.startedAt)],
            ["Finished", time(execution.finishedAt)],
            ["Duration", duration(shown)],
            ["Exit code", exit ?? h("span", { class: "muted" }, "—")],
            ["Attempt", execution.attempt ?? "—"],
            ending(execution) ? ["Reason", h("span", { class: "error-text" }, ending(execution))] : null,
          ]),
        ),
        card(
          "Where",
          facts([
            ["Image", code(execution.image || "")],
            ["Command", h("code", { class: "wrap" }, execution.command || "")],
            ["Host", execution.metadata?.dockerHost || h("span", { class: "muted" }, "—")],
            ["Container", execution.metadata?.containerId ? code(execution.metadata.containerId.slice(0, 12)) : h("span", { class: "muted" }, "—")],
            ["Requested from", execution.requestIPAddress || "—"],
            ["Job", link(jobId, route("tasks", taskId, "jobs", jobId), { class: "mono" })],
          ]),
        ),
      ),
      card("Deliveries", deliveries(execution.deliveries)),
    );
  }

  // Why an execution that did not run ended the way it did (no container: no output to say it).
  function ending(execution) {
    if (execution.status === "failed" && execution.exitCode === null && execution.error) return execution.error.slice(0, 300);
    return ended?.error || null;
  }

  async function stop() {
    if (!(await confirmAction("Stop execution", `Stop execution ${executionId}? A cron keeps its schedule.`, "Stop execution"))) return;
    try {
      const answer = await api("POST", `${executionPath}/stop`);
      notice(messages, "ok", "Stop requested.", answer);
    } catch (error) {
      notice(messages, "error", `Stop failed: ${error.status ? `${error.status} ` : ""}${error.message}`, error.body ?? undefined);
    }
  }

  let last = (await get(executionPath, { signal: ctx.signal })).execution;
  render(last);
  ctx.render(top, messages, log.element, details);

  // The recorded execution, read again until it is final (times, exit code, host, deliveries).
  ctx.every(2000, async () => {
    if (FINAL.has(last.status) && ended) return;
    last = (await get(executionPath, { signal: ctx.signal })).execution;
    render(last);
  });

  await follow();

  async function follow() {
    for (let attempt = 0; !ended && !ctx.signal.aborted; attempt++) {
      try {
        log.setState("following…", "following");
        await readEvents(`${executionPath}/logs?follow=true`, onMessage, ctx.signal);
        if (!ended && !ctx.signal.aborted) log.setState("the stream closed early; reconnecting…", "muted");
      } catch (error) {
        if (ctx.signal.aborted) return;
        if (error instanceof NotAStream || error.status === 404) return fallback(error);
        log.setState(`stream interrupted (${error.message}); reconnecting…`, "error-text");
      }
      await ctx.sleep(Math.min(1000 * 2 ** attempt, 10000));
    }
  }

  function onMessage(type, message) {
    if (type === "output") log.output(message);
    else if (type === "execution" && message.status) {
      streamed = message.status;
      render(last);
    }
    else if (type === "end") {
      ended = message;
      log.setState(`ended: ${message.status}${message.exitCode !== null && message.exitCode !== undefined ? ` (exit code ${message.exitCode})` : ""}`, `final final-${message.status}`);
      render(last);
    } else if (type === "error") log.note(`[${message.message}]`);
  }

  // No live stream from this API: the recorded output, read again until the execution ends.
  async function fallback(error) {
    log.setState(`no live stream (${error.message}): showing the recorded output`, "muted");
    const show = (execution) => {
      log.pre.replaceChildren();
      log.received = 0;
      if (execution.log) log.add(execution.log, "stdout");
      if (execution.error) log.add(execution.error, "stderr");
    };
    show(last);
    while (!FINAL.has(last.status) && !ctx.signal.aborted) {
      await ctx.sleep(2000);
    }
    if (!ctx.signal.aborted) {
      show(last);
      log.setState(`ended: ${last.status}`, `final final-${last.status}`);
    }
  }
}
