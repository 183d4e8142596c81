"""The fault stack: own Kafka, Cassandra and Docker engine (tests/faults/backends.py), the five services as
processes on a topic prefix and keyspace of their own, with two runners (hosts h1 and h2 of one farm) on the
second engine, and the checker's watches. Every part can be killed with -9, restarted, paused and resumed."""

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import IO, Any, Protocol

import httpx

from services.devstack import DevStack
from shared.contract.topics import Topics
from shared.domain.farms import Farm
from shared.process.settings import Settings
from tests.faults.backends import (
    CASSANDRA_ADDR,
    ENGINE_URL,
    FAULTS_DIR,
    CassandraBackend,
    Engine,
    KafkaBackend,
    wait_until,
)
from tests.faults.checker import ApiWatch, Checker, EngineWatch, EventWatch, WebhookReceiver

TEST_IMAGE = "fastlane-test:latest"
HOSTS = ("h1", "h2")
FARMS = [Farm(name="default", match="", hosts=list(HOSTS), maxRunning=4)]
CORE_SERVICES = ("recorder", "scheduler", "notifier", "api")


class Part(Protocol):
    """Something a round can crash or pause."""

    name: str

    def kill(self) -> None: ...
    def restart(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def alive(self) -> bool: ...
    def wait_ready(self) -> None: ...


class Service:
    """One service process of the DevStack."""

    def __init__(self, stack: DevStack, name: str) -> None:
        self.stack = stack
        self.name = name

    def kill(self) -> None:
        self.stack.kill(self.name)

    def restart(self) -> None:
        self.stack.restart(self.name)

    def pause(self) -> None:
        os.kill(self.stack.pid(self.name), signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.stack.pid(self.name), signal.SIGCONT)

    def alive(self) -> bool:
        proc = self.stack.procs.get(self.name)
        return proc is not None and proc.poll() is None

    def wait_ready(self) -> None:
        if self.name == "api":
            self.stack.wait_until_ready(timeout=120)


def probe_job(http: httpx.Client, api_url: str, task: str, timeout: float) -> None:
    """POST an `echo` job to `task` and wait until its execution reads `done` (the stack works end to end)."""
    marker = f"probe-{uuid.uuid4().hex[:8]}"
    response = http.post(f"{api_url}/tasks/{task}", json={"image": TEST_IMAGE, "command": f"echo {marker}"})
    response.raise_for_status()
    url = f"{api_url}/tasks/{task}/jobs/{response.json()['jobId']}"

    def done() -> bool:
        try:
            executions = http.get(url).json()["job"]["executions"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        return bool(executions) and executions[0]["status"] == "done"

    wait_until(done, timeout, f"probe job {url} to be done")


class FaultStack:
    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:6]
        self.kafka = KafkaBackend()
        self.cassandra = CassandraBackend()
        self.engine = Engine()
        self.prefix = f"faults.{self.run}."
        self.keyspace = f"faults_{self.run}"
        self.settings = Settings(
            kafka_bootstrap=self.kafka.bootstrap,
            cassandra_hosts=CASSANDRA_ADDR,
            topic_prefix=self.prefix,
            keyspace=self.keyspace,
            farms=FARMS,
        )
        self.topics = Topics.from_settings(self.settings)
        self.log_dir = FAULTS_DIR / "logs" / f"services-{self.run}"
        self.stack = DevStack(
            self.prefix,
            self.keyspace,
            self.log_dir,
            max_running=None,
            services=CORE_SERVICES,
            FASTLANE_KAFKA_BOOTSTRAP=self.kafka.bootstrap,
            FASTLANE_CASSANDRA_HOSTS=CASSANDRA_ADDR,
            FASTLANE_DOCKER_HOST=ENGINE_URL,
            FASTLANE_FARMS=json.dumps([f.model_dump(by_alias=True) for f in FARMS]),
            FASTLANE_HOST_LOST_AFTER_S="60",
            FASTLANE_RETRY_BACKOFF_MIN_MS="500",
            FASTLANE_WEBHOOKS_REFUSE_PRIVATE="false",
        )
        self.parts: dict[str, Part] = {
            "kafka": self.kafka,
            "cassandra": self.cassandra,
            "dockerd": self.engine,
            **{name: Service(self.stack, name) for name in (*CORE_SERVICES, "runner-h1", "runner-h2")},
        }
        self.hooks = WebhookReceiver()
        self.engine_watch = EngineWatch(ENGINE_URL)
        self.event_watch: EventWatch | None = None
        self.api_watch = ApiWatch()
        self.http = httpx.Client(timeout=10)
        self.lock: IO[str] | None = None

    # -- life of the whole stack ------------------------------------------------------------------------------

    def acquire(self) -> None:
        """One fault run at a time per checkout: the backends' addresses and data and the second engine are
        shared, so a second run must not start (nor tear down) anything."""
        FAULTS_DIR.mkdir(parents=True, exist_ok=True)
        lock = (FAULTS_DIR / "run.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise RuntimeError(f"another fault run holds {FAULTS_DIR / 'run.lock'}; wait for it to end") from None
        self.lock = lock

    def up(self) -> None:
        assert self.lock is not None, "acquire() first"
        shutil.rmtree(FAULTS_DIR / "data", ignore_errors=True)  # every run starts from empty backends
        self.kafka.start()
        self.cassandra.start()
        self.engine.start()
        self.kafka.wait_ready()
        self.cassandra.wait_ready()
        self.stack.__enter__()
        for host in HOSTS:
            self.stack.start("runner", name=f"runner-{host}", FASTLANE_HOST_NAME=host)
        self.wait_hosts_available(timeout=120)
        self.hooks.start()
        self.engine_watch.start()
        self.event_watch = EventWatch(self.kafka.bootstrap, [self.topics.executions, *self.topics.all_due])
        self.event_watch.start()
        self.api_watch.start()

    def down(self) -> None:
        for part in self.parts.values():  # nothing left stopped
            try:
                if part.alive():
                    part.resume()
            except (OSError, RuntimeError, ValueError):
                pass
        self.api_watch.stop()
        if self.event_watch is not None:
            self.event_watch.stop()
        self.engine_watch.stop()
        self.hooks.stop()
        self.http.close()
        self.stack.stop()
        self.engine.stop()
        self.kafka.stop()
        self.cassandra.stop()
        if self.lock is not None:
            self.lock.close()  # releases the flock

    def checker(self) -> Checker:
        assert self.event_watch is not None
        return Checker(self.stack.url, self.engine_watch, self.event_watch, self.hooks, self.api_watch)

    # -- health between rounds --------------------------------------------------------------------------------

    def hosts(self) -> dict[str, dict[str, Any]]:
        try:
            return {h["host"]: h for h in self.http.get(f"{self.stack.url}/status").json()["hosts"]}
        except (httpx.HTTPError, ValueError, KeyError):
            return {}

    def wait_hosts_available(self, timeout: float) -> None:
        wait_until(lambda: all(self.hosts().get(h, {}).get("available") for h in HOSTS), timeout, "runners h1 and h2")

    def crashed(self) -> list[str]:
        """Parts that are down without the harness having left them so: services that exited on their own,
        Kafka or Cassandra gone, or a second engine that does not answer (its pidfile and socket are shared with
        tests/e2e/test_farms.py, whose teardown stops it: never run both at once in one checkout)."""
        down = [name for name, part in self.parts.items() if name != "dockerd" and not part.alive()]
        return down + ([] if self.engine.ready() else ["dockerd"])

    def repair(self) -> list[str]:
        """Bring every part back: what is dead is started again; then a probe job must reach done. When it
        does not, the services are hung rather than dead: their stacks are dumped (py-spy) as evidence, all of
        them are killed and started again, and the probe must pass then. Returns what was started again."""
        restarted = self._restart_dead()
        try:
            self._wait_healthy()
        except (RuntimeError, httpx.HTTPError) as exc:
            dump = self.dump_stacks(f"probe failed: {exc}")
            restarted.append(f"probe failed ({str(exc)[:200]}), stacks in {dump}")
            for part in self.parts.values():
                if isinstance(part, Service) and part.alive():
                    part.resume()
                    part.kill()
            restarted.append(f"then all services killed and started again ({', '.join(self._restart_dead())})")
            self._wait_healthy()
        return restarted

    def _restart_dead(self) -> list[str]:
        restarted = []
        for name, part in self.parts.items():
            if name == "dockerd":
                if not self.engine.ready():
                    if self.engine.alive():
                        self.engine.resume()
                    else:
                        self.engine.restart()
                    restarted.append(name)
                continue
            if not part.alive():
                part.restart()
                restarted.append(name)
        return restarted

    def _wait_healthy(self) -> None:
        for part in self.parts.values():
            part.wait_ready()
        self.stack.wait_until_ready(timeout=120)
        self.wait_hosts_available(timeout=150)
        self.probe()

    def dump_stacks(self, why: str) -> Path:
        """Every live service's Python and native stacks (py-spy), for the report."""
        path = FAULTS_DIR / "evidence" / f"stacks-{time.strftime('%H%M%S')}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            out.write(f"{why}\n")
            for name, proc in list(self.stack.procs.items()):
                out.write(f"\n===== {name} (pid {proc.pid}) =====\n")
                out.flush()
                try:
                    subprocess.run(
                        ["py-spy", "dump", "--native", "--pid", str(proc.pid)],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        timeout=30,
                        check=False,
                    )
                except (OSError, subprocess.TimeoutExpired) as exc:
                    out.write(f"py-spy: {exc}\n")
        return path

    def probe(self, timeout: float = 60) -> None:
        probe_job(self.http, self.stack.url, f"probe-{self.run}", timeout)

    # -- a second scheduler (the zombie round) ----------------------------------------------------------------

    def assignment(self, name: str) -> list[int]:
        path = self.log_dir / f"{name}.log"
        lines = re.findall(r"partitions assigned partitions=\[([0-9, ]*)\]", path.read_text()) if path.exists() else []
        return [int(p) for p in lines[-1].split(",") if p.strip()] if lines else []

    def wait_for_assignment(self, names: tuple[str, ...], timeout: float) -> None:
        wait_until(lambda: all(self.assignment(n) for n in names), timeout, f"{names} to own partitions")

    def log_lines(self, pattern: str, names: tuple[str, ...] | None = None, limit: int = 20) -> list[str]:
        """Lines of the services' logs that match `pattern` (evidence for a report)."""
        found = []
        for path in sorted(self.log_dir.glob("*.log")):
            if names and path.stem not in names:
                continue
            for line in path.read_text(errors="replace").splitlines():
                if re.search(pattern, line):
                    found.append(f"{path.stem}: {line[:400]}")
        return found[-limit:]
