"""`fastlane`: the command line of fastlane (Typer), on the Python client (shared/client). docs/cli.md.

    fastlane run fastlane-test --wait -- sh -c 'echo hello'
    fastlane jobs reports ; fastlane logs reports <job> -f ; fastlane status --json
    fastlane events --task reports          # the public execution events, from Kafka

Where the API is: `--url` or FASTLANE_URL (default http://127.0.0.1:10000); credentials from FASTLANE_USER and
FASTLANE_PASSWORD (basic) or FASTLANE_TOKEN (bearer). Errors are one line on stderr (the API's own message) and a
non-zero exit: 1 for an answer the API refused, 2 for a usage error (as click's own), 3 when it cannot be reached.
"""

import json
import os
import shlex
import sys
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import httpx
import typer
from pydantic import BaseModel
from rich.console import Console

from shared.client.http import DEFAULT_URL, Client, FastlaneError, LogKind

SERVICES = ("api", "scheduler", "runner", "recorder", "notifier")
app = typer.Typer(
    name="fastlane",
    help="fastlane: run commands in containers, now, later or on a cron, and follow them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)


class Options:
    url: str = DEFAULT_URL
    json: bool = False


options = Options()


@app.callback()
def main_options(
    url: Annotated[str, typer.Option(envvar="FASTLANE_URL", help="The API's base URL.")] = DEFAULT_URL,
    json_output: Annotated[bool, typer.Option("--json", help="Print the API's answers as JSON.")] = False,
) -> None:
    options.url = url
    options.json = json_output


def client() -> Client:
    return Client(
        options.url,
        username=os.environ.get("FASTLANE_USER") or None,
        password=os.environ.get("FASTLANE_PASSWORD") or None,
        token=os.environ.get("FASTLANE_TOKEN") or None,
    )


def fail(message: str, code: int = 1) -> NoReturn:
    """Inside a command: the message on stderr, then exit with `code`."""
    raise typer.Exit(say(message, code))


def show(answer: BaseModel | dict[str, Any] | list[Any], lines: Iterator[str] | None = None) -> None:
    """An answer as JSON (`--json`, or when there is no text form), else its text form."""
    if options.json or lines is None:
        data = answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for line in lines:
        typer.echo(line)


def parse_envs(pairs: list[str]) -> dict[str, str]:
    envs = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"--env takes NAME=VALUE, got {pair!r}", 2)
        envs[name] = value
    return envs


def exit_code_of(end: dict[str, Any]) -> int:
    """The container's exit code when it ran to its end, else 1 (failed to start, timed out, stopped...)."""
    code = end.get("exitCode")
    if end.get("status") == "done":
        return 0
    return int(code) if isinstance(code, int) and code != 0 else 1


def follow_output(fastlane: Client, task_id: str, job_id: str, execution_id: str | None, kind: LogKind) -> int:
    """Print the live output (stdout to stdout, stderr to stderr) until the end; the exit code it implies."""
    status_line = None
    end: dict[str, Any] = {}
    for message in fastlane.follow(task_id, job_id, execution_id, kind):
        if message["type"] == "execution" and message.get("status") in ("enqueued", "pulling"):
            status_line = status_line or err.status(f"{message['status']}...")
            status_line.start()
        elif message["type"] == "output":
            if status_line is not None:
                status_line.stop()
            if message.get("skipped"):
                err.print(f"[{message['skipped']} bytes skipped]", style="dim")
            stream = sys.stderr if message["stream"] == "stderr" else sys.stdout
            stream.write(message["text"])
            stream.flush()
        elif message["type"] == "end":
            end = message
            if execution_id is not None:
                break
        elif message["type"] == "error":
            fail(str(message.get("message")))
    if status_line is not None:
        status_line.stop()
    if end.get("status") not in (None, "done"):
        err.print(f"{end['status']}" + (f": {end['error']}" if end.get("error") else ""), style="yellow")
    return exit_code_of(end)


