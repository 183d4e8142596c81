"""The cluster keeps its promises when one broker and one Cassandra node die (`make test-cluster`).

Jobs stream in for a minute (a mix: short, sleeping, failing with retries, flaky, delayed; a third with
webhooks) while a reader asks the API for jobs, the task listing and the status page all along. Ten seconds in,
one broker is killed with -9, then one Cassandra node; both come back twenty seconds later. Then one scheduler
and one recorder replica are killed with -9: their partitions must move to the surviving replica of each, and the
time that takes is measured. The fault suite's independent checker (tests/faults/checker.py: container starts
from the engines' own event streams, ends from the public Kafka topic, statuses polled from the API, webhooks
received) must count 0 lost, 0 duplicated, 0 wrong; every execution final; no read answered with an error.
Figures go to .local/cluster-test/results.md (docs/scaling.md quotes them)."""

import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import httpx
import pytest

from tests.cluster.stack import TEST_DIR, ClusterStack
from tests.faults.checker import Checker, Verdict
from tests.faults.test_faults import job_specs

pytestmark = pytest.mark.cluster

STREAM_S = 60.0  # jobs are submitted for this long
JOBS_PER_S = 2.0
KILL_BROKER_AT_S = 10.0
KILL_NODE_AT_S = 14.0
DOWN_S = 20.0  # each killed backend stays down this long
MAX_IN_FLIGHT = 16
SETTLE_BOUND_S = 300.0
QUIET_S = 8.0
WINDOW_S = 10.0  # the results count POST answers per window of this many seconds


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterStack]:
    stack = ClusterStack()
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


