"""The scheduler's state reader replaces its consumers after a failed read (a probe left with stale metadata by
a dead broker kept failing every later read in the cluster test), and keeps them while reads succeed."""

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from services.scheduler.state_reader import StateReader


class Probe:
    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.closed = False

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        if self.fails:
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION, "Failed to get watermark offsets"))
        return 0, 0  # an empty partition: nothing to read

    def close(self) -> None:
        self.closed = True


def test_a_failed_read_replaces_both_consumers_and_the_next_read_uses_the_new_ones() -> None:
    made: list[tuple[Probe, Probe]] = []

    def consumers() -> tuple[Probe, Probe]:
        pair = (Probe(fails=not made), Probe(fails=False))  # only the first probe is broken
        made.append(pair)
        return pair

    reader = StateReader(consumers)  # type: ignore[arg-type]
    with pytest.raises(KafkaException):
        reader.read_states("state", 1)
    assert len(made) == 2
    assert made[0][0].closed and made[0][1].closed
    assert reader.read_states("state", 1) == ({}, 0)
    assert reader.read_states("state", 2) == ({}, 0)
    assert len(made) == 2  # successful reads keep the consumers
