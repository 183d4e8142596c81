"""The scheduler's timer queue: when each job in memory fires next, entries possibly stale."""

import uuid
from datetime import UTC, datetime, timedelta

from services.scheduler.state import JobState, Timer
from services.scheduler.timers import IDLE_WAIT_S, TimerQueue
from shared.contract.events import JobDefinition

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def job(*fire_in_s: float, stopped: bool = False, job_id: uuid.UUID | None = None) -> JobState:
    timers = tuple(Timer(fire_at=NOW + timedelta(seconds=s), kind="start") for s in fire_in_s)
    return JobState(
        task_id="t",
        job_id=job_id or uuid.uuid4(),
        definition=JobDefinition(image="img", command="true"),
        timers=timers,
        stopped=stopped,
    )


def at(seconds: float) -> float:
    return (NOW + timedelta(seconds=seconds)).timestamp()


def queue_of(*tracked: tuple[int, JobState]) -> TimerQueue:
    """A queue that tracked these (partition, job) in this order."""
    queue = TimerQueue()
    for partition, state in tracked:
        queue.track(partition, state)
    return queue


def due(queue: TimerQueue, seconds: float, owned: tuple[int, ...] = (0,)) -> list[tuple[uuid.UUID, int]]:
    return list(queue.due(at(seconds), set(owned)))


def test_a_job_is_due_at_its_earliest_timer_and_not_before() -> None:
    state = job(5, 2, 9)
    queue = queue_of((0, state))
    assert due(queue, 1.9) == []
    assert due(queue, 2) == [(state.job_id, 0)]
    assert len(queue) == 0


def test_jobs_come_due_in_time_order() -> None:
    late, early = job(3), job(1)
    assert due(queue_of((0, late), (1, early)), 10, owned=(0, 1)) == [(early.job_id, 1), (late.job_id, 0)]


def test_a_job_tracked_twice_is_due_once() -> None:
    first = job(1)
    changed = job(2, job_id=first.job_id)  # the same job, changed since: a second entry
    queue = queue_of((0, first), (0, changed))
    assert due(queue, 5) == [(first.job_id, 0)]
    assert len(queue) == 0


def test_entries_of_a_partition_no_longer_owned_are_dropped_when_due() -> None:
    theirs, ours = job(1), job(1)
    queue = queue_of((3, theirs), (0, ours))
    assert due(queue, 1) == [(ours.job_id, 0)]
    assert len(queue) == 0


def test_a_stopped_job_or_one_without_timers_is_not_tracked() -> None:
    queue = queue_of((0, job(1, stopped=True)), (0, job()))
    assert len(queue) == 0
    assert due(queue, 100) == []


def test_the_wait_for_messages_ends_when_the_next_timer_is_due() -> None:
    queue = TimerQueue()
    assert queue.wait_time(at(0)) == IDLE_WAIT_S
    queue.track(0, job(0.2))
    assert abs(queue.wait_time(at(0)) - 0.2) < 1e-3
    assert queue.wait_time(at(-10)) == IDLE_WAIT_S
    assert queue.wait_time(at(1)) == 0.0  # overdue: no wait


def test_cleared_queue_has_nothing_due() -> None:
    queue = queue_of((0, job(1)))
    queue.clear()
    assert due(queue, 5) == []
