"""Latency of one trivial job: POST -> status done through fastlane, against a plain `docker run --rm` of the
same image and command on the same engine, measured side by side (interleaved) so both see the same machine.

Needs Kafka and Cassandra answering (`make bench` starts them); starts its own five services on a private
topic prefix and keyspace, so it neither sees nor disturbs `make run` data. Bounded: N rounds, then it stops.

    .venv/bin/python bench/latency.py [--rounds 30] [--image fastlane-test:latest] [--command true]
"""

import argparse
import statistics
import subprocess
import time
import uuid

import httpx
from _stack import private_backends, private_stack


def docker_run(image: str, command: str) -> float:
    start = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", image, *command.split()], check=True, capture_output=True)
    return time.perf_counter() - start


def fastlane_run(client: httpx.Client, image: str, command: str, poll_s: float = 0.01) -> float:
    start = time.perf_counter()
    response = client.post(f"/tasks/bench-latency-{uuid.uuid4().hex[:6]}", json={"image": image, "command": command})
    response.raise_for_status()
    url = response.json()["executionUrl"]
    while True:
        status = client.get(url).json()["execution"]["status"]
        if status == "done":
            return time.perf_counter() - start
        if status not in ("enqueued", "pulling", "running"):
            raise RuntimeError(f"bench job ended {status}")
        time.sleep(poll_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--image", default="fastlane-test:latest")
    parser.add_argument("--command", default="true")
    args = parser.parse_args()

    with (
        private_backends() as settings,
        private_stack(settings) as stack,
        httpx.Client(base_url=stack.url, timeout=10) as client,
    ):
        for _ in range(args.warmup):
            fastlane_run(client, args.image, args.command)
            docker_run(args.image, args.command)
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(fastlane_run(client, args.image, args.command))
            theirs.append(docker_run(args.image, args.command))

    fl, dr = statistics.median(ours), statistics.median(theirs)
    print(f"rounds: {args.rounds} ({args.image} {args.command!r})")
    print(f"docker run --rm  median {dr * 1000:7.1f} ms   p90 {statistics.quantiles(theirs, n=10)[-1] * 1000:7.1f} ms")
    print(f"fastlane POST->done median {fl * 1000:7.1f} ms   p90 {statistics.quantiles(ours, n=10)[-1] * 1000:7.1f} ms")
    print(f"ratio (median): {fl / dr:.2f}x   target <= 1.15x")


if __name__ == "__main__":
    main()
