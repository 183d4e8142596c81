"""Read-side latency at scale: GET /tasks page 1 and a deep page, a job with 10,000 executions (page 1 and its
last page), and /search, with 100,000 tasks and 1,000,000 executions projected (written straight into the
recorder's tables, as the recorder would leave them), through a real API process. Bounded: fixed data size and
request count, then it stops.

    .venv/bin/python bench/read_scale.py [--tasks 100000] [--jobs-with-executions 100]
        [--executions-per-job 10000] [--requests 1000]

Needs Kafka and Cassandra answering (`make bench` starts them). Uses its own keyspace and drops it after.
"""

import argparse
import statistics
import time
import uuid
from collections import Counter
from datetime import timedelta

import httpx
from _stack import private_backends, private_stack
from cassandra.concurrent import execute_concurrent_with_args

from services.recorder.buckets import listing_bucket
from services.recorder.indexes import task_words
from shared.contract.events import new_execution_id, utcnow
from shared.infra.cassandra import connect
from shared.process.settings import Settings

WORDS = ["billing", "mail", "report", "sync", "resize", "export", "import", "index", "notify", "clean"]


def load(settings: Settings, tasks: int, jobs_with_executions: int, per_job: int) -> tuple[str, uuid.UUID]:
    cluster, session = connect(settings)
    ks = settings.keyspace
    now = utcnow()
    task_ids = [f"{WORDS[i % len(WORDS)]}-{WORDS[(i // 10) % len(WORDS)]}-task{i}" for i in range(tasks)]
    created = [now - timedelta(seconds=tasks - i) for i in range(tasks)]
    job_ids = [uuid.uuid4() for _ in range(tasks)]

    def run(statement: str, rows: list[tuple[object, ...]]) -> None:
        prepared = session.prepare(statement)
        for start in range(0, len(rows), 20_000):
            execute_concurrent_with_args(session, prepared, rows[start : start + 20_000], concurrency=256)

    t0 = time.monotonic()
    run(f"INSERT INTO {ks}.tasks (task_id, last_modified_at) VALUES (?, ?)", list(zip(task_ids, created, strict=True)))
    # Listed in the hour of their creation, as the recorder lists them (docs/read-model.md).
    run(
        f"INSERT INTO {ks}.tasks_by_creation (bucket, created_at, task_id, last_modified_at, jobs_count)"
        " VALUES (?, ?, ?, ?, 1)",
        [(listing_bucket(c), c, t, c) for t, c in zip(task_ids, created, strict=True)],
    )
    run(
        f"INSERT INTO {ks}.task_index (task_id, created_at, bucket) VALUES (?, ?, ?)",
        [(t, c, listing_bucket(c)) for t, c in zip(task_ids, created, strict=True)],
    )
    hours = Counter(listing_bucket(c) for c in created)
    run(
        f"UPDATE {ks}.task_buckets SET tasks = tasks + ? WHERE listing = 'all' AND bucket = ?",
        [(n, h) for h, n in hours.items()],
    )
    word_rows = [(w, c, t, c) for t, c in zip(task_ids, created, strict=True) for w in task_words(t)]
    run(
        f"INSERT INTO {ks}.task_words (word, created_at, task_id, last_modified_at, jobs_count) VALUES (?, ?, ?, ?, 1)",
        word_rows,
    )
    run(
        f"INSERT INTO {ks}.jobs (task_id, job_id, created_at, last_modified_at, image, command, envs, metadata,"
        " scheduled, definition) VALUES (?, ?, ?, ?, 'busybox', 'true', {}, '{}', false, '{}')",
        [(t, j, c, c) for t, j, c in zip(task_ids, job_ids, created, strict=True)],
    )
    run(f"UPDATE {ks}.task_counters SET jobs = jobs + 1 WHERE task_id = ?", [(t,) for t in task_ids])
    session.execute(f"UPDATE {ks}.counters SET value = value + {tasks} WHERE name = 'tasks'")
    for word in WORDS:
        count = sum(1 for row in word_rows if row[0] == word)
        session.execute(f"UPDATE {ks}.counters SET value = value + {count} WHERE name = 'word:{word}'")
    print(f"tasks written in {time.monotonic() - t0:.0f}s", flush=True)

    t0 = time.monotonic()
    for n in range(jobs_with_executions):
        task, job = task_ids[n], job_ids[n]
        rows, numbers = [], []
        for k in range(per_job):
            at = now - timedelta(seconds=per_job - k)
            eid = new_execution_id(at)
            rows.append((task, job, eid, at, at, at, k % 7, "out\n", ""))
            numbers.append((task, job, k + 1, eid))
        run(f"INSERT INTO {ks}.execution_numbers (task_id, job_id, number, execution_id) VALUES (?, ?, ?, ?)", numbers)
        run(
            f"INSERT INTO {ks}.executions (task_id, job_id, execution_id, created_at, started_at, finished_at,"
            " exit_code, stdout, stderr, status, image, command, attempt)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'done', 'busybox', 'true', 1)",
            rows,
        )
        session.execute(
            f"UPDATE {ks}.job_counters SET executions = executions + {per_job} WHERE task_id = %s AND job_id = %s",
            (task, job),
        )
    print(f"{jobs_with_executions * per_job} executions written in {time.monotonic() - t0:.0f}s", flush=True)
    cluster.shutdown()
    return task_ids[0], job_ids[0]


def settle(settings: Settings, limit_s: float = 600) -> None:
    """Wait (bounded) until Cassandra has no compaction running: the bulk load leaves a burst of them, and
    a steady read side is what is measured."""
    cluster, session = connect(settings)
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        tasks = list(session.execute("SELECT keyspace_name, table_name, kind FROM system_views.sstable_tasks"))
        if not tasks:
            break
        time.sleep(2)
    print(f"compactions settled after {time.monotonic() - start:.0f}s", flush=True)
    cluster.shutdown()


def measure(client: httpx.Client, url: str, requests: int) -> tuple[float, float]:
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        response.raise_for_status()
    return statistics.median(times), statistics.quantiles(times, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--jobs-with-executions", type=int, default=100)
    parser.add_argument("--executions-per-job", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()

    with private_backends() as settings:
        task, job = load(settings, args.tasks, args.jobs_with_executions, args.executions_per_job)
        settle(settings)
        with (
            private_stack(settings, services=("api",)) as stack,
            httpx.Client(base_url=stack.url, timeout=10) as client,
        ):
            last_page = -(-args.executions_per_job // 100)
            for name, url in [
                ("GET /tasks?page=1", "/tasks?page=1"),
                ("GET /tasks?page=5000", "/tasks?page=5000"),
                (f"GET job ({args.executions_per_job} executions)", f"/tasks/{task}/jobs/{job}"),
                (f"GET job, page {last_page}", f"/tasks/{task}/jobs/{job}?page={last_page}"),
                ("GET /search?query=billing", "/search?query=billing"),
            ]:
                measure(client, url, 20)  # warm-up
                p50, p99 = measure(client, url, args.requests)
                print(f"{name:38s} p50 {p50 * 1000:6.1f} ms   p99 {p99 * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
