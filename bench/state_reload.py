"""What it costs a scheduler to own a partition: its job states read back from the compacted state topic (every
assignment) and from the archive topic (at the first order for an archived job after an assignment), by the
scheduler's own code (`JobStore` over the `StateReader` of services/scheduler/bootstrap.py), for growing numbers
of jobs in one partition. Bounded: fixed sizes, a time budget (a size whose projected cost does not fit is
skipped), a memory cap, then it deletes its topics and stops.

    .venv/bin/python bench/state_reload.py [--sizes 1000,10000,100000,1000000] [--budget-s 170]
        [--churn 50000] [--per-transaction 1000] [--max-memory-mb 4000]

Needs only Kafka (`deploy/scripts/kafka.sh start`). Topics are made by the project's `ensure_topics` on a private
prefix (`bench.reload.<random>.`) and deleted on exit.

Records are what the scheduler writes (services/scheduler/loop.py `_write`): key = the job id, value = the
`JobState` JSON, produced transactionally by `transactional_producer` (bootstrap.py) to the job's partition.
The states are made by the scheduler's own handlers: a cron job after one fire and its execution's end (a
timer, nothing running) for the state topic; a one-off job after its execution ended (no timer: idle) for the
archive. Each size goes to its own partition (the job ids are not chosen to hash there: the reader does not
care). The churn case writes what ten minutes of work leave on an uncompacted state topic: each cron job twice
(fired: running; finished) and one-off jobs as a running state then the tombstone of their move to the archive.
"""

import argparse
import gc
import os
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from services.scheduler.bootstrap import policy_from, state_reader, transactional_producer
from services.scheduler.handlers import define_job, execution_finished, fire_due_timers
from services.scheduler.job_store import JobStore
from services.scheduler.state import JobState
from services.scheduler.state_reader import LOAD_DEADLINE_S, StateReader
from services.scheduler.transactions import KAFKA_TIMEOUT_S
from shared.contract.events import ExecutionFinished, JobDefinition, JobRequested, Webhook, utcnow
from shared.contract.topics import Topics
from shared.infra.kafka.admin import ensure_topics
from shared.process.settings import SchedulerSettings

SENTINEL = uuid.UUID("00000000-0000-4000-8000-000000000000")  # replaced by each job's id in the templates
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PAGE = os.sysconf("SC_PAGE_SIZE")


def definition(cron: str | None) -> JobDefinition:
    """A job as clients define them: an image, a command, a few variables and labels, a webhook."""
    return JobDefinition(
        image="registry.example.com/data/etl-reports:2026.11.3",
        command="python -m reports.build --source s3://acme-data/exports/daily --since 1h --format parquet",
        envs={"ENV": "production", "LOG_LEVEL": "info", "DATABASE_URL": "postgres://etl@db.internal:5432/warehouse"},
        metadata={"team": "data-platform", "owner": "etl@example.com", "ticket": "DATA-4821"},
        cron=cron,
        retries=2,
        timeout_s=900,
        concurrency_policy="Forbid" if cron else "Allow",
        webhooks={"fails": [Webhook(url="https://hooks.example.com/fastlane/etl", headers={"X-Team": "data"})]},
    )


@dataclass(frozen=True)
class Templates:
    """JobState JSON of the SENTINEL job at each stage, as the scheduler's handlers leave it."""

    cron_fired: bytes  # after a fire: the next timer and the execution running
    cron_idle: bytes  # after that execution ended: the next timer only (state topic)
    oneoff_running: bytes  # a job that runs now, its execution running (state topic)
    oneoff_done: bytes  # its execution ended: no timer, nothing running (archive)


def templates() -> Templates:
    policy = policy_from(SchedulerSettings())
    now = utcnow()
    task = f"reports-{SENTINEL}"

    def order(cron: str | None) -> JobRequested:
        return JobRequested(task_id=task, job_id=SENTINEL, definition=definition(cron))

    def finish(state: JobState) -> JobState:
        execution_id = next(iter(state.running))
        done = ExecutionFinished(task_id=task, job_id=SENTINEL, execution_id=execution_id, status="done")
        finished = execution_finished(state, done, now, policy).state
        assert finished is not None
        return finished

    created = define_job(None, order("*/5 * * * *"), now, policy).state
    assert created is not None and created.timers
    created = created.model_copy(update={"trace": TRACE})
    fired = fire_due_timers(created, created.timers[0].fire_at, policy).state
    assert fired is not None and fired.running and fired.timers
    running = define_job(None, order(None), now, policy).state
    assert running is not None and running.running
    running = running.model_copy(update={"trace": TRACE})
    done = finish(running)
    assert not done.timers and not done.running  # idle: the scheduler moves it to the archive

    def dump(state: JobState) -> bytes:
        return state.model_dump_json().encode()  # as services/scheduler/step.py `writable` encodes it

    return Templates(dump(fired), dump(finish(fired)), dump(running), dump(done))


