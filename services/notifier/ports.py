"""What the notifier needs from the world, as ports: its stores, the jobs' definitions, a sender and the
dead-letter topic. Cassandra, HTTP/SMTP and Kafka adapters implement them (store.py, waiting.py,
services/recorder/reads.py, send.py, shared/infra/kafka/); tests/fakes/store.py fakes the stores, and
tests/contract/test_store_contract.py holds the fakes to the Cassandra adapters."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.notifier.plan import Delivery
from shared.contract.events import ExecutionFinished, ExecutionStarted, JobDefinition


class Failed(Exception):
    """An attempt failed; `retry` False when trying again cannot help (a refused address)."""

    def __init__(self, error: str, status_code: int | None = None, retry: bool = True) -> None:
        super().__init__(error)
        self.status_code = status_code
        self.retry = retry


@dataclass
class Waiting:
    """An execution event kept until its job's row comes: where it was read, and when first."""

    partition: int
    event: ExecutionStarted | ExecutionFinished
    offset: int
    first_seen: datetime


class DeliveryStore(Protocol):
    """Pending deliveries (what to take up after a restart), by partition, and every delivery's history."""

    def state(self, d: Delivery) -> str | None:
        """The delivery's state when it was planned before (the event came again), else None."""

    def pending_one(self, d: Delivery) -> Delivery | None:
        """The delivery as its pending row has it (with its attempts so far), if it is still pending."""

    def plan(self, d: Delivery) -> None:
        """Pending, and in the history as `pending`."""

    def keep(self, d: Delivery) -> None:
        """Pending as `d` says (its attempts and next attempt)."""

    def record(self, d: Delivery, state: str, status_code: int | None, error: str | None) -> None:
        """The delivery's history says `state`, with its attempts so far."""

    def finish(self, d: Delivery, state: str, status_code: int | None, error: str | None) -> None:
        """Recorded with its final `state`, and no longer pending."""

    def pending(self, partitions: Iterable[int]) -> list[Delivery]:
        """The pending deliveries of these partitions."""


class WaitingStore(Protocol):
    """Execution events whose job's row was not there yet, by partition."""

    def add(self, partition: int, event: ExecutionStarted | ExecutionFinished, offset: int, now: datetime) -> None:
        """Keep the event (its first sighting's time is kept when it comes again)."""

    def remove(self, partition: int, event_id: uuid.UUID) -> None: ...

    def of(self, partition: int) -> list[Waiting]: ...


class JobDefinitions(Protocol):
    """Jobs' definitions (the recorder's `jobs` table)."""

    def definition(self, task_id: str, job_id: uuid.UUID) -> JobDefinition | None:
        """None while the job's row is not (completely) written; raises ValueError when it cannot be read."""


class Sender(Protocol):
    """Delivers one attempt."""

    def send(self, delivery: Delivery, now: datetime) -> int | None:
        """The HTTP status code of a webhook (None for e-mail); raises Failed."""

    def close(self) -> None: ...


class DeadLetters(Protocol):
    """The dead-letter topic, for an event read earlier (its Kafka message is gone)."""

    def park_value(
        self, topic: str, key: bytes | None, value: bytes, origin: tuple[str, int, int], reason: str
    ) -> None: ...
