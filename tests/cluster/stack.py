"""The cluster test's stack, on the addresses and configs of `make run-cluster` (deploy/scripts/cluster.sh,
deploy/cluster): three KRaft brokers (127.0.1.1-3), three Cassandra nodes (127.0.2.1-3), the cluster's second
Docker engine (docker3) beside the main one; then the services with the settings of deploy/cluster/cluster.env,
on a topic prefix and keyspace of their own: an API of 2 processes, 2 schedulers, 2 recorders, 2 notifiers and
3 runners (node-1 and node-2 on the main engine, node-3 on docker3). Its data lives in .local/cluster-test, wiped
at every start; `make run-cluster` must not be running (same addresses)."""

import contextlib
import json
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from services.devstack import DevStack
from shared.contract.topics import Topics, group_id
from shared.process.settings import Settings
from tests.faults.backends import ROOT, SCRIPTS, CassandraBackend, JvmBackend, KafkaBackend, port_open, wait_until
from tests.faults.checker import ApiWatch, Checker, EngineWatch, EventWatch, WebhookReceiver
from tests.faults.stack import probe_job

CLUSTER_ENV = ROOT / "deploy" / "cluster" / "cluster.env"
TEST_DIR = ROOT / ".local" / "cluster-test"
KAFKA_ADDRS = ("127.0.1.1", "127.0.1.2", "127.0.1.3")
CASSANDRA_ADDRS = ("127.0.2.1", "127.0.2.2", "127.0.2.3")
MAIN_ENGINE = "unix:///var/run/docker.sock"
CLUSTER_ENGINE = f"unix://{ROOT / '.local' / 'run' / 'docker3.sock'}"
RUNNERS = {"node-1": MAIN_ENGINE, "node-2": MAIN_ENGINE, "node-3": CLUSTER_ENGINE}
POST_TIMEOUT_S = 75.0


def cluster_env() -> dict[str, str]:
    """deploy/cluster/cluster.env as the shell reads it (`set -a; . cluster.env`)."""
    env = {}
    for line in CLUSTER_ENV.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = " ".join(shlex.split(value))
    return env


class ClusterNode(JvmBackend):
    """Node n of the cluster's Kafka or Cassandra, run by deploy/scripts/cluster.sh in the foreground."""

    KIND: str
    ADDRESSES: tuple[str, ...]
    PORT: int
    READY_TIMEOUT_S: float

    def __init__(self, n: int) -> None:
        JvmBackend.__init__(
            self,
            f"{self.KIND}-{n}",
            "cluster.sh",
            self.ADDRESSES[n - 1],
            self.PORT,
            ready_timeout=self.READY_TIMEOUT_S,
            args=("node", self.KIND, str(n), "foreground"),
            log_dir=TEST_DIR / "logs",
            FASTLANE_LOCAL_DIR=str(TEST_DIR),
        )


class KafkaNode(ClusterNode, KafkaBackend):  # KafkaBackend's readiness: the broker answers metadata
    KIND, ADDRESSES, PORT, READY_TIMEOUT_S = "kafka", KAFKA_ADDRS, 9092, 180


class CassandraNode(ClusterNode, CassandraBackend):
    KIND, ADDRESSES, PORT, READY_TIMEOUT_S = "cassandra", CASSANDRA_ADDRS, 9042, 300


