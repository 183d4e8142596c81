"""The recorder's projections against real Cassandra, and the recorder service fed through real Kafka."""

import uuid
from datetime import UTC, timedelta

import pytest
from cassandra.cluster import Session

from services.recorder.bootstrap import serve
from services.recorder.buckets import listing_bucket
from services.recorder.handlers import Recorder
from services.recorder.indexes import Indexes
from services.recorder.projections import Projections
from services.recorder.reads import JobDefinitions
from services.recorder.rows import ProjectionRows
from shared.contract.events import (
    ExecutionDue,
    ExecutionFinished,
    ExecutionStarted,
    JobDefinition,
    JobRequested,
    JobUpdated,
    Webhook,
    new_execution_id,
    utcnow,
)
from shared.contract.topics import Topics
from shared.infra.kafka.producer import EventProducer
from shared.process.settings import Settings
from tests.helpers import eventually, start_thread


def lifecycle() -> tuple[JobRequested, ExecutionDue, ExecutionStarted, ExecutionFinished]:
    t0 = utcnow()
    job_id, execution_id = uuid.uuid4(), new_execution_id(t0)
    ids = {"task_id": f"task-{uuid.uuid4().hex[:6]}", "job_id": job_id}
    requested = JobRequested(
        **ids,
        occurred_at=t0,
        execution_id=execution_id,
        definition=JobDefinition(image="img", command="echo hi", metadata={"who": "me"}),
        request_ip="10.1.2.3",
    )
    due = ExecutionDue(
        **ids, occurred_at=t0 + timedelta(milliseconds=5), execution_id=execution_id, image="img", command="echo hi"
    )
    started = ExecutionStarted(
        **ids, occurred_at=t0 + timedelta(seconds=1), execution_id=execution_id, host="h1", container_id="c1"
    )
    finished = ExecutionFinished(
        **ids,
        occurred_at=t0 + timedelta(seconds=2),
        execution_id=execution_id,
        status="done",
        exit_code=0,
        stdout="hi\n",
        stderr="",
        host="h1",
    )
    return requested, due, started, finished


def execution_row(session: Session, keyspace: str, e: JobRequested):  # type: ignore[no-untyped-def]
    return session.execute(
        f"SELECT * FROM {keyspace}.executions WHERE task_id=%s AND job_id=%s AND execution_id=%s",
        (e.task_id, e.job_id, e.execution_id),
    ).one()


@pytest.fixture
def projections(backends: Settings, cassandra: Session) -> Projections:
    return Projections(cassandra, backends.keyspace)


def test_a_lifecycle_is_projected(projections: Projections, cassandra: Session, backends: Settings) -> None:
    requested, due, started, finished = lifecycle()
    for e in (requested, due, started, finished):
        projections.apply(e)
    row = execution_row(cassandra, backends.keyspace, requested)
    assert (row.status, row.exit_code, row.stdout, row.container_id, row.docker_host) == ("done", 0, "hi\n", "c1", "h1")
    assert row.request_ip == "10.1.2.3"
    job = cassandra.execute(
        f"SELECT * FROM {backends.keyspace}.jobs WHERE task_id=%s AND job_id=%s", (requested.task_id, requested.job_id)
    ).one()
    assert (job.image, job.command, job.scheduled) == ("img", "echo hi", False)
    assert '"who": "me"' in job.metadata


def test_replays_and_late_events_never_move_a_status_back(
    projections: Projections, cassandra: Session, backends: Settings
) -> None:
    requested, due, started, finished = lifecycle()
    # Finished arrives first, then the older events, then everything again.
    for e in (finished, started, requested, due, requested, due, started, finished, due):
        projections.apply(e)
    row = execution_row(cassandra, backends.keyspace, requested)
    assert row.status == "done"
    assert row.exit_code == 0
    assert row.started_at is not None and row.finished_at is not None


def test_a_runner_whose_clock_is_behind_still_moves_the_status_forward(
    projections: Projections, cassandra: Session, backends: Settings
) -> None:
    """The API's clock says the job was requested at t0; the runner's clock is 10 minutes behind, so its events
    carry times before t0. The status still ends `done`, not `enqueued`."""
    requested, due, started, finished = lifecycle()
    behind = timedelta(minutes=10)
    started = started.model_copy(update={"occurred_at": started.occurred_at - behind})
    finished = finished.model_copy(update={"occurred_at": finished.occurred_at - behind})
    for e in (requested, due, started):
        projections.apply(e)
    assert execution_row(cassandra, backends.keyspace, requested).status == "running"
    projections.apply(finished)
    projections.apply(due)  # a redelivered ExecutionDue, with the scheduler's (later) time
    row = execution_row(cassandra, backends.keyspace, requested)
    assert (row.status, row.exit_code, row.container_id) == ("done", 0, "c1")


def test_a_final_status_never_moves_the_first_one_written_stays(
    projections: Projections, cassandra: Session, backends: Settings
) -> None:
    """A peer reported the execution `failed` (its host looked lost); a later `done` for it (from a runner that
    should have been fenced, or a replay from another source) does not change it, in either order of arrival."""
    requested, due, started, finished = lifecycle()
    failed = finished.model_copy(
        update={"status": "failed", "occurred_at": finished.occurred_at - timedelta(seconds=1), "exit_code": None}
    )
    for e in (requested, due, started, finished, failed, finished):
        projections.apply(e)
    row = execution_row(cassandra, backends.keyspace, requested)
    assert (row.status, row.exit_code) == ("failed", None)


