"""The scheduler's loop on fakes (consumer, producer, state source): when a step is committed, what one
transaction writes where, which offsets it carries, and how a failure sends the loop back to the last commit.
The same loop on a real Kafka: tests/integration/test_scheduler.py and tests/e2e/test_scheduler_faults.py."""

import threading
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message

from services.scheduler.handlers import Output, Policy
from services.scheduler.job_store import JobStore
from services.scheduler.loop import NO_OP_OFFSETS_EVERY_S, Scheduler
from services.scheduler.state import JobState
from services.scheduler.step import Step
from services.scheduler.transactions import TransactionGuard
from shared.contract.events import (
    ExecutionDue,
    ExecutionFinished,
    ExecutionStarted,
    JobDefinition,
    JobMessage,
    JobRequested,
    StopExecution,
    encode,
    new_execution_id,
    utcnow,
)
from shared.contract.topics import Topics
from shared.infra.kafka.consumer_stall import StallWatch
from tests.fakes.scheduler import ARCHIVE, STATE, FakeConsumer, FakeProducer, FakeSource, Producers

TOPICS = Topics(
    jobs="jobs",
    due="due",
    executions="executions",
    control="control",
    heartbeats="heartbeats",
    scheduler_state=STATE,
    scheduler_archive=ARCHIVE,
    dead_letter="dlq",
)
DEFINITION = JobDefinition(image="img", command="true")


def scheduler_on(consumer: FakeConsumer, *producers: FakeProducer) -> tuple[Scheduler, Producers]:
    made = Producers(*producers)
    store = JobStore(FakeSource(), STATE, ARCHIVE)
    for tp in consumer.assigned:
        store.load(tp.partition)
    scheduler = Scheduler(consumer, TransactionGuard(made, timeout=1.0), store, TOPICS, Policy(), 1_000_000)
    scheduler.transactions.prepare()
    return scheduler, made


def record(event: JobMessage, partition: int = 0, offset: int = 0) -> Message:
    return Message(topic="jobs", partition=partition, offset=offset, key=event.key, value=encode(event))


def runs_now() -> JobRequested:
    return JobRequested(task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), definition=DEFINITION)


def offsets_sent(producer: FakeProducer) -> int:
    return producer.calls.count("send_offsets_to_transaction")


def test_a_step_that_decides_is_one_transaction_of_state_messages_and_offsets() -> None:
    consumer = FakeConsumer(0)
    consumer.positions[0] = 1
    scheduler, made = scheduler_on(consumer)
    order = runs_now()
    scheduler._step([record(order)])
    [producer] = made.made
    assert producer.calls[-3:] == ["begin_transaction", "send_offsets_to_transaction", "commit_transaction"]
    assert [topic for topic, _ in producer.produced] == [STATE, "due"]
    assert producer.produced[0][1]["partition"] == 0 and producer.produced[0][1]["key"] == order.key
    kept = scheduler.store.pending(0, order.job_id)
    assert kept is not None and order.execution_id in kept.running
    assert not scheduler.uncommitted and not scheduler.needs_reload


def test_messages_that_change_nothing_get_their_offsets_committed_later_with_no_transaction_of_their_own() -> None:
    scheduler, made = scheduler_on(FakeConsumer(0))
    job = runs_now()
    started = ExecutionStarted(task_id="t", job_id=job.job_id, execution_id=uuid.uuid4(), host="h", container_id="c")
    scheduler._step([record(started)])
    assert "begin_transaction" not in made.made[0].calls
    assert scheduler.uncommitted
    scheduler.committed_at = time.monotonic() - NO_OP_OFFSETS_EVERY_S
    scheduler._step([])
    assert offsets_sent(made.made[0]) == 1 and made.made[0].produced == []
    assert not scheduler.uncommitted


def test_a_failed_transaction_sends_the_loop_back_to_the_last_commit_with_memory_unchanged() -> None:
    failing = FakeProducer(fail={"commit_transaction": KafkaException(KafkaError(KafkaError._TIMED_OUT, "slow"))})
    scheduler, _ = scheduler_on(FakeConsumer(0), failing)
    order = runs_now()
    scheduler._step([record(order)])
    assert failing.calls[-1] == "abort_transaction"
    assert scheduler.needs_reload and scheduler.uncommitted
    assert scheduler.store.pending(0, order.job_id) is None


