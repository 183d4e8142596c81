"""What a runner has in hand, and its slots of running containers (services/runner/slots.py)."""

import threading
import time
import uuid

from services.runner.slots import Slot, Slots


def test_an_execution_is_held_once_until_it_is_let_go() -> None:
    slots, eid = Slots(capacity=2), uuid.uuid4()
    assert slots.hold(eid) and not slots.hold(eid)  # a redelivery while it is in hand
    assert slots.held() == {eid} and slots.in_hand() == 1
    slots.let_go(eid)
    assert slots.held() == set() and slots.hold(eid)


def test_capacity_plus_lookahead_in_hand_is_full() -> None:
    slots = Slots(capacity=2)
    for _ in range(3):
        slots.hold(uuid.uuid4())
    assert slots.lookahead == 2 and not slots.full()
    slots.hold(uuid.uuid4())
    assert slots.full()


def test_a_slot_is_waited_for_at_capacity_and_given_to_the_next_when_freed() -> None:
    slots, stop = Slots(capacity=1), threading.Event()
    assert slots.take(stop) and slots.running() == 1
    taken: list[bool] = []
    waiter = threading.Thread(target=lambda: taken.append(slots.take(stop)))
    waiter.start()
    time.sleep(0.3)
    assert taken == []  # still waiting: the one slot is taken
    slots.give()
    waiter.join(2)
    assert taken == [True] and slots.running() == 1


def test_no_slot_is_taken_while_draining_or_stopping() -> None:
    slots, stop = Slots(capacity=1), threading.Event()
    slots.drain()
    assert not slots.take(stop) and slots.running() == 0
    slots.drain(False)
    stop.set()
    assert not slots.take(stop)


def test_a_draining_runner_releases_the_messages_waiting_for_a_slot() -> None:
    slots, stop = Slots(capacity=1), threading.Event()
    slots.take(stop)
    taken: list[bool] = []
    waiter = threading.Thread(target=lambda: taken.append(slots.take(stop)))
    waiter.start()
    slots.drain()
    waiter.join(2)
    assert taken == [False]


def test_an_execution_taken_up_after_a_restart_takes_a_slot_whatever_the_count() -> None:
    slots = Slots(capacity=1)
    slots.take(threading.Event())
    slot = Slot(slots)
    slot.take_at_once()
    assert slots.running() == 2


def test_a_slot_is_given_back_once_however_often_it_is_given() -> None:
    slots = Slots(capacity=2)
    slot = Slot(slots)
    assert slot.take(threading.Event())
    slot.give()
    slot.give()  # once when the container ended, again when the work ends
    assert slots.running() == 0


def test_messages_queued_are_settled_one_by_one() -> None:
    slots = Slots(capacity=1)
    slots.queued()
    slots.queued()
    slots.settled()
    assert slots.settling() == 1
