"""The scheduler's consume-transform-produce loop, where every step is one Kafka transaction.

Each step — the messages consumed, the timers fired, the new job states, the ExecutionDue/StopExecution
produced and the consumer offsets — is committed in ONE transaction. A timer therefore fires exactly once:
either the whole step is visible (state says "fired", ExecutionDue is out, offsets moved) or none of it is, and
a restarted or other instance redoes it.

Every transaction carries the consumer offsets of the whole assignment with the consumer-group metadata, so
an instance that lost its partitions (paused past its session timeout: a zombie) cannot commit: the group
coordinator refuses offsets from an old generation, and the transaction, with its ExecutionDue, is aborted.
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from services.scheduler.handlers import Output, Policy
from services.scheduler.job_store import JobStore, is_idle
from services.scheduler.rebalance import Rebalances
from services.scheduler.step import Step, decide
from services.scheduler.transactions import KAFKA_TIMEOUT_S, Stuck, TransactionalProducer, TransactionGuard
from shared.contract.events import ExecutionDue, ExecutionFinished, StopExecution, utcnow
from shared.contract.topics import Topics
from shared.infra.kafka.consumer import event_ids, pause_after
from shared.infra.kafka.consumer_stall import StallWatch
from shared.infra.kafka.producer import dead_letter_record
from shared.process.logs import TRACEPARENT, bound, trace_ids
from shared.process.metrics import BACKEND_ERRORS, EXECUTIONS_DUE, TIMER_LAG, TIMERS

log = logging.getLogger("scheduler")

# Messages that change nothing (ExecutionStarted, ExecutionPulling) get no transaction of their own: their
# offsets go with the next transaction, or after this many seconds (a restart replays at most these no-ops).
NO_OP_OFFSETS_EVERY_S = 5.0
RENEW_CONSUMER_AFTER_S = 20.0  # Kafka failing this long without a break: a new consumer (then at most every 30 s)


class GroupConsumer(Protocol):
    """What the loop uses of a confluent_kafka.Consumer in the scheduler's group."""

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callable[[Consumer, list[TopicPartition]], None] | None = None,
        on_revoke: Callable[[Consumer, list[TopicPartition]], None] | None = None,
    ) -> None: ...
    def poll(self, timeout: float) -> KafkaMessage | None: ...
    def consume(self, num_messages: int, timeout: float) -> list[KafkaMessage]: ...
    def assignment(self) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]: ...
    def get_watermark_offsets(self, partition: TopicPartition, timeout: float) -> tuple[int, int]: ...
    def seek(self, partition: TopicPartition) -> None: ...
    def assign(self, partitions: list[TopicPartition]) -> None: ...
    def consumer_group_metadata(self) -> Any: ...
    def close(self) -> None: ...


