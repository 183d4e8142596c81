"""Scheduling decisions, free of Kafka: each takes a job's state and a message (or the clock) and returns the
job's new state and the messages to publish. The loop commits both in one Kafka transaction.

`HANDLERS` routes a message to its decision by the message's type; a type it lacks changes nothing."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from services.scheduler.state import JobState, Timer
from shared.contract.events import (
    Event,
    ExecutionDue,
    ExecutionFinished,
    ExecutionStopRequested,
    JobMessage,
    JobOrder,
    JobRequested,
    JobRetryRequested,
    JobStopRequested,
    JobUpdated,
    RetryBackoff,
    StopExecution,
    new_execution_id,
)
from shared.domain.schedule import ScheduleError, backoff_delay, next_cron_fire

RETRYABLE = frozenset({"failed", "timedout"})


@dataclass(frozen=True)
class Policy:
    """Server-wide scheduling settings."""

    default_backoff: RetryBackoff = field(default_factory=lambda: RetryBackoff(min_ms=1000, factor=2.0, max_ms=300_000))
    # A cron fire later than this counts as missed (everything was down): run once, or skip with catchUp false.
    missed_fire_grace: timedelta = timedelta(seconds=30)


# ExecutionFinished: only for a job the scheduler cannot schedule (see `unschedulable`).
Output = ExecutionDue | StopExecution | ExecutionFinished


@dataclass
class Decision:
    """The outcome of handling one message or one clock tick for one job."""

    state: JobState | None
    publish: list[Output] = field(default_factory=list)


def execution_due(state: JobState, execution_id: uuid.UUID, attempt: int, at: datetime) -> ExecutionDue:
    d = state.definition
    return ExecutionDue(
        event_id=uuid.uuid5(execution_id, "due"),
        occurred_at=at,
        task_id=state.task_id,
        job_id=state.job_id,
        execution_id=execution_id,
        image=d.image,
        command=d.command,
        envs=d.envs,
        attempt=attempt,
        expiration=d.expiration,
        timeout_s=d.timeout_s,
        extra_hosts=d.extra_hosts,
        resources=d.resources,
    )


def _decide_execution(state: JobState, attempt: int, now: datetime, execution_id: uuid.UUID | None = None) -> Decision:
    """Emit one ExecutionDue and remember it as running."""
    if execution_id is None:
        seed = uuid.uuid5(state.job_id, f"{state.generation}:{state.decided}")
        execution_id = new_execution_id(now, seed)
    due = execution_due(state, execution_id, attempt, now)
    new = state.model_copy(update={"decided": state.decided + 1, "running": {**state.running, execution_id: attempt}})
    return Decision(new, [due])


def first_timers(state: JobState, now: datetime) -> tuple[Timer, ...]:
    d = state.definition
    if d.cron is not None:
        return (Timer(fire_at=next_cron_fire(d.cron, d.cron_timezone, now), kind="cron"),)
    if d.start_at is not None:
        return (Timer(fire_at=d.start_at, kind="start"),)
    return ()


def define_job(state: JobState | None, cmd: JobOrder, now: datetime, _policy: Policy) -> Decision:
    """Create or replace a job: the old definition's pending timers are dropped, the new schedule set."""
    new = JobState(
        task_id=cmd.task_id,
        job_id=cmd.job_id,
        definition=cmd.definition,
        generation=state.generation + 1 if state else 0,
        running=state.running if state else {},
    )
    if cmd.definition.runs_now:
        return _decide_execution(new, 1, now, cmd.execution_id)
    try:
        timers = first_timers(new, now)
    except ScheduleError as exc:  # the API refuses these; an older client or another producer may not have
        return unschedulable(new, now, str(exc))
    return Decision(new.model_copy(update={"timers": timers}))


def unschedulable(state: JobState, now: datetime, reason: str) -> Decision:
    """A job whose schedule cannot be computed (a cron with no next fire time...): its schedule ends, and one
    `failed` execution carries the reason, so the job page and the `fails` webhooks say why."""
    seed = uuid.uuid5(state.job_id, f"{state.generation}:{state.decided}:unschedulable")
    failed = ExecutionFinished(
        event_id=uuid.uuid5(seed, "finished"),
        occurred_at=now,
        task_id=state.task_id,
        job_id=state.job_id,
        execution_id=new_execution_id(now, seed),
        status="failed",
        error=f"fastlane cannot schedule this job: {reason}",
    )
    return Decision(state.model_copy(update={"timers": (), "decided": state.decided + 1, "stopped": True}), [failed])


def stop_job(state: JobState | None, _cmd: JobStopRequested, _now: datetime, _policy: Policy) -> Decision:
    if state is None:
        return Decision(None)
    stops: list[Output] = [_stop(state, eid) for eid in state.running]
    return Decision(state.model_copy(update={"stopped": True, "timers": ()}), stops)


def stop_execution(state: JobState | None, cmd: ExecutionStopRequested, _now: datetime, _policy: Policy) -> Decision:
    # Sent even when we do not know it as running: it may be queued at a runner.
    stop = StopExecution(task_id=cmd.task_id, job_id=cmd.job_id, execution_id=cmd.execution_id)
    return Decision(state, [stop])


