"""Stop requests: every runner reads every StopExecution on the control topic and cancels the execution if it
holds it, or remembers the request for a while (the execution may still be queued for it). Requests broadcast
while the runner was down are caught up on from the ledger by the watch (watch.py)."""

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import KafkaException, Message
from pydantic import ValidationError

from shared.contract.events import StopExecution, decode
from shared.contract.topics import group_id
from shared.process.settings import Settings

log = logging.getLogger("runner")


class StopRequests:
    """Stop requests by execution id: a cancel flag for each execution this runner holds, and a bounded
    memory of requests for executions it does not hold (yet: they may still be queued for it)."""

    def __init__(self, remember: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._active: dict[uuid.UUID, threading.Event] = {}
        self._early: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._remember = remember

    def track(self, execution_id: uuid.UUID) -> threading.Event:
        with self._lock:
            cancel = self._active.setdefault(execution_id, threading.Event())
            if execution_id in self._early:
                cancel.set()
            return cancel

    def active(self) -> int:
        with self._lock:
            return len(self._active)

    def untrack(self, execution_id: uuid.UUID) -> None:
        with self._lock:
            self._active.pop(execution_id, None)

    def request(self, execution_id: uuid.UUID) -> None:
        with self._lock:
            if execution_id in self._active:
                self._active[execution_id].set()
            self._early[execution_id] = None
            while len(self._early) > self._remember:
                self._early.popitem(last=False)


class ControlConsumer(Protocol):
    """The part of a Kafka consumer the listener uses."""

    def subscribe(self, topics: list[str]) -> None: ...

    def poll(self, timeout: float) -> Message | None: ...

    def close(self) -> None: ...


def listener_config(settings: Settings) -> dict[str, object]:
    """A consumer group of its own for each runner (every runner reads every request), from the latest message
    on (requests made before it listened are in the ledger), committing nothing."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"{group_id(settings, 'runner-control')}-{uuid.uuid4().hex[:12]}",
        "auto.offset.reset": "latest",
        "enable.auto.commit": False,
    }


def listen_for_stops(
    open_consumer: Callable[[], ControlConsumer], topic: str, stops: StopRequests, stop: threading.Event
) -> None:
    """Until `stop`: each StopExecution read from `topic` is a request to `stops`; anything else is skipped."""
    consumer = open_consumer()
    consumer.subscribe([topic])
    try:
        while not stop.is_set():
            try:
                msg = consumer.poll(0.5)
            except KafkaException as exc:
                log.warning("stop listener: Kafka failed", extra={"error": str(exc)})
                stop.wait(1.0)
                continue
            if msg is None or msg.error():
                continue
            try:
                event = decode(msg.value() or b"")
            except ValidationError:
                continue
            if isinstance(event, StopExecution):
                stops.request(event.execution_id)
    finally:
        consumer.close()
