import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.scheduler.handlers import Decision, Policy, fire_due_timers, handle
from services.scheduler.state import JobState
from shared.contract.events import (
    ExecutionDue,
    ExecutionFinished,
    ExecutionStopRequested,
    JobDefinition,
    JobRequested,
    JobRetryRequested,
    JobStopRequested,
    JobUpdated,
    RetryBackoff,
    StopExecution,
    new_execution_id,
)

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
POLICY = Policy(default_backoff=RetryBackoff(min_ms=1000, factor=2, max_ms=60_000))
JOB = uuid.uuid4()


def definition(**kw: Any) -> JobDefinition:
    return JobDefinition(image="busybox", command="echo hi", **kw)


def requested(execution_id: uuid.UUID | None = None, **kw: Any) -> JobRequested:
    return JobRequested(task_id="t", job_id=JOB, execution_id=execution_id, definition=definition(**kw))


def finished(execution_id: uuid.UUID, status: str = "failed") -> ExecutionFinished:
    return ExecutionFinished(task_id="t", job_id=JOB, execution_id=execution_id, status=status)  # type: ignore[arg-type]


def dues(decision: Decision) -> list[ExecutionDue]:
    return [m for m in decision.publish if isinstance(m, ExecutionDue)]


def test_a_job_that_runs_now_is_due_at_once_with_the_id_the_client_got() -> None:
    eid = new_execution_id()
    decision = handle(None, requested(eid, timeout_s=5), NOW, POLICY)
    [due] = dues(decision)
    assert (due.execution_id, due.attempt, due.timeout_s, due.image) == (eid, 1, 5, "busybox")
    assert decision.state is not None and decision.state.running == {eid: 1}
    assert decision.state.timers == ()


def test_a_delayed_job_gets_a_timer_and_fires_once_when_due() -> None:
    at = NOW + timedelta(seconds=30)
    decision = handle(None, requested(start_at=at), NOW, POLICY)
    assert decision.publish == []
    state = decision.state
    assert state is not None and state.next_fire() == at
    assert fire_due_timers(state, NOW + timedelta(seconds=29), POLICY).publish == []
    fired = fire_due_timers(state, at, POLICY)
    [due] = dues(fired)
    assert due.execution_id.version == 1
    assert fired.state is not None and fired.state.timers == ()
    assert fire_due_timers(fired.state, at + timedelta(hours=1), POLICY).publish == []


def test_deciding_the_same_fire_twice_gives_the_same_execution_id() -> None:
    state = handle(None, requested(start_at=NOW), NOW, POLICY).state
    assert state is not None
    assert dues(fire_due_timers(state, NOW, POLICY)) == dues(fire_due_timers(state, NOW, POLICY))


def test_failures_are_retried_with_backoff_up_to_the_limit() -> None:
    eid = new_execution_id()
    state = handle(None, requested(eid, retries=2), NOW, POLICY).state
    assert state is not None
    state = handle(state, finished(eid), NOW, POLICY).state
    assert state is not None and [t.fire_at for t in state.timers] == [NOW + timedelta(seconds=1)]
    second = fire_due_timers(state, NOW + timedelta(seconds=1), POLICY)
    [due2] = dues(second)
    assert due2.attempt == 2
    t2 = NOW + timedelta(seconds=2)
    state = handle(second.state, finished(due2.execution_id), t2, POLICY).state
    assert state is not None and [t.fire_at for t in state.timers] == [t2 + timedelta(seconds=2)]
    third = fire_due_timers(state, t2 + timedelta(seconds=2), POLICY)
    [due3] = dues(third)
    assert due3.attempt == 3
    state = handle(third.state, finished(due3.execution_id), t2 + timedelta(seconds=5), POLICY).state
    assert state is not None and state.timers == () and state.running == {}


def test_a_success_ends_the_retry_chain() -> None:
    eid = new_execution_id()
    state = handle(None, requested(eid, retries=3), NOW, POLICY).state
    state = handle(state, finished(eid, "done"), NOW, POLICY).state
    assert state is not None and state.timers == ()


def test_a_job_backoff_overrides_the_server_default() -> None:
    eid = new_execution_id()
    backoff = RetryBackoff(min_ms=250, factor=3, max_ms=1000)
    state = handle(None, requested(eid, retries=1, retry_backoff=backoff), NOW, POLICY).state
    state = handle(state, finished(eid, "timedout"), NOW, POLICY).state
    assert state is not None and state.timers[0].fire_at == NOW + timedelta(milliseconds=250)


