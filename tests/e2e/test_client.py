"""The Python client (shared/client): the sync and async HTTP clients against the e2e stack's real services, and
the event subscriber against real Kafka (at least once, duplicates dropped by event_id)."""

import asyncio
import uuid

import pytest

from services.api.models import Enqueued
from services.devstack import DevStack
from shared.client import AsyncClient, Client, FastlaneError, Subscriber
from shared.contract.events import ExecutionFinished, new_execution_id
from shared.contract.topics import Topics
from shared.infra.kafka.producer import EventProducer
from tests.conftest import TEST_IMAGE, AllSettings


def test_the_sync_client_runs_follows_and_reads_a_job(stack: DevStack) -> None:
    task = f"client-{uuid.uuid4().hex[:8]}"
    with Client(stack.url) as fastlane:
        job = fastlane.run(task, TEST_IMAGE, "sh -c 'echo one; echo two >&2'", envs={"A": "1"})
        assert isinstance(job, Enqueued) and job.taskId == task and job.executionId is not None
        messages = list(fastlane.follow(task, job.jobId, job.executionId))
        assert messages[-1]["type"] == "end" and messages[-1]["status"] == "done"
        assert "".join(m["text"] for m in messages if m["type"] == "output" and m["stream"] == "stdout") == "one\n"
        answer = fastlane.execution(task, job.jobId, job.executionId)
        assert (answer.execution.status, answer.execution.log, answer.execution.error) == ("done", "one\n", "two\n")
        assert fastlane.logs(task, job.jobId, kind="stderr") == "two\n"
        assert fastlane.job(task, job.jobId).job.envs == {"A": "1"}
        assert [ref.id for ref in fastlane.task(task).jobs] == [job.jobId]
        assert fastlane.ready().ready is True
        with pytest.raises(FastlaneError) as refused:
            fastlane.job(task, str(uuid.uuid4()))
        assert refused.value.status == 404 and "not found" in refused.value.message
        with pytest.raises(FastlaneError) as bad:
            fastlane.run(task, TEST_IMAGE, "true", startIn="whenever")
        assert bad.value.status == 400


def test_the_async_client_does_the_same_awaited(stack: DevStack) -> None:
    async def scenario() -> None:
        task = f"aclient-{uuid.uuid4().hex[:8]}"
        async with AsyncClient(stack.url) as fastlane:
            jobs = await asyncio.gather(*(fastlane.run(task, TEST_IMAGE, f"echo {n}") for n in range(3)))
            for n, job in enumerate(jobs):
                assert job.executionId is not None
                ends = [m async for m in fastlane.follow(task, job.jobId, job.executionId) if m["type"] == "end"]
                assert ends[-1]["status"] == "done"
                assert await fastlane.logs(task, job.jobId, job.executionId) == f"{n}\n"
            retried = await fastlane.retry(task, jobs[0].jobId)
            assert retried.jobId == jobs[0].jobId
            stopped = await fastlane.stop(task, jobs[1].jobId)
            assert stopped.jobId == jobs[1].jobId
            assert len((await fastlane.task(task)).jobs) == 3

    asyncio.run(asyncio.wait_for(scenario(), 120))


def finished(task: str, job_id: uuid.UUID) -> ExecutionFinished:
    return ExecutionFinished(task_id=task, job_id=job_id, execution_id=new_execution_id(), status="done", stdout="ok\n")


def test_the_subscriber_delivers_at_least_once_and_drops_duplicates(own_topics: AllSettings) -> None:
    topic = Topics.from_settings(own_topics).executions
    task = f"sub-{uuid.uuid4().hex[:8]}"
    job_id = uuid.uuid4()  # one job: one key, one partition, so the events keep their order
    first, second = finished(task, job_id), finished(task, job_id)
    producer = EventProducer(own_topics)
    for event in (first, first, second):  # the first one twice: a producer's retry, say
        producer.publish(topic, event)
    producer.close()
    group = f"sub-{uuid.uuid4().hex[:8]}"

    def subscriber() -> Subscriber:
        return Subscriber(own_topics.kafka_bootstrap, group, from_beginning=True, topic_prefix=own_topics.topic_prefix)

    # Dies while handling the first event (it never asks for the next): the event comes again.
    with subscriber() as crashing:
        got = next(crashing.follow(task_id=task, timeout=30))
        assert got.event_id == first.event_id and isinstance(got, ExecutionFinished)
    with subscriber() as events:
        seen = list(events.follow(task_id=task, timeout=6))
    assert [e.event_id for e in seen] == [first.event_id, second.event_id]  # the duplicate was dropped
    with subscriber() as after:
        assert list(after.follow(task_id=task, timeout=6)) == []  # everything handled was committed
