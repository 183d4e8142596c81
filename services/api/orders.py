"""How the API hands orders to Kafka so that its answer is the truth: 200 means the order is on its topic, 503
means it is not and never will be, 504 (rare) means the API cannot tell.

A plain producer cannot promise the 503: a message whose acknowledgement did not come in time may already sit
in the broker's socket (a paused broker, a lost answer) and be appended later, even after librdkafka reported
it failed (`message.timeout.ms`, `purge()` of in-flight messages: both only void the *report*; the idempotent
producer de-duplicates retries, it does not take a message back). So every order is written inside a Kafka
transaction, and every reader of these topics is `read_committed` (librdkafka's default, which
shared/infra/kafka/'s consumers keep). The transaction is committed only after the broker acknowledged the
orders; when it did not in time, the transaction is aborted, or left open, which the coordinator aborts after
`transaction.timeout.ms`: either way no reader ever sees those orders, even if the broker appends them later.
Only the commit itself can leave the outcome unknown (it was sent and no answer came): the commit is retried
for a while, and if it still cannot be told, the request answers 504.

One thread commits for every request (group commit): orders arriving while a transaction is under way go
together in the next one, so concurrent requests share a round trip instead of queuing behind each other.
"""

import asyncio
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from shared.infra.kafka.producer import PARTITIONER
from shared.process.logs import trace_headers
from shared.process.settings import Settings

log = logging.getLogger(__name__)


class NotEnqueued(Exception):
    """The order is not on its topic and will never be seen by a reader."""


class OutcomeUnknown(Exception):
    """The commit was sent and its outcome could not be learnt in time: the order may or may not be visible."""


@dataclass
class Order:
    topic: str
    key: bytes | None
    value: bytes
    deadline: float  # monotonic: an order still waiting for a transaction at this time is answered NotEnqueued
    result: "Future[None]" = field(default_factory=Future)
    headers: list[tuple[str, bytes]] = field(default_factory=list)  # the request's trace (shared/process/logs.py)
    where: tuple[int, int] | None = None  # (partition, offset) the broker acknowledged it at