def test_stopping_a_job_stops_what_runs_and_cancels_every_timer() -> None:
    eid = new_execution_id()
    state = handle(None, requested(eid, retries=5), NOW, POLICY).state
    decision = handle(state, JobStopRequested(task_id="t", job_id=JOB), NOW, POLICY)
    assert [m.execution_id for m in decision.publish if isinstance(m, StopExecution)] == [eid]
    state = handle(decision.state, finished(eid, "stopped"), NOW, POLICY).state
    assert state is not None and state.stopped and state.timers == ()
    assert fire_due_timers(state, NOW + timedelta(days=1), POLICY).publish == []


def test_stopping_a_cron_job_cancels_future_fires() -> None:
    state = handle(None, requested(cron="* * * * *"), NOW, POLICY).state
    state = handle(state, JobStopRequested(task_id="t", job_id=JOB), NOW, POLICY).state
    assert state is not None and state.timers == ()


def test_stopping_one_execution_is_broadcast_and_keeps_the_schedule() -> None:
    state = handle(None, requested(cron="* * * * *"), NOW, POLICY).state
    eid = new_execution_id()
    decision = handle(state, ExecutionStopRequested(task_id="t", job_id=JOB, execution_id=eid), NOW, POLICY)
    assert [type(m) for m in decision.publish] == [StopExecution]
    assert decision.state == state


def test_retry_runs_the_job_again_now() -> None:
    eid, again = new_execution_id(), new_execution_id()
    state = handle(None, requested(eid), NOW, POLICY).state
    state = handle(state, finished(eid, "done"), NOW, POLICY).state
    decision = handle(state, JobRetryRequested(task_id="t", job_id=JOB, execution_id=again), NOW, POLICY)
    assert [d.execution_id for d in dues(decision)] == [again]


def test_an_update_replaces_the_pending_schedule_and_the_command() -> None:
    state = handle(None, requested(start_at=NOW + timedelta(days=1)), NOW, POLICY).state
    soon = NOW + timedelta(seconds=2)
    update = JobUpdated(
        task_id="t", job_id=JOB, definition=JobDefinition(image="busybox", command="new", start_at=soon)
    )
    state = handle(state, update, NOW, POLICY).state
    assert state is not None and [t.fire_at for t in state.timers] == [soon]
    assert state.generation == 1
    [due] = dues(fire_due_timers(state, soon, POLICY))
    assert due.command == "new"


def cron_state(**kw: Any) -> JobState:
    state = handle(None, requested(cron="* * * * *", **kw), NOW, POLICY).state
    assert state is not None
    return state


def test_cron_fires_each_minute_and_schedules_the_next() -> None:
    state = cron_state()
    assert state.next_fire() == NOW + timedelta(minutes=1)
    fired = fire_due_timers(state, NOW + timedelta(minutes=1), POLICY)
    assert len(dues(fired)) == 1
    assert fired.state is not None and fired.state.next_fire() == NOW + timedelta(minutes=2)


def test_cron_forbid_skips_a_fire_while_the_previous_runs() -> None:
    state = cron_state(concurrency_policy="Forbid")
    first = fire_due_timers(state, NOW + timedelta(minutes=1), POLICY)
    assert first.state is not None
    second = fire_due_timers(first.state, NOW + timedelta(minutes=2), POLICY)
    assert dues(second) == []
    assert second.state is not None and second.state.next_fire() == NOW + timedelta(minutes=3)


def test_cron_replace_stops_the_previous_and_starts_anew() -> None:
    state = cron_state(concurrency_policy="Replace")
    first = fire_due_timers(state, NOW + timedelta(minutes=1), POLICY)
    [old] = dues(first)
    assert first.state is not None
    second = fire_due_timers(first.state, NOW + timedelta(minutes=2), POLICY)
    assert [m.execution_id for m in second.publish if isinstance(m, StopExecution)] == [old.execution_id]
    assert len(dues(second)) == 1


def test_cron_missed_fires_run_once_on_recovery_by_default() -> None:
    state = cron_state()
    late = NOW + timedelta(hours=3)
    fired = fire_due_timers(state, late, POLICY)
    assert len(dues(fired)) == 1
    assert fired.state is not None and fired.state.next_fire() == late + timedelta(minutes=1)


def test_cron_missed_fires_are_skipped_without_catch_up() -> None:
    state = cron_state(catch_up=False)
    late = NOW + timedelta(hours=3)
    fired = fire_due_timers(state, late, POLICY)
    assert dues(fired) == []
    assert fired.state is not None and fired.state.next_fire() == late + timedelta(minutes=1)


def test_unknown_jobs_are_left_alone() -> None:
    assert handle(None, JobStopRequested(task_id="t", job_id=JOB), NOW, POLICY).state is None
    assert handle(None, finished(new_execution_id()), NOW, POLICY).publish == []