def test_an_idle_job_leaves_the_state_topic_for_the_archive_and_messages_go_to_their_topics() -> None:
    scheduler, made = scheduler_on(FakeConsumer(3))
    idle = JobState(task_id="t", job_id=uuid.uuid4(), definition=DEFINITION)
    execution = uuid.uuid4()
    messages: list[Output] = [
        ExecutionDue(task_id="t", job_id=idle.job_id, execution_id=execution, image="i", command="c"),
        StopExecution(task_id="t", job_id=idle.job_id, execution_id=execution),
        ExecutionFinished(task_id="t", job_id=idle.job_id, execution_id=execution, status="failed"),
    ]
    step = Step(scheduler.store, Policy(), utcnow())
    step.changed[idle.job_id] = (3, idle, b"state")
    step.out.extend((m, encode(m)) for m in messages)
    scheduler._commit(step)
    written = [(topic, r.get("partition"), r.get("value")) for topic, r in made.made[0].produced]
    assert written[:2] == [(STATE, 3, None), (ARCHIVE, 3, b"state")]
    assert [topic for topic, _, _ in written[2:]] == ["due", "control", "executions"]


def test_a_partition_not_fetched_yet_commits_its_committed_offset_or_else_its_start() -> None:
    consumer = FakeConsumer(0, 1, 2)
    consumer.positions = {0: 12, 1: -1001, 2: -1001}
    consumer.committed_offsets = {1: 7}
    consumer.low_watermark = 3
    scheduler, _ = scheduler_on(consumer)
    offsets = {tp.partition: tp.offset for tp in scheduler._offsets()}
    assert offsets == {0: 12, 1: 7, 2: 3}


def test_no_assignment_means_nothing_may_be_committed() -> None:
    consumer = FakeConsumer()
    scheduler, made = scheduler_on(consumer)
    scheduler.committed_at = time.monotonic() - NO_OP_OFFSETS_EVERY_S
    scheduler._step([record(runs_now())])
    assert "commit_transaction" not in made.made[0].calls
    assert made.made[0].calls[-1] == "abort_transaction"


def test_a_reload_seeks_every_assigned_partition_to_its_committed_offset_and_reads_the_states_again() -> None:
    consumer = FakeConsumer(0, 1)
    consumer.committed_offsets = {0: 5}
    scheduler, _ = scheduler_on(consumer)
    forgotten = JobState(task_id="t", job_id=uuid.uuid4(), definition=DEFINITION)
    scheduler.store.committed({forgotten.job_id: (0, forgotten, b"")})  # not committed in fact: a failure followed
    scheduler.needs_reload = True
    scheduler._reload()
    assert consumer.seeks == [(0, 5), (1, OFFSET_BEGINNING)]
    assert scheduler.store.jobs == {0: {}, 1: {}} and not scheduler.needs_reload


def test_a_partition_that_refuses_the_seek_is_assigned_again_at_its_committed_offset() -> None:
    # After a broker pause, librdkafka may hold a partition whose committed offset could not be read: every seek
    # then fails with "Erroneous state", forever (the scheduler stayed stuck for minutes before this).
    consumer = FakeConsumer(0, 1)
    consumer.committed_offsets = {0: 5, 1: 9}
    scheduler, _ = scheduler_on(consumer)
    consumer.seek_refused = True
    scheduler.needs_reload = True
    scheduler._reload()
    assert consumer.assigns == [[(0, 5), (1, 9)]]
    assert not scheduler.needs_reload


def test_assigned_partitions_start_at_offsets_the_scheduler_read_itself() -> None:
    # librdkafka's own read of them can fail once for good after a broker pause (issue 5586): never fetched.
    consumer = FakeConsumer(0, 1)
    consumer.committed_offsets = {0: 7}
    scheduler = Scheduler(
        consumer,
        TransactionGuard(Producers(), timeout=1.0),
        JobStore(FakeSource(), STATE, ARCHIVE),
        TOPICS,
        Policy(),
        1_000_000,
    )
    consumer.subscribe(["jobs"], on_assign=scheduler.rebalances.on_assign)
    consumer.poll(0)
    assert consumer.assigns == [[(0, 7), (1, OFFSET_BEGINNING)]]
    assert not scheduler.needs_reload

    def unreadable(partitions: list[Any], timeout: float) -> list[Any]:
        raise KafkaException(KafkaError(KafkaError.NOT_COORDINATOR, "Not coordinator"))

    consumer.committed = unreadable  # type: ignore[method-assign]
    consumer.subscribe(["jobs"], on_assign=scheduler.rebalances.on_assign)
    consumer.poll(0)
    assert len(consumer.assigns) == 1 and scheduler.needs_reload  # the reload sets the offsets