class Reader(threading.Thread):
    """Reads all along, as clients would: a job already accepted, the first task page, the status page."""

    def __init__(self, stack: ClusterStack, checker: Checker) -> None:
        super().__init__(name="reader", daemon=True)
        self.stack, self.checker = stack, checker
        # The API answers a read within its Cassandra request timeout (10 s) and one speculative retry; this
        # client waits longer, so "no answer" means the API did not answer, not that this client gave up first.
        self.client = httpx.Client(timeout=30)
        self.answers: Counter[str] = Counter()
        self.errors: list[tuple[float, str, str]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        base = self.stack.stack.url
        while not self.halt.is_set():
            urls = [f"{base}/tasks", f"{base}/status"]
            if self.checker.accepted:
                urls.append(random.choice(self.checker.accepted).job_url)
            for url in urls:
                kind = "job" if "/jobs/" in url else url.rsplit("/", 1)[-1]
                try:
                    status = self.client.get(url).status_code
                    outcome = "ok" if status == 200 else f"HTTP {status}"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.answers[f"{kind} {outcome}"] += 1
                if outcome != "ok":
                    self.errors.append((time.monotonic(), kind, outcome))
            self.halt.wait(0.2)


@pytest.mark.timeout(1500)
def test_one_broker_and_one_node_killed_mid_stream_lose_nothing(cluster: ClusterStack) -> None:
    checker = cluster.checker()
    reader = Reader(cluster, checker)
    reader.start()
    events: list[str] = []
    started = time.monotonic()

    def at(seconds: float) -> None:
        time.sleep(max(0.0, started + seconds - time.monotonic()))

    def mark(what: str) -> None:
        events.append(f"{time.monotonic() - started:6.1f} s  {what}")

    def faults() -> None:
        broker, node = cluster.kafka[1], cluster.cassandra[2]
        at(KILL_BROKER_AT_S)
        broker.kill()
        mark(f"kill -9 {broker.name}")
        at(KILL_NODE_AT_S)
        node.kill()
        mark(f"kill -9 {node.name}")
        at(KILL_BROKER_AT_S + DOWN_S)
        broker.restart()
        mark(f"{broker.name} started again")
        at(KILL_NODE_AT_S + DOWN_S)
        node.restart()
        mark(f"{node.name} started again")
        broker.wait_ready()
        node.wait_ready()
        mark("both back (port answering)")

    injector = threading.Thread(target=faults, name="faults")
    injector.start()
    failover: dict[str, float] = {}
    recovered: float | None = None
    try:
        # One POST every 1/JOBS_PER_S seconds, each from its own thread: a POST held up by a failover does not
        # hold up the stream (at most MAX_IN_FLIGHT wait at once).
        posts: list[threading.Thread] = []
        answers: defaultdict[int, Counter[str]] = defaultdict(Counter)  # by when the POST was sent
        in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)

        def submit(n: int) -> None:
            with in_flight:
                for spec in job_specs(f"c{n}", 1, cluster.hooks.url):
                    sent = time.monotonic() - started
                    answers[int(sent // WINDOW_S)]["200" if checker.submit(spec) else "refused"] += 1

        while time.monotonic() - started < STREAM_S:
            posts.append(threading.Thread(target=submit, args=(len(posts),), name="post"))
            posts[-1].start()
            at(len(posts) / JOBS_PER_S)
        for post in posts:
            post.join(60)
        mark(f"stream ended: {len(posts)} POSTs")
        for window, tally in sorted(answers.items()):
            events.append(f"POSTs sent at {window * WINDOW_S:3.0f}-{(window + 1) * WINDOW_S:3.0f} s: {dict(tally)}")
        injector.join()

        # Replicas: kill one scheduler and one recorder; the survivor of each must take all partitions.
        for service in ("scheduler", "recorder"):
            before = cluster.members(service)
            assert len(before) == 2, f"{service}: two replicas expected before the kill, got {before}"
            killed_at = time.monotonic()
            cluster.stack.kill(f"{service}-2")
            mark(f"kill -9 {service}-2 (partitions before: {sorted(before.values())})")
            failover[f"{service}: partitions moved to the survivor"] = cluster.wait_single_owner(service, 120)
            mark(f"{service}: the survivor holds every partition")
            cluster.probe()
            failover[f"{service}: from the kill to a new job read done"] = time.monotonic() - killed_at
            mark(f"{service}: a new job done")
            cluster.stack.restart(f"{service}-2")

        recovered = checker.wait_settled(SETTLE_BOUND_S)
        mark(f"settled after {recovered}")
        time.sleep(QUIET_S)
    finally:
        reader.halt.set()
        reader.join(30)
        injector.join(120)
        verdict = checker.verdict()
        lost_jobs = [m.group(1) for line in verdict.lost if (m := re.search(r"job ([0-9a-f-]{36})", line))]
        if lost_jobs:  # while the cluster is as the round left it: were their orders in Kafka?
            events.extend(f"lost job {j}: {where}" for j, where in cluster.orders_in_kafka(lost_jobs).items())
            events.extend(f"lost job {j}: {line}" for j in lost_jobs for line in cluster.log_lines(j))
        write_results(checker, verdict, reader, events, failover, recovered)

    starts, ends, _ = verdict.seen
    assert starts and ends, "the checker saw no container start or no execution end"
    assert recovered is not None, "some jobs never reached their end:\n" + "\n".join(list(verdict.lines())[:40])
    assert verdict.ok, "\n".join(list(verdict.lines())[:60])
    # Reads at quorum must all be answered. A POST may be refused with 503 while a broker's partitions change
    # leader or a rejoining replica holds up acks=all (nothing is enqueued, the client tries again; the checker
    # counts a 503 whose job exists anyway as a duplicate): refusals are counted in the results, and each must be
    # a clean 503, never a 500 or no answer (the client waits longer than the API's own bound on a POST).
    assert not reader.errors, f"reads answered with errors: {Counter((k, o) for _, k, o in reader.errors)}"
    assert all(got == "HTTP 503" for _, got in checker.refused), f"POSTs refused: {checker.refused}"


def write_results(
    checker: Checker,
    verdict: Verdict,
    reader: Reader,
    events: list[str],
    failover: dict[str, float],
    recovered: float | None,
) -> None:
    lost, duplicated, wrong = len(verdict.lost), len(verdict.duplicated), len(verdict.wrong)
    lines = [
        f"# Cluster test, {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "",
        f"- accepted {len(checker.accepted)} jobs, refused {len(checker.refused)}"
        f" ({dict(Counter(g for _, g in checker.refused))})",
        f"- lost {lost}, duplicated {duplicated}, wrong {wrong}; settled {recovered} s after the stream",
        f"- reads: {dict(reader.answers)}",
        *(f"- fail-over: {name}: {seconds:.1f} s" for name, seconds in failover.items()),
        "",
        "## Timeline",
        "",
        *(f"    {line}" for line in events),
        "",
        "## Checker",
        "",
        *(f"    {line}" for line in list(verdict.lines())[:80]),
    ]
    path = TEST_DIR / "results.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
