"""Fakes of the scheduler's ports: the state source (services/scheduler/state_reader.py StateSource), the
transactional producer (services/scheduler/transactions.py TransactionalProducer, made by a factory) and the
group consumer (services/scheduler/loop.py GroupConsumer). The real ones are reached by
tests/integration/test_scheduler.py and tests/e2e/test_scheduler_faults.py."""

import threading
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from services.scheduler.state import JobState
from services.scheduler.transactions import TransactionalProducer

STATE, ARCHIVE = "scheduler.state", "scheduler.state.idle"
GROUP_METADATA = object()  # what the fake consumer hands out as its group metadata


class FakeSource:
    """States per (topic, partition); counts the reads; raises `failure` when set."""

    def __init__(self) -> None:
        self.topics: dict[tuple[str, int], dict[uuid.UUID, JobState]] = {}
        self.reads: list[tuple[str, int]] = []
        self.failure: Exception | None = None
        self.closed = False

    def put(self, topic: str, partition: int, *states: JobState) -> None:
        self.topics.setdefault((topic, partition), {}).update({s.job_id: s for s in states})

    def read_states(self, topic: str, partition: int) -> tuple[dict[uuid.UUID, JobState], int]:
        if self.failure is not None:
            raise self.failure
        self.reads.append((topic, partition))
        states = dict(self.topics.get((topic, partition), {}))
        return states, len(states)

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    """Records the calls it gets; `fail` maps a call's name to what it raises (or "hang": it blocks until the
    test ends)."""

    def __init__(self, fail: dict[str, BaseException | str] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail or {}
        self.produced: list[tuple[str, dict[str, Any]]] = []  # (topic, the keyword arguments of produce)
        self.released = threading.Event()
        self.sent: list[tuple[list[TopicPartition], Any]] = []  # (offsets, group metadata) of each transaction

    def _call(self, name: str) -> None:
        self.calls.append(name)
        failure = self.fail.get(name)
        if failure == "hang":
            self.released.wait(10)
        elif isinstance(failure, BaseException):
            raise failure

    def init_transactions(self, timeout: float) -> None:
        self._call("init_transactions")

    def begin_transaction(self) -> None:
        self._call("begin_transaction")

    def produce(self, topic: str, **record: Any) -> None:
        self.produced.append((topic, record))

    def send_offsets_to_transaction(self, positions: list[TopicPartition], group_metadata: Any, timeout: float) -> None:
        self.sent.append((positions, group_metadata))
        self._call("send_offsets_to_transaction")

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit_transaction")

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort_transaction")

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self._call("purge")

    def flush(self, timeout: float) -> int:
        self._call("flush")
        return 0


class Producers:
    """The guard's producer factory: hands out the producers queued in `made`, or plain ones."""

    def __init__(self, *queued: FakeProducer) -> None:
        self.queued = list(queued)
        self.made: list[FakeProducer] = []

    def __call__(self) -> TransactionalProducer:
        producer = self.queued.pop(0) if self.queued else FakeProducer()
        self.made.append(producer)
        return producer


class FakeConsumer:
    """Owns `assigned` partitions of the jobs topic at `positions` (-1: not fetched yet), with `committed_offsets`
    in the group; `poll` hands out `pending` records, then calls `idle` (e.g. to stop the loop)."""

    def __init__(self, *assigned: int) -> None:
        self.assigned = [TopicPartition("jobs", p) for p in assigned]
        self.positions: dict[int, int] = dict.fromkeys(assigned, 0)
        self.committed_offsets: dict[int, int] = {}
        self.low_watermark = 0
        self.pending: list[Message] = []
        self.idle: Callable[[], None] = lambda: None
        self.seeks: list[tuple[int, int]] = []
        self.seek_refused = False  # as librdkafka does for a partition whose fetching never started
        self.assigns: list[list[tuple[int, int]]] = []
        self.on_assign: Callable[[Consumer, list[TopicPartition]], None] | None = None
        self.closed = False

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callable[[Consumer, list[TopicPartition]], None] | None = None,
        on_revoke: Callable[[Consumer, list[TopicPartition]], None] | None = None,
    ) -> None:
        self.on_assign = on_assign

    def poll(self, timeout: float) -> Message | None:
        if self.on_assign is not None:  # the first poll joins the group
            assign, self.on_assign = self.on_assign, None
            assign(Consumer.__new__(Consumer), self.assigned)
        if self.pending:
            return self.pending.pop(0)
        self.idle()
        return None

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        taken, self.pending = self.pending[:num_messages], self.pending[num_messages:]
        return taken

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions[tp.partition]) for tp in partitions]

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.committed_offsets.get(tp.partition, -1001)) for tp in partitions
        ]

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        return self.low_watermark, 100

    def seek(self, partition: TopicPartition) -> None:
        if self.seek_refused:
            raise KafkaException(KafkaError(KafkaError._STATE, "Failed to seek to offset: Local: Erroneous state"))
        self.seeks.append((partition.partition, partition.offset))

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigns.append([(tp.partition, tp.offset) for tp in partitions])
        self.seek_refused = False  # fetching starts again from there

    def consumer_group_metadata(self) -> Any:
        return GROUP_METADATA

    def close(self) -> None:
        self.closed = True
