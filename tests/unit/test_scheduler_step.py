"""One step of the scheduler's loop, without Kafka: the decisions on a batch of consumed records and on the
timers due, gathered as what one transaction writes (states, messages, parked records)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from services.scheduler import handlers, step
from services.scheduler.handlers import Policy
from services.scheduler.job_store import JobStore
from services.scheduler.state import JobState, Timer
from services.scheduler.step import decide
from shared.contract.events import (
    ExecutionDue,
    ExecutionFinished,
    JobDefinition,
    JobMessage,
    JobRequested,
    JobUpdated,
    RunnerHeartbeat,
    encode,
    new_execution_id,
)
from tests.fakes.scheduler import ARCHIVE, STATE, FakeSource

POLICY = Policy()
DEFINITION = JobDefinition(image="img", command="true")


def record(event: JobMessage | RunnerHeartbeat, partition: int = 0, offset: int = 0) -> Message:
    return Message(topic="jobs", partition=partition, offset=offset, key=event.key, value=encode(event))


def runs_now(job_id: uuid.UUID | None = None) -> JobRequested:
    return JobRequested(
        task_id="t", job_id=job_id or uuid.uuid4(), execution_id=new_execution_id(), definition=DEFINITION
    )


def owning(*partitions: int, source: FakeSource | None = None) -> JobStore:
    store = JobStore(source or FakeSource(), STATE, ARCHIVE)
    for p in partitions:
        store.load(p)
    return store


def test_an_order_becomes_the_jobs_new_state_and_its_execution_due() -> None:
    order = runs_now()
    result = decide([record(order)], owning(0), POLICY)
    [(due, encoded)] = result.out
    assert isinstance(due, ExecutionDue) and due.execution_id == order.execution_id
    assert encoded == encode(due)
    partition, state, value = result.changed[order.job_id]
    assert partition == 0 and state is not None and order.execution_id in state.running
    assert value == state.model_dump_json().encode()
    assert result.parked == []


def test_records_of_partitions_not_owned_host_events_and_consumer_notices_are_passed_over() -> None:
    eof = Message(topic="jobs", partition=0, offset=3, error=KafkaError(KafkaError._PARTITION_EOF))
    batch = [record(runs_now(), partition=1), record(RunnerHeartbeat(host="h", capacity=1, running=0)), eof]
    assert not decide(batch, owning(0), POLICY).has_writes()


def test_a_record_that_is_not_an_event_of_the_contract_is_parked() -> None:
    junk = Message(topic="jobs", partition=0, offset=9, key=b"k", value=b"{not json")
    result = decide([junk], owning(0), POLICY)
    [(parked, why)] = result.parked
    assert parked is junk and why.startswith("not an event of the contract")
    assert result.changed == {} and result.out == []


def test_an_order_whose_handling_raises_is_parked_and_its_execution_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> handlers.Decision:
        raise RuntimeError("no way")

    monkeypatch.setitem(handlers.HANDLERS, JobRequested, broken)  # type: ignore[misc]
    order = runs_now()
    result = decide([record(order)], owning(0), POLICY)
    [(_msg, why)] = result.parked
    assert why == "RuntimeError: no way"
    [(failed, _)] = result.out
    assert isinstance(failed, ExecutionFinished)
    assert (failed.execution_id, failed.status) == (order.execution_id, "failed")
    assert result.changed == {}


def test_an_update_of_a_finished_job_starts_from_its_archived_state() -> None:
    source = FakeSource()
    finished = JobState(task_id="t", job_id=uuid.uuid4(), definition=DEFINITION, generation=4)
    source.put(ARCHIVE, 0, finished)
    update = JobUpdated(task_id="t", job_id=finished.job_id, definition=DEFINITION)
    result = decide([record(update)], owning(0, source=source), POLICY)
    state = result.changed[finished.job_id][1]
    assert state is not None and state.generation == 5
    assert (ARCHIVE, 0) in source.reads


def test_an_order_whose_archive_cannot_be_read_is_left_to_the_loop_not_parked() -> None:
    # Kafka away while the archive is read (a broker of the cluster killed): the step fails as a whole, the loop
    # goes back to the last commit and the order comes again; parking it would lose a retry or a stop.
    source = FakeSource()
    store = owning(0, source=source)
    source.failure = KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION, "Failed to get watermark offsets"))
    update = JobUpdated(task_id="t", job_id=uuid.uuid4(), definition=DEFINITION)
    with pytest.raises(KafkaException):
        decide([record(update)], store, POLICY)


def test_two_orders_for_one_job_in_a_batch_build_on_each_other() -> None:
    first = runs_now()
    second = runs_now(first.job_id)
    result = decide([record(first), record(second, offset=1)], owning(0), POLICY)
    state = result.changed[first.job_id][1]
    assert state is not None and set(state.running) == {first.execution_id, second.execution_id}
    assert len(result.out) == 2


def test_a_timer_due_fires_once_and_a_job_whose_timer_raises_has_its_schedule_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    source = FakeSource()
    due = JobState(task_id="t", job_id=uuid.uuid4(), definition=DEFINITION, timers=(Timer(fire_at=past, kind="start"),))
    source.put(STATE, 0, due)
    store = owning(0, source=source)
    store.timers.track(0, due)  # a second entry for the same job
    result = decide([], store, POLICY)
    assert [type(m) for m, _ in result.out] == [ExecutionDue]
    assert len(store.timers) == 0

    def poison(*_args: object) -> handlers.Decision:
        raise ValueError("bad schedule")

    monkeypatch.setattr(step, "fire_due_timers", poison)
    store.timers.track(0, due)
    [(failed, _)] = decide([], store, POLICY).out
    assert isinstance(failed, ExecutionFinished) and failed.status == "failed"
    assert failed.error is not None and "bad schedule" in failed.error


def test_a_naive_fire_time_sent_past_the_api_ends_its_own_job_and_holds_up_no_other() -> None:
    """A naive datetime cannot be compared with the clock: only its job is hurt, never the step (the timer-lag
    metric once raised here, before the job's own poison handling, and failed every step after)."""
    source = FakeSource()
    now = datetime.now(UTC)
    naive = JobState(
        task_id="t",
        job_id=uuid.uuid4(),
        definition=DEFINITION,
        timers=(Timer(fire_at=(now - timedelta(seconds=2)).replace(tzinfo=None), kind="start"),),
    )
    fine = JobState(task_id="t", job_id=uuid.uuid4(), definition=DEFINITION, timers=(Timer(fire_at=now, kind="start"),))
    source.put(STATE, 0, naive)
    source.put(STATE, 0, fine)
    result = decide([], owning(0, source=source), POLICY)
    by_job = {m.job_id: m for m, _ in result.out}
    assert isinstance(by_job[fine.job_id], ExecutionDue)
    assert len(result.timer_lags) >= 1 and all(lag >= 0 for lag in result.timer_lags)


def test_idle_jobs_left_on_the_state_topic_are_rewritten_to_go_to_the_archive() -> None:
    source = FakeSource()
    idle = JobState(task_id="t", job_id=uuid.uuid4(), definition=DEFINITION)
    source.put(STATE, 0, idle)
    result = decide([], owning(0, source=source), POLICY)
    assert result.changed == {idle.job_id: (0, idle, idle.model_dump_json().encode())}
    assert result.out == []