def test_the_recorder_service_projects_events_from_kafka(own_topics: Settings, cassandra: Session) -> None:
    backends = own_topics  # the e2e stack's runner would otherwise run (and fail) this made-up execution first
    topics = Topics.from_settings(backends)
    producer = EventProducer(backends)
    requested, due, started, finished = lifecycle()
    # Values far above Cassandra's batch size limits (50 KiB): the recorder sends them outside its batches.
    envs = {f"VAR_{n}": "v" * 1000 for n in range(60)}
    requested = requested.model_copy(update={"definition": requested.definition.model_copy(update={"envs": envs})})
    finished = finished.model_copy(update={"stdout": "out\n" * 30_000})
    producer.publish(topics.jobs, requested)
    producer.publish(topics.due, due)
    producer.publish(topics.executions, started)
    producer.publish(topics.executions, finished)
    thread, stop = start_thread(serve, backends)
    try:
        row = eventually(
            lambda: (r := execution_row(cassandra, backends.keyspace, requested)) and r.status == "done" and r,
            timeout=60,
            what="the recorder to project the finished execution",
        )
        assert row.stdout == "out\n" * 30_000
        job = cassandra.execute(
            f"SELECT envs FROM {backends.keyspace}.jobs WHERE task_id=%s AND job_id=%s",
            (requested.task_id, requested.job_id),
        ).one()
        assert job.envs == envs
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def test_an_update_replaces_the_definition_but_keeps_the_creation_time(
    projections: Projections, cassandra: Session, backends: Settings
) -> None:
    requested, *_ = lifecycle()
    later = requested.occurred_at + timedelta(minutes=5)
    update = JobUpdated(
        task_id=requested.task_id,
        job_id=requested.job_id,
        occurred_at=later,
        definition=JobDefinition(image="img2", command="echo new", cron="*/5 * * * *"),
    )
    for e in (update, requested):  # the update is projected first: order must not matter
        projections.apply(e)
    job = cassandra.execute(
        f"SELECT * FROM {backends.keyspace}.jobs WHERE task_id=%s AND job_id=%s", (requested.task_id, requested.job_id)
    ).one()
    assert (job.image, job.command, job.scheduled) == ("img2", "echo new", True)
    assert job.created_at.replace(tzinfo=UTC) == requested.occurred_at.replace(
        microsecond=requested.occurred_at.microsecond // 1000 * 1000
    )
    assert job.last_modified_at.replace(tzinfo=UTC) > job.created_at.replace(tzinfo=UTC)
    assert '"cron":"*/5 * * * *"' in job.definition


def test_listing_rows_carry_the_latest_modification_and_the_job_count_whatever_the_order(
    backends: Settings, cassandra: Session
) -> None:
    recorder = Recorder(cassandra, ProjectionRows(cassandra, backends.keyspace), Indexes(cassandra, backends.keyspace))
    t0 = utcnow()
    task = f"listing-{uuid.uuid4().hex[:6]}-copy"
    requests = [
        JobRequested(
            task_id=task,
            job_id=uuid.uuid4(),
            occurred_at=t0 + timedelta(seconds=n),
            definition=JobDefinition(image="img", command="true"),
        )
        for n in range(3)
    ]
    # Newest first, then everything again (a replay): three jobs, last modified by the newest request.
    for event in [requests[2], requests[0], requests[1], *requests]:
        recorder.record(event)
    ks = backends.keyspace
    listed = cassandra.execute(
        f"SELECT created_at, last_modified_at, jobs_count FROM {ks}.tasks_by_creation WHERE bucket = %s"
        " AND created_at = %s AND task_id = %s",
        # the first request seen created the task, in the listing's partition of its hour
        (listing_bucket(requests[2].occurred_at), requests[2].occurred_at, task),
    ).one()
    assert listed is not None
    assert listed.jobs_count == 3
    newest = requests[2].occurred_at
    assert listed.last_modified_at.replace(tzinfo=UTC) == newest.replace(microsecond=newest.microsecond // 1000 * 1000)
    for word in ("listing", "copy"):
        row = cassandra.execute(
            f"SELECT jobs_count, last_modified_at FROM {ks}.task_words WHERE word = %s AND created_at = %s"
            " AND task_id = %s",
            (word, listed.created_at, task),
        ).one()
        assert row is not None and row.jobs_count == 3 and row.last_modified_at == listed.last_modified_at


def test_the_definition_a_job_order_wrote_reads_back_whole_and_a_missing_row_reads_as_none(
    projections: Projections, cassandra: Session, backends: Settings
) -> None:
    requested, *_ = lifecycle()
    webhooks = {"finishes": [Webhook(url="http://h/f", headers={"X": "1"}, retries=2)]}
    changes = {"envs": {"A": "1"}, "cron": "*/5 * * * *", "webhooks": webhooks, "notify": {"fails": ["a@x.io"]}}
    definition = requested.definition.model_copy(update=changes)
    jobs = JobDefinitions(cassandra, backends.keyspace)
    assert jobs.definition(requested.task_id, requested.job_id) is None
    projections.apply(requested.model_copy(update={"definition": definition}))
    assert jobs.definition(requested.task_id, requested.job_id) == definition
