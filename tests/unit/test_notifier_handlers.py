"""The notifier's handlers with fake stores: what an execution event plans, and what becomes of an event that
comes before its job's row."""

import uuid
from datetime import timedelta

import pytest

from services.notifier.handlers import HANDLERS, Planner
from services.notifier.plan import Delivery
from shared.contract.events import (
    ExecutionDue,
    ExecutionFinished,
    ExecutionStarted,
    JobDefinition,
    Webhook,
    decode,
    utcnow,
)
from shared.contract.topics import Topics
from shared.process.settings import NotifierSettings
from tests.fakes.store import FakeDeliveryStore, FakeWaitingEvents

SETTINGS = NotifierSettings(notify_job_wait_s=60, webhook_default_retries=2)
DEFINITION = JobDefinition(
    image="img",
    command="true",
    webhooks={"finishes": [Webhook(url="http://h/f")], "succeeds": [Webhook(url="http://h/ok")]},
    notify={"fails": ["a@x.io"]},
)


class FakeJobs:
    def __init__(self) -> None:
        self.definitions: dict[tuple[str, uuid.UUID], JobDefinition] = {}
        self.unreadable = False

    def definition(self, task_id: str, job_id: uuid.UUID) -> JobDefinition | None:
        if self.unreadable:
            raise ValueError("not JSON")
        return self.definitions.get((task_id, job_id))


class FakeDeadLetters:
    def __init__(self) -> None:
        self.parked: list[tuple[str, bytes | None, bytes, tuple[str, int, int], str]] = []

    def park_value(
        self, topic: str, key: bytes | None, value: bytes, origin: tuple[str, int, int], reason: str
    ) -> None:
        self.parked.append((topic, key, value, origin, reason))


class World:
    def __init__(self) -> None:
        self.jobs = FakeJobs()
        self.store = FakeDeliveryStore()
        self.waiting = FakeWaitingEvents()
        self.dead_letters = FakeDeadLetters()
        self.scheduled: list[Delivery] = []
        self.planner = Planner(SETTINGS, self.jobs, self.store, self.waiting, self.dead_letters, self.scheduled.append)


@pytest.fixture
def world() -> World:
    return World()


def ended(status: str = "done") -> ExecutionFinished:
    return ExecutionFinished(task_id="t", job_id=uuid.uuid4(), execution_id=uuid.uuid1(), status=status)  # type: ignore[arg-type]


def test_the_table_routes_the_execution_events_only() -> None:
    assert set(HANDLERS) == {ExecutionStarted, ExecutionFinished}


def test_an_end_plans_and_schedules_each_delivery_its_job_asks_for(world: World) -> None:
    event = ended("done")
    world.jobs.definitions[(event.task_id, event.job_id)] = DEFINITION
    world.planner.execution_event(event, 2, 10)
    assert [(d.event, d.target, d.partition) for d in world.scheduled] == [
        ("succeeds", "http://h/ok", 2),
        ("finishes", "http://h/f", 2),
    ]
    assert all(world.store.state(d) == "pending" for d in world.scheduled)
    assert world.store.pending([2]) == world.scheduled


def test_an_event_that_comes_again_plans_nothing_new_and_takes_up_what_is_unfinished(world: World) -> None:
    event = ended("done")
    world.jobs.definitions[(event.task_id, event.job_id)] = DEFINITION
    world.planner.execution_event(event, 0, 1)
    succeeded, finishing = world.scheduled
    world.store.finish(succeeded.model_copy(update={"attempts": 1}), "delivered", 200, None)
    retrying = finishing.model_copy(update={"attempts": 1, "next_at": utcnow() + timedelta(seconds=9)})
    world.store.keep(retrying)
    world.store.record(retrying, "retrying", 500, "HTTP 500")
    world.scheduled.clear()
    world.planner.execution_event(event.model_copy(update={"event_id": uuid.uuid4()}), 0, 2)
    assert world.scheduled == [retrying]  # as its pending row has it: attempts so far, next attempt
    assert world.store.state(succeeded) == "delivered"


def test_a_job_without_webhooks_or_mails_plans_nothing(world: World) -> None:
    event = ended()
    world.jobs.definitions[(event.task_id, event.job_id)] = JobDefinition(image="i", command="c")
    world.planner.execution_event(event, 0, 1)
    assert world.scheduled == [] and world.store.pending([0]) == [] and world.waiting.of(0) == []


def test_an_unreadable_definition_plans_nothing_and_does_not_wait(world: World) -> None:
    world.jobs.unreadable = True
    world.planner.execution_event(ended(), 0, 1)
    assert world.scheduled == [] and world.waiting.of(0) == []


def test_an_event_before_its_jobs_row_waits_and_is_planned_once_the_row_comes(world: World) -> None:
    event = ended("failed")
    world.planner.execution_event(event, 4, 33)
    [waiting] = world.waiting.of(4)
    assert (waiting.event, waiting.offset) == (event, 33)
    world.planner.recheck([4])
    assert world.scheduled == [] and len(world.waiting.of(4)) == 1  # still no row, patience not spent
    world.jobs.definitions[(event.task_id, event.job_id)] = DEFINITION
    world.planner.recheck([4])
    assert [(d.event, d.channel) for d in world.scheduled] == [("fails", "mail"), ("finishes", "webhook")]
    assert world.waiting.of(4) == [] and world.dead_letters.parked == []


def test_an_event_whose_row_never_comes_is_parked_with_its_origin_and_the_reason(world: World) -> None:
    event = ended()
    world.waiting.add(5, event, 71, utcnow() - timedelta(seconds=61))
    world.planner.recheck([5])
    [(topic, key, value, origin, reason)] = world.dead_letters.parked
    topics = Topics.from_settings(SETTINGS)
    assert (topic, key, decode(value)) == (topics.dead_letter, event.key, event)
    assert origin == (topics.executions, 5, 71)
    assert f"no row for job {event.job_id}" in reason
    assert world.waiting.of(5) == []


def test_only_the_partitions_given_are_rechecked(world: World) -> None:
    event = ended()
    world.waiting.add(6, event, 1, utcnow() - timedelta(hours=1))
    world.planner.recheck([7])
    assert world.dead_letters.parked == [] and len(world.waiting.of(6)) == 1


class FakeMessage:
    """What the handlers read of a Kafka message: where it was."""

    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def test_the_consumers_handler_routes_an_event_with_the_partition_and_offset_it_was_read_at(world: World) -> None:
    event = ExecutionStarted(task_id="t", job_id=uuid.uuid4(), execution_id=uuid.uuid1(), host="h", container_id="c")
    world.planner.handle(event, FakeMessage(3, 99))  # type: ignore[arg-type]
    [waiting] = world.waiting.of(3)
    assert (waiting.event, waiting.offset) == (event, 99)


def test_other_message_types_are_acknowledged_untouched(world: World) -> None:
    due = ExecutionDue(task_id="t", job_id=uuid.uuid4(), execution_id=uuid.uuid1(), image="i", command="c")
    world.planner.handle(due, FakeMessage(3, 99))  # type: ignore[arg-type]
    assert world.waiting.of(3) == [] and world.scheduled == []
