"""The runner's intake: membership of its farm's consumer group, and the offsets of the ExecutionDue it takes.

Messages are worked on in parallel and finish out of order; an offset is stored only once it and every one before
it are done with (offsets.py), so a crash redelivers, never skips. The assignment is paused while the runner has
all it can hold in hand (polling without fetching keeps the membership alive), and resumed when one is done with.
Leaving the group (blacklisted, circuit open) closes the consumer: the farm's other runners take the partitions;
joining again makes a new one, so nothing (paused partitions, a half-finished rebalance) carries over. A consumer
that stalled after a broker pause (shared/infra/kafka/consumer_stall.py) is replaced the same way: it leaves,
and a new one joins.
"""

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from services.runner.offsets import OffsetTracker, Position
from services.runner.slots import Slots
from shared.contract.events import Event, ExecutionDue
from shared.infra.kafka.consumer import is_record
from shared.infra.kafka.consumer_stall import StallWatch
from shared.process.logs import traceparent_of

log = logging.getLogger("runner")
LEAVE_WAIT_S = 30  # at most this long for the messages being claimed to be acknowledged when leaving the group


class Intake:
    def __init__(
        self,
        open_consumer: Callable[[], Consumer],
        topic: str,
        slots: Slots,
        decode: Callable[[Message], Event | None],
        watch: StallWatch | None = None,
    ) -> None:
        """`open_consumer`: a new consumer of the farm's group; `decode`: a message's event, or None when it is
        not one (it was parked); `watch`: fed the statistics of the consumers `open_consumer` makes, it tells
        when one stalled (none: never replaced)."""
        self._open = open_consumer
        self.topic = topic
        self.slots = slots
        self._decode = decode
        self.traces: dict[uuid.UUID, str] = {}  # execution id -> the traceparent its ExecutionDue came with
        self.tracker = OffsetTracker()
        self._done: queue.SimpleQueue[Position] = queue.SimpleQueue()
        self.consumer: Consumer | None = None  # a fresh one each time this runner joins its farm's group
        self._paused = False
        self._reassigned = False
        self.watch = watch

    @property
    def joined(self) -> bool:
        return self.consumer is not None

    def join(self) -> None:
        if self.watch is not None:
            self.watch.reset()  # it judges the new consumer from its own statistics
        consumer = self._open()
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)
        self._paused, self._reassigned = False, True
        self.slots.drain(False)
        self.consumer = consumer

    def leave(self, stop: threading.Event) -> None:
        """Stop taking work: let the messages being claimed be acknowledged, then leave the group (running
        containers go on and are reported; their messages are acknowledged already)."""
        consumer = self.consumer
        if consumer is None:
            return
        self.slots.drain()
        deadline = time.monotonic() + LEAVE_WAIT_S
        while self.slots.settling() and time.monotonic() < deadline and not stop.is_set():
            self.store_done()
            time.sleep(0.05)
        self.store_done()
        with contextlib.suppress(KafkaException):
            consumer.commit(asynchronous=False)
        consumer.close()  # leaves the group at once: the farm's other runners take the partitions
        self.consumer = None

    def renew_if_stalled(self, stop: threading.Event) -> bool:
        """Replace a stalled consumer (after a broker pause librdkafka can keep one that never gets anything
        again: see consumer_stall.py): it leaves the group as when this runner stops taking work
        (the messages being claimed are acknowledged first), and a new one joins. A message delivered again
        meanwhile is held already or finds its claim in the ledger: nothing runs twice. True when replaced."""
        consumer, watch = self.consumer, self.watch
        if consumer is None or watch is None:
            return False
        if not watch.stalled(consumer):
            return False
        log.warning("Kafka consumer stalled; starting over with a new one", extra=watch.why())
        self.leave(stop)
        self.join()
        return True

    def poll(self) -> tuple[Event | None, Position] | None:
        """One turn: when full, wait for a slot (polling without fetching keeps the membership alive); otherwise
        take the next message. Returns its event (None: not one) and position; the caller says when it is done
        with (`done_with`)."""
        consumer = self.consumer
        assert consumer is not None, "poll() before join()"
        self._apply_capacity(consumer)
        if self._paused:
            self.slots.wait_freed(0.2)
            msg = consumer.poll(0)
        else:
            msg = consumer.poll(0.2)
        if not is_record(msg):
            return None
        assert msg is not None
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        self.tracker.started((topic, partition), offset)
        event = self._decode(msg)
        trace = traceparent_of(msg.headers())
        if trace is not None and isinstance(event, ExecutionDue):
            self.traces[event.execution_id] = trace  # taken by the dispatch, in the poll loop's thread too
        return event, (topic, partition, offset)

    def done_with(self, position: Position) -> None:
        """The message at `position` is done with (from any thread); its offset is stored by the poll loop."""
        self._done.put(position)

    def store_done(self) -> None:
        """Store the offsets that moved (from the poll loop's thread only: the consumer is not shared)."""
        if self.consumer is None:
            return  # acknowledged when this runner joins again: the tracker keeps them
        while not self._done.empty():
            topic, part, offset = self._done.get()
            next_offset = self.tracker.finished((topic, part), offset)
            if next_offset is not None:
                try:
                    self.consumer.store_offsets(offsets=[TopicPartition(topic, part, next_offset)])
                except KafkaException as exc:
                    log.warning("could not store offset", extra={"error": str(exc)})

    def close(self) -> None:
        if self.consumer is not None:
            self.store_done()
            self.consumer.close()
            self.consumer = None

    def _apply_capacity(self, consumer: Consumer) -> None:
        """Pause the assignment when all it can hold is in hand, resume when one is done with: on changes only,
        and again after a rebalance (librdkafka keeps a partition's pause across one)."""
        full = self.slots.full()
        if full == self._paused and not self._reassigned:
            return
        assignment = consumer.assignment()
        if not assignment:
            return
        if full:
            consumer.pause(assignment)
        else:
            consumer.resume(assignment)
        self._paused, self._reassigned = full, False

    def _on_assign(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self._reassigned = True

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.tracker.forget([(p.topic, p.partition) for p in partitions])
        self._reassigned = True
