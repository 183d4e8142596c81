"""Latency of one trivial job: POST -> status done through fastlane, against a plain `docker run --rm` of the
same image and command on the same engine, measured side by side (interleaved) so both see the same machine.

With `--url` it benches a running stack as it is (e.g. `make run`'s, http://127.0.0.1:10000). Without it, it
needs Kafka and Cassandra answering (`make bench` starts them) and starts its own five services on a private
topic prefix and keyspace, so it neither sees nor disturbs `make run` data. Bounded: N rounds, then it stops.

    .venv/bin/python bench/latency.py [--url http://127.0.0.1:10000] [--rounds 30] [--image fastlane-test:latest]
        [--command true]
"""

import argparse
import statistics
import subprocess
import time
import uuid
from datetime import datetime

import httpx
from _stack import stack_url


def docker_run(image: str, command: str) -> float:
    start = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", image, *command.split()], check=True, capture_output=True)
    return time.perf_counter() - start


HOPS = ("POST answered", "-> container started", "-> container ended", "-> done readable")


def fastlane_run(client: httpx.Client, image: str, command: str, poll_s: float = 0.01) -> tuple[float, list[float]]:
    """POST -> done in seconds, and its hops (HOPS, seconds each): the POST's answer; to the container's start
    and to its end (the engine's and the runner's times on the execution); to `done` read by this client."""
    start_wall, start = time.time(), time.perf_counter()
    response = client.post(f"/tasks/bench-latency-{uuid.uuid4().hex[:6]}", json={"image": image, "command": command})
    response.raise_for_status()
    answered = time.time()
    url = response.json()["executionUrl"]
    while True:
        execution = client.get(url).json()["execution"]
        if execution["status"] == "done":
            total, seen = time.perf_counter() - start, time.time()
            began, ended = (datetime.fromisoformat(execution[k]).timestamp() for k in ("startedAt", "finishedAt"))
            return total, [answered - start_wall, began - answered, ended - began, seen - ended]
        if execution["status"] not in ("enqueued", "pulling", "running"):
            raise RuntimeError(f"bench job ended {execution['status']}")
        time.sleep(poll_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running stack to bench (default: a private one)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--image", default="fastlane-test:latest")
    parser.add_argument("--command", default="true")
    args = parser.parse_args()

    with stack_url(args.url) as url, httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(args.warmup):
            fastlane_run(client, args.image, args.command)
            docker_run(args.image, args.command)
        ours, theirs, hops = [], [], []
        for _ in range(args.rounds):
            total, hop = fastlane_run(client, args.image, args.command)
            ours.append(total)
            hops.append(hop)
            theirs.append(docker_run(args.image, args.command))

    fl, dr = statistics.median(ours), statistics.median(theirs)
    fl90, dr90 = statistics.quantiles(ours, n=10)[-1], statistics.quantiles(theirs, n=10)[-1]
    print(f"rounds: {args.rounds} ({args.image} {args.command!r}) against {args.url or 'a private stack'}")
    print(
        "every round, ms (fastlane / docker run):",
        " ".join(f"{a * 1000:.0f}/{b * 1000:.0f}" for a, b in zip(ours, theirs, strict=True)),
    )
    print(f"docker run --rm      p50 {dr * 1000:7.1f} ms   p90 {dr90 * 1000:7.1f} ms")
    print(f"fastlane POST->done  p50 {fl * 1000:7.1f} ms   p90 {fl90 * 1000:7.1f} ms")
    print(f"ratio p50 {fl / dr:.2f}x, p90 {fl90 / dr90:.2f}x   target <= 1.15x")
    medians = [statistics.median(h[i] for h in hops) * 1000 for i in range(len(HOPS))]
    print("fastlane hops (medians, ms): " + ", ".join(f"{name} {m:.0f}" for name, m in zip(HOPS, medians, strict=True)))


if __name__ == "__main__":
    main()
