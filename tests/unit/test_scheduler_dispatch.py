"""The scheduler's dispatch table: which decision each message type gets, and which orders read the archive."""

import uuid
from datetime import UTC, datetime
from typing import get_args

from services.scheduler.handlers import HANDLERS, READS_ARCHIVE, Policy, define_job, handle, refuse
from services.scheduler.state import JobState
from shared.contract.events import (
    Command,
    Event,
    ExecutionFinished,
    ExecutionPulling,
    ExecutionStarted,
    JobDefinition,
    JobRequested,
    JobRetryRequested,
    JobStopRequested,
    JobUpdated,
)

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
POLICY = Policy()
JOB = uuid.uuid4()
DEFINITION = JobDefinition(image="img", command="true", start_at=datetime(2026, 5, 2, tzinfo=UTC))


def state() -> JobState:
    return JobState(task_id="t", job_id=JOB, definition=DEFINITION)


def test_every_order_and_the_end_of_an_execution_have_a_decision() -> None:
    assert set(HANDLERS) == set(get_args(Command)) | {ExecutionFinished}


def test_both_job_orders_define_the_job_the_same_way() -> None:
    assert HANDLERS[JobRequested] is define_job and HANDLERS[JobUpdated] is define_job
    requested = JobRequested(task_id="t", job_id=JOB, definition=DEFINITION)
    updated = JobUpdated(task_id="t", job_id=JOB, definition=DEFINITION)
    assert handle(None, requested, NOW, POLICY) == handle(None, updated, NOW, POLICY)


def test_messages_without_a_decision_leave_the_job_as_it_is() -> None:
    before = state()
    execution = uuid.uuid4()
    news: list[Event] = [
        ExecutionStarted(task_id="t", job_id=JOB, execution_id=execution, host="h", container_id="c"),
        ExecutionPulling(task_id="t", job_id=JOB, execution_id=execution, host="h", image="img"),
    ]
    for message in news:
        decision = handle(before, message, NOW, POLICY)
        assert decision.state is before and decision.publish == []


def test_only_orders_on_an_existing_job_read_its_archived_state() -> None:
    assert {JobUpdated, JobRetryRequested, JobStopRequested} == READS_ARCHIVE
    assert JobRequested not in READS_ARCHIVE  # a new job has no past


def test_an_order_that_could_not_be_handled_is_refused_with_its_execution_failed() -> None:
    execution = uuid.uuid4()
    update = JobUpdated(task_id="t", job_id=JOB, execution_id=execution, definition=DEFINITION)
    [failed] = refuse(update, NOW, "boom")
    assert isinstance(failed, ExecutionFinished)
    assert (failed.execution_id, failed.status) == (execution, "failed")
    assert failed.error is not None and "boom" in failed.error
    assert refuse(JobStopRequested(task_id="t", job_id=JOB), NOW, "boom") == []
