"""Throughput of one Docker host: 40 trivial jobs through fastlane with maxRunning 4 against 40
`docker run --rm` at concurrency 4 on the same engine. Makespan = first request to last execution finished.

With `--url` it benches a running stack as it is (e.g. `make run`'s, http://127.0.0.1:10000; `docker run` then
runs as many at once as the stack's available hosts take, from /status). Without it, it needs Kafka and
Cassandra answering (`make bench` starts them) and starts its own services on a private topic prefix and
keyspace with maxRunning `--concurrency`. Bounded: a fixed number of jobs per round and of rounds, then it stops.

    .venv/bin/python bench/makespan.py [--url http://127.0.0.1:10000] [--jobs 40] [--concurrency 4] [--rounds 3]
        [--image fastlane-test:latest]
"""

import argparse
import statistics
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
from _stack import capacity, cpu_by_process, stack_url


def docker_makespan(jobs: int, concurrency: int, image: str, command: str) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        runs = [
            pool.submit(
                subprocess.run, ["docker", "run", "--rm", image, *command.split()], check=True, capture_output=True
            )
            for _ in range(jobs)
        ]
        for run in runs:
            run.result()
    return time.perf_counter() - start


def fastlane_makespan(client: httpx.Client, jobs: int, image: str, command: str) -> tuple[float, str]:
    """The makespan, and where an execution's time goes on average (from the execution's own times)."""
    started = time.time()
    urls = []
    for _ in range(jobs):
        response = client.post(
            f"/tasks/bench-makespan-{uuid.uuid4().hex[:6]}", json={"image": image, "command": command}
        )
        response.raise_for_status()
        urls.append(response.json()["executionUrl"])
    finished: list[float] = []
    waited: list[float] = []  # createdAt -> startedAt: queue, claim and container start
    ran: list[float] = []  # startedAt -> finishedAt: container run, logs and report
    deadline = time.time() + 600
    for url in urls:
        while time.time() < deadline:
            execution = client.get(url).json()["execution"]
            if execution["status"] in ("done", "failed"):
                assert execution["status"] == "done", execution
                created, began, ended = (
                    datetime.fromisoformat(execution[key]).timestamp()
                    for key in ("createdAt", "startedAt", "finishedAt")
                )
                finished.append(ended)
                waited.append(began - created)
                ran.append(ended - began)
                break
            time.sleep(1)  # finishedAt is the runner's: polling slowly does not blur the figure, it only loads the
            # machine less (the docker side has no poller)
    assert len(finished) == jobs, "not every job finished within 10 minutes"
    breakdown = f"mean created->started {statistics.mean(waited):.2f} s, started->finished {statistics.mean(ran):.2f} s"
    return max(finished) - started, breakdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running stack to bench (default: a private one)")
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image", default="fastlane-test:latest")
    parser.add_argument("--command", default="true")
    args = parser.parse_args()

    with (
        stack_url(args.url, max_running=args.concurrency) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        concurrency = capacity(client) if args.url else args.concurrency
        print(f"{args.jobs} jobs, {concurrency} at a time, against {args.url or 'a private stack'}")
        # Warm-up, not counted: a full round each, so the JVMs of Kafka and Cassandra have compiled their hot
        # paths (right after they start, the same round costs them 2-3 times the CPU, measured).
        fastlane_makespan(client, args.jobs, args.image, args.command)
        docker_makespan(args.jobs, concurrency, args.image, args.command)
        ratios = []
        for n in range(args.rounds):
            plain = docker_makespan(args.jobs, concurrency, args.image, args.command)
            cpu_before = cpu_by_process()
            ours, breakdown = fastlane_makespan(client, args.jobs, args.image, args.command)
            used = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_by_process().items()}
            cpu = sum(v for k, v in used.items() if k != "docker engine")
            ratios.append(ours / plain)
            print(f"round {n + 1}: docker run {plain:5.1f} s   fastlane {ours:5.1f} s   ratio {ours / plain:4.2f}x")
            print(f"         {breakdown}")
            per_job = cpu / args.jobs * 1000
            print(f"         Kafka, Cassandra and the services used {cpu:.1f} CPU-s ({per_job:.0f} ms a job)")
            split = ", ".join(f"{k} {v:.1f}" for k, v in sorted(used.items(), key=lambda kv: -kv[1]) if v >= 0.05)
            print(f"         CPU-s by process: {split}")
        print(
            f"ratios {', '.join(f'{r:.2f}x' for r in ratios)}; median {statistics.median(ratios):.2f}x,"
            f" worst {max(ratios):.2f}x (target <= 1.10x every round)"
        )


if __name__ == "__main__":
    main()
