"""Throughput of the local cluster (`make run-cluster`) with 1, 2 and 3 runners and with 1 and 2 schedulers.

Against the stack exactly as `make run-cluster` starts it (API on 127.0.0.1:10000): replicas are taken out and
put back with its supervisorctl (`deploy/cluster/supervisord.conf`), everything else stays up. Each
configuration runs `--jobs` jobs of `--command` (default `sleep 1`: a second of work each, so the figure is about
how many execution slots the runners bring, plus what the control plane costs on top) and reports executions
per second, from the first POST to the last execution's own finishedAt, and the p50/p90 of POST -> startedAt.
A warm-up round (not counted) comes first. Every replica is running again at the end.

    .venv/bin/python bench/cluster.py [--jobs 36] [--command "sleep 1"]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CTL = [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(ROOT / "deploy" / "cluster" / "supervisord.conf")]
RUNNERS = ("runner:runner-1", "runner:runner-2", "runner:runner-3")
SCHEDULERS = ("scheduler:scheduler-1", "scheduler:scheduler-2")
# (label, runners up, schedulers up)
CONFIGS = (
    ("1 runner, 2 schedulers", 1, 2),
    ("2 runners, 2 schedulers", 2, 2),
    ("3 runners, 2 schedulers", 3, 2),
    ("3 runners, 1 scheduler", 3, 1),
)


def ctl(action: str, programs: tuple[str, ...]) -> None:
    """supervisorctl of `make run-cluster` (the Makefile's defaults for where its socket is, unless set)."""
    env = {
        "FASTLANE_SUPERVISOR_RUN_DIR": str(ROOT / ".local" / "run"),
        "FASTLANE_SUPERVISOR_LOG_DIR": str(ROOT / ".local" / "logs"),
    } | dict(os.environ)
    if programs:
        subprocess.run([*CTL, action, *programs], check=False, capture_output=True, timeout=120, env=env)


def available_hosts(client: httpx.Client) -> int:
    return sum(1 for h in client.get("/status").json()["hosts"] if h["available"])


def configure(client: httpx.Client, runners: int, schedulers: int) -> None:
    """Leave up the first `runners` runners and `schedulers` schedulers; wait until the rest are gone from the
    farm (a stopped runner reports itself leaving) and the group has settled."""
    ctl("start", RUNNERS[:runners] + SCHEDULERS[:schedulers])
    ctl("stop", RUNNERS[runners:] + SCHEDULERS[schedulers:])
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if available_hosts(client) == runners:
                break
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(1)
    time.sleep(15)  # consumer groups rebalanced (session timeouts are 10 s)


def run_jobs(client: httpx.Client, jobs: int, image: str, command: str) -> tuple[float, list[float], list[float]]:
    """Executions per second (first POST to the last execution's finishedAt), the seconds from each POST until
    its container started, and each POST's own latency. POSTs go from 8 threads at once, so the rate measures
    the stack rather than one client's round trips."""

    def post(_: int) -> tuple[float, float, str]:
        sent = time.time()
        body = {"image": image, "command": command}
        response = client.post(f"/tasks/bench-cluster-{uuid.uuid4().hex[:6]}", json=body)
        response.raise_for_status()
        return sent, time.time() - sent, str(response.json()["executionUrl"])

    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        posted = list(pool.map(post, range(jobs)))
    finished: list[float] = []
    waits: list[float] = []
    deadline = time.time() + 900
    for sent, _, url in posted:
        while time.time() < deadline:
            execution = client.get(url).json()["execution"]
            if execution["status"] in ("done", "failed", "timedout", "expired", "stopped"):
                assert execution["status"] == "done", execution
                finished.append(datetime.fromisoformat(execution["finishedAt"]).timestamp())
                waits.append(datetime.fromisoformat(execution["startedAt"]).timestamp() - sent)
                break
            time.sleep(1)
    assert len(finished) == jobs, "not every job finished within 15 minutes"
    return jobs / (max(finished) - started), waits, [latency for _, latency, _ in posted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:10000")
    parser.add_argument("--jobs", type=int, default=36)
    parser.add_argument("--image", default="fastlane-test:latest")
    parser.add_argument("--command", default="sleep 1")
    args = parser.parse_args()
    with httpx.Client(base_url=args.url, timeout=30) as client:
        try:
            hosts = available_hosts(client)
        except httpx.HTTPError:
            sys.exit(f"no cluster API at {args.url}: start `make run-cluster` first")
        print(f"{args.jobs} jobs of `{args.command}` per configuration; {hosts} runner hosts available at start")
        try:
            run_jobs(client, args.jobs, args.image, args.command)  # warm-up
            for label, runners, schedulers in CONFIGS:
                configure(client, runners, schedulers)
                rate, waits, posts = run_jobs(client, args.jobs, args.image, args.command)
                p90 = statistics.quantiles(waits, n=10)[8]
                print(
                    f"{label:26s} {rate:5.2f} executions/s   POST->started p50 {statistics.median(waits):5.2f} s"
                    f" p90 {p90:5.2f} s   POST p50 {statistics.median(posts) * 1000:4.0f} ms"
                )
        finally:
            ctl("start", RUNNERS + SCHEDULERS)


if __name__ == "__main__":
    main()
