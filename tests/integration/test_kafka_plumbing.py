"""The consumer loop and producer against the real broker: delivery, retries, dead-lettering."""

import threading
import uuid

import pytest
from cassandra import OperationTimedOut
from confluent_kafka import Consumer, Producer

from shared.contract.events import Event, ExecutionDue, new_execution_id
from shared.contract.topics import Topics
from shared.infra.failures import POISON_ATTEMPTS
from shared.infra.kafka.consumer import run_consumer
from shared.infra.kafka.producer import EventProducer
from shared.process.settings import Settings
from tests import helpers
from tests.helpers import eventually


def due_event() -> ExecutionDue:
    return ExecutionDue(task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), image="i", command="c")


def consume_in_thread(settings: Settings, group: str, topic: str, handle):  # type: ignore[no-untyped-def]
    stop = threading.Event()
    producer = EventProducer(settings)

    def handle_event(event, _msg):  # type: ignore[no-untyped-def]
        handle(event)

    thread = threading.Thread(target=run_consumer, args=(settings, group, [topic], handle_event, producer, stop))
    thread.start()
    return thread, stop


@pytest.fixture
def topic_settings(backends: Settings) -> Settings:
    return backends


def test_published_events_reach_the_handler_in_order(topic_settings: Settings) -> None:
    topics = Topics.from_settings(topic_settings)
    producer = EventProducer(topic_settings)
    events = [due_event() for _ in range(3)]
    # One job's events share a key, so they share a partition and keep their order.
    same_job = [e.model_copy(update={"job_id": events[0].job_id}) for e in events]
    for e in same_job:
        producer.publish(topics.due, e)
    seen: list[Event] = []
    thread, stop = consume_in_thread(topic_settings, f"g-{uuid.uuid4()}", topics.due, seen.append)
    try:
        eventually(lambda: all(e in seen for e in same_job), what="the three events")
        mine = [e for e in seen if e.job_id == events[0].job_id]
        assert mine == same_job
    finally:
        stop.set()
        thread.join(10)


def test_a_failing_handler_is_retried_and_the_message_not_lost(topic_settings: Settings) -> None:
    topics = Topics.from_settings(topic_settings)
    event = due_event()
    EventProducer(topic_settings).publish(topics.due, event)
    attempts: list[Event] = []
    done: list[Event] = []

    def flaky(e: Event) -> None:
        if e.job_id != event.job_id:
            return
        attempts.append(e)
        if len(attempts) < 3:
            raise ConnectionError("database blip")
        done.append(e)

    group = f"g-{uuid.uuid4()}"
    thread, stop = consume_in_thread(topic_settings, group, topics.due, flaky)
    try:
        eventually(lambda: done, what="the handler to succeed after two failures")
        assert len(attempts) == 3
    finally:
        stop.set()
        thread.join(10)
    # The offset was stored after success: a new consumer of the same group does not see it again.
    again: list[Event] = []
    thread, stop = consume_in_thread(topic_settings, group, topics.due, again.append)
    marker = due_event()
    EventProducer(topic_settings).publish(topics.due, marker)
    try:
        eventually(lambda: marker in again, what="the marker event")
        assert event not in again
    finally:
        stop.set()
        thread.join(10)


