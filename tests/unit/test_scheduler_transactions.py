"""The scheduler's transaction guard, on a fake producer: what it does when a transactional call fails, hangs
or is fenced (the real producer's failures are reached by tests/integration/test_scheduler.py and the e2e
fault tests)."""

import threading
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from services.scheduler import transactions
from services.scheduler.transactions import Stuck, TransactionalProducer, TransactionGuard, bounded
from tests.fakes.scheduler import FakeProducer, Producers

POSITIONS = [TopicPartition("jobs", 0, 7)]
METADATA = object()


@pytest.fixture(autouse=True)
def short_margin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(transactions, "STUCK_MARGIN_S", 0.2)
    yield


def write_one(producer: TransactionalProducer) -> None:
    producer.produce("due", value=b"due")


def commit(guard: TransactionGuard) -> bool:
    return guard.commit(write_one, lambda: METADATA, lambda: POSITIONS)


def retriable() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._TIMED_OUT, "coordinator away"))


def fenced() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))


def test_a_transaction_writes_then_sends_the_offsets_with_the_group_metadata_then_commits() -> None:
    producers = Producers()
    guard = TransactionGuard(producers, timeout=1.0)
    guard.prepare()
    assert commit(guard) is True
    [producer] = producers.made
    assert producer.calls == [
        "init_transactions",
        "begin_transaction",
        "send_offsets_to_transaction",
        "commit_transaction",
    ]
    assert producer.produced == [("due", {"value": b"due"})]
    [(offsets, metadata)] = producer.sent
    assert offsets == POSITIONS and metadata is METADATA


def test_transactions_are_initialised_once_per_producer_and_again_after_a_failed_init() -> None:
    first = FakeProducer(fail={"init_transactions": retriable()})
    producers = Producers(first)
    guard = TransactionGuard(producers, timeout=1.0)
    with pytest.raises(KafkaException):
        guard.prepare()
    first.fail.clear()
    guard.prepare()
    guard.prepare()
    assert first.calls == ["init_transactions", "init_transactions"]
    assert len(producers.made) == 1


def test_a_failed_commit_is_aborted_and_the_producer_kept() -> None:
    producer = FakeProducer(fail={"commit_transaction": retriable()})
    producers = Producers(producer)
    guard = TransactionGuard(producers, timeout=1.0)
    guard.prepare()
    assert commit(guard) is False
    assert producer.calls[-2:] == ["commit_transaction", "abort_transaction"]
    assert not guard.broken
    guard.prepare()
    assert guard.producer is producer and len(producers.made) == 1


def test_offsets_that_cannot_be_known_abort_the_transaction() -> None:
    producers = Producers()
    guard = TransactionGuard(producers, timeout=1.0)
    guard.prepare()

    def no_positions() -> list[TopicPartition]:
        raise KafkaException(KafkaError(KafkaError._STATE, "no partitions assigned"))

    assert guard.commit(write_one, lambda: METADATA, no_positions) is False
    assert producers.made[0].calls[-2:] == ["begin_transaction", "abort_transaction"]


def test_an_abort_that_fails_too_leaves_the_producer_broken_and_the_next_step_replaces_it() -> None:
    wedged = FakeProducer(fail={"commit_transaction": retriable(), "abort_transaction": retriable()})
    producers = Producers(wedged)
    guard = TransactionGuard(producers, timeout=1.0)
    guard.prepare()
    assert commit(guard) is False
    assert guard.broken
    guard.prepare()
    [_, successor] = producers.made
    assert guard.producer is successor and not guard.broken
    assert wedged.calls[-1] == "purge"
    assert successor.calls == ["init_transactions"]  # its init fences the wedged one (same transactional id)


def test_a_fatal_error_is_raised_for_the_loop_without_an_abort() -> None:
    producer = FakeProducer(fail={"send_offsets_to_transaction": fenced()})
    guard = TransactionGuard(Producers(producer), timeout=1.0)
    guard.prepare()
    with pytest.raises(KafkaException) as raised:
        commit(guard)
    assert raised.value.args[0].fatal()
    assert "abort_transaction" not in producer.calls


def test_a_call_that_never_returns_is_stuck_and_the_producer_replaced() -> None:
    hung = FakeProducer(fail={"send_offsets_to_transaction": "hang"})
    producers = Producers(hung)
    guard = TransactionGuard(producers, timeout=0.05)
    guard.prepare()
    try:
        assert commit(guard) is False
        assert guard.broken
        assert "commit_transaction" not in hung.calls
        guard.prepare()
        assert guard.producer is producers.made[1]
    finally:
        hung.released.set()


def test_bounded_passes_the_timeout_last_and_raises_the_calls_error_in_the_callers_thread() -> None:
    seen: list[tuple[object, ...]] = []

    def call(*args: object) -> None:
        seen.append(args)

    bounded(call, 1.5, "a", "b")
    assert seen == [("a", "b", 1.5)]

    def failing(_timeout: float) -> None:
        raise ValueError("from the call")

    with pytest.raises(ValueError, match="from the call"):
        bounded(failing, 1.0)


def test_bounded_gives_up_after_the_timeout_and_its_margin() -> None:
    release = threading.Event()
    try:
        with pytest.raises(Stuck, match="did not return within"):
            bounded(lambda timeout: release.wait(10), 0.05)
    finally:
        release.set()
