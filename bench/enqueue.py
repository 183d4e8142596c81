"""Enqueue rate: delayed jobs (`startIn` 10h, so no container runs) POSTed by C concurrent clients to a running
stack — by default the one `make run` starts, http://127.0.0.1:10000 — with wrk as the load generator (its own
process, written in C: it costs the machine little). For each client count it prints the rate of 200s, p50,
p90, p99 and p99.9 of the answers, and the CPU each process of the stack used meanwhile.

Every 200 is checked afterwards: a sample of the jobs is read back (each must answer 200), and every job the
bench made is stopped again (also any whose answer wrk never read), so the stack is left with no pending
timer. Bounded: `--seconds` per client count, then the stops, then it ends.

    make run   # in another terminal
    .venv/bin/python bench/enqueue.py [--url http://127.0.0.1:10000] [--clients 1,8,32,128] [--seconds 10]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from _stack import cpu_by_process, machine_cpu

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "enqueue.lua"


def wrk(url: str, threads: int, clients: int, seconds: float, args: list[str]) -> str:
    command = ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{seconds:g}s", "--timeout", "10s"]
    command += ["-s", str(SCRIPT), url, "--", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        sys.exit(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def lines(directory: Path, pattern: str) -> list[str]:
    return [line for path in sorted(directory.glob(pattern)) for line in path.read_text().splitlines() if line]


def unread_jobs(client: httpx.Client, directory: Path, prefix: str, job_urls: list[str], per_thread: int) -> list[str]:
    """Job URLs of requests wrk sent but whose answer it never read (cut off at the end), beside the answered
    `job_urls`: found by task id (every task used, when tasks hold several jobs)."""
    recorded = set(job_urls)
    answered = {u.split("/")[2] for u in job_urls}
    suspects = []
    for line in (directory / "sent").read_text().splitlines():
        thread, sent = line.split()
        for n in range(1, (min(int(sent), per_thread) if per_thread else int(sent)) + 1):
            task = f"{prefix}-{thread}-{n}"
            if per_thread or task not in answered:
                suspects.append(task)
    urls = []
    for task in suspects:
        response = client.get(f"/tasks/{task}")
        if response.status_code == 200:
            urls += [u for u in (urlsplit(job["url"]).path for job in response.json()["jobs"]) if u not in recorded]
    return urls


def stop_all(client: httpx.Client, job_urls: list[str]) -> int:
    """Stop every job in `job_urls` (16 at a time); returns how many stops failed."""
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda u: client.post(f"{u}/stop").status_code, job_urls))
    return sum(a != 200 for a in answers)


def run_level(
    client: httpx.Client, url: str, clients: int, seconds: float, threads: int, body: bytes, run_id: str, tasks: int
) -> dict[str, object]:
    prefix = f"bench-enqueue-{run_id}-c{clients}"
    directory = Path(tempfile.mkdtemp(prefix="fastlane-enqueue-"))
    try:
        (directory / "body.json").write_bytes(body)
        cpu_before, machine_before = cpu_by_process(), machine_cpu()
        threads = min(threads, clients)
        per_thread = -(-tasks // threads) if tasks else 0  # tasks each wrk thread posts to (0: a new one each time)
        out = wrk(
            url, threads, clients, seconds, [prefix, str(directory), str(directory / "body.json"), str(per_thread)]
        )
        cpu_after, machine_after = cpu_by_process(), machine_cpu()
        stats = next(line.split()[1:] for line in out.splitlines() if line.startswith("BENCH "))
        requests, duration_us, socket_errors, _status_errors, p50, p90, p99, p999 = map(int, stats)
        job_urls = [urlsplit(u).path for u in lines(directory, "urls-*")]
        errors = lines(directory, "errors-*")
        elapsed = duration_us / 1e6
        # Read-after-write: every 200 must already be readable (a sample of 50, read right after the run).
        sample = job_urls[:: max(1, len(job_urls) // 50)][:50]
        unreadable = sum(client.get(u).status_code != 200 for u in sample)
        all_jobs = job_urls + unread_jobs(client, directory, prefix, job_urls, per_thread)
        stop_errors = stop_all(client, all_jobs)
        cpu = {k: cpu_after.get(k, 0.0) - cpu_before.get(k, 0.0) for k in cpu_after}
        return {
            "clients": clients,
            "seconds": round(elapsed, 1),
            "accepted": len(job_urls),
            "rate": round(len(job_urls) / elapsed),
            "errors": len(errors) + socket_errors,
            "first_error": errors[0] if errors else None,
            "p50_ms": p50 / 1000,
            "p90_ms": p90 / 1000,
            "p99_ms": p99 / 1000,
            "p999_ms": p999 / 1000,
            "requests": requests,
            "unreadable_of_sample": f"{unreadable}/{len(sample)}",
            "stopped": len(all_jobs) - stop_errors,
            "cpu_percent": {k: round(v / elapsed * 100) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])},
            "machine_cpu_percent": round((machine_after - machine_before) / elapsed * 100),
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:10000")
    parser.add_argument("--clients", default="32", help="client counts, comma separated (e.g. 1,8,32,128)")
    parser.add_argument("--seconds", type=float, default=10.0, help="POSTing time per client count")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load first, not counted")
    parser.add_argument("--tasks", type=int, default=0, help="spread the jobs over this many tasks (0: a task each)")
    parser.add_argument("--image", default="fastlane-test:latest")
    parser.add_argument("--json", action="store_true", help="print each level as a JSON line too")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")

    body = json.dumps({"image": args.image, "command": "true", "startIn": "10h"}).encode()
    run_id = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=args.url, timeout=30) as client:
        client.get("/healthcheck").raise_for_status()
        if args.warmup > 0:
            run_level(client, args.url, 32, args.warmup, args.threads, body, run_id + "w", args.tasks)
        print(
            f"{'clients':>7} {'POST/s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'p99.9':>7} {'errors':>6}"
            "  CPU % of one core"
        )
        for clients in (int(c) for c in args.clients.split(",")):
            r = run_level(client, args.url, clients, args.seconds, args.threads, body, run_id, args.tasks)
            cpu = ", ".join(f"{k} {v}" for k, v in r["cpu_percent"].items() if v)  # type: ignore[attr-defined]
            print(
                f"{clients:>7} {r['rate']:>7} {r['p50_ms']:>7.1f} {r['p90_ms']:>7.1f} {r['p99_ms']:>7.1f}"
                f" {r['p999_ms']:>7.1f} {r['errors']:>6}  machine {r['machine_cpu_percent']} of 200: {cpu}"
            )
            print(
                f"{'':>8}{r['accepted']} accepted in {r['seconds']} s;"
                f" read back {r['unreadable_of_sample']} unreadable;"
                f" {r['stopped']} stopped" + (f"; first error: {r['first_error']}" if r["first_error"] else "")
            )
            if args.json:
                print(json.dumps(r))
            time.sleep(2)


if __name__ == "__main__":
    main()
