import uuid

from services.scheduler.handlers import handle
from shared.events import ExecutionDue, ExecutionFinished, JobDefinition, JobRequested, new_execution_id


def job(execution_id: uuid.UUID | None) -> JobRequested:
    return JobRequested(
        task_id="t",
        job_id=uuid.uuid4(),
        execution_id=execution_id,
        definition=JobDefinition(image="busybox", command="echo hi", envs={"A": "1"}),
    )


def test_a_job_that_runs_now_is_due_at_once_with_the_id_the_client_got() -> None:
    cmd = job(new_execution_id())
    [due] = handle(cmd)
    assert isinstance(due, ExecutionDue)
    assert (due.task_id, due.job_id, due.execution_id) == (cmd.task_id, cmd.job_id, cmd.execution_id)
    assert (due.image, due.command, due.envs, due.attempt) == ("busybox", "echo hi", {"A": "1"}, 1)


def test_handling_the_same_order_twice_yields_the_same_event() -> None:
    cmd = job(new_execution_id())
    assert handle(cmd) == handle(cmd)


def test_events_the_scheduler_does_not_act_on_yield_nothing() -> None:
    finished = ExecutionFinished(task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), status="done")
    assert handle(finished) == []
