"""The runner intake's guard against a consumer stalled after a broker pause (shared/infra/kafka/consumer_stall.py)
on a real broker: two runners' intakes of one farm group, through their rebalance, fetching and paused at
capacity, are never taken for stalled ones, and librdkafka's statistics carry what the guard reads (answers
received, the coordinator answering heartbeats, each assigned partition's fetch state). The stall itself comes
from a broker pause: the fault suite's round pause15s-kafka (tests/faults) is where the replacement is seen."""

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from services.runner.intake import Intake
from services.runner.slots import Slots
from shared.contract.events import Event
from shared.infra.kafka.consumer import consumer_config
from shared.infra.kafka.consumer_stall import Sample, StallWatch
from shared.process.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
# Four statistics (every 5 s) of the first consumer, three of the second (two are needed); the second joins at
# 6 s, so the watch covers both joins, the rebalance and 18 s after it: more than twice the 8 s stall limit.
WATCH_S = 24.0


@pytest.fixture(scope="module")
def topic(settings: Settings) -> Iterator[str]:
    """A topic of this test's own on the local broker (started by the project's script when it does not answer)."""
    subprocess.run([str(ROOT / "deploy" / "scripts" / "kafka.sh"), "start"], check=True, timeout=600)
    name = f"{settings.topic_prefix}stall-guard"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for i in range(40):
        producer.produce(name, key=str(i).encode(), value=b"not an event")
    producer.flush(30)
    yield name
    admin.delete_topics([name])


def not_an_event(_msg: object) -> Event | None:
    return None


class Watched(StallWatch):
    """A StallWatch that keeps every statistics sample it judged, with the assignment it was judged against."""

    def __init__(self, after_s: float) -> None:
        super().__init__(after_s)
        self.judged: list[tuple[Sample, set[tuple[str, int]]]] = []

    def stalled(self, consumer: Consumer) -> bool:  # type: ignore[override]
        sample = self.latest
        if sample is not None and (not self.judged or self.judged[-1][0] is not sample):
            self.judged.append((sample, {(tp.topic, tp.partition) for tp in consumer.assignment()}))
        return super().stalled(consumer)


def test_healthy_consumers_are_never_taken_for_stalled_ones(settings: Settings, topic: str) -> None:
    group = f"{settings.topic_prefix}stall-guard"
    stop = threading.Event()
    intakes: list[tuple[Intake, Watched]] = []
    for n in range(2):
        watch = Watched(after_s=8.0)  # three bad statistics in a row would do
        config = consumer_config(settings, group, on_stats=watch.statistics)
        slots = Slots(capacity=1, lookahead=0)
        if n == 1:  # the second runner is at capacity all along: its partitions stay paused (not a stall)
            slots.hold(uuid.uuid4())
        intake = Intake(lambda c=config: Consumer(c), topic, slots, not_an_event, watch)
        intakes.append((intake, watch))
    renewed, taken = 0, 0
    try:
        intakes[0][0].join()
        deadline = time.monotonic() + WATCH_S
        while time.monotonic() < deadline:
            if not intakes[1][0].joined and time.monotonic() > deadline - WATCH_S + 6:
                intakes[1][0].join()  # a second runner joins: a rebalance moves partitions between them
            for intake, _watch in intakes:
                if not intake.joined:
                    continue
                renewed += intake.renew_if_stalled(stop)
                polled = intake.poll()
                intake.store_done()
                if polled is not None:
                    taken += 1
                    intake.done_with(polled[1])
    finally:
        for intake, _watch in intakes:
            intake.close()
    assert renewed == 0
    assert taken > 0
    for _intake, watch in intakes:
        answered = [(s, assigned) for s, assigned in watch.judged if s.answered]
        assert len(answered) >= 2, watch.judged
        for sample, assigned in answered:
            assert sample.coordinator and sample.member and sample.heartbeats
            assert not (assigned & sample.not_fetched), (assigned, sample)
    # Partitions the first one does not hold are "not fetched" in its statistics: the watch only minds its own.
    first = intakes[0][1].judged[-1]
    assert first[0].not_fetched - first[1], "expected the other consumer's partitions among the not fetched"
