"""The scheduler service between real Kafka topics."""

import json
import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from services.devstack import ROOT, free_port
from services.scheduler.bootstrap import job_store, serve
from services.scheduler.state_reader import StateSource
from shared.contract.events import (
    ExecutionDue,
    ExecutionFinished,
    JobDefinition,
    JobRequested,
    encode,
    new_execution_id,
    utcnow,
)
from shared.contract.topics import Topics
from shared.infra.kafka.admin import ensure_topics
from shared.infra.kafka.producer import PARTITIONER, EventProducer
from shared.process.settings import Settings
from tests.conftest import AllSettings
from tests.helpers import eventually, read_events, start_thread


def test_a_job_that_runs_now_becomes_an_execution_due(own_topics: Settings) -> None:
    backends = own_topics  # the e2e stack's scheduler shares the session's topics and group
    topics = Topics.from_settings(backends)
    cmd = JobRequested(
        task_id="sched",
        job_id=uuid.uuid4(),
        execution_id=new_execution_id(),
        definition=JobDefinition(image="img", command="echo hi", envs={"K": "v"}),
    )
    EventProducer(backends).publish(topics.jobs, cmd)
    thread, stop = start_thread(serve, backends)
    try:
        [due] = eventually(lambda: dues_of(backends, cmd.job_id), timeout=60, what="the ExecutionDue of the job")
        assert due.execution_id == cmd.execution_id
        assert (due.image, due.command, due.envs, due.attempt) == ("img", "echo hi", {"K": "v"}, 1)
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def test_a_delayed_job_fires_once_its_time_comes_and_state_is_kept(own_topics: Settings) -> None:
    backends = own_topics  # the e2e stack's scheduler shares the session's topics and group
    topics = Topics.from_settings(backends)
    at = utcnow() + timedelta(seconds=2)
    cmd = JobRequested(
        task_id="sched",
        job_id=uuid.uuid4(),
        definition=JobDefinition(image="img", command="echo later", start_at=at),
    )
    EventProducer(backends).publish(topics.jobs, cmd)
    thread, stop = start_thread(serve, backends)
    try:
        [due] = eventually(lambda: dues_of(backends, cmd.job_id), timeout=60, what="the delayed ExecutionDue")
        assert due.occurred_at >= at
        assert due.command == "echo later"
        states = read_raw(backends.kafka_bootstrap, topics.scheduler_state, str(cmd.job_id).encode())
        assert states, "the job's state is kept on the state topic"
        assert json.loads(states[-1])["timers"] == []
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def dues_of(settings: Settings, job_id: uuid.UUID) -> list[ExecutionDue]:
    """The ExecutionDue events of one job found on the due topic so far."""
    events = read_events(settings.kafka_bootstrap, Topics.from_settings(settings).due, 0, timeout=2)
    return [e for e in events if isinstance(e, ExecutionDue) and e.job_id == job_id]


def read_raw(bootstrap: str, topic: str, key: bytes, seconds: float = 3) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    found: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and msg.key() == key and msg.value():
                found.append(msg.value() or b"")
    finally:
        consumer.close()
    return found


