"""Live logs: how long a line written in a container takes to reach a WebSocket follower (p50/p90/p99), and the
API process's memory (RSS) idle, with 200 followers connected, and after they left.

Latency: jobs in `fastlane-test` echo `$EPOCHREALTIME` (bash 5) every 0.1 s; a follower connects right after each
POST and, for every line it receives, takes its receive time minus the written time (same machine, same clock).
An output message may carry several lines (the runner gathers output into chunks): each line is counted. A
quiet case (one line a second) shows whether a lone line waits for company.

Memory: as many executions as the farm runs at once (the hosts' capacity in /status), each printing a numbered
line every 0.2 s for a minute, followed by 200 WebSocket clients spread over them, all reading. RSS from
/proc/<pid>/status of the process listening on the API's port (Linux, same machine). Each follower must receive
every line of its execution once, in order: lost, duplicated and out-of-order counts are printed (expected 0).

Runs against a stack already running (`make run`: the API on --url); starts and stops nothing, talks to
127.0.0.1 only. Bounded: fixed rounds, jobs and followers; about 2.5 minutes with the defaults.

    .venv/bin/python bench/live_logs.py [--url http://127.0.0.1:10000] [--rounds 4] [--jobs 3] [--lines 50]
        [--quiet-lines 20] [--followers 200] [--executions N] [--memory-lines 300]
"""

import argparse
import asyncio
import itertools
import json
import os
import statistics
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import websockets

IMAGE = "fastlane-test:latest"


@dataclass
class Followed:
    """What one WebSocket follower received of one execution."""

    connected_at: float = 0.0
    lines: list[tuple[float, str]] = field(default_factory=list)  # (receive time, line)
    skipped: int = 0
    close: str = ""  # "<code> <reason>"


async def post_job(client: httpx.AsyncClient, command: str) -> str:
    """POSTs a job; the path of its execution's WebSocket."""
    response = await client.post(f"/tasks/bench-live-{uuid.uuid4().hex[:6]}", json={"image": IMAGE, "command": command})
    response.raise_for_status()
    job = response.json()
    return f"/tasks/{job['taskId']}/jobs/{job['jobId']}/executions/{job['executionId']}/ws"


async def follow(ws_url: str, running: asyncio.Event | None = None) -> Followed:
    """Reads one execution's messages until the API closes; a line counts when its newline arrives."""
    followed, partial = Followed(), ""
    async with websockets.connect(ws_url, max_size=None, open_timeout=30) as ws:
        followed.connected_at = time.time()
        async for frame in ws:
            received = time.time()
            message = json.loads(frame)
            if message["type"] == "execution" and message["status"] == "running" and running is not None:
                running.set()
            if message["type"] != "output":
                continue
            if running is not None:
                running.set()
            followed.skipped += message["skipped"]
            *complete, partial = (partial + message["text"]).split("\n")
            followed.lines.extend((received, line) for line in complete)
        followed.close = f"{ws.close_code} {ws.close_reason}"
    return followed


def delays_ms(followed: Followed) -> tuple[list[float], int]:
    """Receive minus written time of each line written after the follower connected; and how many lines were
    written before (read from Cassandra on joining: not a live delay)."""
    delays, before = [], 0
    for received, line in followed.lines:
        written = float(line)
        if written < followed.connected_at:
            before += 1
        else:
            delays.append((received - written) * 1000)
    return delays, before


def summary(delays: list[float]) -> str:
    if len(delays) < 2:
        return f"n {len(delays)}"
    q = statistics.quantiles(delays, n=100, method="inclusive")
    return f"p50 {q[49]:6.1f} ms  p90 {q[89]:6.1f} ms  p99 {q[98]:6.1f} ms  max {max(delays):6.1f} ms  n {len(delays)}"


async def latency_round(client: httpx.AsyncClient, ws_base: str, jobs: int, lines: int, pause: str) -> list[float]:
    command = f"bash -c 'for i in $(seq 1 {lines}); do echo $EPOCHREALTIME; sleep {pause}; done'"

    async def one() -> Followed:
        path = await post_job(client, command)
        return await follow(ws_base + path)

    results = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(jobs))), timeout=60 + lines * 2)
    delays, before, closes = [], 0, set()
    for followed in results:
        d, b = delays_ms(followed)
        delays += d
        before += b
        closes.add(followed.close)
        if len(followed.lines) != lines:
            print(f"  ! a follower received {len(followed.lines)} lines of {lines} (skipped {followed.skipped} bytes)")
    print(f"  {summary(delays)}   (written before joining: {before}; closed: {', '.join(sorted(closes))})")
    return delays


