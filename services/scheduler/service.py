"""The scheduler's wiring: a Kafka consume-decide-produce loop where every step is one transaction.

The scheduler owns jobs by partition: it consumes the `jobs` and `executions` topics with the range assignor,
so partition p of both (same key, same partitioner, same count) goes to one instance, which also owns
partition p of the compacted state topic. Each step — the messages consumed, the timers fired, the new job
states, the ExecutionDue/StopExecution produced and the consumer offsets — is committed in ONE Kafka
transaction. A timer therefore fires exactly once: either the whole step is visible (state says "fired",
ExecutionDue is out, offsets moved) or none of it is, and a restarted or other instance redoes it.

Every transaction carries the consumer offsets of the whole assignment with the consumer-group metadata, so
an instance that lost its partitions (paused past its session timeout: a zombie) cannot commit: the group
coordinator refuses offsets from an old generation, and the transaction, with its ExecutionDue, is aborted.

Only jobs with pending work (timers, running executions) stay on the state topic, which every rebalance
reads whole. A job that has none is moved, in the same transaction, to a compacted archive topic: its state is
needed again only by an order for it (update, retry, stop), and the archive of a partition is read when the
first such order arrives after an assignment, not on every rebalance.
"""

import heapq
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage
from pydantic import ValidationError

from services.migrate import prepare_backends
from services.scheduler.handlers import Decision, Output, Policy, fire_due_timers, handle, refuse, unschedulable
from services.scheduler.state import JobState
from shared.contract.events import (
    Event,
    ExecutionFinished,
    HostEvent,
    JobRetryRequested,
    JobStopRequested,
    JobUpdated,
    RetryBackoff,
    StopExecution,
    decode,
    encode,
    utcnow,
)
from shared.contract.topics import Topics, group_id
from shared.infra.failures import reason
from shared.infra.kafka import PARTITIONER, dead_letter_record, is_record, pause_after
from shared.process.settings import SchedulerSettings

log = logging.getLogger("scheduler")

# Messages that change nothing (ExecutionStarted, ExecutionPulling) get no transaction of their own: their
# offsets go with the next transaction, or after this many seconds (a restart replays at most these no-ops).
NO_OP_OFFSETS_EVERY_S = 5.0


def policy_from(settings: SchedulerSettings) -> Policy:
    backoff = RetryBackoff(
        min_ms=settings.retry_backoff_min_ms,
        factor=settings.retry_backoff_factor,
        max_ms=settings.retry_backoff_max_ms,
    )
    return Policy(default_backoff=backoff, missed_fire_grace=timedelta(seconds=settings.missed_fire_grace_s))


# A partition's states are read up to the end its writers had reached when the read began, transactions still
# open then included (a zombie's: waited until committed or aborted); a read longer than this is a failure.
LOAD_DEADLINE_S = 60.0
# Kafka calls of the loop that wait on the broker (offsets, watermarks, transactions) give up after this.
KAFKA_TIMEOUT_S = 30.0


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
    thread.join(timeout + 5.0)
    if not outcome:
        raise Stuck(f"{getattr(call, '__name__', call)} did not return within {timeout + 5.0:g}s")
    if outcome[0] is not None:
        raise outcome[0]


# Legacy states of finished jobs found on the state topic are moved to the archive this many per transaction.
RETIRE_PER_STEP = 500


def is_idle(state: JobState) -> bool:
    """No timer and no running execution: nothing will happen to the job until an order for it arrives."""
    return not state.timers and not state.running


def needs_archive(event: Event) -> bool:
    """Orders whose decision depends on a finished job's state (its definition, generation, stopped flag)."""
    return isinstance(event, JobUpdated | JobRetryRequested | JobStopRequested)


