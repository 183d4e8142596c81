"""`make run`'s supervisor: deploy/supervisord.conf as is, with the five real services against the running Kafka
and Cassandra (FASTLANE_SUPERVISE_BACKENDS=false), on topics, a keyspace, an API port and a pidfile, socket and
log of their own, so it never clashes with a `make run` or with the other end-to-end tests."""

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from services.devstack import ROOT, SERVICES, free_port
from tests.conftest import AllSettings, drop_stack_data
from tests.helpers import eventually

CONF = ROOT / "deploy" / "supervisord.conf"
METERED = ("recorder", "scheduler", "runner", "notifier")  # the services with a metrics port of their own
BIN = ROOT / ".venv" / "bin"


class Supervisor:
    """supervisord with deploy/supervisord.conf in the foreground, and supervisorctl on its socket."""

    def __init__(self, home: Path, settings: AllSettings, **env: str) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = os.environ | {
            "FASTLANE_SUPERVISOR_RUN_DIR": str(home / "run"),
            "FASTLANE_SUPERVISOR_LOG_DIR": str(home / "logs"),
            "FASTLANE_SUPERVISE_BACKENDS": "false",
            "FASTLANE_TOPIC_PREFIX": settings.topic_prefix,
            "FASTLANE_KEYSPACE": settings.keyspace,
            "FASTLANE_API_PORT": str(self.port),
            "FASTLANE_MAX_RUNNING": "4",
            **{f"FASTLANE_{name.upper()}_METRICS_PORT": str(free_port()) for name in METERED},
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for d in ("run", "logs"):
            (self.home / d).mkdir(parents=True, exist_ok=True)
        # Append mode: supervisord reopens /dev/stdout for the programs' output, and both must append.
        with (self.home / "output.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "supervisord"), "-c", str(CONF)], cwd=ROOT, env=self.env, stdout=out, stderr=out
            )

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(CONF), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout.strip()

    def pid(self, name: str) -> int:
        answer = self.ctl("pid", name)
        return int(answer) if answer.isdigit() else 0

    def states(self) -> dict[str, str]:
        lines = self.ctl("status").splitlines()
        return {line.split()[0]: line.split()[1] for line in lines if len(line.split()) > 1}

    def log(self) -> str:
        """supervisord's own log: spawns, exits, stops."""
        path = self.home / "logs" / "supervisord.log"
        return path.read_text() if path.exists() else ""

    def output(self, chars: int = 6000) -> str:
        """supervisord's stdout: its log and every program's output, prefixed with the program's name."""
        return (self.home / "output.log").read_text(errors="replace")[-chars:]

    def wait_until_running(self, timeout: float = 150) -> None:
        """Every service RUNNING (up for startsecs, 30 s) and the API answering."""

        def ready() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, f"supervisord exited:\n{self.output()}"
            if any(self.states().get(name) != "RUNNING" for name in SERVICES):
                return False
            try:
                return httpx.get(f"{self.url}/tasks/readiness-probe", timeout=2).status_code == 404
            except httpx.TransportError:
                return False

        eventually(ready, timeout=timeout, interval=0.5, what=f"every service RUNNING: {self.states()}")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM to supervisord, as `kill` or a stopping container would send; returns its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def process_group(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group: a program and what it started (its output prefixer)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(stat.parent.name))
    return found


def log_times(log: str, pattern: str) -> list[datetime]:
    return [
        datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
        for m in re.finditer(rf"^(\S+ \S+) \w+ {pattern}", log, re.MULTILINE)
    ]


@pytest.fixture(scope="module")
def isolated(backends: AllSettings) -> Iterator[AllSettings]:
    """Topics and a keyspace of this module's own: the session's stack (tests/e2e/conftest.py) runs at the same
    time on the session's, and two sets of services on the same consumer groups would share the work. Created by
    the configuration's own `migrate` program, as `make run` creates them, while the services wait for it."""
    run = uuid.uuid4().hex[:8]
    settings = AllSettings(topic_prefix=f"test.{run}.", keyspace=f"test_{run}", startup_timeout_s=240)
    yield settings
    drop_stack_data(settings)


@pytest.fixture(scope="module")
def supervised(isolated: AllSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    supervisor = Supervisor(tmp_path_factory.mktemp("supervisor"), isolated)
    supervisor.start()
    try:
        supervisor.wait_until_running()
        yield supervisor
    finally:
        supervisor.terminate()
        print(f"--- supervisord output tail ---\n{supervisor.output()}")


def test_a_killed_service_is_restarted_the_others_keep_running_and_jobs_still_get_done(
    supervised: Supervisor,
) -> None:
    before = {name: supervised.pid(name) for name in SERVICES}
    os.kill(before["scheduler"], signal.SIGKILL)

    def respawned() -> int:
        pid = supervised.pid("scheduler")
        return pid if pid not in (0, before["scheduler"]) else 0

    # The job is posted as soon as the new scheduler is spawned (it runs while supervisord waits its 30 s startsecs
    # to call it RUNNING); RUNNING under that same pid is checked after the job is done.
    restarted = eventually(respawned, timeout=90, interval=0.2, what="the scheduler spawned again, under a new pid")
    with httpx.Client(base_url=supervised.url, timeout=10) as client:
        response = client.post(
            f"/tasks/supervised-{uuid.uuid4().hex[:8]}", json={"image": "fastlane-test", "command": "echo hi"}
        )
        assert response.status_code == 200, response.text

        def finished() -> dict[str, str] | None:
            execution: dict[str, str] = client.get(response.json()["executionUrl"]).json()["execution"]
            return execution if execution["status"] in {"done", "failed", "timedout", "expired", "stopped"} else None

        execution = eventually(finished, timeout=60, interval=0.3, what="the job posted after the restart")
    assert (execution["status"], execution["log"]) == ("done", "hi\n")
    eventually(
        lambda: supervised.states()["scheduler"] == "RUNNING" and supervised.pid("scheduler") == restarted,
        timeout=90,
        interval=0.5,
        what="the scheduler RUNNING again, under the new pid",
    )
    assert {name: supervised.pid(name) for name in SERVICES if name != "scheduler"} == {
        name: pid for name, pid in before.items() if name != "scheduler"
    }
    assert "exited: scheduler (terminated by SIGKILL; not expected)" in supervised.log()


def test_sigterm_to_supervisord_stops_every_service_api_first_recorder_last(supervised: Supervisor) -> None:
    pids = {name: supervised.pid(name) for name in SERVICES}
    assert all(pids.values()), pids
    groups = {name: process_group(pid) for name, pid in pids.items()}
    assert all(len(members) >= 2 for members in groups.values()), groups  # the service and its prefixer

    started = time.monotonic()
    assert supervised.terminate(timeout=60) == 0
    assert time.monotonic() - started < 60
    eventually(
        lambda: not any(process_group(pid) for pid in pids.values()), timeout=10, what="no process of a service left"
    )
    stopped = re.findall(r"stopped: (\w+)", supervised.log())
    assert stopped == ["api", "notifier", "runner", "scheduler", "recorder"]


def test_a_service_that_dies_at_start_up_is_retried_with_a_pause_growing_by_a_second(
    backends: AllSettings, tmp_path: Path
) -> None:
    # 0 partitions is an invalid setting: every service stops at once, before touching Kafka or Cassandra.
    supervisor = Supervisor(tmp_path, backends, FASTLANE_TOPIC_PARTITIONS="0")
    supervisor.start()
    try:
        retried = eventually(
            lambda: len(log_times(supervisor.log(), "spawned: 'api'")) >= 5,
            timeout=120,
            what="five starts of the crashing API",
        )
        assert retried
        log = supervisor.log()
        assert "exited: api (exit status 1; not expected)" in log
        exits = log_times(log, r"exited: api \(")
        spawns = log_times(log, "spawned: 'api'")
        pauses = [(spawn - exit).total_seconds() for exit, spawn in zip(exits, spawns[1:], strict=False)][:4]
        assert len(pauses) == 4, (exits, spawns)
        # Pause n is n seconds (the supervisor's loop may add up to about one second to each).
        for n, pause in enumerate(pauses, start=1):
            assert n - 0.1 <= pause < n + 2.5, pauses
        assert pauses[-1] > pauses[0] + 1, pauses
        assert supervisor.states()["api"] in {"BACKOFF", "STARTING"}  # still being retried, not given up on
    finally:
        supervisor.terminate()
        print(f"--- supervisord output tail ---\n{supervisor.output()}")
