"""The scheduler service between real Kafka topics."""

import json
import time
import uuid
from datetime import timedelta

from confluent_kafka import Consumer

from services.scheduler.service import serve
from shared.events import ExecutionDue, JobDefinition, JobRequested, new_execution_id, utcnow
from shared.kafka import EventProducer
from shared.settings import Settings
from shared.topics import Topics
from tests.helpers import eventually, read_events, start_thread


def test_a_job_that_runs_now_becomes_an_execution_due(backends: Settings) -> None:
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


def test_a_delayed_job_fires_once_its_time_comes_and_state_is_kept(backends: Settings) -> None:
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
