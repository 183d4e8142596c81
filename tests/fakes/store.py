"""In-memory fakes of the notifier's stores (services/notifier/ports.py: DeliveryStore, WaitingStore), held to
the Cassandra adapters by tests/contract/test_store_contract.py. Like Cassandra, they keep timestamps to the
millisecond and hand out copies, never the objects they were given."""

import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.notifier.plan import Delivery
from services.notifier.ports import Waiting
from shared.contract.events import ExecutionFinished, ExecutionStarted, decode, encode, utcnow


def a_delivery(partition: int = 0, retries: int = 3, **changes: object) -> Delivery:
    """A webhook delivery of a made-up execution, due now unless `changes` say otherwise."""
    d = Delivery(
        delivery_id=uuid.uuid4(),
        partition=partition,
        channel="webhook",
        event="finishes",
        task_id=f"task-{uuid.uuid4().hex[:6]}",
        job_id=uuid.uuid4(),
        execution_id=uuid.uuid1(),
        url="http://h/x",
        retries=retries,
        next_at=utcnow(),
        payload={"execution": {"status": "done"}},
    )
    return d.model_copy(update=changes)


def to_millis(at: datetime) -> datetime:
    """What Cassandra keeps of a timestamp."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Recorded:
    """A delivery's row in the history, as the API would show it."""

    state: str
    attempts: int
    status_code: int | None
    error: str | None
    updated_at: datetime


class FakeDeliveryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # the dispatcher's workers write from several threads
        self.pending_rows: dict[tuple[int, uuid.UUID], str] = {}
        self.history: dict[uuid.UUID, Recorded] = {}

    def state(self, d: Delivery) -> str | None:
        with self._lock:
            found = self.history.get(d.delivery_id)
        return found.state if found is not None else None

    def pending_one(self, d: Delivery) -> Delivery | None:
        with self._lock:
            row = self.pending_rows.get((d.partition, d.delivery_id))
        return Delivery.model_validate_json(row) if row is not None else None

    def plan(self, d: Delivery) -> None:
        self.keep(d)
        self.record(d, "pending", None, None)

    def keep(self, d: Delivery) -> None:
        with self._lock:
            self.pending_rows[(d.partition, d.delivery_id)] = d.model_dump_json()

    def record(self, d: Delivery, state: str, status_code: int | None, error: str | None) -> None:
        with self._lock:
            self.history[d.delivery_id] = Recorded(state, d.attempts, status_code, error, to_millis(utcnow()))

    def finish(self, d: Delivery, state: str, status_code: int | None, error: str | None) -> None:
        self.record(d, state, status_code, error)
        with self._lock:
            self.pending_rows.pop((d.partition, d.delivery_id), None)

    def pending(self, partitions: Iterable[int]) -> list[Delivery]:
        wanted = set(partitions)
        with self._lock:
            rows = [row for (p, _), row in self.pending_rows.items() if p in wanted]
        return [Delivery.model_validate_json(row) for row in rows]


class FakeWaitingEvents:
    def __init__(self) -> None:
        self.rows: dict[tuple[int, uuid.UUID], tuple[bytes, int, datetime]] = {}

    def add(self, partition: int, event: ExecutionStarted | ExecutionFinished, offset: int, now: datetime) -> None:
        self.rows.setdefault((partition, event.event_id), (encode(event), offset, to_millis(now)))

    def remove(self, partition: int, event_id: uuid.UUID) -> None:
        self.rows.pop((partition, event_id), None)

    def of(self, partition: int) -> list[Waiting]:
        found = []
        for (p, _), (raw, offset, first_seen) in sorted(self.rows.items(), key=lambda item: str(item[0][1])):
            if p != partition:
                continue
            event = decode(raw)
            assert isinstance(event, ExecutionStarted | ExecutionFinished)
            found.append(Waiting(partition, event, offset or -1, first_seen))
        return found