def records(template: bytes | None, ids: list[bytes]) -> Iterator[tuple[bytes, bytes | None]]:
    """(key, value) per job: the template with the job's id (None: a tombstone)."""
    sentinel = str(SENTINEL).encode()
    for key in ids:
        yield key, None if template is None else template.replace(sentinel, key)


def new_ids(n: int) -> list[bytes]:
    return [str(uuid.uuid4()).encode() for _ in range(n)]


@dataclass
class Written:
    records: int = 0
    bytes: int = 0
    seconds: float = 0.0


def write(
    producer: Producer, topic: str, partition: int, rows: Iterator[tuple[bytes, bytes | None]], per_txn: int
) -> Written:
    """Produce `rows` to one partition in transactions of `per_txn` records, as the scheduler's loop does."""
    out = Written()
    started = time.monotonic()
    in_txn = 0
    for key, value in rows:
        if in_txn == 0:
            producer.begin_transaction()
        while True:
            try:
                producer.produce(topic, key=key, value=value, partition=partition)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.05)
        out.records += 1
        out.bytes += len(key) + len(value or b"")
        in_txn += 1
        if in_txn >= per_txn:
            producer.commit_transaction(KAFKA_TIMEOUT_S)
            in_txn = 0
    if in_txn:
        producer.commit_transaction(KAFKA_TIMEOUT_S)
    out.seconds = time.monotonic() - started
    return out


class TimedSource:
    """The scheduler's StateReader, with how long its last read took and how many records it read."""

    def __init__(self, reader: StateReader) -> None:
        self.reader = reader
        self.seconds = 0.0
        self.cpu_s = 0.0  # this process's CPU time (librdkafka's threads included) over the read
        self.records = 0

    def read_states(self, topic: str, partition: int) -> tuple[dict[uuid.UUID, JobState], int]:
        started, cpu = time.monotonic(), time.process_time()
        states, read = self.reader.read_states(topic, partition)
        self.seconds, self.cpu_s, self.records = time.monotonic() - started, time.process_time() - cpu, read
        return states, read

    def close(self) -> None:
        self.reader.close()


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def bytes_per_entry(template: bytes, n: int = 2000) -> float:
    """Traced Python memory per (job id -> JobState) entry of a dict built as `read_states` builds it."""
    rows = list(records(template, new_ids(n)))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        states = {uuid.UUID(k.decode()): JobState.model_validate_json(v or b"") for k, v in rows}
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(states) == n
    return used / n


@dataclass
class Row:
    case: str
    jobs: int
    written: Written
    read_s: float | None = None  # None: the read failed (timed out)
    cpu_s: float = 0.0
    records: int = 0
    own_s: float | None = None  # read plus what `JobStore.load` adds (timers tracked)
    rss_mb: float = 0.0
    dict_mb: float = 0.0
    note: str = ""

    def line(self) -> str:
        w = self.written
        if self.read_s is None:
            head = f"{self.case:<10} {self.jobs:>9,} {w.records:>9,} {w.bytes / 1e6:>8.1f}"
            return f"{head} (written in {w.seconds:.0f} s) {self.note}"
        own = f"{self.own_s:>7.2f}" if self.own_s is not None else f"{'-':>7}"
        rate = self.records / self.read_s if self.read_s else 0.0
        return (
            f"{self.case:<10} {self.jobs:>9,} {self.records:>9,} {w.bytes / 1e6:>8.1f} {self.read_s:>7.2f}"
            f" {self.cpu_s:>6.2f} {own}"
            f" {rate:>9,.0f} {self.dict_mb:>8.1f} {self.rss_mb:>8.1f} {w.seconds:>7.1f}  {self.note}"
        )


HEADER = (
    f"{'case':<10} {'jobs':>9} {'records':>9} {'MB':>8} {'read s':>7} {'cpu s':>6} {'own s':>7} {'records/s':>9}"
    f" {'dict MB':>8} {'RSS +MB':>8} {'write s':>7}"
)


