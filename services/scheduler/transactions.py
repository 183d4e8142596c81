"""The scheduler's transactional producer, guarded: every call that waits on the broker is bounded, and a
producer whose state is unknown is replaced by a new one with the same transactional id.

Kafka transactions fail in three ways here, each with its own remedy:
- a call does not return (librdkafka waiting forever for a coordinator): `Stuck`, the producer is replaced;
- a fatal error (fenced after a pause longer than the transaction timeout): the loop replaces the producer;
- any other error: the transaction is aborted; an abort that fails too leaves the producer broken, replaced.
A replaced producer's successor has the same transactional id, so its init fences the old one (and a thread
still blocked in it) and aborts what it left open. After any failure the loop goes back to the last commit.
"""

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaException, TopicPartition

log = logging.getLogger("scheduler")

# Kafka calls of the loop that wait on the broker (offsets, watermarks, transactions) give up after this.
KAFKA_TIMEOUT_S = 30.0
# A bounded call that has not returned this long after its own timeout is stuck.
STUCK_MARGIN_S = 5.0


class Stuck(Exception):
    """A transactional call of the producer did not return within its own timeout plus a margin."""


def bounded(call: Callable[..., object], timeout: float, *args: object) -> None:
    """`call(*args, timeout)`, but never blocking much past `timeout`: librdkafka's send_offsets_to_transaction
    can wait forever for a group coordinator that does not come back, whatever its timeout says (librdkafka
    issues 5456 and 5511; seen here after a kill -9 of the broker). The call runs in a thread of its own; when it
    has not returned in time, Stuck is raised and the thread is left behind with its producer, which the caller
    replaces (the new one's init fences it)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call(*args, timeout)
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, name="kafka-transaction", daemon=True)
    thread.start()
    thread.join(timeout + STUCK_MARGIN_S)
    if not outcome:
        raise Stuck(f"{getattr(call, '__name__', call)} did not return within {timeout + STUCK_MARGIN_S:g}s")
    if outcome[0] is not None:
        raise outcome[0]


class TransactionalProducer(Protocol):
    """What the guard uses of a confluent_kafka.Producer made with a `transactional.id`."""

    def init_transactions(self, timeout: float) -> None: ...
    def begin_transaction(self) -> None: ...
    def produce(
        self,
        topic: str,
        *,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None: ...
    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float
    ) -> None: ...
    def commit_transaction(self, timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...
    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None: ...
    def flush(self, timeout: float) -> int: ...


class TransactionGuard:
    """One transactional producer at a time, made by `new_producer`, and what to do when a call fails."""

    def __init__(self, new_producer: Callable[[], TransactionalProducer], timeout: float = KAFKA_TIMEOUT_S) -> None:
        self.new_producer = new_producer
        self.timeout = timeout
        self.producer = new_producer()
        self.ready = False  # init_transactions went through for this producer
        # The producer's transaction state is unknown (an abort that did not finish): `prepare` replaces it. The
        # new one has the same transactional id, so its init fences the old one and aborts what it left open.
        self.broken = False

    def prepare(self) -> None:
        """Before a step: replace a broken producer; init a new one's transactions (may raise, to be retried)."""
        if self.broken:
            self._replace()
            self.ready = False
        if not self.ready:
            bounded(self.producer.init_transactions, self.timeout)
            self.ready = True

    def _replace(self) -> None:
        old, self.producer = self.producer, self.new_producer()
        self.broken = False
        try:
            old.purge(in_queue=True, in_flight=True, blocking=False)
        except Exception as exc:  # it is dropped either way
            log.warning("could not purge the replaced producer", extra={"error": str(exc)})

    def commit(
        self,
        write: Callable[[TransactionalProducer], None],
        group_metadata: Callable[[], object],
        positions: Callable[[], list[TopicPartition]],
    ) -> bool:
        """One transaction: what `write` produces, with the consumer positions and group metadata; True once
        committed. False when it was not (aborted, or the producer stuck and to be replaced): the caller goes
        back to the last commit. A fatal error (e.g. fenced) is raised: the loop replaces the producer."""
        producer = self.producer
        try:
            producer.begin_transaction()
            write(producer)
            # Always with the group's metadata: an instance whose partitions moved on is refused here (old
            # generation), so a paused one cannot publish for work it no longer owns once it resumes.
            metadata = group_metadata()
            bounded(producer.send_offsets_to_transaction, self.timeout, positions(), metadata)
            bounded(producer.commit_transaction, self.timeout)
        except Stuck as exc:
            log.error("transaction stuck; the producer is replaced", extra={"error": str(exc)})
            self.broken = True
            return False
        except KafkaException as exc:
            if exc.args[0].fatal():  # e.g. fenced: the loop makes a new producer and reloads
                raise
            log.error("transaction failed; rewinding to the last commit", extra={"error": str(exc)})
            try:
                bounded(producer.abort_transaction, self.timeout)
            except (KafkaException, Stuck) as abort_error:
                # Seen after Kafka was paused: the abort never finishes, and every later call of this producer
                # fails with "conflicting abort in progress". A new producer ends it (see `broken`).
                log.error("abort failed; the producer is replaced", extra={"error": str(abort_error)})
                self.broken = True
            return False
        return True

    def close(self) -> None:
        self.producer.flush(5)