def test_a_fenced_producer_is_replaced_and_the_loop_goes_on_from_the_last_commit() -> None:
    fencing = KafkaException(KafkaError(KafkaError._FENCED, "fenced by a newer producer", fatal=True))
    fenced = FakeProducer(fail={"send_offsets_to_transaction": fencing})
    consumer = FakeConsumer(0)
    made = Producers(fenced)
    scheduler = Scheduler(
        consumer, TransactionGuard(made, timeout=1.0), JobStore(FakeSource(), STATE, ARCHIVE), TOPICS, Policy(), 1_000
    )
    order = runs_now()
    consumer.pending = [record(order)]
    stop = threading.Event()
    polls: list[None] = []

    def idle() -> None:
        polls.append(None)
        replaced = len(made.made) == 2
        if len(polls) > 50 or (replaced and offsets_sent(made.made[1]) == 1):
            stop.set()
        elif replaced:
            consumer.pending = [record(order)]  # read again from the committed offset after the reload

    consumer.idle = idle
    scheduler.run(stop)
    assert len(made.made) == 2, "the fenced producer was not replaced"
    assert offsets_sent(made.made[1]) == 1, "the order was never committed by the new producer"
    assert "abort_transaction" not in fenced.calls
    assert made.made[1].calls[0] == "init_transactions"
    assert consumer.seeks == [(0, OFFSET_BEGINNING)]
    assert consumer.closed and made.made[1].calls[-1] == "flush"


def test_a_consumer_that_keeps_failing_is_replaced_by_a_new_one(monkeypatch: Any) -> None:
    import services.scheduler.loop as loop_module

    monkeypatch.setattr(loop_module, "RENEW_CONSUMER_AFTER_S", 0.0)
    monkeypatch.setattr(loop_module, "pause_after", lambda failures: 0.01)
    broken = FakeConsumer(0)

    def never_answers(timeout: float) -> Message | None:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to get committed offsets: Local: Timed out"))

    broken.poll = never_answers  # type: ignore[method-assign]
    fresh = FakeConsumer(0, 1)
    fresh.committed_offsets = {0: 3}
    stop = threading.Event()
    fresh.idle = stop.set
    scheduler = Scheduler(
        broken,
        TransactionGuard(Producers(FakeProducer(), FakeProducer()), timeout=1.0),
        JobStore(FakeSource(), STATE, ARCHIVE),
        TOPICS,
        Policy(),
        1_000_000,
        new_consumer=lambda: fresh,
    )
    runner = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    runner.start()
    runner.join(10)
    assert not runner.is_alive()
    assert broken.closed and scheduler.consumer is fresh
    assert fresh.assigns == [[(0, 3), (1, OFFSET_BEGINNING)]]  # assigned at the committed offsets
    assert scheduler.store.jobs == {0: {}, 1: {}}  # the new assignment's states were loaded


class StallsOnce(StallWatch):
    """A watch that finds the first consumer it is asked about stalled, and no other."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[object] = []

    def stalled(self, consumer: Any) -> bool:
        self.asked.append(consumer)
        return len(self.asked) == 1


def test_a_consumer_that_stalls_without_failing_is_replaced_and_the_new_assignment_loaded() -> None:
    quiet = FakeConsumer(0)  # polls answer nothing and nothing raises: only the statistics tell
    fresh = FakeConsumer(0, 1)
    fresh.committed_offsets = {0: 3}
    stop = threading.Event()
    fresh.idle = stop.set
    watch = StallsOnce()
    producers = Producers(FakeProducer(), FakeProducer())
    scheduler = Scheduler(
        quiet,
        TransactionGuard(producers, timeout=1.0),
        JobStore(FakeSource(), STATE, ARCHIVE),
        TOPICS,
        Policy(),
        1_000_000,
        new_consumer=lambda: fresh,
        stall_watch=watch,
    )
    runner = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    runner.start()
    runner.join(10)
    assert not runner.is_alive()
    assert quiet.closed and scheduler.consumer is fresh
    assert watch.asked[0] is quiet and all(c is fresh for c in watch.asked[1:])
    assert fresh.assigns == [[(0, 3), (1, OFFSET_BEGINNING)]]  # assigned at the committed offsets
    assert scheduler.store.jobs == {0: {}, 1: {}}
    assert len(producers.made) == 2  # the producer is replaced too: its transaction state is not trusted


def test_a_message_outside_the_contract_is_parked_and_said_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    consumer = FakeConsumer(0)
    consumer.positions[0] = 8
    scheduler, made = scheduler_on(consumer)
    garbage = Message(topic="jobs", partition=0, offset=7, key=b"job-key", value=b"\x00not json")
    with caplog.at_level("ERROR", logger="scheduler"):
        scheduler._step([garbage])
    [producer] = made.made
    assert [topic for topic, _ in producer.produced] == ["dlq"]
    [line] = [r for r in caplog.records if r.getMessage() == "message parked on the dead-letter topic"]
    assert (line.__dict__["key"], line.__dict__["offset"], line.__dict__["partition"]) == ("job-key", 7, 0)
    assert "not an event of the contract" in line.__dict__["reason"]