def retry_job(state: JobState | None, cmd: JobRetryRequested, now: datetime, _policy: Policy) -> Decision:
    if state is None:
        return Decision(None)  # the API only sends this for jobs it knows; nothing to run without a definition
    return _decide_execution(state, 1, now, cmd.execution_id)


def execution_finished(state: JobState | None, event: ExecutionFinished, now: datetime, policy: Policy) -> Decision:
    """Forget the execution; a retryable failure with attempts left gets a retry timer after the backoff."""
    if state is None or event.execution_id not in state.running:
        return Decision(state)
    attempt = state.running[event.execution_id]
    running = {k: v for k, v in state.running.items() if k != event.execution_id}
    timers = state.timers
    d = state.definition
    if event.status in RETRYABLE and not state.stopped and attempt <= d.retries:
        delay = backoff_delay(attempt, d.retry_backoff or policy.default_backoff)
        timers = (*timers, Timer(fire_at=now + delay, kind="retry", attempt=attempt + 1))
    return Decision(state.model_copy(update={"running": running, "timers": timers}))


def fire_due_timers(state: JobState, now: datetime, policy: Policy) -> Decision:
    """Fire every timer of the job that is due at `now`."""
    decision = Decision(state)
    due = [t for t in state.timers if t.fire_at <= now]
    if not due or state.stopped:
        return decision
    remaining = tuple(t for t in state.timers if t.fire_at > now)
    decision.state = state.model_copy(update={"timers": remaining})
    for timer in sorted(due, key=lambda t: t.fire_at):
        assert decision.state is not None
        step = _fire(decision.state, timer, now, policy)
        decision.state = step.state
        decision.publish += step.publish
    return decision


def _fire(state: JobState, timer: Timer, now: datetime, policy: Policy) -> Decision:
    if timer.kind != "cron":
        return _decide_execution(state, timer.attempt, now)
    d = state.definition
    assert d.cron is not None
    following: tuple[Timer, ...]
    try:
        following = (Timer(fire_at=next_cron_fire(d.cron, d.cron_timezone, max(now, timer.fire_at)), kind="cron"),)
    except ScheduleError:
        following = ()  # the cron has fired for the last time (its next fire is past what a date can hold)
    state = state.model_copy(update={"timers": (*state.timers, *following)})
    missed = now - timer.fire_at > policy.missed_fire_grace
    if missed and not d.catch_up:
        return Decision(state)
    if state.running and d.concurrency_policy == "Forbid":
        return Decision(state)
    stops: list[Output] = []
    if state.running and d.concurrency_policy == "Replace":
        stops = [_stop(state, eid) for eid in state.running]
    decision = _decide_execution(state, 1, now)
    decision.publish = stops + decision.publish
    return decision


def _stop(state: JobState, execution_id: uuid.UUID) -> StopExecution:
    return StopExecution(task_id=state.task_id, job_id=state.job_id, execution_id=execution_id)


def refuse(message: Event, now: datetime, reason: str) -> list[Output]:
    """A job's order the scheduler could not act on (its handling raised): the execution it asked for, or one
    made for the purpose, ends `failed` with the reason. Other messages (an execution's own events) get none:
    their execution has a final state already, or gets one from its runner."""
    if not isinstance(message, JobOrder | JobRetryRequested):
        return []
    execution_id = message.execution_id or new_execution_id(now, uuid.uuid5(message.event_id, "refused"))
    failed = ExecutionFinished(
        event_id=uuid.uuid5(message.event_id, "refused"),
        occurred_at=now,
        task_id=message.task_id,
        job_id=message.job_id,
        execution_id=execution_id,
        status="failed",
        error=f"fastlane cannot schedule this job: {reason}",
    )
    return [failed]


# A decision on one message: (the job's state or None, the message, now, the policy) -> the outcome.
Handler = Callable[[JobState | None, Any, datetime, Policy], Decision]

# Every message from the jobs or executions topic that changes a job, by type. The others (ExecutionPulling,
# ExecutionStarted...) change nothing.
HANDLERS: dict[type[BaseModel], Handler] = {
    JobRequested: define_job,
    JobUpdated: define_job,
    JobStopRequested: stop_job,
    ExecutionStopRequested: stop_execution,
    JobRetryRequested: retry_job,
    ExecutionFinished: execution_finished,
}

# Orders whose decision depends on a finished job's state (its definition, generation, stopped flag): the loop
# reads the job's archived state for them. A new job (JobRequested) has none.
READS_ARCHIVE: frozenset[type[JobMessage]] = frozenset({JobUpdated, JobRetryRequested, JobStopRequested})


def handle(state: JobState | None, message: Event, now: datetime, policy: Policy) -> Decision:
    """Route a message from the jobs or executions topic to its decision."""
    handler = HANDLERS.get(type(message))
    if handler is None:
        return Decision(state)
    return handler(state, message, now, policy)
