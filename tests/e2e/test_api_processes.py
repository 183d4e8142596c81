"""The API in several processes on one port (FASTLANE_API_PROCESSES, as `make run` starts it): every worker
answers, a GET right after a POST answers 200 whichever worker takes it, /metrics counts every worker's, and a
supervisor killed with -9 leaves no worker behind holding the port. Real Kafka and Cassandra."""

import os
import socket
import uuid
from pathlib import Path

import httpx

from services.devstack import DevStack
from shared.process.settings import Settings
from tests.helpers import eventually


def workers_of(pid: int) -> list[int]:
    """Live worker processes of the supervisor `pid` (from /proc; multiprocessing's resource tracker, also its
    child, is not one)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z" and b"spawn_main" in command:
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_two_api_processes_serve_one_port_and_end_with_their_supervisor(own_topics: Settings, tmp_path: Path) -> None:
    with DevStack(  # own_topics made its topics; the keyspace is the session's, migrated by `backends`
        own_topics.topic_prefix,
        own_topics.keyspace,
        tmp_path,
        services=("api",),
        migrated=True,
        FASTLANE_API_PROCESSES="2",
    ) as stack:
        supervisor = stack.pid("api")
        workers = workers_of(supervisor)
        assert len(workers) == 2, workers
        for n in range(20):  # new connections each time: the kernel hands them to either worker
            with httpx.Client(base_url=stack.url, timeout=10) as client:
                posted = client.post(f"/tasks/procs-{n}", json={"image": "img", "command": "true", "startIn": "10h"})
                assert posted.status_code == 200, posted.text
            with httpx.Client(base_url=stack.url, timeout=10) as client:
                assert client.get(posted.json()["jobUrl"]).status_code == 200
                assert client.get(f"/tasks/procs-{n}/jobs/{uuid.uuid4()}").status_code == 404
        # Metrics are the API's as a whole (every worker's samples added up), whichever worker answers.
        for _ in range(10):
            with httpx.Client(base_url=stack.url, timeout=10) as client:
                metrics = client.get("/metrics").text
            assert 'fastlane_jobs_accepted_total{order="created"} 20.0' in metrics.splitlines()
        stack.kill("api")
        eventually(lambda: not any(alive(w) for w in workers), timeout=20, what="the workers to end with it")
        eventually(lambda: not port_open(stack.port), timeout=5, what="the port to be free")
