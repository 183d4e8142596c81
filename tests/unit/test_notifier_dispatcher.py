"""The dispatcher with a fake store and a scripted sender: attempts, retries, giving up, ownership."""

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest

from services.notifier.dispatcher import Dispatcher
from services.notifier.plan import Delivery
from services.notifier.ports import Failed
from shared.contract.events import RetryBackoff
from tests.fakes.store import FakeDeliveryStore, a_delivery
from tests.helpers import eventually

QUICK = RetryBackoff(min_ms=10, factor=2.0, max_ms=40)


class ScriptedSender:
    """Answers each attempt at a delivery with the next outcome of its script (a status code, or Failed)."""

    def __init__(self) -> None:
        self.scripts: dict[uuid.UUID, list[int | Failed]] = {}
        self.attempts: list[tuple[uuid.UUID, int, datetime]] = []
        self.closed = False

    def send(self, delivery: Delivery, now: datetime) -> int | None:
        self.attempts.append((delivery.delivery_id, delivery.attempts, now))
        outcome = self.scripts[delivery.delivery_id].pop(0)
        if isinstance(outcome, Failed):
            raise outcome
        return outcome

    def close(self) -> None:
        self.closed = True


class Running:
    def __init__(self) -> None:
        self.store = FakeDeliveryStore()
        self.sender = ScriptedSender()
        self.stop = threading.Event()
        self.dispatcher = Dispatcher(self.store, self.sender, 2, QUICK, self.stop)

    def attempts_at(self, d: Delivery) -> list[int]:
        return [n for delivery_id, n, _ in self.sender.attempts if delivery_id == d.delivery_id]


@pytest.fixture
def running() -> Iterator[Running]:
    r = Running()
    thread = threading.Thread(target=r.dispatcher.run, daemon=True)
    thread.start()
    yield r
    r.stop.set()
    thread.join(5)
    assert not thread.is_alive() and r.sender.closed


def planned(r: Running, retries: int, *script: int | Failed, partition: int = 0) -> Delivery:
    d = a_delivery(partition, retries)
    r.sender.scripts[d.delivery_id] = list(script)
    r.store.plan(d)
    return d


def test_a_receiver_failing_twice_gets_three_attempts_and_the_delivery_is_recorded_delivered(
    running: Running,
) -> None:
    d = planned(running, 3, Failed("HTTP 503", 503), Failed("HTTP 503", 503), 200)
    running.dispatcher.own([0], [d])
    eventually(lambda: running.store.pending([0]) == [], timeout=5, what="the delivery to finish")
    assert running.store.state(d) == "delivered"
    assert running.attempts_at(d) == [0, 1, 2]
    assert running.store.history[d.delivery_id].attempts == 3
    assert running.store.history[d.delivery_id].status_code == 200
    assert running.store.pending([0]) == []


def test_retries_spent_the_delivery_is_recorded_failed_with_the_last_error(running: Running) -> None:
    d = planned(running, 1, Failed("HTTP 500", 500), Failed("HTTP 502", 502))
    running.dispatcher.own([0], [d])
    eventually(lambda: running.store.pending([0]) == [], timeout=5, what="the delivery to finish")
    assert running.store.state(d) == "failed"
    recorded = running.store.history[d.delivery_id]
    assert (recorded.attempts, recorded.status_code, recorded.error) == (2, 502, "HTTP 502")
    assert running.attempts_at(d) == [0, 1]


def test_a_failure_trying_again_cannot_mend_is_not_retried(running: Running) -> None:
    d = planned(running, 5, Failed("refused", retry=False))
    running.dispatcher.own([0], [d])
    eventually(lambda: running.store.state(d) == "failed", timeout=5, what="the delivery to fail")
    assert running.attempts_at(d) == [0]


def test_a_crashing_sender_counts_as_a_failed_attempt(running: Running) -> None:
    d = planned(running, 0)  # an empty script: its pop raises IndexError, as a bug in the sender would
    running.dispatcher.own([0], [d])
    eventually(lambda: running.store.state(d) == "failed", timeout=5, what="the crash to be recorded")
    assert running.store.history[d.delivery_id].error == "IndexError: pop from empty list"


def test_a_delivery_added_twice_is_attempted_once(running: Running) -> None:
    d = planned(running, 0, 200)
    running.dispatcher.own([0], [d, d])
    running.dispatcher.add(d)
    eventually(lambda: running.store.state(d) == "delivered", timeout=5, what="the delivery")
    time.sleep(0.2)
    assert running.attempts_at(d) == [0]


def test_deliveries_of_a_partition_not_owned_are_left_to_its_owner(running: Running) -> None:
    mine = planned(running, 0, 200, partition=0)
    theirs = planned(running, 0, 200, partition=1)
    running.dispatcher.own([0, 1], [])
    running.dispatcher.disown([1])
    running.dispatcher.add(theirs)
    running.dispatcher.add(mine)
    eventually(lambda: running.store.state(mine) == "delivered", timeout=5, what="the owned delivery")
    time.sleep(0.2)
    assert running.attempts_at(theirs) == []
    assert running.store.pending([1]) == [theirs]  # still pending, for the partition's owner
    assert running.dispatcher.owned() == [0]