def measure(store: JobStore, source: TimedSource, row: Row, topic: str, partition: int, per_entry: float) -> None:
    """Read one partition with the scheduler's code: `JobStore.load` (state topic: what an assignment does) or
    `JobStore.archived` (archive: what the first order for an archived job does); then forget it."""
    gc.collect()
    rss_before = rss_mb()
    started, cpu = time.monotonic(), time.process_time()
    try:
        if topic == store.state_topic:
            store.load(partition)
            states = store.jobs[partition]
            row.own_s = time.monotonic() - started
        else:
            states = store.archived(partition)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError._TIMED_OUT:
            spent = f"gave up after {time.monotonic() - started:.0f} s, {time.process_time() - cpu:.0f} CPU s"
            what = "the load fails, again at each reload" if topic == store.state_topic else "the order fails"
            row.note = f"NOT READ within LOAD_DEADLINE_S={LOAD_DEADLINE_S:.0f} s ({spent}): {what}"
            store.reload(set())
            return
        raise
    row.read_s, row.cpu_s, row.records = source.seconds, source.cpu_s, source.records
    row.rss_mb = rss_mb() - rss_before
    row.dict_mb = len(states) * per_entry / 1e6
    if len(states) != row.jobs:
        row.note = f"expected {row.jobs:,} jobs, got {len(states):,}"
    del states
    store.reload(set())  # forget everything: the next read starts from nothing
    gc.collect()