@dataclass(eq=False)
class Scheduler:
    """One scheduler instance: the jobs of its partitions in memory (`store`), decided on and committed in
    transactions (`transactions`), fed by `consumer` (subscribed to the jobs and executions topics)."""

    consumer: GroupConsumer
    transactions: TransactionGuard
    store: JobStore
    topics: Topics
    policy: Policy
    max_message_bytes: int  # parked records are cut to fit
    new_consumer: Callable[[], GroupConsumer] | None = None  # a fresh consumer, when this one stays broken
    # Fed the consumer's statistics: says when a consumer that raises nothing has stalled (consumer_stall.py).
    stall_watch: StallWatch | None = None
    needs_reload: bool = False  # go back to the last commit (offsets and states) before the next step
    uncommitted: bool = False  # consumed messages whose offsets no transaction has carried yet
    committed_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.rebalances = Rebalances(self.store, on_load_failure=self._reload_later, start_at=self._start_at_committed)

    def _reload_later(self) -> None:
        self.needs_reload = True

    def _start_at_committed(self, partitions: list[TopicPartition]) -> None:
        """Assign the partitions at their committed offsets, read here, rather than leave librdkafka to read
        them: when its own read meets a coordinator that moved (a broker pause), it may never try again and
        never fetch those partitions (librdkafka issue 5586), and the scheduler would sit idle for good. When
        this read fails, the library assigns as usual and the reload that follows sets the offsets."""
        try:
            committed = self.consumer.committed(partitions, timeout=KAFKA_TIMEOUT_S)
        except KafkaException as exc:
            log.warning("committed offsets unreadable at assignment; reloading", extra={"error": str(exc)})
            self.needs_reload = True
            return
        for tp in committed:
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
        self.consumer.assign(committed)

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop`. Kafka failures (broker down, coordinator moved, transaction fenced or timed out)
        are waited out with growing pauses and end in a reload from the last commit; nothing exits the loop."""
        failures = 0
        failing_since, renewed_at = 0.0, 0.0
        self._subscribe()
        try:
            while not stop.is_set():
                try:
                    self.transactions.prepare()
                    if self._replace_if_stalled():
                        continue  # the next turn prepares a new producer and loads the new assignment
                    if self.needs_reload:
                        self._reload()
                    batch = self._next_batch()
                    if self.needs_reload:  # a load failed while polling: the batch is read again after the reload
                        continue
                    self._step(batch)
                    failures, failing_since = 0, 0.0
                except Stuck as exc:  # the producer is wedged: a new one (see `bounded`)
                    failures += 1
                    log.error("Kafka call stuck; replacing the producer", extra={"error": str(exc)})
                    self.transactions.broken = True
                    self.needs_reload = True
                    stop.wait(pause_after(failures))
                except KafkaException as exc:
                    failures += 1
                    BACKEND_ERRORS.labels("kafka").inc()
                    error = exc.args[0] if exc.args else None
                    log.error("Kafka failed; waiting, then going back to the last commit", extra={"error": str(exc)})
                    if isinstance(error, KafkaError) and error.fatal():
                        # e.g. fenced after a pause longer than the transaction timeout: a new producer (same
                        # transactional id) takes over; the open transaction was aborted by the coordinator.
                        self.transactions.broken = True
                    self.needs_reload = True
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - max(failing_since, renewed_at) >= RENEW_CONSUMER_AFTER_S:
                        self._renew_consumer()
                        renewed_at = time.monotonic()
                    stop.wait(pause_after(failures))
                except Exception:  # a bug: logged, then the step is redone from the last commit after a pause
                    failures += 1
                    log.exception("scheduler step failed; going back to the last commit")
                    self.needs_reload = True
                    stop.wait(pause_after(failures))
        finally:
            for close in (self.consumer.close, self.store.source.close, self.transactions.close):
                try:
                    close()
                except Exception as exc:  # stopping while Kafka is away: nothing left to save
                    log.error("close failed", extra={"error": str(exc)})

    def _subscribe(self) -> None:
        self.consumer.subscribe(
            [self.topics.jobs, self.topics.executions],
            on_assign=self.rebalances.on_assign,
            on_revoke=self.rebalances.on_revoke,
        )

    def _replace_if_stalled(self) -> bool:
        """A consumer that stalled raises nothing (consumer_stall.py), so the failure path never renews it: its
        statistics tell, and it is replaced here. True when it was."""
        if self.stall_watch is None or self.new_consumer is None or not self.stall_watch.stalled(self.consumer):
            return False
        log.warning("Kafka consumer stalled; starting over with a new one", extra=self.stall_watch.why())
        self.needs_reload = True
        self._renew_consumer()
        return True

    def _renew_consumer(self) -> None:
        """Kafka calls kept failing, or the consumer stalled without failing: after a broker pause, librdkafka
        can keep a consumer whose requests to the group coordinator never succeed again (issue 5586 and kin); a
        new consumer recovers at once. Its assignment loads the states and starts at the committed offsets, like
        a restart of the process."""
        if self.new_consumer is None:
            return
        log.warning("Kafka keeps failing; starting over with a new consumer")
        with contextlib.suppress(Exception):
            self.consumer.close()
        self.consumer = self.new_consumer()
        if self.stall_watch is not None:
            self.stall_watch.reset()  # it watches the new consumer from now on
        self.store.reload(set())
        self.transactions.broken = True
        self.uncommitted = False
        self._subscribe()

    def _next_batch(self) -> list[KafkaMessage]:
        """Wait for one message (at most until the next timer is due), then take what else is ready. A batch
        taken across a rebalance is dropped: part of it was fetched for the old assignment, whose positions
        were reset to the committed offsets, so those messages come again."""
        first = self.consumer.poll(self.store.timers.wait_time(utcnow().timestamp()))
        if first is None:
            return []
        rebalances = self.rebalances.count
        batch = [first, *self.consumer.consume(199, timeout=0)]
        return batch if self.rebalances.count == rebalances else []

    def _step(self, messages: list[KafkaMessage]) -> None:
        step = decide(messages, self.store, self.policy)
        self.uncommitted = self.uncommitted or bool(messages)
        offsets_due = self.uncommitted and time.monotonic() - self.committed_at >= NO_OP_OFFSETS_EVERY_S
        if not (step.has_writes() or offsets_due):
            return
        self._commit(step)

    def _commit(self, step: Step) -> None:
        def write(producer: TransactionalProducer) -> None:
            self._write(producer, step)

        if not self.transactions.commit(write, self.consumer.consumer_group_metadata, self._offsets):
            self.needs_reload = True
            return
        self.uncommitted, self.committed_at = False, time.monotonic()
        self.store.committed(step.changed)
        for lag in step.timer_lags:
            TIMER_LAG.observe(lag)
        EXECUTIONS_DUE.inc(sum(isinstance(message, ExecutionDue) for message, _ in step.out))
        TIMERS.set(len(self.store.timers))
        for message, _encoded in step.out:
            with bound(**event_ids(message), **trace_ids(step.traces.get(message.job_id))):
                log.info("published", extra={"type": message.type})
        for msg, why in step.parked:  # on the dead-letter topic now: said once here, whatever parked it
            key = (msg.key() or b"")[:100].decode(errors="replace")
            where = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(), "key": key}
            log.error("message parked on the dead-letter topic", extra={**where, "reason": why[:300]})

    def _write(self, producer: TransactionalProducer, step: Step) -> None:
        """Produce what the step writes: states (an idle one moves to the archive), messages, parked records."""
        state_topic, archive = self.topics.scheduler_state, self.topics.scheduler_archive
        for job_id, (partition, state, value) in step.changed.items():
            state_key = str(job_id).encode()
            if state is None or is_idle(state):  # off the state topic; kept (or deleted) in the archive
                producer.produce(state_topic, key=state_key, value=None, partition=partition)
                producer.produce(archive, key=state_key, value=value, partition=partition)
            else:
                producer.produce(state_topic, key=state_key, value=value, partition=partition)
        for message, encoded in step.out:
            trace = step.traces.get(message.job_id)
            headers: list[tuple[str, str | bytes | None]] | None = [(TRACEPARENT, trace.encode())] if trace else None
            producer.produce(self._topic_of(message), key=message.key, value=encoded, headers=headers)
        for msg, reason in step.parked:
            value, headers = dead_letter_record(msg, reason, self.max_message_bytes)
            key = (msg.key() or b"")[:1024] or None
            producer.produce(self.topics.dead_letter, key=key, value=value, headers=headers)

    def _topic_of(self, message: Output) -> str:
        if isinstance(message, StopExecution):
            return self.topics.control
        if isinstance(message, ExecutionFinished):
            return self.topics.executions
        return self.topics.due_for(message.task_id)

    def _offsets(self) -> list[TopicPartition]:
        """The offsets a transaction commits: the position of every assigned partition; the committed offset
        (or the start) of one not fetched from yet. Never empty: an empty list would skip the group check."""
        assignment = self.consumer.assignment()
        if not assignment:
            raise KafkaException(KafkaError(KafkaError._STATE, "no partitions assigned: nothing may be committed"))
        positions = self.consumer.position(assignment)
        missing = [tp for tp in positions if tp.offset < 0]
        known = {(tp.topic, tp.partition): tp for tp in positions if tp.offset >= 0}
        if missing:
            for tp in self.consumer.committed(missing, timeout=KAFKA_TIMEOUT_S):
                if tp.offset < 0:
                    tp.offset = self.consumer.get_watermark_offsets(tp, timeout=KAFKA_TIMEOUT_S)[0]
                known[(tp.topic, tp.partition)] = tp
        return list(known.values())

    def _reload(self) -> None:
        """After a failure: go back to the committed offsets and the committed states. Any Kafka call here may
        fail while Kafka is away; the loop then waits and calls this again, until it has gone through."""
        assignment = self.consumer.assignment()
        if assignment:
            committed = self.consumer.committed(assignment, timeout=KAFKA_TIMEOUT_S)
            for tp in committed:
                if tp.offset < 0:
                    tp.offset = OFFSET_BEGINNING
            try:
                for tp in committed:
                    self.consumer.seek(tp)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if not (isinstance(error, KafkaError) and error.code() == KafkaError._STATE):
                    raise
                # A partition whose fetching never started cannot be sought ("Erroneous state": its committed
                # offset could not be read when it was assigned, e.g. the coordinator moved during a broker
                # pause), and it would stay so: seeking again never helps. Assigning the same partitions again,
                # at their committed offsets, starts their fetching there (the group's range assignment allows
                # it; the next rebalance replaces it as usual).
                log.warning("seek refused; assigning the partitions again at their committed offsets")
                self.consumer.assign(committed)
        self.store.reload({tp.partition for tp in assignment})
        self.needs_reload = False
