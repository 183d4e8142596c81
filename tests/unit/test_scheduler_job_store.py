"""The scheduler's jobs in memory (pending work loaded per partition, the archive read once when an order needs
it) and the rebalance callbacks that load and forget partitions, on a fake source of states."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from services.scheduler.job_store import RETIRE_PER_STEP, Changed, JobStore
from services.scheduler.rebalance import Rebalances
from services.scheduler.state import JobState, Timer
from shared.contract.events import JobDefinition
from tests.fakes.scheduler import ARCHIVE, STATE, FakeSource

SOON = datetime.now(UTC) + timedelta(hours=1)
NO_CONSUMER = cast(Consumer, None)


def job(pending: bool = True) -> JobState:
    timers = (Timer(fire_at=SOON, kind="start"),) if pending else ()
    return JobState(task_id="t", job_id=uuid.uuid4(), definition=JobDefinition(image="i", command="c"), timers=timers)


def store_on(source: FakeSource) -> JobStore:
    return JobStore(source, STATE, ARCHIVE)


def loaded(partition: int, pending: tuple[JobState, ...] = (), archived: tuple[JobState, ...] = ()) -> JobStore:
    """A store that owns `partition`, whose state topic holds `pending` and archive `archived`."""
    source = FakeSource()
    source.put(STATE, partition, *pending)
    source.put(ARCHIVE, partition, *archived)
    store = store_on(source)
    store.load(partition)
    return store


def reads(store: JobStore) -> list[tuple[str, int]]:
    assert isinstance(store.source, FakeSource)
    return store.source.reads


def test_a_loaded_partition_keeps_its_pending_jobs_and_tracks_their_timers() -> None:
    pending = job()
    store = loaded(2, pending=(pending,))
    assert store.owns(2) and not store.owns(0)
    assert store.pending(2, pending.job_id) == pending
    assert list(store.timers.due(SOON.timestamp(), store.jobs)) == [(pending.job_id, 2)]
    assert reads(store) == [(STATE, 2)]  # the archive is not read on a load


def test_idle_states_left_on_the_state_topic_are_handed_out_for_retirement_in_bounded_batches() -> None:
    legacy = tuple(job(pending=False) for _ in range(RETIRE_PER_STEP + 3))
    store = loaded(0, pending=legacy)
    first = list(store.to_retire())
    assert len(first) == RETIRE_PER_STEP
    rest = list(store.to_retire())
    assert len(rest) == 3
    assert {j for j, _ in first + rest} == {s.job_id for s in legacy}
    assert list(store.to_retire()) == []


def test_the_archive_of_a_partition_is_read_once_until_the_partition_is_dropped() -> None:
    finished = job(pending=False)
    store = loaded(1, archived=(finished,))
    assert store.archived(1) == {finished.job_id: finished}
    assert store.archived(1) == {finished.job_id: finished}
    assert reads(store).count((ARCHIVE, 1)) == 1
    store.drop(1)
    assert not store.owns(1)
    store.load(1)
    store.archived(1)
    assert reads(store).count((ARCHIVE, 1)) == 2


def test_a_committed_change_keeps_pending_jobs_and_moves_idle_ones_to_the_archive_read() -> None:
    running, other = job(), job()
    store = loaded(0, pending=(running, other))
    store.archived(0)  # read already: the store keeps it in step
    done = running.model_copy(update={"timers": ()})
    later = other.model_copy(update={"timers": (Timer(fire_at=SOON + timedelta(hours=1), kind="retry"),)})
    changed: Changed = {running.job_id: (0, done, b""), other.job_id: (0, later, b"")}
    store.committed(changed)
    assert store.pending(0, running.job_id) is None
    assert store.archived(0) == {running.job_id: done}
    assert store.pending(0, other.job_id) == later


def test_a_deleted_job_leaves_the_archive_read_and_changes_to_a_partition_no_longer_owned_are_ignored() -> None:
    finished = job(pending=False)
    store = loaded(0, archived=(finished,))
    store.archived(0)
    stranger = job()
    store.committed({finished.job_id: (0, None, None), stranger.job_id: (5, stranger, b"")})
    assert store.archived(0) == {}
    assert not store.owns(5)


def test_a_reload_forgets_everything_and_reads_the_partitions_again() -> None:
    kept = job()
    store = loaded(0, pending=(kept,))
    store.load(3)
    store.committed({uuid.uuid4(): (0, job(), b"")})  # in memory only: the transaction is gone after a failure
    store.reload({0})
    assert store.jobs == {0: {kept.job_id: kept}}
    assert len(store.timers) == 1


def test_an_assignment_loads_only_the_partitions_not_held_already() -> None:
    source = FakeSource()
    store = store_on(source)
    store.load(0)
    failures: list[None] = []
    rebalances = Rebalances(store, on_load_failure=lambda: failures.append(None))
    rebalances.on_assign(
        NO_CONSUMER, [TopicPartition("jobs", 0), TopicPartition("executions", 0), TopicPartition("jobs", 4)]
    )
    assert source.reads == [(STATE, 0), (STATE, 4)]
    assert sorted(store.jobs) == [0, 4]
    assert rebalances.count == 1 and failures == []


def test_a_load_that_fails_during_an_assignment_asks_for_a_reload() -> None:
    source = FakeSource()
    source.failure = KafkaException(KafkaError(KafkaError._TRANSPORT, "broker away"))
    store = store_on(source)
    failures: list[None] = []
    rebalances = Rebalances(store, on_load_failure=lambda: failures.append(None))
    rebalances.on_assign(NO_CONSUMER, [TopicPartition("jobs", 1)])
    assert failures == [None]
    assert not store.owns(1)


def test_revoked_partitions_are_forgotten_and_every_rebalance_is_counted() -> None:
    source = FakeSource()
    store = store_on(source)
    rebalances = Rebalances(store, on_load_failure=lambda: None)
    rebalances.on_assign(NO_CONSUMER, [TopicPartition("jobs", 0), TopicPartition("jobs", 1)])
    rebalances.on_revoke(NO_CONSUMER, [TopicPartition("jobs", 1), TopicPartition("executions", 1)])
    assert sorted(store.jobs) == [0]
    assert rebalances.count == 2
