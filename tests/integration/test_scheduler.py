"""The scheduler service between real Kafka topics."""

import uuid

from services.scheduler.service import serve
from shared.events import ExecutionDue, JobDefinition, JobRequested, new_execution_id
from shared.kafka import EventProducer
from shared.settings import Settings
from shared.topics import Topics
from tests.helpers import eventually, read_events, start_thread


def test_a_job_that_runs_now_becomes_an_execution_due(backends: Settings) -> None:
    topics = Topics.from_settings(backends)
    cmd = JobRequested(
        task_id="sched",
        job_id=uuid.uuid4(),
        execution_id=new_execution_id(),
        definition=JobDefinition(image="img", command="echo hi", envs={"K": "v"}),
    )
    EventProducer(backends).publish(topics.jobs, cmd)
    thread, stop = start_thread(serve, backends)
    try:

        def mine() -> list[ExecutionDue]:
            events = read_events(backends.kafka_bootstrap, topics.due, 0, timeout=2)
            return [e for e in events if isinstance(e, ExecutionDue) and e.job_id == cmd.job_id]

        [due] = eventually(mine, timeout=60, what="the ExecutionDue of the job")
        assert due.execution_id == cmd.execution_id
        assert (due.image, due.command, due.envs, due.attempt) == ("img", "echo hi", {"K": "v"}, 1)
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