class OrderPublisher:
    """Publishes orders transactionally, several requests' orders per transaction; see the module's doc."""

    def __init__(
        self,
        settings: Settings,
        ack_timeout_s: float = 8.0,
        commit_patience_s: float = 20.0,
        transaction_timeout_ms: int = 10_000,
    ) -> None:
        self._settings = settings
        self.ack_timeout_s = ack_timeout_s
        self.commit_patience_s = commit_patience_s
        self._transaction_timeout_ms = transaction_timeout_ms
        self._queue: queue.Queue[Order] = queue.Queue()
        self._producer: Producer | None = None
        self._initializing: Producer | None = None  # made, its transactions not initialised yet (retried)
        self._aborting = False  # the producer's last abort timed out: asked again before its next transaction
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="orders", daemon=True)
        self._thread.start()

    def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Return once the order is committed; raise NotEnqueued or OutcomeUnknown otherwise."""
        order = self._order(topic, key, value)
        try:
            order.result.result(timeout=self._verdict_bound_s)
        except TimeoutError as exc:
            raise OutcomeUnknown("no verdict from the committing thread") from exc

    async def publish_async(self, topic: str, key: bytes | None, value: bytes) -> None:
        """`publish` for a caller on an event loop: the verdict is awaited, no thread waits for it."""
        order = self._order(topic, key, value)
        try:
            # Shielded: a cancelled request must not cancel the order's future, which the committing thread answers.
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(order.result)), self._verdict_bound_s)
        except TimeoutError as exc:
            raise OutcomeUnknown("no verdict from the committing thread") from exc

    @property
    def _verdict_bound_s(self) -> float:
        # The committing thread always answers; the bound only guards against a bug in it.
        return self.ack_timeout_s * 2 + self.commit_patience_s + 30

    def _order(self, topic: str, key: bytes | None, value: bytes) -> Order:
        if self._closed.is_set():
            raise NotEnqueued("the API is shutting down")
        order = Order(topic, key, value, time.monotonic() + self.ack_timeout_s, headers=trace_headers())
        self._queue.put(order)
        return order

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=self.ack_timeout_s * 2 + self.commit_patience_s + 5)

    # --- the committing thread -------------------------------------------------------------------------------

    def _new_producer(self, timeout: float) -> Producer:
        """A producer with its transactions initialised. One whose initialisation timed out (its coordinator is
        moving: a broker of the cluster died) is kept and initialised again with the next orders, as librdkafka
        allows, rather than dropped and made anew for every batch: the cluster test saw librdkafka crash the API
        worker in that churn."""
        producer, self._initializing = self._initializing or self._make_producer(), None
        try:
            producer.init_transactions(max(timeout, 0.5))
        except KafkaException as exc:
            if exc.args[0].retriable():
                self._initializing = producer
            raise
        return producer

    def _make_producer(self) -> Producer:
        return Producer(
            {
                "bootstrap.servers": self._settings.kafka_bootstrap,
                "transactional.id": f"{self._settings.topic_prefix}api-{uuid.uuid4()}",
                "transaction.timeout.ms": self._transaction_timeout_ms,
                "message.timeout.ms": self._transaction_timeout_ms,
                "acks": "all",
                "linger.ms": 0,
                "partitioner": PARTITIONER,
                "message.max.bytes": self._settings.max_message_bytes,
            }
        )

    def _discard_producer(self) -> None:
        """Drop the producer whose transaction state is unknown or broken; its open transaction, if any, is
        never committed (nothing commits it) and the coordinator aborts it after transaction.timeout.ms."""
        # Not purged: purging a transactional producer whose abort had timed out crashed librdkafka (a segfault in
        # its main thread took an API worker down twice in the cluster test); its destruction drops what is left.
        self._producer, self._aborting = None, False

    def _take(self) -> list[Order]:
        try:
            first = self._queue.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                return batch

    def _run(self) -> None:
        while not (self._closed.is_set() and self._queue.empty()):
            batch = self._take()
            now = time.monotonic()
            late = [o for o in batch if o.deadline <= now]
            for o in late:
                o.result.set_exception(NotEnqueued("no transaction could take the order in time"))
            batch = [o for o in batch if o.deadline > now]
            if batch:
                try:
                    self._commit(batch)
                except Exception as exc:  # a bug: every order still gets a verdict, the thread goes on
                    log.exception("committing orders crashed")
                    self._discard_producer()
                    for o in batch:
                        if not o.result.done():
                            o.result.set_exception(OutcomeUnknown(f"{type(exc).__name__}: {exc}"))
        self._discard_producer()

    def _commit(self, batch: list[Order]) -> None:
        deadline = min(o.deadline for o in batch)

        def fail(why: str) -> None:
            for o in batch:
                if not o.result.done():
                    o.result.set_exception(NotEnqueued(why))

        if self._producer is None:
            try:
                self._producer = self._new_producer(deadline - time.monotonic())
            except KafkaException as exc:
                self._discard_producer()
                fail(f"no transactional producer: {exc}")
                return
        producer = self._producer
        if self._aborting:  # the last abort timed out: it must end before a new transaction begins
            self._abort(producer)
            if self._aborting or self._producer is None:
                fail("the previous transaction is still being aborted")
                return
        try:
            producer.begin_transaction()
        except KafkaException as exc:
            self._discard_producer()
            fail(f"cannot begin a transaction: {exc}")
            return
        errors: list[KafkaError] = []

        def delivered(order: Order) -> Callable[[KafkaError | None, Message], None]:
            def on_delivery(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    errors.append(err)
                else:
                    order.where = (msg.partition() or 0, msg.offset() or 0)

            return on_delivery

        sent: list[Order] = []
        for o in batch:
            try:
                headers: list[tuple[str, str | bytes | None]] = list(o.headers)
                producer.produce(o.topic, key=o.key, value=o.value, headers=headers or None, on_delivery=delivered(o))
                sent.append(o)
            except (KafkaException, BufferError) as exc:  # this order was never handed to librdkafka
                o.result.set_exception(NotEnqueued(f"refused by the producer: {exc}"))
        remaining = producer.flush(max(deadline - time.monotonic(), 0.0))
        if errors or remaining or not sent:
            why = str(errors[0]) if errors else "the broker did not acknowledge in time" if remaining else "empty"
            self._abort(producer)
            fail(f"not enqueued: {why}")
            return
        self._commit_sent(producer, sent)

    def _abort(self, producer: Producer) -> None:
        try:
            producer.abort_transaction(5)
            self._aborting = False
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.retriable() and not error.fatal():
                # Its coordinator is moving (a broker died): asked again before the next orders, on this producer.
                log.warning("abort not confirmed yet; asked again with the next orders", extra={"error": str(exc)})
                self._aborting = True
                return
            # Not aborted, but never committed either: the coordinator aborts it when it times out.
            log.warning("abort failed; producer replaced", extra={"error": str(exc)})
            self._discard_producer()

    def _commit_sent(self, producer: Producer, sent: list[Order]) -> None:
        give_up = time.monotonic() + self.commit_patience_s
        while True:
            try:
                producer.commit_transaction(max(min(5.0, give_up - time.monotonic()), 0.5))
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.txn_requires_abort():  # the coordinator refused the commit: nothing is visible
                    self._abort(producer)
                    for o in sent:
                        o.result.set_exception(NotEnqueued(f"transaction aborted: {error}"))
                    return
                if error.retriable() and time.monotonic() < give_up:
                    log.warning("commit not confirmed yet; asking again", extra={"error": str(error)})
                    continue
                log.error("commit outcome unknown; producer replaced", extra={"error": str(error)})
                self._discard_producer()
                for o in sent:
                    o.result.set_exception(OutcomeUnknown(f"commit outcome unknown: {error}"))
                return
            for o in sent:
                # Where each order is (an audit trail: a job's order can be found on its topic by its offset).
                partition, offset = o.where or (-1, -1)
                where = {"topic": o.topic, "partition": partition, "offset": offset}
                log.info("order enqueued", extra={"key": (o.key or b"").decode(errors="replace"), **where})
                o.result.set_result(None)
            return
