"""The runner's claim as a fence, against real Kafka, Cassandra and Docker: an execution taken from its host
is not reported by it, an end marked before a crash is reported again and never run again, and a claim whose
answer was lost still runs its execution (issue 14)."""

import threading
import uuid
from collections.abc import Iterator

import pytest
from cassandra.cluster import Session

from services.runner.bootstrap import serve
from services.runner.docker_runtime import DockerRuntime
from services.runner.ledger import CassandraLedger
from shared.contract.events import ExecutionDue, ExecutionFinished, ExecutionStarted, new_execution_id
from shared.contract.topics import Topics
from shared.domain.farms import Farm
from shared.infra.kafka.producer import EventProducer
from shared.process.settings import RunnerSettings
from tests.conftest import TEST_IMAGE
from tests.helpers import eventually, read_events, start_thread


def due(command: str) -> ExecutionDue:
    return ExecutionDue(
        task_id="fence", job_id=uuid.uuid4(), execution_id=new_execution_id(), image=TEST_IMAGE, command=command
    )


def events_of(settings: RunnerSettings, execution_id: uuid.UUID, kind: type) -> list[object]:
    found = read_events(settings.kafka_bootstrap, Topics.from_settings(settings).executions, 0, timeout=2)
    return [e for e in found if isinstance(e, kind) and e.execution_id == execution_id]


def containers_of(runtime: DockerRuntime, execution_id: uuid.UUID) -> list[str]:
    return [cid for cid, eid, _ in runtime.executions() if eid == str(execution_id)]


@pytest.fixture
def host() -> str:
    return f"fence-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def runner(own_topics: RunnerSettings, host: str) -> Iterator[threading.Thread]:
    """A runner of its own host name, watching every second."""
    settings = own_topics.model_copy(update={"host_name": host, "heartbeat_interval_s": 1.0, "stop_grace_s": 2.0})
    thread, stop = start_thread(serve, settings)
    yield thread
    stop.set()
    thread.join(30)
    assert not thread.is_alive()


@pytest.fixture
def ledger(own_topics: RunnerSettings, cassandra: Session) -> CassandraLedger:
    return CassandraLedger(cassandra, own_topics.keyspace)


def test_an_execution_taken_from_its_host_is_stopped_there_and_its_end_not_reported(
    own_topics: RunnerSettings, ledger: CassandraLedger, host: str, runner: threading.Thread
) -> None:
    """A peer declared this host lost (it was paused) and reported the execution failed: when this runner looks
    again, it stops the container and reports nothing, so the status cannot move from `failed` to `done`."""
    runtime = DockerRuntime(own_topics.docker_host)
    d = due("sh -c 'sleep 30; echo too late'")
    EventProducer(own_topics).publish(Topics.from_settings(own_topics).due, d)
    eventually(lambda: events_of(own_topics, d.execution_id, ExecutionStarted), timeout=60, what="the start")
    assert ledger.owner(d.execution_id) == host
    assert ledger.take_from_lost(d.execution_id, host)
    eventually(lambda: not containers_of(runtime, d.execution_id), timeout=20, what="the container stopped, removed")
    assert events_of(own_topics, d.execution_id, ExecutionFinished) == []
    assert d.execution_id not in {x.execution_id for x in ledger.held(host)}


def test_an_end_marked_before_a_crash_is_reported_again_and_never_run_again(
    own_topics: RunnerSettings, ledger: CassandraLedger, host: str, cassandra: Session
) -> None:
    """A runner marked the end (claim `done:<host>`, report kept) and died before publishing it; the container
    was gone. Restarted, it publishes the kept report and starts nothing."""
    d = due("echo must not run again")
    ledger.claim(d, host)
    report = ExecutionFinished(
        task_id=d.task_id, job_id=d.job_id, execution_id=d.execution_id, status="done", exit_code=0, stdout="kept\n"
    )
    assert ledger.finish(d.execution_id, host, report.model_dump_json())
    settings = own_topics.model_copy(update={"host_name": host, "heartbeat_interval_s": 1.0, "stop_grace_s": 2.0})
    thread, stop = start_thread(serve, settings)
    try:
        reported = eventually(lambda: events_of(own_topics, d.execution_id, ExecutionFinished), timeout=60, what="it")
        assert [(e.event_id, e.stdout) for e in reported] == [(report.event_id, "kept\n")]  # type: ignore[attr-defined]
        eventually(lambda: not ledger.held(host), timeout=30, what="the host's record dropped")
        assert events_of(own_topics, d.execution_id, ExecutionStarted) == []
    finally:
        stop.set()
        thread.join(30)


def test_a_claim_whose_answer_was_lost_still_runs_its_execution(
    own_topics: RunnerSettings, ledger: CassandraLedger, host: str, runner: threading.Thread
) -> None:
    """The claim's transaction applied but its answer timed out; the retry reads "not applied, owner = this
    host". That is this host's claim: the execution runs (it used to be dropped and stay `enqueued`)."""
    d = due("echo ran once")
    ledger.claim(d, host)
    ledger.done(d.execution_id, host)  # the claim is this host's; nothing holds it in memory or in the record
    EventProducer(own_topics).publish(Topics.from_settings(own_topics).due, d)
    finished = eventually(lambda: events_of(own_topics, d.execution_id, ExecutionFinished), timeout=60, what="its end")
    assert [(e.status, e.stdout) for e in finished] == [("done", "ran once\n")]  # type: ignore[attr-defined]
    assert len(events_of(own_topics, d.execution_id, ExecutionStarted)) == 1


def test_a_silent_peer_is_declared_lost_its_executions_failed_and_a_marked_end_reported(
    own_topics: RunnerSettings, ledger: CassandraLedger, host: str
) -> None:
    """A peer of the farm beat once and went silent, holding two executions: one running (claim `<peer>`), one
    whose end it marked with the report kept (`done:<peer>`) before it died. This runner fails the first with
    the lost-host reason and publishes the kept report of the second, then drops both from the peer's record."""
    peer = f"{host}-peer"
    running, ended = due("sleep 60"), due("echo ended")
    ledger.claim(running, peer)
    ledger.claim(ended, peer)
    report = ExecutionFinished(
        task_id=ended.task_id, job_id=ended.job_id, execution_id=ended.execution_id, status="done", stdout="ended\n"
    )
    assert ledger.finish(ended.execution_id, peer, report.model_dump_json())
    ledger.beat(peer)
    farms = [Farm.model_validate({"name": "default", "match": "", "hosts": [host, peer], "maxRunning": 2})]
    settings = own_topics.model_copy(
        update={"host_name": host, "heartbeat_interval_s": 1.0, "host_lost_after_s": 3.0, "farms": farms}
    )
    thread, stop = start_thread(serve, settings)
    try:
        failed = eventually(lambda: events_of(own_topics, running.execution_id, ExecutionFinished), timeout=60, what="")
        assert [(e.status, e.error) for e in failed] == [  # type: ignore[attr-defined]
            ("failed", f"host {peer} lost: its runner gave no sign of life for 3s")
        ]
        kept = eventually(lambda: events_of(own_topics, ended.execution_id, ExecutionFinished), timeout=30, what="")
        assert {e.event_id for e in kept} == {report.event_id}  # type: ignore[attr-defined]
        eventually(lambda: not ledger.held(peer), timeout=30, what="the peer's record emptied")
        assert ledger.owner(running.execution_id) == f"lost:{peer}"
    finally:
        stop.set()
        thread.join(30)