class Scheduler:
    """One scheduler instance: the jobs of its partitions in memory, their timers in a heap."""

    def __init__(self, settings: SchedulerSettings) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.archive = self.topics.scheduler_archive
        self.policy = policy_from(settings)
        self.group = group_id(settings, "scheduler")
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,  # offsets are committed inside our transactions
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "partition.assignment.strategy": "range",  # co-partitioned topics go to the same instance
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 1_000,
            }
        )
        # Where writers have reached, transactions still open included (read_committed stops before those).
        self.probe = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": f"{self.group}-loader",
                "isolation.level": "read_uncommitted",
            }
        )
        # Reads the state and archive topics (one for all reads: a new consumer takes ~0.5 s to its first fetch).
        self.reader = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": f"{self.group}-loader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                # The end (a transaction marker) is only known from a fetch that finds nothing more to read; the
                # broker holds such a fetch this long (default 500 ms: 1 s per partition and rebalance).
                "fetch.wait.max.ms": 10,
            }
        )
        self.instance = settings.scheduler_instance or uuid.uuid4().hex[:12]
        self.producer = self._new_producer()
        self.jobs: dict[int, dict[uuid.UUID, JobState]] = {}  # partition -> job id -> state (pending work only)
        self.idle: dict[int, dict[uuid.UUID, JobState]] = {}  # partition -> archived states, once read
        self.retire: dict[uuid.UUID, int] = {}  # finished jobs found on the state topic -> partition
        self.timers: list[tuple[float, str, int]] = []  # (fire time, job id, partition), possibly stale
        self.needs_reload = False
        self.rebalances = 0
        self.uncommitted = False  # consumed messages whose offsets no transaction has carried yet
        # The producer's transaction state is unknown (an abort that did not finish): `run` replaces it. The new
        # one has the same transactional id, so its init fences the old one and aborts what it left open.
        self.producer_broken = False
        self.committed_at = time.monotonic()

    def _new_producer(self) -> Producer:
        return Producer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "transactional.id": f"{self.group}-{self.instance}",
                "transaction.timeout.ms": 10_000,
                "partitioner": PARTITIONER,
                "linger.ms": 0,
                "message.max.bytes": self.settings.max_message_bytes,
            }
        )

    def _replace_producer(self) -> None:
        old, self.producer = self.producer, self._new_producer()
        self.producer_broken = False
        try:
            old.purge(in_queue=True, in_flight=True, blocking=False)
        except Exception as exc:  # it is dropped either way
            log.warning("could not purge the replaced producer", extra={"error": str(exc)})

    # --- ownership -------------------------------------------------------------------------------------------
    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalances += 1
        try:
            for p in {tp.partition for tp in partitions} - set(self.jobs):
                self._load(p)
        except Exception as exc:  # Kafka away (or a bug): the loop waits, then reloads every assigned partition
            log.error("could not load the job states", extra={"error": str(exc)})
            self.needs_reload = True
        log.info("partitions assigned", extra={"partitions": sorted(self.jobs)})

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalances += 1
        for p in {tp.partition for tp in partitions}:
            self.jobs.pop(p, None)
            self.idle.pop(p, None)
        log.info("partitions revoked", extra={"partitions": sorted({tp.partition for tp in partitions})})

    def _load(self, partition: int) -> None:
        """Read the committed states of one partition from the state topic (jobs with pending work)."""
        states = self._read_logged(self.topics.scheduler_state, partition, "state loaded")
        self.jobs[partition] = states
        for job_id, state in states.items():
            if is_idle(state):  # written by an older version: moved to the archive by the next transactions
                self.retire[job_id] = partition
            self._track(partition, state)

    def _read_logged(self, topic: str, partition: int, what: str) -> dict[uuid.UUID, JobState]:
        """`_read_states`, logging what it read and how long it took."""
        started = time.monotonic()
        states, read = self._read_states(topic, partition)
        elapsed = round(time.monotonic() - started, 3)
        log.info(what, extra={"partition": partition, "jobs": len(states), "records": read, "s": elapsed})
        return states

    def _archived(self, partition: int) -> dict[uuid.UUID, JobState]:
        """The archived states of one partition, read at the first order that needs one after an assignment."""
        if partition not in self.idle:
            self.idle[partition] = self._read_logged(self.archive, partition, "archive loaded")
        return self.idle[partition]

    def _read_states(self, topic: str, partition: int) -> tuple[dict[uuid.UUID, JobState], int]:
        """The latest committed state per job on one partition of `topic`, and how many records were read.

        Read up to the end writers had reached when the read began, transactions open then included: a
        read_committed reader stops at the first open transaction (its end-of-partition comes early), so it
        waits until that transaction is committed or aborted. Otherwise an instance paused mid-transaction
        could commit it after this read, and its fired timers would fire again here."""
        tp = TopicPartition(topic, partition)
        _low, end = self.probe.get_watermark_offsets(tp, timeout=KAFKA_TIMEOUT_S)
        states: dict[uuid.UUID, JobState] = {}
        read = 0
        if end <= 0:
            return states, read
        reader = self.reader
        deadline = time.monotonic() + LOAD_DEADLINE_S
        try:
            reader.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
            while True:
                if time.monotonic() > deadline:
                    raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{topic}[{partition}] not read in time"))
                msg = reader.poll(1.0)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        if (msg.offset() or 0) >= end:
                            break
                        continue  # stopped before an open transaction: wait for its outcome
                    raise KafkaException(error)
                read += 1
                try:
                    job_id = uuid.UUID((msg.key() or b"").decode())
                    state = None if msg.value() is None else JobState.model_validate_json(msg.value() or b"")
                except (ValueError, ValidationError) as exc:  # not ours (or from a newer version): skipped
                    log.error("unreadable job state skipped", extra={"offset": msg.offset(), "error": str(exc)[:500]})
                    continue
                if state is None:
                    states.pop(job_id, None)
                else:
                    states[job_id] = state
        finally:
            reader.unassign()
        return states, read

    def _track(self, partition: int, state: JobState) -> None:
        fire = state.next_fire()
        if fire is not None and not state.stopped:
            heapq.heappush(self.timers, (fire.timestamp(), str(state.job_id), partition))

    # --- the loop --------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Loop until `stop`. Kafka failures (broker down, coordinator moved, transaction fenced or timed out)
        are waited out with growing pauses and end in a reload from the last commit; nothing exits the loop."""
        failures = 0
        ready = False
        self.consumer.subscribe(
            [self.topics.jobs, self.topics.executions], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        try:
            while not stop.is_set():
                try:
                    if self.producer_broken:
                        self._replace_producer()
                        ready = False
                    if not ready:
                        bounded(self.producer.init_transactions, KAFKA_TIMEOUT_S)
                        ready = True
                    if self.needs_reload:
                        self._reload()
                    batch = self._next_batch()
                    if self.needs_reload:  # a load failed while polling: the batch is read again after the reload
                        continue
                    self._step(batch)
                    failures = 0
                except Stuck as exc:  # the producer is wedged: a new one (see `bounded`)
                    failures += 1
                    log.error("Kafka call stuck; replacing the producer", extra={"error": str(exc)})
                    self.producer_broken = True
                    self.needs_reload = True
                    stop.wait(pause_after(failures))
                except KafkaException as exc:
                    failures += 1
                    error = exc.args[0] if exc.args else None
                    log.error("Kafka failed; waiting, then going back to the last commit", extra={"error": str(exc)})
                    if isinstance(error, KafkaError) and error.fatal():
                        # e.g. fenced after a pause longer than the transaction timeout: a new producer (same
                        # transactional id) takes over; the open transaction was aborted by the coordinator.
                        self.producer_broken = True
                    self.needs_reload = True
                    stop.wait(pause_after(failures))
                except Exception:  # a bug: logged, then the step is redone from the last commit after a pause
                    failures += 1
                    log.exception("scheduler step failed; going back to the last commit")
                    self.needs_reload = True
                    stop.wait(pause_after(failures))
        finally:
            for close in (self.consumer.close, self.probe.close, self.reader.close, lambda: self.producer.flush(5)):
                try:
                    close()
                except Exception as exc:  # stopping while Kafka is away: nothing left to save
                    log.error("close failed", extra={"error": str(exc)})

    def _next_batch(self) -> list[KafkaMessage]:
        """Wait for one message (at most until the next timer is due), then take what else is ready. A batch
        taken across a rebalance is dropped: part of it was fetched for the old assignment, whose positions
        were reset to the committed offsets, so those messages come again."""
        first = self.consumer.poll(self._wait_time())
        if first is None:
            return []
        rebalances = self.rebalances
        batch = [first, *self.consumer.consume(199, timeout=0)]
        return batch if self.rebalances == rebalances else []

    def _wait_time(self) -> float:
        if not self.timers:
            return 0.5
        return max(0.0, min(0.5, self.timers[0][0] - utcnow().timestamp()))

    def _step(self, messages: list[KafkaMessage]) -> None:
        now = utcnow()
        changed: Changed = {}
        out: list[tuple[Output, bytes]] = []
        parked: list[tuple[KafkaMessage, str]] = []
        for msg in messages:
            if not is_record(msg):
                continue
            try:
                event = decode(msg.value() or b"")
            except ValidationError as exc:
                parked.append((msg, f"not an event of the contract: {exc}"))
                continue
            if isinstance(event, HostEvent):
                continue  # not on the scheduler's topics; nothing to decide
            partition = msg.partition() or 0
            if partition not in self.jobs:
                continue  # not (or no longer) ours: its owner handles it, from the offsets committed for it
            try:
                state = self._state(partition, event.job_id, changed, archived=needs_archive(event))
                decision = writable(handle(state, event, now, self.policy))
            except Exception as exc:  # the message itself is the poison: handled the same way every time
                log.exception(
                    "message could not be handled; parked", extra={"type": event.type, "offset": msg.offset()}
                )
                parked.append((msg, reason(exc)))
                out.extend(writable(Decision(None, refuse(event, now, reason(exc))), quiet=True).publish)
                continue
            self._collect(partition, event.job_id, decision, changed, out)
        self._fire_timers(changed, out)
        self._retire(changed)
        self.uncommitted = self.uncommitted or bool(messages)
        offsets_due = self.uncommitted and time.monotonic() - self.committed_at >= NO_OP_OFFSETS_EVERY_S
        if not (changed or out or parked or offsets_due):
            return
        self._commit(changed, out, parked)

    def _state(self, partition: int, job_id: uuid.UUID, changed: "Changed", archived: bool = False) -> JobState | None:
        """The job's latest state: this step's, else a pending one; a finished job's only with `archived`."""
        if job_id in changed:
            return changed[job_id][1]
        state = self.jobs.get(partition, {}).get(job_id)
        if state is None and archived:
            state = self._archived(partition).get(job_id)
        return state

    def _retire(self, changed: "Changed") -> None:
        """Move some finished jobs an older version left on the state topic to the archive."""
        for job_id, partition in list(self.retire.items())[:RETIRE_PER_STEP]:
            del self.retire[job_id]
            state = self.jobs.get(partition, {}).get(job_id)
            if job_id not in changed and state is not None and is_idle(state):
                changed[job_id] = (partition, state, state.model_dump_json().encode())

    def _collect(
        self,
        partition: int,
        job_id: uuid.UUID,
        decision: "Written",
        changed: "Changed",
        out: list[tuple[Output, bytes]],
    ) -> None:
        if decision.state is not self._state(partition, job_id, changed):
            changed[job_id] = (partition, decision.state, decision.state_value)
        out.extend(decision.publish)

    def _fire_timers(self, changed: "Changed", out: list[tuple[Output, bytes]]) -> None:
        now_ts = utcnow().timestamp()
        seen: set[str] = set()
        while self.timers and self.timers[0][0] <= now_ts:
            _, job, partition = heapq.heappop(self.timers)
            if job in seen or partition not in self.jobs:
                continue  # duplicate heap entry, or a partition no longer ours
            seen.add(job)
            job_id = uuid.UUID(job)
            state = self._state(partition, job_id, changed)
            if state is None:
                continue
            now = utcnow()
            try:
                decision = writable(fire_due_timers(state, now, self.policy))
            except Exception as exc:  # the job's own definition is the poison: its schedule ends, with why
                log.exception("timer could not fire; the job's schedule ends", extra={"job_id": job})
                decision = writable(unschedulable(state, now, reason(exc)), quiet=True)
            self._collect(partition, job_id, decision, changed, out)

    def _commit(
        self, changed: "Changed", out: list[tuple[Output, bytes]], parked: list[tuple[KafkaMessage, str]]
    ) -> None:
        try:
            self.producer.begin_transaction()
            for job_id, (partition, state, value) in changed.items():
                state_key = str(job_id).encode()
                if state is None or is_idle(state):  # off the state topic; kept (or deleted) in the archive
                    self.producer.produce(self.topics.scheduler_state, key=state_key, value=None, partition=partition)
                    self.producer.produce(self.archive, key=state_key, value=value, partition=partition)
                else:
                    self.producer.produce(self.topics.scheduler_state, key=state_key, value=value, partition=partition)
            for message, encoded in out:
                self.producer.produce(self._topic_of(message), key=message.key, value=encoded)
            for msg, reason in parked:
                value, headers = dead_letter_record(msg, reason, self.settings.max_message_bytes)
                key = (msg.key() or b"")[:1024] or None
                self.producer.produce(self.topics.dead_letter, key=key, value=value, headers=headers)
            # Always with the group's metadata: an instance whose partitions moved on is refused here (old
            # generation), so a paused one cannot publish for work it no longer owns once it resumes.
            metadata = self.consumer.consumer_group_metadata()
            bounded(self.producer.send_offsets_to_transaction, KAFKA_TIMEOUT_S, self._offsets(), metadata)
            bounded(self.producer.commit_transaction, KAFKA_TIMEOUT_S)
        except Stuck as exc:
            log.error("transaction stuck; the producer is replaced", extra={"error": str(exc)})
            self.producer_broken = True
            self.needs_reload = True
            return
        except KafkaException as exc:
            if exc.args[0].fatal():  # e.g. fenced: `run` makes a new producer and reloads
                raise
            log.error("transaction failed; rewinding to the last commit", extra={"error": str(exc)})
            try:
                bounded(self.producer.abort_transaction, KAFKA_TIMEOUT_S)
            except (KafkaException, Stuck) as abort_error:
                # Seen after Kafka was paused: the abort never finishes, and every later call of this producer
                # fails with "conflicting abort in progress". A new producer ends it (see producer_broken).
                log.error("abort failed; the producer is replaced", extra={"error": str(abort_error)})
                self.producer_broken = True
            self.needs_reload = True
            return
        self.uncommitted, self.committed_at = False, time.monotonic()
        for job_id, (partition, state, _value) in changed.items():
            jobs = self.jobs.get(partition)
            if jobs is None:
                continue
            if state is None or is_idle(state):
                jobs.pop(job_id, None)
                archived = self.idle.get(partition)
                if archived is not None and state is None:
                    archived.pop(job_id, None)
                elif archived is not None and state is not None:
                    archived[job_id] = state
            else:
                jobs[job_id] = state
                self._track(partition, state)
        for message, _encoded in out:
            log.info(
                "published",
                extra={"type": message.type, "job_id": str(message.job_id), "execution_id": str(message.execution_id)},
            )

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
            for tp in self.consumer.committed(assignment, timeout=KAFKA_TIMEOUT_S):
                if tp.offset < 0:
                    tp.offset = OFFSET_BEGINNING
                self.consumer.seek(tp)
        partitions = {tp.partition for tp in assignment}
        self.jobs.clear()
        self.idle.clear()
        self.retire.clear()
        self.timers.clear()
        for p in partitions:
            self._load(p)
        self.needs_reload = False


# Job id -> (partition, new state or None for a deleted one, the state as written to the state topic).
Changed = dict[uuid.UUID, tuple[int, JobState | None, bytes | None]]


@dataclass
class Written:
    """A decision with its new state and its messages already encoded, as the transaction writes them."""

    state: JobState | None
    state_value: bytes | None
    publish: list[tuple[Output, bytes]]


def writable(decision: Decision, quiet: bool = False) -> Written:
    """`decision`, encoded: whatever cannot be written is found here, against the message that caused it, not
    in the middle of a transaction (where it would be tried again forever). With `quiet`, what does not encode
    is dropped instead of raising."""
    try:
        publish = [(message, encode(message)) for message in decision.publish]
        value = decision.state.model_dump_json().encode() if decision.state is not None else None
    except Exception:
        if not quiet:
            raise
        log.exception("a decision could not be encoded; dropped")
        return Written(None, None, [])
    return Written(decision.state, value, publish)


def serve(settings: SchedulerSettings, stop: threading.Event) -> None:
    prepare_backends(settings)
    scheduler = Scheduler(settings)
    log.info("scheduler started")
    try:
        scheduler.run(stop)
    finally:
        log.info("scheduler stopped")
