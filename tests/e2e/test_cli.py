"""The `fastlane` command (shared/cli/app.py), run as the console script it is, against the e2e stack's five real
services: what a user types, what they see, and the exit codes."""

import json
import os
import subprocess
import uuid
from typing import Any

import httpx

from services.devstack import ROOT, DevStack
from tests.conftest import TEST_IMAGE, AllSettings
from tests.e2e.lifecycle import wait_executions, wait_status

FASTLANE = ROOT / ".venv" / "bin" / "fastlane"


def cli(stack: DevStack, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FASTLANE), "--url", stack.url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | env,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_run_wait_streams_the_output_and_exits_with_the_container_s_code(stack: DevStack) -> None:
    task = f"cli-{uuid.uuid4().hex[:8]}"
    ok = cli(stack, "run", TEST_IMAGE, "--task", task, "--wait", "--", "sh", "-c", "echo out; echo err >&2")
    assert (ok.returncode, ok.stdout) == (0, "out\n") and "err\n" in ok.stderr
    failed = cli(stack, "run", TEST_IMAGE, "--wait", "--env", "CODE=7", "--", "sh", "-c", 'echo bye; exit "$CODE"')
    assert (failed.returncode, failed.stdout) == (7, "bye\n")
    assert "failed" in failed.stderr and "Traceback" not in failed.stderr


def test_a_job_is_enqueued_listed_shown_logged_retried_and_stopped(stack: DevStack, client: httpx.Client) -> None:
    task = f"cli-{uuid.uuid4().hex[:8]}"
    job = as_json(cli(stack, "--json", "run", TEST_IMAGE, "--task", task, "--", "echo", "hello world"))
    assert job["taskId"] == task and job["executionUrl"]
    wait_status(client, job["executionUrl"], {"done"})
    assert cli(stack, "logs", task, job["jobId"], "--stream", "stdout").stdout == "hello world\n"
    assert cli(stack, "logs", task, job["jobId"], job["executionId"], "-f").stdout == "hello world\n"
    listed = cli(stack, "jobs", task)
    assert listed.returncode == 0 and job["jobId"] in listed.stdout
    shown = as_json(cli(stack, "--json", "job", task, job["jobId"]))
    assert shown["job"]["executions"][0]["status"] == "done"
    retried = as_json(cli(stack, "--json", "retry", task, job["jobId"]))
    assert len(wait_executions(client, job["jobUrl"], 2)) == 2 and retried["executionId"]
    assert task in cli(stack, "search", task.split("-")[1]).stdout
    page = as_json(cli(stack, "--json", "tasks"))
    assert page["page"] == 1 and page["total"] >= 1 and page["items"]
    later = as_json(cli(stack, "--json", "run", TEST_IMAGE, "--task", task, "--in", "1h", "--", "true"))
    stopped = cli(stack, "stop", task, later["jobId"])
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert client.get(later["jobUrl"]).json()["job"]["scheduled"] is False
    assert "host" in cli(stack, "status").stdout


def test_errors_are_one_line_and_an_exit_code_never_a_stack_trace(stack: DevStack) -> None:
    unknown = cli(stack, "job", "no-such-task", str(uuid.uuid4()))
    assert unknown.returncode == 1 and unknown.stderr.startswith("error:") and "(HTTP 404)" in unknown.stderr
    bad = cli(stack, "run", TEST_IMAGE, "--in", "soon", "--", "true")
    assert bad.returncode == 1 and "(HTTP 400)" in bad.stderr and "Traceback" not in bad.stderr
    usage = cli(stack, "run", TEST_IMAGE, "--env", "NOEQUALS", "--", "true")
    assert usage.returncode == 2 and "NAME=VALUE" in usage.stderr
    cron_wait = cli(stack, "run", TEST_IMAGE, "--cron", "* * * * *", "--wait", "--", "true")
    assert cron_wait.returncode == 2
    assert cli(stack, "tasks", "--page", "0").returncode == 2  # click's own usage error: the same code
    away = subprocess.run(
        [str(FASTLANE), "--url", "http://127.0.0.1:1", "tasks"], capture_output=True, text=True, timeout=60
    )
    assert away.returncode == 3 and "cannot reach fastlane" in away.stderr and "Traceback" not in away.stderr
    assert cli(stack, "serve", "nothing").returncode == 2


def test_events_follows_one_task_s_execution_events_from_kafka(
    stack: DevStack, backends: AllSettings, client: httpx.Client
) -> None:
    task = f"cli-ev-{uuid.uuid4().hex[:8]}"
    env = {"FASTLANE_KAFKA_BOOTSTRAP": backends.kafka_bootstrap, "FASTLANE_TOPIC_PREFIX": backends.topic_prefix}
    follower = subprocess.Popen(
        [str(FASTLANE), "events", "--task", task, "--from-beginning", "--idle", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | env,
    )
    job = as_json(cli(stack, "--json", "run", TEST_IMAGE, "--task", task, "--", "echo", "evented"))
    wait_status(client, job["executionUrl"], {"done"})
    out, errors = follower.communicate(timeout=120)
    assert follower.returncode == 0, errors
    seen = [json.loads(line) for line in out.splitlines()]
    assert {e["task_id"] for e in seen} == {task} and {e["job_id"] for e in seen} == {job["jobId"]}
    assert [e["type"] for e in seen if e["type"] in ("ExecutionStarted", "ExecutionFinished")] == [
        "ExecutionStarted",
        "ExecutionFinished",
    ]
    finished = next(e for e in seen if e["type"] == "ExecutionFinished")
    assert finished["status"] == "done" and finished["stdout"] == "evented\n"
