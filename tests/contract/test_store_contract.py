"""The notifier's stores, one contract for both adapters: every test runs against the in-memory fake
(tests/fakes/store.py) and the Cassandra adapter (services/notifier/store.py, waiting.py), so the fake the unit
tests rely on cannot drift from what the notifier really gets."""

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from cassandra.cluster import Session

from services.notifier.plan import Delivery
from services.notifier.ports import DeliveryStore, WaitingStore
from services.notifier.store import CassandraDeliveryStore
from services.notifier.waiting import CassandraWaitingEvents
from shared.contract.events import ExecutionFinished, ExecutionStarted, utcnow
from tests.fakes.store import FakeDeliveryStore, FakeWaitingEvents, a_delivery, to_millis

BACKENDS = ["fake", "cassandra"]
T = TypeVar("T")


@pytest.fixture
def partition() -> int:
    """A partition no `executions` topic has: the e2e stack's notifier, on the same keyspace, never owns it."""
    return random.randrange(100_000, 1_000_000)


def adapter(request: pytest.FixtureRequest, fake: Callable[[], T], real: Callable[[Session, str], T]) -> T:
    """The fake, or the Cassandra adapter on this session's keyspace, as the test's parameter says."""
    if request.param == "fake":
        return fake()
    return real(request.getfixturevalue("cassandra"), request.getfixturevalue("backends").keyspace)


@pytest.fixture(params=BACKENDS)
def deliveries(request: pytest.FixtureRequest) -> DeliveryStore:
    return adapter(request, FakeDeliveryStore, CassandraDeliveryStore)


@pytest.fixture(params=BACKENDS)
def waiting(request: pytest.FixtureRequest) -> WaitingStore:
    return adapter(request, FakeWaitingEvents, CassandraWaitingEvents)


def delivery(partition: int, **changes: object) -> Delivery:
    """Its next attempt at a time Cassandra keeps whole (milliseconds)."""
    next_at = datetime(2026, 11, 29, 12, 0, 0, 123000, tzinfo=UTC)
    return a_delivery(partition, **{"headers": {"X-T": "1"}, "next_at": next_at, **changes})


def test_a_delivery_never_planned_has_no_state_and_is_not_pending(deliveries: DeliveryStore, partition: int) -> None:
    d = delivery(partition)
    assert deliveries.state(d) is None
    assert deliveries.pending_one(d) is None
    assert deliveries.pending([partition]) == []


def test_a_planned_delivery_is_pending_whole_and_its_history_says_pending(
    deliveries: DeliveryStore, partition: int
) -> None:
    d = delivery(partition)
    deliveries.plan(d)
    assert deliveries.state(d) == "pending"
    assert deliveries.pending_one(d) == d
    assert deliveries.pending([partition]) == [d]


def test_pending_deliveries_are_found_by_their_partition_only(deliveries: DeliveryStore, partition: int) -> None:
    mine, other, elsewhere = delivery(partition), delivery(partition + 1), delivery(partition + 2)
    for d in (mine, other, elsewhere):
        deliveries.plan(d)
    assert deliveries.pending([partition]) == [mine]
    assert {d.delivery_id for d in deliveries.pending([partition, partition + 1])} == {
        mine.delivery_id,
        other.delivery_id,
    }
    assert deliveries.pending_one(mine.model_copy(update={"partition": partition + 1})) is None


def test_a_kept_delivery_is_pending_as_last_kept_and_its_history_says_what_was_recorded(
    deliveries: DeliveryStore, partition: int
) -> None:
    d = delivery(partition)
    deliveries.plan(d)
    again = d.model_copy(update={"attempts": 1, "next_at": d.next_at + timedelta(seconds=2)})
    deliveries.keep(again)
    deliveries.record(again, "retrying", 503, "HTTP 503")
    assert deliveries.pending_one(d) == again
    assert deliveries.pending([partition]) == [again]
    assert deliveries.state(d) == "retrying"


@pytest.mark.parametrize("state", ["delivered", "failed"])
def test_a_finished_delivery_is_no_longer_pending_and_keeps_its_final_state(
    deliveries: DeliveryStore, partition: int, state: str
) -> None:
    d = delivery(partition)
    deliveries.plan(d)
    deliveries.finish(d.model_copy(update={"attempts": 1}), state, 200 if state == "delivered" else None, None)
    assert deliveries.state(d) == state
    assert deliveries.pending_one(d) is None
    assert deliveries.pending([partition]) == []


def test_an_e_mail_delivery_comes_back_with_its_recipients(deliveries: DeliveryStore, partition: int) -> None:
    d = delivery(partition, channel="mail", url="", headers={}, recipients=["a@x.io", "b@x.io"])
    deliveries.plan(d)
    assert deliveries.pending_one(d) == d


def started(**changes: object) -> ExecutionStarted:
    return ExecutionStarted(
        task_id=f"task-{uuid.uuid4().hex[:6]}",
        job_id=uuid.uuid4(),
        execution_id=uuid.uuid1(),
        host="h1",
        container_id="c1",
        **changes,  # type: ignore[arg-type]
    )


def test_a_waiting_event_comes_back_whole_with_where_and_when_it_was_first_seen(
    waiting: WaitingStore, partition: int
) -> None:
    event = started()
    now = utcnow()
    waiting.add(partition, event, 42, now)
    [found] = waiting.of(partition)
    assert (found.partition, found.event, found.offset) == (partition, event, 42)
    assert found.first_seen == to_millis(now)
    assert waiting.of(partition + 1) == []


def test_an_event_kept_again_keeps_its_first_sighting(waiting: WaitingStore, partition: int) -> None:
    event = ExecutionFinished(task_id="t", job_id=uuid.uuid4(), execution_id=uuid.uuid1(), status="failed")
    first = utcnow() - timedelta(minutes=1)
    waiting.add(partition, event, 7, first)
    waiting.add(partition, event, 9, utcnow())
    [found] = waiting.of(partition)
    assert (found.event, found.offset, found.first_seen) == (event, 7, to_millis(first))


def test_a_removed_event_waits_no_more_and_the_others_still_do(waiting: WaitingStore, partition: int) -> None:
    gone, kept = started(), started()
    for offset, event in enumerate((gone, kept), start=1):
        waiting.add(partition, event, offset, utcnow())
    waiting.remove(partition, gone.event_id)
    assert [w.event for w in waiting.of(partition)] == [kept]
    waiting.remove(partition, gone.event_id)  # removing twice is harmless


def test_an_offset_of_zero_reads_back_as_minus_one(waiting: WaitingStore, partition: int) -> None:
    """What the Cassandra adapter has always answered (`origin_offset or -1`); the fake answers the same."""
    waiting.add(partition, started(), 0, utcnow())
    assert [w.offset for w in waiting.of(partition)] == [-1]
