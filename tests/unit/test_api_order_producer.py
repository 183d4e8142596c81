"""The API's order publisher keeps a producer whose transactions' initialisation timed out and initialises it
again with the next orders (a coordinator moving after a broker's death), instead of making and dropping one
per batch; a producer whose initialisation failed for good is dropped."""

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from services.api.orders import NotEnqueued, OrderPublisher
from shared.process.settings import Settings


class InitFails:
    """A producer whose init_transactions raises `errors` in turn, then succeeds; it publishes nothing."""

    def __init__(self, *errors: KafkaError) -> None:
        self.errors = list(errors)
        self.inits = 0

    def init_transactions(self, timeout: float) -> None:
        self.inits += 1
        if self.errors:
            raise KafkaException(self.errors.pop(0))

    def __getattr__(self, name: str) -> Any:
        raise KafkaException(KafkaError(KafkaError._STATE, f"{name}: not in this test"))


def timed_out() -> KafkaError:
    return KafkaError(KafkaError._TIMED_OUT, "Failed to initialize Producer ID", retriable=True)


@pytest.mark.parametrize(("error", "kept"), [(timed_out(), True), (KafkaError(KafkaError._FATAL, "fenced"), False)])
def test_a_timed_out_init_is_tried_again_on_the_same_producer(error: KafkaError, kept: bool) -> None:
    made: list[InitFails] = []

    def make() -> InitFails:
        made.append(InitFails(error) if not made else InitFails())
        return made[-1]

    publisher = OrderPublisher(Settings(), ack_timeout_s=0.5)
    publisher._make_producer = make  # type: ignore[method-assign,assignment]
    try:
        with pytest.raises(NotEnqueued, match="no transactional producer"):
            publisher.publish("t", b"k", b"v")
        with pytest.raises(NotEnqueued):  # begin_transaction is not in this test: refused, after the init
            publisher.publish("t", b"k", b"v")
    finally:
        publisher.close()
    if kept:
        assert len(made) == 1 and made[0].inits == 2
    else:
        assert len(made) == 2 and made[1].inits == 1


class AbortTimesOutOnce:
    """A producer whose first transaction is not acknowledged and whose abort of it times out once."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.aborts = 0

    def init_transactions(self, timeout: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, topic: str, **_kwargs: Any) -> None:
        self.calls.append("produce")

    def flush(self, timeout: float) -> int:
        self.calls.append("flush")
        return 1 if self.calls.count("flush") == 1 else 0  # the first transaction's order is not acknowledged

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")
        self.aborts += 1
        if self.aborts == 1:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "retry call to resume", retriable=True))

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit")

    def purge(self, *_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a transactional producer is never purged (librdkafka crashed doing it)")


def test_an_abort_that_timed_out_is_asked_again_on_the_same_producer_before_the_next_transaction() -> None:
    made: list[AbortTimesOutOnce] = []

    def make() -> AbortTimesOutOnce:
        made.append(AbortTimesOutOnce())
        return made[-1]

    publisher = OrderPublisher(Settings(), ack_timeout_s=0.5)
    publisher._make_producer = make  # type: ignore[method-assign,assignment]
    try:
        with pytest.raises(NotEnqueued, match="did not acknowledge"):
            publisher.publish("t", b"k", b"v")
        publisher.publish("t", b"k", b"v")  # enqueued: the abort ended first
    finally:
        publisher.close()
    assert len(made) == 1
    first, second = ["begin", "produce", "flush", "abort"], ["abort", "begin", "produce", "flush", "commit"]
    assert made[0].calls == ["init", *first, *second]
