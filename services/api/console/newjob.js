// The new-job form: a quick manual run (POST /tasks/{taskId}); the API's 400 messages are shown as they are.
import { api, path } from "./api.js";
import { card, h, replace, route } from "./dom.js";

const SCHEDULES = [
  ["now", "Now", null],
  ["startIn", "In", { placeholder: "a duration, e.g. 5m or 2h30m" }],
  ["startAt", "At (UTC)", { type: "datetime-local", step: 1 }],
  ["cron", "Cron", { placeholder: "5 fields, e.g. */5 * * * *" }],
];

class FormError extends Error {}

function parseEnvs(text) {
  const envs = {};
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new FormError(`envs, line ${i + 1}: expected NAME=value, got "${line}"`);
    envs[line.slice(0, eq).trim()] = line.slice(eq + 1);
  });
  return envs;
}

export async function newJobPage(ctx) {
  const field = (name, attrs = {}) => h("input", { name, id: `field-${name}`, ...attrs });
  const task = field("task", { required: true, value: ctx.params.get("task") || "", placeholder: "e.g. billing-send-invoices" });
  const image = field("image", { required: true, value: ctx.params.get("image") || "", placeholder: "e.g. alpine:3.20" });
  const command = field("command", { required: true, placeholder: "e.g. echo hello", class: "mono" });
  const envs = h("textarea", { name: "envs", id: "field-envs", rows: 3, placeholder: "NAME=value, one a line", class: "mono" });
  const retries = field("retries", { type: "number", min: 0, value: "0" });
  const timeout = field("timeout", { type: "number", min: 1, placeholder: "server default" });
  const when = {};
  const choices = SCHEDULES.map(([value, label, input]) => {
    const radio = h("input", { type: "radio", name: "schedule", value, checked: value === "now" });
    when[value] = { radio, input: input ? field(value, { ...input, disabled: true }) : null };
    return h("label", { class: "choice" }, radio, " ", label, when[value].input);
  });
  const sync = () => {
    for (const { radio, input } of Object.values(when)) if (input) input.disabled = !radio.checked;
  };
  choices.forEach((c) => c.addEventListener("change", sync));
  const result = h("div", { class: "messages", id: "form-result" });
  const submit = h("button", { type: "submit" }, "Enqueue");

  function body() {
    const spec = { image: image.value.trim(), command: command.value };
    const envMap = parseEnvs(envs.value);
    if (Object.keys(envMap).length) spec.envs = envMap;
    const chosen = Object.entries(when).find(([, w]) => w.radio.checked)?.[0] || "now";
    const value = when[chosen].input?.value.trim();
    if (chosen !== "now" && !value) throw new FormError(`${chosen}: enter a value, or choose Now`);
    if (chosen === "startIn" || chosen === "cron") spec[chosen] = value;
    if (chosen === "startAt") {
      const seconds = Date.parse(`${value}Z`) / 1000;
      if (Number.isNaN(seconds)) throw new FormError(`startAt: "${value}" is not a date and time`);
      spec.startAt = Math.floor(seconds);
    }
    if (retries.value !== "") spec.retries = Number(retries.value);
    if (timeout.value !== "") spec.timeout = Number(timeout.value);
    return spec;
  }

  async function send(event) {
    event.preventDefault();
    replace(result);
    const taskId = task.value.trim();
    let spec;
    try {
      spec = body();
    } catch (error) {
      replace(result, h("div", { class: "error-box", role: "alert" }, error.message));
      return;
    }
    submit.disabled = true;
    try {
      const answer = await api("POST", path("tasks", taskId), { body: spec });
      location.hash = answer.executionId
        ? route("tasks", answer.taskId, "jobs", answer.jobId, "executions", answer.executionId)
        : route("tasks", answer.taskId, "jobs", answer.jobId);
    } catch (error) {
      const what = error.status === 400 ? "The API refused the job" : "The job was not enqueued";
      replace(
        result,
        h("div", { class: "error-box", role: "alert" }, h("strong", {}, `${what} (${error.status || "no answer"}): `), error.message),
      );
    } finally {
      submit.disabled = false;
    }
  }

  // What the form sends, as a curl user would write it: updated as the form changes.
  const preview = h("pre", { class: "json request", id: "request-preview" });
  function showRequest() {
    let text;
    try {
      text = JSON.stringify(body(), null, 2);
    } catch (error) {
      text = `(${error.message})`;
    }
    preview.textContent = `POST /tasks/${task.value.trim() || "{taskId}"}\n${text}`;
  }

  const row = (label, input, hint) => h("label", { class: "row" }, h("span", { class: "label" }, label), input, hint ? h("span", { class: "hint" }, hint) : null);
  const form = h(
    "form",
    { class: "job-form", onsubmit: send, novalidate: true, oninput: showRequest, onchange: showRequest },
    row("Task", task, "created on first use"),
    row("Image", image, "no tag means latest"),
    row("Command", command, "split like a shell does; no shell is added (use sh -c '…')"),
    row("Envs", envs),
    h("fieldset", { class: "row" }, h("legend", { class: "label" }, "Schedule"), h("div", { class: "choices" }, choices)),
    row("Retries", retries, "more executions after a failed one"),
    row("Timeout", timeout, "seconds; the container is killed after it"),
    result,
    h("div", { class: "buttons" }, submit),
  );
  showRequest();
  ctx.render(
    h("div", { class: "title-row" }, h("h1", {}, "New job")),
    h("div", { class: "form-layout" }, card(null, form), card("Request", preview)),
  );
  task.value ? image.focus() : task.focus();
}
