"""The API process's one consumer of live output: every follower of every execution is served from it.

A thread reads the `output` and `executions` topics from their end (no consumer group offsets: a follower's
past comes from Cassandra, services/api/live/follow.py) and hands each message that someone follows to the
event loop, in one call per batch. Followers each have a small queue: one that falls behind loses its queue
(`overflowed`) and catches up from Cassandra, so a slow client costs the API a bounded amount of memory, and
one message is a single object however many follow it.
"""

import asyncio
import logging
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from shared.contract.events import (
    ExecutionFinished,
    ExecutionOutput,
    ExecutionPulling,
    ExecutionStarted,
    decode,
)
from shared.contract.topics import Topics
from shared.process.settings import Settings

log = logging.getLogger(__name__)

QUEUE_MESSAGES = 32  # per follower: at most this many chunks (of at most 16 KiB each by default) wait for it
Followed = ExecutionOutput | ExecutionStarted | ExecutionPulling | ExecutionFinished


@dataclass(eq=False)
class Subscription:
    """What one follower is told: messages of one execution (`execution_id`, of job `job_id`), or of every
    execution of one job (`job_id` alone)."""

    execution_id: uuid.UUID | None = None
    job_id: uuid.UUID | None = None
    queue: asyncio.Queue[Followed] = field(default_factory=lambda: asyncio.Queue(QUEUE_MESSAGES))
    overflowed: bool = False  # messages were dropped: the follower reads what it missed from Cassandra

    def offer(self, message: Followed) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True


class OutputHub:
    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop | None = None) -> None:
        topics = Topics.from_settings(settings)
        self._topics = [topics.output, topics.executions]
        self._config = {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.topic_prefix}api.live.{uuid.uuid4()}",  # never committed: reads from the end
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "latest",
            "isolation.level": "read_committed",
            # A long poll: the broker answers as soon as a byte arrives (7.9 ms median from send to here,
            # measured), and only an idle partition waits the whole 500 ms. A 10 ms wait made each API
            # process send ~100 fetches a second while idle (a few % of Kafka's CPU, always).
            "fetch.wait.max.ms": 500,
        }
        self._loop = loop
        self._by_execution: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._by_job: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._key_counts: dict[bytes, int] = {}
        self._keys: frozenset[bytes] = frozenset()  # the keys followed now (read by the thread without a lock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-output", daemon=True)
        self.assigned = threading.Event()  # set once the thread reads every partition (tests wait for it)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def followers(self) -> int:
        return sum(len(s) for s in self._by_execution.values()) + sum(len(s) for s in self._by_job.values())

    # --- on the event loop ------------------------------------------------------------------------------------

    def subscribe(self, execution_id: uuid.UUID | None = None, job_id: uuid.UUID | None = None) -> Subscription:
        subscription = Subscription(execution_id, job_id)
        if execution_id is not None:
            self._by_execution[execution_id].add(subscription)
        elif job_id is not None:
            self._by_job[job_id].add(subscription)
        self._keep_key(execution_id, +1)
        self._keep_key(job_id, +1)  # the executions topic is keyed by job id
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        for index, key in ((self._by_execution, subscription.execution_id), (self._by_job, subscription.job_id)):
            if key is not None and key in index:
                index[key].discard(subscription)
                if not index[key]:
                    del index[key]
        self._keep_key(subscription.execution_id, -1)
        self._keep_key(subscription.job_id, -1)

    def _keep_key(self, key: uuid.UUID | None, change: int) -> None:
        """Count the followers of each key; the thread's set of keys is replaced (never changed in place)."""
        if key is None:
            return
        encoded = str(key).encode()
        count = self._key_counts.get(encoded, 0) + change
        if count > 0:
            self._key_counts[encoded] = count
        else:
            self._key_counts.pop(encoded, None)
        self._keys = frozenset(self._key_counts)

    def _deliver(self, messages: list[Followed]) -> None:
        for message in messages:
            targets = set(self._by_execution.get(message.execution_id, ()))
            if not isinstance(message, ExecutionOutput):
                targets |= self._by_job.get(message.job_id, set())
            for subscription in targets:
                subscription.offer(message)

    # --- the consumer thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception as exc:  # a broker outage: followers go on from Cassandra meanwhile
                log.warning("live output consumer failed; starting again", extra={"error": str(exc)})
                self._stop.wait(2.0)

    def _consume(self) -> None:
        consumer = Consumer(self._config)
        try:
            partitions = self._partitions(consumer)
            consumer.assign(partitions)
            self.assigned.set()
            while not self._stop.is_set():
                first = consumer.poll(0.5)  # consume() would wait for a full batch or its whole timeout
                batch = [first, *consumer.consume(500, 0)] if first is not None else []
                wanted: list[Followed] = []
                keys = self._keys
                for msg in batch:
                    if msg.error() is not None or msg.key() not in keys:
                        continue
                    try:
                        event = decode(msg.value() or b"")
                    except ValueError:
                        continue  # not ours to judge: the recorder parks it
                    if is_followed(event):
                        wanted.append(event)  # type: ignore[arg-type]
                if wanted and self._loop is not None:
                    self._loop.call_soon_threadsafe(self._deliver, wanted)
        finally:
            self.assigned.clear()
            consumer.close()

    def _partitions(self, consumer: Consumer) -> list[TopicPartition]:
        while not self._stop.is_set():
            try:
                metadata = consumer.list_topics(timeout=5)
            except KafkaException as exc:
                log.info("waiting for Kafka", extra={"error": str(exc)})
                continue
            found = [
                TopicPartition(name, p, OFFSET_END)
                for name in self._topics
                if name in metadata.topics
                for p in metadata.topics[name].partitions
            ]
            if len(found) and all(name in metadata.topics for name in self._topics):
                return found
            self._stop.wait(1.0)
        return []


def is_followed(message: object) -> bool:
    return isinstance(message, ExecutionOutput | ExecutionStarted | ExecutionPulling | ExecutionFinished)