def test_unparseable_messages_are_parked_on_the_dead_letter_topic(topic_settings: Settings) -> None:
    topics = Topics.from_settings(topic_settings)
    raw = Producer({"bootstrap.servers": topic_settings.kafka_bootstrap})
    garbage = f"not an event {uuid.uuid4()}".encode()
    raw.produce(topics.due, key=b"k", value=garbage)
    raw.flush(10)
    good = due_event()
    EventProducer(topic_settings).publish(topics.due, good)
    seen: list[Event] = []
    thread, stop = consume_in_thread(topic_settings, f"g-{uuid.uuid4()}", topics.due, seen.append)
    try:
        eventually(lambda: good in seen, what="the good event after the garbage")
    finally:
        stop.set()
        thread.join(10)

    dlq = Consumer(
        {
            "bootstrap.servers": topic_settings.kafka_bootstrap,
            "group.id": f"d-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        }
    )
    dlq.subscribe([topics.dead_letter])
    try:

        def parked() -> dict[str, bytes] | None:
            msg = dlq.poll(0.5)
            if msg is not None and not msg.error() and msg.value() == garbage:
                return dict(msg.headers() or [])
            return None

        headers = eventually(parked, what="the parked message")
        assert headers["origin-topic"] == topics.due.encode()
        assert b"JSON" in headers["reason"] or b"json" in headers["reason"]
    finally:
        dlq.close()


def test_a_message_failing_by_its_own_fault_is_parked_with_the_reason_and_the_next_one_handled(
    topic_settings: Settings,
) -> None:
    topics = Topics.from_settings(topic_settings)
    poison = due_event()
    good = due_event().model_copy(update={"job_id": poison.job_id})  # same partition: right behind the poison
    producer = EventProducer(topic_settings)
    producer.publish(topics.due, poison)
    producer.publish(topics.due, good)
    attempts: list[Event] = []
    seen: list[Event] = []
    outcomes: list[tuple[Event, str]] = []

    def handle(e: Event, _msg: object) -> None:
        if e == poison:
            attempts.append(e)
            raise ValueError("this message cannot be handled")
        seen.append(e)

    stop = threading.Event()
    args = (topic_settings, f"g-{uuid.uuid4()}", [topics.due], handle, producer, stop)
    thread = threading.Thread(
        target=run_consumer, args=args, kwargs={"on_poison": lambda e, why: outcomes.append((e, why))}
    )
    thread.start()
    try:
        eventually(lambda: good in seen, what="the message behind the poison")
        assert len(attempts) == POISON_ATTEMPTS
        assert outcomes == [(poison, "ValueError: this message cannot be handled")]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    headers = parked_headers(topic_settings, str(poison.execution_id).encode())
    assert headers["reason"] == b"ValueError: this message cannot be handled"
    assert headers["origin-topic"] == topics.due.encode()


def test_a_backing_service_outage_is_waited_out_and_nothing_is_parked(topic_settings: Settings) -> None:
    topics = Topics.from_settings(topic_settings)
    event = due_event()
    EventProducer(topic_settings).publish(topics.due, event)
    attempts: list[Event] = []
    done: list[Event] = []

    def cassandra_down_for_a_while(e: Event) -> None:
        if e.job_id != event.job_id:
            return
        attempts.append(e)
        if len(attempts) <= POISON_ATTEMPTS + 2:  # more failures than a poison message gets
            raise OperationTimedOut("no answer from 127.0.0.1:9042")
        done.append(e)

    thread, stop = consume_in_thread(topic_settings, f"g-{uuid.uuid4()}", topics.due, cassandra_down_for_a_while)
    try:
        eventually(lambda: done, timeout=60, what="the handler to succeed once Cassandra answers")
        assert len(attempts) == POISON_ATTEMPTS + 3
    finally:
        stop.set()
        thread.join(10)
    with pytest.raises(AssertionError):
        parked_headers(topic_settings, str(event.execution_id).encode(), timeout=3)


def test_a_message_that_filled_its_topic_is_cut_to_fit_the_dead_letter_topic(own_topics: Settings) -> None:
    topic_settings = own_topics
    topics = Topics.from_settings(topic_settings)
    marker = f"full-{uuid.uuid4()}".encode()
    value = marker + b"x" * (topic_settings.max_message_bytes - 1000)
    raw = Producer({"bootstrap.servers": topic_settings.kafka_bootstrap, "message.max.bytes": 64 * 1024 * 1024})
    raw.produce(topics.due, key=b"k", value=value)
    assert raw.flush(10) == 0
    seen: list[Event] = []
    thread, stop = consume_in_thread(topic_settings, f"g-{uuid.uuid4()}", topics.due, seen.append)
    try:
        headers = parked_headers(topic_settings, marker, timeout=30)
    finally:
        stop.set()
        thread.join(10)
    assert headers["truncated"].startswith(f"value of {len(value)} bytes cut".encode())


def parked_headers(settings: Settings, marker: bytes, timeout: float = 30) -> dict[str, bytes]:
    return helpers.parked_headers(settings.kafka_bootstrap, Topics.from_settings(settings).dead_letter, marker, timeout)
