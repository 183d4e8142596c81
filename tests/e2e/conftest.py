"""The whole stack for end-to-end tests: the four services as real processes, as `make run` starts them,
on this session's isolated topics and keyspace, with the API on a port of its own."""

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.settings import RunnerSettings
from tests.conftest import ROOT
from tests.helpers import eventually

SERVICES = ("recorder", "scheduler", "runner", "api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def api(backends: RunnerSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = os.environ | {
        "FASTLANE_TOPIC_PREFIX": backends.topic_prefix,
        "FASTLANE_KEYSPACE": backends.keyspace,
        "FASTLANE_API_PORT": str(port),
        "FASTLANE_MAX_RUNNING": "4",
    }
    logs: Path = tmp_path_factory.mktemp("services")
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=ROOT,
            env=env,
            stdout=(logs / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for name in SERVICES
    }
    base = f"http://127.0.0.1:{port}"

    def api_answers() -> bool:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited early:\n{(logs / f'{name}.log').read_text()[-3000:]}")
        try:
            return httpx.get(f"{base}/tasks/readiness-probe", timeout=2).status_code == 404
        except httpx.TransportError:
            return False

    eventually(api_answers, timeout=120, interval=0.5, what="the API to answer")
    yield base
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    for name, proc in procs.items():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"{name} did not stop within 30 s of SIGTERM") from None
    for name in SERVICES:
        print(f"--- {name} log tail ---\n{(logs / f'{name}.log').read_text()[-2000:]}")


@pytest.fixture
def client(api: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, timeout=10) as c:
        yield c
