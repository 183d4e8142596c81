"""One step of the loop, before it is committed: the decisions on a batch of consumed messages and on the
timers due, as the new job states, the messages to publish and the messages to park that one transaction
writes. Nothing here writes to Kafka; reading a partition's archive is the only Kafka call (via the store).
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from confluent_kafka import Message as KafkaMessage
from pydantic import ValidationError

from services.scheduler.handlers import (
    READS_ARCHIVE,
    Decision,
    Output,
    Policy,
    fire_due_timers,
    handle,
    refuse,
    unschedulable,
)
from services.scheduler.job_store import Changed, JobStore, is_idle
from services.scheduler.state import JobState
from shared.contract.events import HostEvent, JobOrder, decode, encode, utcnow
from shared.infra.failures import reason
from shared.infra.kafka.consumer import event_ids, is_record
from shared.process.logs import bound, trace_ids, traceparent_of

log = logging.getLogger("scheduler")


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


def timer_lag(state: JobState, now: datetime) -> float | None:
    """Seconds the job's timer fires late (for the metric); None when that cannot be told. Never raises: a job's
    odd times (a naive datetime sent past the API) are its own poison, found and handled where it fires."""
    try:
        fire_at = state.next_fire()
        return None if fire_at is None else max(0.0, (now - fire_at).total_seconds())
    except Exception:
        return None


@dataclass
class Step:
    """What one transaction writes, gathered from the decisions of one turn of the loop."""

    store: JobStore
    policy: Policy
    now: datetime  # the time of the messages' decisions (timers read the clock as they fire)
    changed: Changed = field(default_factory=dict)
    out: list[tuple[Output, bytes]] = field(default_factory=list)
    parked: list[tuple[KafkaMessage, str]] = field(default_factory=list)
    timer_lags: list[float] = field(default_factory=list)  # seconds each timer fired late (metrics, once committed)
    traces: dict[uuid.UUID, str] = field(default_factory=dict)  # job id -> the traceparent its messages carry

    def take(self, msg: KafkaMessage) -> None:
        """Decide on one consumed message; a message that is not an event, or whose handling raises, is parked
        (and the order it carried refused)."""
        if not is_record(msg):
            return
        try:
            event = decode(msg.value() or b"")
        except ValidationError as exc:
            self.parked.append((msg, f"not an event of the contract: {exc}"))
            return
        if isinstance(event, HostEvent):
            return  # not on the scheduler's topics; nothing to decide
        partition = msg.partition() or 0
        if not self.store.owns(partition):
            return  # not (or no longer) ours: its owner handles it, from the offsets committed for it
        trace = traceparent_of(msg.headers())
        with bound(**event_ids(event), **trace_ids(trace)):
            # Outside the poison guard: a failure to read the archive (Kafka away) is the loop's to handle, by
            # going back to the last commit and trying again, never a reason to park the order.
            state = self.state(partition, event.job_id, archived=type(event) in READS_ARCHIVE)
            try:
                decided = handle(state, event, self.now, self.policy)
                if trace is not None and isinstance(event, JobOrder) and decided.state is not None:
                    decided = Decision(decided.state.model_copy(update={"trace": trace}), decided.publish)
                decision = writable(decided)
            except Exception as exc:  # the message itself is the poison: handled the same way every time
                where = {"type": event.type, "offset": msg.offset()}
                log.exception("message could not be handled; parked", extra=where)
                self.parked.append((msg, reason(exc)))
                self.out.extend(writable(Decision(None, refuse(event, self.now, reason(exc))), quiet=True).publish)
                return
        self.collect(partition, event.job_id, decision)
        if trace is not None:  # what this message decides carries its own trace (a retry's, a stop's)
            self.traces[event.job_id] = trace

    def fire_timers(self) -> None:
        """Fire the timers due now, once per job; a job whose timer raises has its schedule ended, with why."""
        for job_id, partition in self.store.timers.due(utcnow().timestamp(), self.store.jobs):
            state = self.state(partition, job_id)
            if state is None:
                continue
            now = utcnow()
            lag = timer_lag(state, now)
            if lag is not None:
                self.timer_lags.append(lag)
            try:
                decision = writable(fire_due_timers(state, now, self.policy))
            except Exception as exc:  # the job's own definition is the poison: its schedule ends, with why
                log.exception("timer could not fire; the job's schedule ends", extra={"job_id": str(job_id)})
                decision = writable(unschedulable(state, now, reason(exc)), quiet=True)
            self.collect(partition, job_id, decision)

    def retire(self) -> None:
        """Move some finished jobs an older version left on the state topic to the archive."""
        for job_id, partition in self.store.to_retire():
            state = self.store.pending(partition, job_id)
            if job_id not in self.changed and state is not None and is_idle(state):
                self.changed[job_id] = (partition, state, state.model_dump_json().encode())

    def state(self, partition: int, job_id: uuid.UUID, archived: bool = False) -> JobState | None:
        """The job's latest state: this step's, else a pending one; a finished job's only with `archived`."""
        if job_id in self.changed:
            return self.changed[job_id][1]
        state = self.store.pending(partition, job_id)
        if state is None and archived:
            state = self.store.archived(partition).get(job_id)
        return state

    def collect(self, partition: int, job_id: uuid.UUID, decision: Written) -> None:
        known = decision.state or self.state(partition, job_id)  # never the archive: not read for a trace
        if known is not None and known.trace is not None:
            self.traces[job_id] = known.trace
        if decision.state is not self.state(partition, job_id):
            self.changed[job_id] = (partition, decision.state, decision.state_value)
        self.out.extend(decision.publish)

    def has_writes(self) -> bool:
        return bool(self.changed or self.out or self.parked)


def decide(messages: Sequence[KafkaMessage], store: JobStore, policy: Policy) -> Step:
    """The step for a batch of messages (possibly none): their decisions, then the timers due, then retirements."""
    step = Step(store, policy, utcnow())
    for msg in messages:
        step.take(msg)
    step.fire_timers()
    step.retire()
    return step
