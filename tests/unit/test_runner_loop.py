"""The runner's intake (services/runner/intake.py) and its whole poll loop (runner.py) on a fake Kafka consumer,
with the fake engine, ledger and publisher: no broker, no Cassandra, no Docker."""

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

from confluent_kafka import TopicPartition
from pydantic import ValidationError

from services.runner.handlers import Limits
from services.runner.intake import Intake
from services.runner.runner import Runner
from services.runner.slots import Slots
from shared.contract.events import Event, ExecutionDue, ExecutionFinished, decode, encode, new_execution_id
from shared.contract.topics import Topics
from shared.process.settings import RunnerSettings
from tests.fakes.engine import FakeEngine
from tests.fakes.ledger import FakeLedger
from tests.fakes.publisher import RecordingPublisher
from tests.helpers import eventually

TOPIC = "due"


class Record:
    def __init__(self, topic: str, offset: int, value: bytes) -> None:
        self._topic, self._offset, self._value = topic, offset, value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> None:
        return None

    def headers(self) -> None:
        return None

    def error(self) -> None:
        return None


class FakeConsumer:
    """One partition of `topic`, assigned at the first poll; records what the intake asked of it."""

    def __init__(self, topic: str, values: list[bytes] | None = None) -> None:
        self.topic = topic
        self.records = deque(Record(topic, offset, value) for offset, value in enumerate(values or []))
        self.on_assign: Callable[..., None] | None = None
        self.on_revoke: Callable[..., None] | None = None
        self.assigned: list[TopicPartition] = []
        self.paused = False
        self.stored: list[int] = []
        self.commits = 0
        self.closed = False

    def subscribe(self, topics: list[str], **callbacks: Callable[..., None]) -> None:
        assert topics == [self.topic]
        self.on_assign, self.on_revoke = callbacks["on_assign"], callbacks["on_revoke"]

    def poll(self, timeout: float) -> Record | None:
        if not self.assigned and self.on_assign is not None:
            self.assigned = [TopicPartition(self.topic, 0)]
            self.on_assign(self, self.assigned)
        if self.paused or not self.records:
            time.sleep(min(timeout, 0.01))
            return None
        return self.records.popleft()

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused = True

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused = False

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        self.stored.extend(tp.offset for tp in offsets)

    def commit(self, asynchronous: bool) -> None:
        self.commits += 1

    def close(self) -> None:
        self.closed = True


def decode_or_none(msg: Record) -> Event | None:
    try:
        return decode(msg.value())
    except ValidationError:
        return None


def due() -> ExecutionDue:
    return ExecutionDue(
        task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), image="img", command="echo 'it works'"
    )


def intake_on(consumer: FakeConsumer, slots: Slots | None = None) -> Intake:
    intake = Intake(lambda: consumer, TOPIC, slots or Slots(capacity=1), decode_or_none)
    intake.join()
    return intake


def test_offsets_are_stored_in_order_whatever_order_messages_are_done_with() -> None:
    consumer = FakeConsumer(TOPIC, [encode(due()) for _ in range(3)])
    intake = intake_on(consumer, Slots(capacity=4))
    positions = [taken[1] for taken in (intake.poll() for _ in range(3)) if taken is not None]
    assert positions == [(TOPIC, 0, 0), (TOPIC, 0, 1), (TOPIC, 0, 2)]
    intake.done_with(positions[2])
    intake.store_done()
    assert consumer.stored == []  # 0 and 1 are still worked on: a crash must redeliver them
    intake.done_with(positions[0])
    intake.store_done()
    intake.done_with(positions[1])
    intake.store_done()
    assert consumer.stored == [1, 3]


def test_a_message_outside_the_contract_comes_out_as_none() -> None:
    intake = intake_on(FakeConsumer(TOPIC, [b"not an event"]))
    assert intake.poll() == (None, (TOPIC, 0, 0))


def test_the_assignment_is_paused_while_all_it_can_hold_is_in_hand_and_resumed_after() -> None:
    slots = Slots(capacity=1)
    consumer = FakeConsumer(TOPIC, [encode(due()), encode(due())])
    intake = intake_on(consumer, slots)
    assert intake.poll() is not None
    held = [new_execution_id(), new_execution_id()]
    for eid in held:
        slots.hold(eid)
    intake.poll()
    assert consumer.paused and len(consumer.records) == 1  # nothing more taken
    slots.let_go(held[0])
    taken = intake.poll()
    assert not consumer.paused and taken is not None


def test_offsets_of_a_partition_taken_away_are_not_stored() -> None:
    consumer = FakeConsumer(TOPIC, [encode(due())])
    intake = intake_on(consumer)
    taken = intake.poll()
    assert taken is not None and consumer.on_revoke is not None
    consumer.on_revoke(consumer, consumer.assigned)
    intake.done_with(taken[1])
    intake.store_done()
    assert consumer.stored == []


def test_leaving_the_group_drains_commits_and_closes_and_joining_again_takes_a_new_consumer() -> None:
    consumers = [FakeConsumer(TOPIC), FakeConsumer(TOPIC)]
    slots = Slots(capacity=1)
    intake = Intake(lambda: consumers.pop(0), TOPIC, slots, decode_or_none)
    intake.join()
    first = intake.consumer
    intake.leave(threading.Event())
    assert not intake.joined and first.closed and first.commits == 1
    assert not slots.take(threading.Event())  # draining: a message queued for a slot is left to the farm
    intake.join()
    assert intake.consumer is not first and slots.take(threading.Event())


class QuietControl:
    def subscribe(self, topics: list[str]) -> None: ...

    def poll(self, timeout: float) -> None:
        time.sleep(0.01)

    def close(self) -> None: ...


def test_a_runner_built_on_fakes_runs_what_its_farm_is_due_and_acknowledges_it() -> None:
    settings = RunnerSettings(host_name="host-1", topic_prefix="unit.", max_running=2, heartbeat_interval_s=0.1)
    topics = Topics.from_settings(settings)
    due_topic = topics.farm_due[settings.my_farm.name]
    dues = [due(), due()]
    consumer = FakeConsumer(due_topic, [encode(dues[0]), b"garbage", encode(dues[1])])
    engine, ledger, publisher = FakeEngine.with_program(stdout=b"it works\n"), FakeLedger(), RecordingPublisher()
    runner = Runner(
        settings,
        Limits(),
        engine,
        publisher,
        ledger,
        lambda: consumer,
        QuietControl,
        decode_or_none,
    )
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        eventually(lambda: consumer.stored and consumer.stored[-1] == 3, timeout=10, what="every offset stored")
        ends = [e for e in publisher.on(topics.executions) if isinstance(e, ExecutionFinished)]
        assert sorted((e.execution_id, e.status, e.stdout) for e in ends) == sorted(
            (d.execution_id, "done", "it works\n") for d in dues
        )
        assert ledger.held("host-1") == [] and engine.containers == {}
        eventually(lambda: publisher.on(topics.heartbeats), timeout=5, what="a heartbeat")
        ledger.blacklist("host-1")
        eventually(lambda: consumer.closed, timeout=5, what="the runner leaving its farm's group")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
