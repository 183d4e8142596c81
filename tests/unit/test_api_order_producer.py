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
