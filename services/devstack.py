"""Start the five services as separate processes against a running Kafka and Cassandra, the way `make run`
does, but on a chosen topic prefix, keyspace and API port. Used by the end-to-end tests and the benches."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("recorder", "scheduler", "runner", "notifier", "api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevStack:
    """Context manager: the services up and the API answering on entry; SIGTERM to all on exit. The migration runs
    first, as `make run` runs it, unless `migrated` says the prefix and keyspace are already at the code's version
    (the services check it at start-up either way)."""

    def __init__(
        self,
        topic_prefix: str,
        keyspace: str,
        log_dir: Path,
        max_running: int | None = 4,
        services: tuple[str, ...] = SERVICES,
        migrated: bool = False,
        **env: str,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.env = (
            os.environ
            | {
                "FASTLANE_TOPIC_PREFIX": topic_prefix,
                "FASTLANE_KEYSPACE": keyspace,
                "FASTLANE_API_PORT": str(self.port),
            }
            | ({"FASTLANE_MAX_RUNNING": str(max_running)} if max_running else {})
            | env
        )
        self.services = services
        self.migrated = migrated
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        # What each named process was started as (service, extra env): `restart` starts it the same way again.
        self.specs: dict[str, tuple[str, dict[str, str]]] = {}
        # Where each named process other than the API serves /metrics, /healthz and /readyz.
        self.metrics_ports: dict[str, int] = {}

    def log_tail(self, name: str, chars: int = 3000) -> str:
        return (self.log_dir / f"{name}.log").read_text()[-chars:]

    def start(self, service: str, name: str | None = None, **env: str) -> None:
        """Start one service process (`name` tells a second instance apart; `env` adds FASTLANE_* settings)."""
        name = name or service
        if service != "api" and "FASTLANE_METRICS_PORT" not in env:
            env = {**env, "FASTLANE_METRICS_PORT": str(self.metrics_ports.get(name) or free_port())}
        if service != "api":
            self.metrics_ports[name] = int(env["FASTLANE_METRICS_PORT"])
        self.specs[name] = (service, env)
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            cwd=ROOT,
            env=self.env | env,
            stdout=(self.log_dir / f"{name}.log").open("a"),
            stderr=subprocess.STDOUT,
        )

    def restart(self, name: str) -> None:
        """Start a named process again as it was first started (after `kill` or a crash of its own)."""
        service, env = self.specs[name]
        self.procs.pop(name, None)
        self.start(service, name, **env)

    def pid(self, name: str) -> int:
        """The process id of a running named process (for signals a test sends itself: SIGSTOP, SIGCONT)."""
        return self.procs[name].pid

    def terminate(self, name: str, timeout: float = 30) -> None:
        """SIGTERM one service and wait for it to exit."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout)

    def kill(self, name: str) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait(10)

    def migrate(self, timeout: float = 300) -> None:
        """Run the migration (`python -m services.migrate`) on this stack's prefix and keyspace, as `make run`
        does before its services: they only wait for it."""
        with (self.log_dir / "migrate.log").open("a") as out:
            subprocess.run(
                [sys.executable, "-m", "services.migrate"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=True,
            )

    def __enter__(self) -> "DevStack":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if not self.migrated:
            self.migrate()
        for name in self.services:
            self.start(name)
        try:
            self.wait_until_ready(timeout=120)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.log_tail(name)}")
            try:
                if httpx.get(f"{self.url}/tasks/readiness-probe", timeout=2).status_code == 404:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the API did not answer within {timeout}s:\n{self.log_tail('api')}")

    def stop(self, timeout: float = 30) -> list[str]:
        """SIGTERM every service; returns the names of those that had to be killed."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        killed = []
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                killed.append(name)
        return killed

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