class ClusterStack:
    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:6]
        self.kafka = [KafkaNode(n) for n in (1, 2, 3)]
        self.cassandra = [CassandraNode(n) for n in (1, 2, 3)]
        self.env = cluster_env()
        self.prefix = f"cluster.{self.run}."
        self.keyspace = f"cluster_{self.run}"
        self.settings = Settings(
            kafka_bootstrap=self.env["FASTLANE_KAFKA_BOOTSTRAP"],
            cassandra_hosts=self.env["FASTLANE_CASSANDRA_HOSTS"],
            topic_prefix=self.prefix,
            keyspace=self.keyspace,
        )
        self.topics = Topics.from_settings(self.settings)
        self.log_dir = TEST_DIR / "logs" / f"services-{self.run}"
        self.stack = DevStack(
            self.prefix,
            self.keyspace,
            self.log_dir,
            max_running=None,
            services=("recorder", "scheduler", "notifier", "api"),
            migrated=False,  # its own keyspace and topics: DevStack migrates them
            **self.env,
            FASTLANE_API_PROCESSES="2",
            FASTLANE_HOST_LOST_AFTER_S="60",
            FASTLANE_RETRY_BACKOFF_MIN_MS="500",
            FASTLANE_WEBHOOKS_REFUSE_PRIVATE="false",
        )
        self.hooks = WebhookReceiver()
        self.engine_watch = EngineWatch(MAIN_ENGINE, CLUSTER_ENGINE)
        self.event_watch: EventWatch | None = None
        self.api_watch = ApiWatch()
        self.http = httpx.Client(timeout=10)
        self.teardown = contextlib.ExitStack()
        # One admin client for the stack's life: clients made per call and let go with requests pending crashed
        # librdkafka in the API (services/api/probes.py).
        self.admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})

    def up(self) -> None:
        """Start everything; each piece is registered for `down` as soon as it is started, so a start that fails
        half-way still stops what did start."""
        taken = [f"{n.address}:{n.port}" for n in (*self.kafka, *self.cassandra) if port_open(n.address, n.port)]
        if taken:
            raise RuntimeError(f"{', '.join(taken)} already answer: stop `make run-cluster` (make stop-cluster)")
        shutil.rmtree(TEST_DIR / "cluster", ignore_errors=True)
        self.teardown.callback(self.http.close)
        for broker in self.kafka:
            self.teardown.callback(broker.stop)  # SIGCONT first: a paused JVM is stopped too
            broker.start()
        for node in self.cassandra:  # one after the other: nodes joining all at once can stall gossip
            self.teardown.callback(node.stop)
            node.start()
            node.wait_ready()
        for broker in self.kafka:
            broker.wait_ready()
        if not self.engine_ready():
            self.teardown.callback(
                subprocess.run, [str(SCRIPTS / "cluster.sh"), "engine", "stop"], check=False, timeout=120
            )
        subprocess.run([str(SCRIPTS / "cluster.sh"), "engine", "start"], check=True, timeout=180)
        self.teardown.enter_context(self.stack)
        for name in ("scheduler-2", "recorder-2", "notifier-2"):
            self.stack.start(name.split("-")[0], name=name)
        for host, engine in RUNNERS.items():
            self.stack.start("runner", name=f"runner-{host}", FASTLANE_HOST_NAME=host, FASTLANE_DOCKER_HOST=engine)
        self.wait_hosts_available(timeout=180)
        for watch in (self.hooks, self.engine_watch):
            watch.start()
            self.teardown.callback(watch.stop)
        self.event_watch = EventWatch(self.settings.kafka_bootstrap, [self.topics.executions, *self.topics.all_due])
        self.event_watch.start()
        self.teardown.callback(self.event_watch.stop)
        self.api_watch.start()
        self.teardown.callback(self.api_watch.stop)

    def engine_ready(self) -> bool:
        found = subprocess.run(["docker", "-H", CLUSTER_ENGINE, "info"], capture_output=True, check=False)
        return found.returncode == 0

    def down(self) -> None:
        """Stop what `up` started, last started first; every stop is tried even when one before it raised."""
        self.teardown.close()

    def checker(self) -> Checker:
        assert self.event_watch is not None
        # A POST is answered within the API's own bound (services/api/orders.py: 2 x 8 s for the broker's
        # acknowledgement, 20 s for the commit, 30 s more: 66 s), 504 past it; a client that gives up sooner
        # cannot know whether its job was enqueued (it would send it again with an Idempotency-Key).
        client = httpx.Client(timeout=POST_TIMEOUT_S)
        return Checker(self.stack.url, self.engine_watch, self.event_watch, self.hooks, self.api_watch, client)

    def hosts(self) -> dict[str, dict[str, Any]]:
        try:
            return {h["host"]: h for h in self.http.get(f"{self.stack.url}/status").json()["hosts"]}
        except (httpx.HTTPError, ValueError, KeyError):
            return {}

    def wait_hosts_available(self, timeout: float) -> None:
        wait_until(lambda: all(self.hosts().get(h, {}).get("available") for h in RUNNERS), timeout, "the 3 runners")

    # -- consumer groups: who owns which partition ------------------------------------------------------------

    def members(self, service: str) -> dict[str, int]:
        """The members of a service's consumer group and how many partitions each holds (client id -> count)."""
        group = group_id(self.settings, service)
        described = self.admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10)
        return {
            f"{m.client_id}/{m.host}/{m.member_id[-6:]}": len(m.assignment.topic_partitions) for m in described.members
        }

    def wait_single_owner(self, service: str, timeout: float) -> float:
        """Seconds until one member of the service's group holds all of its partitions."""
        started = time.monotonic()

        def single() -> bool:
            try:
                members = self.members(service)
            except Exception:
                return False
            return len(members) == 1 and next(iter(members.values())) > 0

        wait_until(single, timeout, f"{service}'s partitions to move to the survivor")
        return time.monotonic() - started

    def probe(self, timeout: float = 120) -> float:
        """Seconds from POST until a probe job reads `done`."""
        started = time.monotonic()
        probe_job(self.http, self.stack.url, f"probe-{self.run}", timeout)
        return time.monotonic() - started

    def log_lines(self, needle: str, limit: int = 40) -> list[str]:
        """The services' log lines that mention `needle` (a lost job's id), file by file."""
        found: list[str] = []
        for path in sorted(self.log_dir.glob("*.log")):
            with path.open(errors="replace") as lines:
                found.extend(f"{path.name}: {line.rstrip()[:400]}" for line in lines if needle in line)
        return found[:limit]

    def orders_in_kafka(self, job_ids: list[str], timeout: float = 60) -> dict[str, str]:
        """Where each job's orders are on the jobs topic, read committed and not, and whether the scheduler parked
        one on the dead-letter topic (evidence for a lost job, taken while the cluster is as the round left it)."""
        found: dict[str, str] = {}
        for topic, isolation in (
            (self.topics.jobs, "read_committed"),
            (self.topics.jobs, "read_uncommitted"),
            (self.topics.dead_letter, "read_committed"),
        ):
            where = self._keys_on(topic, isolation, job_ids, timeout)
            for job_id, seen in where.items():
                found[job_id] = f"{found.get(job_id, '')} {topic} {isolation}: {seen};".strip()
        return found

    def _keys_on(self, topic: str, isolation: str, keys: list[str], timeout: float) -> dict[str, str]:
        """Where messages with each of `keys` are on `topic` (partition@offset), read to its end."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": f"cluster-evidence-{uuid.uuid4().hex[:6]}",
                "isolation.level": isolation,
                "enable.partition.eof": True,
                "enable.auto.commit": False,
            }
        )
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            ended: set[int] = set()
            hits: dict[str, list[str]] = {k: [] for k in keys}
            deadline = time.monotonic() + timeout
            while len(ended) < len(partitions) and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                if msg.error() is not None:
                    ended.add(msg.partition() or 0)
                    continue
                key = (msg.key() or b"").decode(errors="replace")
                if key in hits:
                    hits[key].append(f"p{msg.partition()}@{msg.offset()}")
            read = "all partitions" if len(ended) == len(partitions) else f"{len(ended)} partitions"
            return {k: f"{', '.join(where) or 'absent'} ({read})" for k, where in hits.items()}
        finally:
            consumer.close()


def dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