def compaction_facts(admin: AdminClient, topic: str) -> list[str]:
    """How long the state topic keeps superseded records and tombstones, from its settings and the broker's."""
    wanted = {
        "segment.ms",
        "segment.bytes",
        "min.compaction.lag.ms",
        "max.compaction.lag.ms",
        "min.cleanable.dirty.ratio",
        "delete.retention.ms",
    }
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=KAFKA_TIMEOUT_S)
    got = {k: v.value for k, v in configs.items() if k in wanted}
    seg_min = int(got["segment.ms"]) / 60000
    return [
        "topic settings: " + ", ".join(f"{k}={got[k]}" for k in sorted(got)),
        f"- the active segment is never compacted: a superseded record is read at every load until its segment"
        f" rolls ({seg_min:.0f} min after the segment's first record, at the next write, or at"
        f" {int(got['segment.bytes']) / 2**20:.0f} MiB), and is then at least"
        f" {int(got['min.compaction.lag.ms']) / 1000:.0f} s old before it may be cleaned;",
        f"- a closed segment is cleaned only once dirty records are >= {got['min.cleanable.dirty.ratio']} of the log"
        f" (max.compaction.lag.ms={got['max.compaction.lag.ms']}: never forced), so a compacted log may hold up to"
        " about as many superseded versions as live jobs, indefinitely;",
        f"- tombstones (a job moved to the archive) stay {int(got['delete.retention.ms']) / 60000:.0f} min after"
        " the cleaning that reached them, and are read meanwhile.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--sizes", default="1000,10000,100000,1000000", help="jobs per partition, one size each")
    parser.add_argument("--churn", type=int, default=50_000, help="cron and one-off jobs of the churn case (0: none)")
    parser.add_argument("--per-transaction", type=int, default=1000, help="records per transaction written")
    parser.add_argument("--budget-s", type=float, default=170.0, help="sizes whose projected cost exceeds it skip")
    parser.add_argument("--max-write-s", type=float, default=120.0, help="a size projected to write longer skips")
    parser.add_argument("--max-memory-mb", type=float, default=4000.0, help="a size projected to need more skips")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    started = time.monotonic()
    settings = SchedulerSettings(
        kafka_bootstrap=args.bootstrap,
        topic_prefix=f"bench.reload.{uuid.uuid4().hex[:8]}.",
        topic_partitions=len(sizes) + 2,  # a partition per size, one for the warm-up, one for the churn case
        startup_timeout_s=30,
    )
    topics = Topics.from_settings(settings)
    state_topic, archive_topic = topics.scheduler_state, topics.scheduler_archive
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    ensure_topics(settings)
    source = TimedSource(state_reader(settings))
    store = JobStore(source, state_topic, archive_topic)
    producer = transactional_producer(settings, "bench")
    rows: list[Row] = []
    try:
        producer.init_transactions(KAFKA_TIMEOUT_S)
        t = templates()
        per_entry = {"state": bytes_per_entry(t.cron_idle), "archive": bytes_per_entry(t.oneoff_done)}
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"{os.cpu_count()} CPUs, load average {load} (the broker runs on this machine too)")
        print(f"topics {state_topic} and {archive_topic}: {settings.topic_partitions} partitions each")
        print(
            f"record: {len(t.cron_idle)} B (cron job, state topic), {len(t.oneoff_done)} B (finished job, archive);"
            f" in memory: {per_entry['state']:,.0f} B and {per_entry['archive']:,.0f} B per dict entry (tracemalloc)"
        )
        # Warm-up: the first read of each topic (a new consumer, the topic's metadata) is paid once per process.
        warm, first = len(sizes) + 1, []
        for case, topic, template in (("state", state_topic, t.cron_idle), ("archive", archive_topic, t.oneoff_done)):
            write(producer, topic, warm, records(template, new_ids(10)), args.per_transaction)
            row = Row(case, 10, Written())
            measure(store, source, row, topic, warm, per_entry[case])
            first.append(f"{case} {row.read_s or 0:.2f} s")
        print(f"first read of each topic (10 records; once per process): {', '.join(first)}")
        rate_w = rate_r = 0.0  # records/s written and read so far (for the projections)
        print("\n" + HEADER)
        for partition, n in enumerate(sizes):
            elapsed = time.monotonic() - started
            write_s = 2 * n / rate_w if rate_w else 0.0
            cost = write_s + (2 * n / rate_r if rate_r else 0.0)
            memory = n * max(per_entry.values()) / 1e6
            if write_s > args.max_write_s or elapsed + cost > args.budget_s or memory > args.max_memory_mb:
                read_s = n / rate_r if rate_r else 0.0
                print(
                    f"{n:,} jobs skipped: projected {write_s:.0f} s to write, {cost:.0f} s in all after {elapsed:.0f} s"
                    f" (budget {args.budget_s:.0f} s), {memory:,.0f} MB of states (cap {args.max_memory_mb:.0f});"
                    f" at the rate read so far one topic's read would take {read_s:.0f} s"
                    + (f" > LOAD_DEADLINE_S={LOAD_DEADLINE_S:.0f} s: never owned" if read_s > LOAD_DEADLINE_S else "")
                )
                continue
            ids = new_ids(n)
            for case, topic, template in (
                ("state", state_topic, t.cron_idle),
                ("archive", archive_topic, t.oneoff_done),
            ):
                row = Row(case, n, write(producer, topic, partition, records(template, ids), args.per_transaction))
                measure(store, source, row, topic, partition, per_entry[case])
                rows.append(row)
                print(row.line(), flush=True)
                rate_w = row.written.records / row.written.seconds
                if row.read_s:
                    rate_r = row.records / row.read_s
        churn_note = ""
        if args.churn:
            n, churn_p = args.churn, len(sizes)
            elapsed = time.monotonic() - started
            if elapsed + 4 * n / (rate_w or 1e4) + 4 * n / (rate_r or 1e4) > args.budget_s + 10:
                churn_note = f"churn case skipped: no time left after {elapsed:.0f} s"
            else:
                cron, oneoff = new_ids(n), new_ids(n)

                def churn() -> Iterator[tuple[bytes, bytes | None]]:
                    yield from records(t.cron_fired, cron)  # the fire: next timer, execution running
                    yield from records(t.oneoff_running, oneoff)  # one-off jobs running
                    yield from records(t.cron_idle, cron)  # the cron executions ended
                    yield from records(None, oneoff)  # the one-off jobs ended: moved to the archive

                row = Row("churn", n, write(producer, state_topic, churn_p, churn(), args.per_transaction))
                measure(store, source, row, state_topic, churn_p, per_entry["state"])
                row.note = row.note or f"{n:,} cron jobs written twice, {n:,} one-off jobs running then deleted"
                rows.append(row)
                print(row.line(), flush=True)
        if churn_note:
            print(churn_note)
        print("\nrecords: read by the reader (superseded versions and tombstones included); MB: keys and values")
        print("written; cpu s: CPU time of this process over the read (about the wall time on an idle machine);")
        print("own s: JobStore.load (read + timers tracked), what an assignment costs; dict MB: the states kept")
        print("(entries x tracemalloc bytes per entry); RSS +MB: resident growth over the read (librdkafka buffers")
        print("included; memory freed by an earlier read is reused)\n")
        print("\n".join(compaction_facts(admin, state_topic)))
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\ntotal {time.monotonic() - started:.0f} s; load average {load}")
    finally:
        source.close()
        producer.flush(5)
        names = topics.all()
        for name, future in admin.delete_topics(names, operation_timeout=30).items():
            try:
                future.result()
            except KafkaException as exc:
                print(f"could not delete {name}: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
