"""Stop requests and their listener on the control topic (services/runner/stops.py), on a fake consumer."""

import threading
import uuid
from collections import deque

from confluent_kafka import KafkaError, KafkaException

from services.runner.stops import StopRequests, listen_for_stops
from shared.contract.events import ExecutionStarted, StopExecution, encode, new_execution_id


def test_a_request_cancels_an_execution_held() -> None:
    stops, eid = StopRequests(), uuid.uuid4()
    cancel = stops.track(eid)
    assert not cancel.is_set()
    stops.request(eid)
    assert cancel.is_set()


def test_a_request_before_the_execution_is_held_cancels_it_when_it_comes() -> None:
    stops, eid = StopRequests(), uuid.uuid4()
    stops.request(eid)
    assert stops.track(eid).is_set()


def test_early_requests_are_remembered_up_to_a_bound() -> None:
    stops = StopRequests(remember=2)
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for eid in (first, second, third):
        stops.request(eid)
    assert not stops.track(first).is_set()  # forgotten: the oldest goes first
    assert stops.track(second).is_set() and stops.track(third).is_set()


def test_an_execution_let_go_is_no_longer_tracked() -> None:
    stops, eid = StopRequests(), uuid.uuid4()
    stops.track(eid)
    stops.untrack(eid)
    assert stops.active() == 0


class Record:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value

    def error(self) -> None:
        return None


class ControlTopic:
    """A consumer of the control topic that hands out its records, fails once, then stops the listener."""

    def __init__(self, values: list[bytes], stop: threading.Event) -> None:
        self.polls: deque[object] = deque([KafkaException(KafkaError(KafkaError._TRANSPORT)), *map(Record, values)])
        self.stop = stop
        self.subscribed: list[str] = []
        self.closed = False

    def subscribe(self, topics: list[str]) -> None:
        self.subscribed = topics

    def poll(self, timeout: float) -> Record | None:
        if not self.polls:
            self.stop.set()
            return None
        polled = self.polls.popleft()
        if isinstance(polled, Exception):
            raise polled
        assert isinstance(polled, Record)
        return polled

    def close(self) -> None:
        self.closed = True


def test_the_listener_turns_stop_messages_into_requests_and_skips_anything_else() -> None:
    wanted, other = new_execution_id(), new_execution_id()
    started = ExecutionStarted(task_id="t", job_id=uuid.uuid4(), execution_id=other, host="h", container_id="c")
    values = [
        b"not json",
        encode(started),
        encode(StopExecution(task_id="t", job_id=uuid.uuid4(), execution_id=wanted)),
    ]
    stop, stops = threading.Event(), StopRequests()
    consumer = ControlTopic(values, stop)
    listen_for_stops(lambda: consumer, "control", stops, stop)  # a Kafka failure on the way is waited out
    assert consumer.subscribed == ["control"] and consumer.closed
    assert stops.track(wanted).is_set() and not stops.track(other).is_set()