@app.command()
def run(
    image: Annotated[str, typer.Argument(help="The image to run.")],
    command: Annotated[list[str], typer.Argument(help="The command (after --), run by the image's shell rules.")],
    task: Annotated[str | None, typer.Option(help="The task to put the job in (default: a new one).")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE, repeatable.")] = None,
    cron: Annotated[str | None, typer.Option(help="Run on this 5-field cron schedule.")] = None,
    start_in: Annotated[str | None, typer.Option("--in", help="Run in this long, e.g. 5m, 1h30m.")] = None,
    start_at: Annotated[int | None, typer.Option("--at", help="Run at this UNIX time (UTC seconds).")] = None,
    retries: Annotated[int | None, typer.Option(help="Retries after a failure.")] = None,
    timeout: Annotated[int | None, typer.Option(help="Seconds before the container is stopped.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the output live and exit with the container's exit code.")] = False,
) -> None:
    """Enqueue a job: run COMMAND in IMAGE now, later (--in/--at) or on a cron."""
    if wait and cron:
        fail("--wait follows one run; a cron job runs forever (follow it with `fastlane logs TASK JOB -f`)", 2)
    spec: dict[str, Any] = {
        "envs": parse_envs(env or []) or None,
        "cron": cron,
        "startIn": start_in,
        "startAt": start_at,
        "retries": retries,
        "timeout": timeout,
    }
    task_id = task or f"cli-{uuid.uuid4().hex[:12]}"
    with client() as fastlane:
        job = fastlane.run(task_id, image, shlex.join(command) if len(command) > 1 else command[0], **spec)
        if not wait:
            show(job, iter([f"job {job.jobId} in task {job.taskId}", f"  {job.jobUrl}"]))
            return
        err.print(f"job {job.jobId} in task {job.taskId}", style="dim")
        # With retries, the job is followed (each attempt's output in turn) until it has nothing more to run: the
        # code is the last attempt's. Without, the one execution (or the first, for a delayed job).
        execution = job.executionId if not retries else None
        code = follow_output(fastlane, job.taskId, job.jobId, execution, "logs")
    raise typer.Exit(code)


@app.command()
def jobs(task: str) -> None:
    """The jobs of a task."""
    with client() as fastlane:
        answer = fastlane.task(task)
    show(answer, (f"{ref.id}  {ref.url}" for ref in answer.jobs))


@app.command()
def job(task: str, job: str) -> None:
    """A job and its executions, newest first."""
    with client() as fastlane:
        answer = fastlane.job(task, job)
    j = answer.job
    head = [f"job {job} in task {task}: {j.image} {j.command!r}", f"  scheduled: {j.scheduled}  cron: {j.cron}"]
    rows = [f"  {e.executionId}  {e.status:<9} exit {e.exitCode}  created {e.createdAt}" for e in j.executions]
    show(answer, iter(head + rows))


@app.command()
def logs(
    task: str,
    job: str,
    execution: Annotated[str | None, typer.Argument(help="An execution (default: the job's last).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Follow the output live to its end.")] = False,
    stream: Annotated[str, typer.Option(help="stdout, stderr or logs (both).")] = "logs",
) -> None:
    """The output of an execution (the job's last by default); -f follows it live."""
    if stream not in ("stdout", "stderr", "logs"):
        fail("--stream is stdout, stderr or logs", 2)
    kind: LogKind = stream  # type: ignore[assignment]
    with client() as fastlane:
        if follow:
            raise typer.Exit(follow_output(fastlane, task, job, execution, kind))
        text = fastlane.logs(task, job, execution, kind)
    if options.json:
        show({"text": text})
    else:
        sys.stdout.write(text)


@app.command()
def stop(
    task: str,
    job: str,
    execution: Annotated[str | None, typer.Option(help="Stop only this execution (a cron keeps its schedule).")] = None,
) -> None:
    """Stop a job (its running execution and every future one), or one execution."""
    with client() as fastlane:
        if execution:
            ordered = fastlane.stop_execution(task, job, execution)
            show(ordered, iter([f"stopping execution {ordered.executionId}"]))
        else:
            stopped = fastlane.stop(task, job)
            show(stopped, iter([f"stopped job {stopped.jobId}"]))


@app.command()
def retry(task: str, job: str) -> None:
    """Run a job again now (a new execution)."""
    with client() as fastlane:
        ordered = fastlane.retry(task, job)
    show(ordered, iter([f"execution {ordered.executionId}", f"  {ordered.executionUrl}"]))


@app.command()
def tasks(page: Annotated[int, typer.Option(min=1)] = 1) -> None:
    """Every task, a page at a time (newest first)."""
    with client() as fastlane:
        answer = fastlane.tasks(page)
    lines = [f"{t.taskId}  {t.jobsCount} jobs" for t in answer.items] + [f"page {answer.page} of {answer.pages}"]
    show(answer, iter(lines))


@app.command()
def search(query: str, page: Annotated[int, typer.Option(min=1)] = 1) -> None:
    """Tasks whose id contains QUERY as a whole word."""
    with client() as fastlane:
        answer = fastlane.search(query, page)
    show(answer, iter([f"{t.taskId}  {t.jobsCount} jobs" for t in answer.items] + [f"{answer.total} found"]))


@app.command()
def status() -> None:
    """The farm: hosts, running containers, scheduled jobs, queues."""
    with client() as fastlane:
        answer = fastlane.status()
    lines = [
        f"host {h.host}: {'available' if h.available else 'unavailable'}"
        f"{' blacklisted' if h.blacklisted else ''}, running {h.running}/{h.capacity}"
        for h in answer.hosts
    ]
    lines += [f"running containers: {len(answer.containers.running)}", f"scheduled jobs: {answer.jobs.count}"]
    lines += [f"queue {name}: {q.length}" for name, q in answer.queues.items()]
    show(answer, iter(lines))


@app.command()
def events(
    task: Annotated[str | None, typer.Option(help="Only this task's events.")] = None,
    bootstrap: Annotated[str, typer.Option(envvar="FASTLANE_KAFKA_BOOTSTRAP")] = "127.0.0.1:9092",
    prefix: Annotated[str, typer.Option(envvar="FASTLANE_TOPIC_PREFIX")] = "fastlane.",
    group: Annotated[str | None, typer.Option(help="Consumer group (default: a new one each time).")] = None,
    from_beginning: Annotated[bool, typer.Option(help="Start from the oldest kept event.")] = False,
    idle: Annotated[float | None, typer.Option(help="Stop after this many seconds without an event.")] = None,
) -> None:
    """Follow the public execution events from Kafka, one JSON object a line."""
    from shared.client.subscriber import Subscriber

    name = group or f"fastlane-cli-{uuid.uuid4().hex[:8]}"
    with Subscriber(bootstrap, name, from_beginning=from_beginning, topic_prefix=prefix) as subscriber:
        for event in subscriber.follow(task_id=task, timeout=idle):
            typer.echo(event.model_dump_json())


def _exec_module(module: str, args: list[str]) -> NoReturn:
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def migrate(ctx: typer.Context) -> None:
    """Create the topics and tables and record the schema version (python -m services.migrate; --check, --wait)."""
    _exec_module("services.migrate", ctx.args)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def prune(ctx: typer.Context) -> None:
    """Remove leftover containers of this runner's host (python -m services.runner.prune; --dry-run)."""
    _exec_module("services.runner.prune", ctx.args)


@app.command()
def serve(service: Annotated[str, typer.Argument(help="api, scheduler, runner, recorder or notifier")]) -> None:
    """Run one service in the foreground (its FASTLANE_* settings from the environment)."""
    if service not in SERVICES:
        fail(f"no service {service!r}: one of {', '.join(SERVICES)}", 2)
    _exec_module(f"services.{service}", [])


def main() -> None:
    """The console script: friendly errors instead of stack traces."""
    try:
        app()
    except FastlaneError as exc:
        hint = ": set FASTLANE_USER and FASTLANE_PASSWORD, or FASTLANE_TOKEN" if exc.status == 401 else ""
        sys.exit(say(f"{exc.message} (HTTP {exc.status}){hint}", 1))
    except httpx.TransportError as exc:
        sys.exit(say(f"cannot reach fastlane at {options.url}: {exc}", 3))


def say(message: str, code: int) -> int:
    err.print(f"[red]error:[/red] {message}", markup=True, soft_wrap=True)
    return code
