"""deploy/compose.yaml run for real: the images built from the debootstrap base (deploy/images/build.sh, the
fastlane image rebuilt from this checkout), the stack brought up with Debian's docker-compose under a project of
its own, one job run through the API published on 127.0.0.1:10100, and the stack removed with its volumes.
Collected only under `-m compose` (`make test-compose`; see conftest.py); the services' logs end up in
.local/logs/compose-test.log."""

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL = Path(os.environ.get("FASTLANE_LOCAL_DIR", ROOT / ".local"))
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
PROJECT = "fastlane-compose-test"  # not the documented `fastlane-compose`: a stack someone runs is left alone
API = "http://127.0.0.1:10100"
DOCKER_SOCKET = "/var/run/docker.sock"
JOB_IMAGE = "fastlane-test:latest"
SERVICES = {"kafka", "cassandra", "migrate", "api", "scheduler", "recorder", "notifier", "runner"}

BUILD_TIMEOUT_S = 1200  # a cold build: debootstrap, two JREs, the wheels
UP_TIMEOUT_S = 420  # `up -d` waits for Kafka and Cassandra to be healthy and for the migration to end
READY_TIMEOUT_S = 180
JOB_TIMEOUT_S = 120

pytestmark = [pytest.mark.compose, pytest.mark.timeout(BUILD_TIMEOUT_S + UP_TIMEOUT_S + READY_TIMEOUT_S + 300)]


@dataclass
class Stack:
    """The running compose stack: its containers' `docker inspect` by service, and how long each step took."""

    containers: dict[str, dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)


def compose_env() -> dict[str, str]:
    return {**os.environ, "FASTLANE_DOCKER_GID": str(os.stat(DOCKER_SOCKET).st_gid)}


def compose(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["docker-compose", "-p", PROJECT, "-f", str(COMPOSE_FILE), *args],
        env=compose_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args)} exited {done.returncode}: {done.stderr[-3000:]}")
    return done


def docker(*args: str, timeout: float = 60) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=True).stdout


def inspect_project() -> dict[str, dict[str, Any]]:
    ids = compose("ps", "-q").stdout.split()
    inspected: list[dict[str, Any]] = json.loads(docker("inspect", *ids)) if ids else []
    return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in inspected}


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_ready(client: httpx.Client, deadline: float) -> None:
    """Until the API's readiness answers 200: /readyz, or /healthcheck on an API from before /readyz."""
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            answer = client.get("/readyz")
            if answer.status_code == 404:
                answer = client.get("/healthcheck")
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text[:300]}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(1)
    api_log = compose("logs", "--no-color", "--tail", "40", "api", check=False).stdout
    raise AssertionError(f"the API was not ready after {READY_TIMEOUT_S}s: {last}; its log ends:\n{api_log}")


def engine_time(text: str) -> datetime:
    """An engine timestamp (RFC 3339 with up to nine decimals, trailing zeros dropped) to microseconds."""
    seconds, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{seconds}.{fraction[:6].ljust(6, '0')}+00:00")


def remove_job_containers(task_id: str) -> None:
    leftovers = docker("ps", "-aq", "--filter", f"label=fastlane.task-id={task_id}").split()
    if leftovers:
        docker("rm", "-f", *leftovers)


@pytest.fixture(scope="module")
def task_id() -> str:
    return f"compose-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, task_id: str) -> Iterator[Stack]:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    assert reporter is not None and capture is not None
    compose("down", "-v", "--remove-orphans", timeout=180)  # what an interrupted run left
    assert not port_taken(10100), "127.0.0.1:10100 is taken (another compose stack?); the test needs it"
    timings: dict[str, float] = {}
    running = Stack({}, timings)
    started = time.monotonic()
    try:
        build = str(ROOT / "deploy" / "images" / "build.sh")
        subprocess.run([build, "base", "kafka", "cassandra"], check=True, timeout=BUILD_TIMEOUT_S)
        subprocess.run([build, "--rebuild", "fastlane"], check=True, timeout=BUILD_TIMEOUT_S)  # this checkout's code
        timings["build"] = time.monotonic() - started
        compose("up", "-d", timeout=UP_TIMEOUT_S)
        timings["up"] = time.monotonic() - started - timings["build"]
        with httpx.Client(base_url=API, timeout=10) as client:
            wait_ready(client, time.monotonic() + READY_TIMEOUT_S)
        timings["ready"] = time.monotonic() - started - timings["build"]
        running.containers = inspect_project()
        yield running
    finally:
        (LOCAL / "logs").mkdir(parents=True, exist_ok=True)
        logs = compose("logs", "--no-color", "--timestamps", timeout=120, check=False)
        (LOCAL / "logs" / "compose-test.log").write_text(logs.stdout + logs.stderr)
        down_started = time.monotonic()
        compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300)
        remove_job_containers(task_id)
        timings["down"] = time.monotonic() - down_started
        shown = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items())
        with capture.global_and_fixture_disabled():  # shown even when the test passes
            reporter.ensure_newline()
            reporter.write_line(f"compose stack: {shown} (up and ready counted from the end of the build)")


def test_a_job_posted_to_the_compose_api_runs_on_the_host_engine_and_its_output_is_kept(
    stack: Stack, task_id: str
) -> None:
    started = time.monotonic()
    with httpx.Client(base_url=API, timeout=10) as client:
        posted = client.post(f"/tasks/{task_id}", json={"image": JOB_IMAGE, "command": "echo hello from compose"})
        assert posted.status_code == 200, posted.text
        execution_url = posted.json()["executionUrl"]
        assert execution_url.startswith(API), "links carry the published address (FASTLANE_PUBLIC_URL)"
        execution: dict[str, Any] = {}
        while time.monotonic() - started < JOB_TIMEOUT_S:
            execution = client.get(execution_url).json()["execution"]
            if execution["status"] not in ("enqueued", "pulling", "running"):
                break
            time.sleep(0.5)
    stack.timings["job"] = time.monotonic() - started
    assert execution["status"] == "done", execution
    assert execution["exitCode"] == 0
    assert execution["log"] == "hello from compose\n"


def test_the_migration_ran_to_completion_before_any_service_started(stack: Stack) -> None:
    assert set(stack.containers) == SERVICES
    migrate = stack.containers["migrate"]["State"]
    assert (migrate["Status"], migrate["ExitCode"]) == ("exited", 0)
    for service in ("api", "scheduler", "recorder", "notifier", "runner"):
        state = stack.containers[service]["State"]
        assert state["Running"], (service, state)
        assert engine_time(state["StartedAt"]) > engine_time(migrate["FinishedAt"]), service


def test_every_container_runs_as_a_numeric_non_root_user(stack: Stack) -> None:
    for service, container in stack.containers.items():
        uid = container["Config"]["User"].split(":")[0]
        assert uid.isdigit() and int(uid) != 0, (service, container["Config"]["User"])
        if container["State"]["Running"]:
            assert docker("exec", container["Id"], "id", "-u").strip() == uid, service


def test_only_the_runner_has_the_docker_socket(stack: Stack) -> None:
    with_socket = {
        service
        for service, container in stack.containers.items()
        for mount in container["Mounts"]
        if "docker.sock" in mount.get("Source", "") or "docker.sock" in mount["Destination"]
    }
    assert with_socket == {"runner"}
    gid = str(os.stat(DOCKER_SOCKET).st_gid)
    groups = docker("exec", stack.containers["runner"]["Id"], "id", "-G").split()
    assert gid in groups, "the runner joins the socket's group (FASTLANE_DOCKER_GID) to use it as non-root"