class OwnKafka:
    """A throw-away single-node Kafka of the test's own (the shared one is never stopped): same jars and
    configuration as deploy/scripts/kafka.sh, on free loopback ports, with its data in `data`. `kill` is a
    kill -9 of the broker; `start` again keeps its data, as a restarted broker would."""

    def __init__(self, data: Path) -> None:
        self.port, controller = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.data = data
        self.conf = data / "server.properties"
        text = (ROOT / "deploy" / "kafka" / "server.properties.in").read_text()
        text = text.replace("@DATA@", str(data / "log")).replace("@BIND@", "127.0.0.1")
        text = text.replace("9093", str(controller)).replace("9092", str(self.port))
        self.conf.write_text(text)
        jars = ROOT / ".local" / "jars" / "kafka"
        self.java = ["java", "-Xms256m", "-Xmx256m", "-cp", f"{jars}/*"]
        self.java += [f"-Dlog4j2.configurationFile={ROOT / 'deploy' / 'kafka' / 'log4j2.properties'}"]
        subprocess.run(
            [*self.java, "kafka.tools.StorageTool", "format", "-t", "ZmFzdGxhbmUtdGVzdC0xMQ", "-c", str(self.conf)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.data / "kafka.log").open("a")
        self.proc = subprocess.Popen([*self.java, "kafka.Kafka", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        eventually(lambda: ready(admin), timeout=120, interval=1, what="the test's own Kafka")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)
            self.proc = None


def ready(admin: AdminClient) -> bool:
    try:
        admin.list_topics(timeout=2)
        return True
    except KafkaException:
        return False


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[OwnKafka]:
    kafka = OwnKafka(tmp_path)
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.kill()


def test_a_kafka_outage_longer_than_every_timeout_is_waited_out_and_each_timer_fires_once(
    backends: AllSettings, own_kafka: OwnKafka
) -> None:
    """Kafka killed with -9 for 40 s (longer than the scheduler's 30 s Kafka timeouts, its 10 s session and
    transaction timeouts) while timers are due before, during and after the outage: the scheduler keeps
    running, and once Kafka is back every timer fires, once."""
    settings = backends.model_copy(update={"kafka_bootstrap": own_kafka.bootstrap})
    topics = Topics.from_settings(settings)
    ensure_topics(settings)
    producer = EventProducer(settings)
    start = utcnow()
    # Due 3 s to 9 s from now: the broker dies at ~6 s, so some fire before it and some during the outage.
    jobs = [
        JobRequested(
            task_id="outage",
            job_id=uuid.uuid4(),
            definition=JobDefinition(image="img", command="true", start_at=start + timedelta(seconds=3 + i * 0.2)),
        )
        for i in range(30)
    ]
    for job in jobs:
        producer.publish(topics.jobs, job)
    producer.close()
    thread, stop = start_thread(serve, settings)
    try:
        ids = {job.job_id for job in jobs}
        eventually(lambda: any(e.job_id in ids for e in dues(settings)), timeout=60, what="a first timer to fire")
        own_kafka.kill()
        time.sleep(40)
        assert thread.is_alive(), "the scheduler ended during the outage"
        own_kafka.start()
        eventually(lambda: {e.job_id for e in dues(settings)} >= ids, timeout=120, what="every timer to fire")
        time.sleep(5)  # a timer fired twice would show by now
        fired = Counter(e.job_id for e in dues(settings) if e.job_id in ids)
        assert set(fired.values()) == {1}, f"fired more than once: {[j for j, n in fired.items() if n > 1]}"
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def dues(settings: Settings) -> list[ExecutionDue]:
    events = read_events(settings.kafka_bootstrap, Topics.from_settings(settings).due, 0, timeout=3)
    return [e for e in events if isinstance(e, ExecutionDue)]


# 1,000 in the suite (a 2-core machine shared with other work); FASTLANE_TEST_RELOAD_JOBS=5000 for the figure.
JOBS = int(os.environ.get("FASTLANE_TEST_RELOAD_JOBS", "1000"))


def test_finished_jobs_stay_out_of_the_reload_on_a_rebalance(own_topics: AllSettings) -> None:
    """JOBS jobs run and finished, then a rebalance: the new owner reads the state topic (pending work only)
    and keeps none of them; their states are in the archive, read only for an order that needs one."""
    settings = own_topics
    topics = Topics.from_settings(settings)
    thread, stop = start_thread(serve, settings)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "partitioner": PARTITIONER, "linger.ms": 5})
    jobs = [
        JobRequested(
            task_id="reload",
            job_id=uuid.uuid4(),
            execution_id=new_execution_id(),
            definition=JobDefinition(image="img", command="true"),
        )
        for _ in range(JOBS)
    ]
    try:
        for job in jobs:
            producer.produce(topics.jobs, key=job.key, value=encode(job))
        producer.flush(60)
        # Each execution ends only after it was due (as with a real runner): an end read before its job's order
        # (another topic, no order between them) would find no job and leave it running for good.
        read_events(settings.kafka_bootstrap, topics.due, JOBS, timeout=JOBS // 8 + 60)
        for job in jobs:
            assert job.execution_id is not None
            done = ExecutionFinished(
                task_id=job.task_id, job_id=job.job_id, execution_id=job.execution_id, status="done"
            )
            producer.produce(topics.executions, key=done.key, value=encode(done))
        producer.flush(60)
        probe = job_store(settings).source
        archive = topics.scheduler_archive
        eventually(
            lambda: archived_jobs(probe, archive, settings.topic_partitions) == JOBS,
            timeout=JOBS // 4 + 60,
            interval=2,
            what="every job's state in the archive",
        )
    finally:
        stop.set()
        thread.join(30)
    fresh = job_store(settings)
    try:
        started = time.monotonic()
        for p in range(settings.topic_partitions):
            fresh.load(p)
        reload_s = time.monotonic() - started
        started = time.monotonic()
        archived = sum(len(fresh.archived(p)) for p in range(settings.topic_partitions))
        archive_s = time.monotonic() - started
    finally:
        fresh.source.close()
    kept = sum(len(states) for states in fresh.jobs.values())
    print(
        f"reload after {JOBS} finished jobs: {reload_s:.3f} s, {kept} jobs kept, {len(fresh.timers)} timers; "
        f"reading the archive (only for an order of a finished job): {archive_s:.3f} s, {archived} jobs"
    )
    assert kept == 0 and not fresh.timers
    assert archived == len(jobs)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.delete_topics(topics.all()).values():
        future.exception()


def archived_jobs(source: StateSource, archive: str, partitions: int) -> int:
    try:
        return sum(len(source.read_states(archive, p)[0]) for p in range(partitions))
    except KafkaException:  # the archive topic is not there yet
        return -1