def listening_pid(port: int) -> int:
    """The pid of the process listening on 127.0.0.1:`port` (/proc: Linux, same user or root)."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for row in f.readlines()[1:]:
            fields = row.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
        except OSError:
            continue  # ended meanwhile, or not ours to read
    raise SystemExit(f"no process found listening on port {port}")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for row in f:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_lines(followed: Followed, lines: int) -> tuple[int, int, int]:
    """Lost, duplicated and out-of-order lines of one follower of an execution that printed 1..lines."""
    numbers = [int(line) for _, line in followed.lines]
    lost = len(set(range(1, lines + 1)) - set(numbers))
    duplicated = len(numbers) - len(set(numbers))
    out_of_order = sum(1 for a, b in itertools.pairwise(numbers) if b <= a)
    return lost, duplicated, out_of_order


async def memory(
    client: httpx.AsyncClient, ws_base: str, pid: int, executions: int, followers: int, lines: int
) -> None:
    idle = rss_mib(pid)
    print(f"API pid {pid}: RSS idle {idle:.1f} MiB")
    command = f"bash -c 'for i in $(seq 1 {lines}); do echo $i; sleep 0.2; done'"
    paths = [await post_job(client, command) for _ in range(executions)]
    running = [asyncio.Event() for _ in paths]
    cpu_before = cpu_s(pid)
    tasks = [
        asyncio.create_task(follow(ws_base + paths[n % executions], running[n % executions])) for n in range(followers)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in running)), timeout=60)
    samples: list[float] = []
    while not all(t.done() for t in tasks) and len(samples) < lines:  # one sample a second while they run
        samples.append(rss_mib(pid))
        await asyncio.sleep(1)
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    cpu = cpu_s(pid) - cpu_before
    await asyncio.sleep(5)
    after = rss_mib(pid)
    steady = samples[len(samples) // 4 :] or samples  # the first seconds: followers still joining
    with_followers = statistics.median(steady)
    per_follower_kib = (with_followers - idle) * 1024 / followers
    lost = duplicated = out_of_order = 0
    for followed in results:
        lost_one, duplicated_one, out_of_order_one = check_lines(followed, lines)
        lost, duplicated, out_of_order = lost + lost_one, duplicated + duplicated_one, out_of_order + out_of_order_one
    closes = sorted({f.close for f in results})
    print(f"{followers} followers on {executions} executions ({lines} lines each, one every 0.2 s):")
    print(f"  RSS with followers: median {with_followers:.1f} MiB, max {max(samples):.1f} MiB ({len(samples)} samples)")
    print(f"  per follower: {per_follower_kib:.0f} KiB above idle")
    print(f"  RSS 5 s after they all left: {after:.1f} MiB")
    print(f"  API CPU while they followed: {cpu:.1f} s")
    print(f"  lines: lost {lost}, duplicated {duplicated}, out of order {out_of_order} (expected 0); closed: {closes}")


async def run(args: argparse.Namespace) -> None:
    url = urlsplit(args.url)
    if url.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("the bench measures the API's memory through /proc: run it on the API's machine")
    ws_base = f"ws://{url.netloc}"
    async with httpx.AsyncClient(base_url=args.url, timeout=10) as client:
        hosts = (await client.get("/status")).json()["hosts"]
        executions = args.executions or sum(h["capacity"] or 0 for h in hosts if h["available"]) or 1
        print(f"latency, {args.jobs} jobs a round, a line every 0.1 s, {args.lines} lines a job:")
        await latency_round(client, ws_base, 1, 5, "0.1")  # warm-up, not counted
        delays: list[float] = []
        for n in range(args.rounds):
            print(f"round {n + 1}:")
            delays += await latency_round(client, ws_base, args.jobs, args.lines, "0.1")
        print(f"all rounds: {summary(delays)}")
        print(f"quiet: {args.jobs} jobs, a line every second, {args.quiet_lines} lines a job:")
        await latency_round(client, ws_base, args.jobs, args.quiet_lines, "1")
        await memory(client, ws_base, listening_pid(url.port or 80), executions, args.followers, args.memory_lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:10000")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=3, help="jobs (and followers) at once in a latency round")
    parser.add_argument("--lines", type=int, default=50)
    parser.add_argument("--quiet-lines", type=int, default=20)
    parser.add_argument("--followers", type=int, default=200)
    parser.add_argument("--executions", type=int, default=0, help="default: the hosts' capacity (/status)")
    parser.add_argument("--memory-lines", type=int, default=300)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
