"""The guard against a consumer stalled after a broker pause (shared/infra/kafka/consumer_stall.py), on made-up
librdkafka statistics and fake consumers: when it says "stalled", when it does not, and what the runner's intake
and the shared consumer loop do then."""

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

import shared.infra.kafka.consumer as consumer_module
from services.runner.intake import Intake
from services.runner.slots import Slots
from shared.contract.events import Event
from shared.infra.kafka.consumer import consumer_config, run_consumer
from shared.infra.kafka.consumer_stall import StallWatch, chain
from shared.process.metrics import LagStatistics
from shared.process.settings import Settings

TOPIC = "due"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stats(rx: int, fetch: dict[int, str], cgrp_state: str | None = "up", join_state: str = "steady") -> str:
    """librdkafka's statistics, the parts the watch reads: each broker's responses received (`rx`), the group's
    state and join state, each partition's fetch state (the "-1" pseudo-partition included, as librdkafka sends
    it)."""
    partitions: dict[str, Any] = {str(p): {"fetch_state": state, "consumer_lag": -1} for p, state in fetch.items()}
    partitions["-1"] = {"fetch_state": "none"}
    body: dict[str, Any] = {
        "brokers": {"127.0.0.2:9092/1": {"nodeid": 1, "state": "UP", "rx": rx}},
        "topics": {TOPIC: {"partitions": partitions}},
    }
    if cgrp_state is not None:
        body["cgrp"] = {"state": cgrp_state, "join_state": join_state}
    return json.dumps(body)


class Assigned:
    """A consumer's assignment, and a broker that answers metadata requests (`answers`) or not."""

    def __init__(self, *partitions: int, answers: bool = False) -> None:
        self.partitions = list(partitions)
        self.answers = answers
        self.asked = 0
        self.probed = 0

    def assignment(self) -> list[TopicPartition]:
        self.asked += 1
        return [TopicPartition(TOPIC, p) for p in self.partitions]

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> object:
        self.probed += 1
        if not self.answers:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "paused broker"))
        return object()


def feed(watch: StallWatch, clock: Clock, consumer: Assigned, samples: list[str], every_s: float = 5.0) -> list[bool]:
    """Each sample `every_s` apart, and what `stalled` said after each."""
    said = []
    for raw in samples:
        clock.now += every_s
        watch.statistics(raw)
        said.append(watch.stalled(consumer))
    return said


def test_an_assigned_partition_never_fetched_while_the_broker_answers_is_a_stall_after_the_limit() -> None:
    clock = Clock()
    watch = StallWatch(after_s=20.0, clock=clock)
    consumer = Assigned(0, 1)
    # Partition 1 stays in fetch state "none" (librdkafka issue 5586); heartbeats keep being answered (rx grows).
    said = feed(watch, clock, consumer, [stats(10 * i, {0: "active", 1: "none"}) for i in range(1, 8)])
    # The first sample has nothing to compare rx with; the stall counts from the second (t=10), so t=30 says so.
    assert said == [False, False, False, False, False, True, True]
    assert watch.why()["not_fetched"] == [f"{TOPIC}[1]"]
    assert consumer.probed == 1  # the first statistics only: after that, the answers received say it


def test_a_consumer_stuck_outside_its_group_and_sending_nothing_is_a_stall_when_the_broker_answers() -> None:
    clock = Clock()
    watch = StallWatch(after_s=10.0, clock=clock)
    # Not a settled member (no assignment), receiving nothing: a metadata request tells whether the broker answers.
    silent = [stats(3, {}, join_state="wait-unassign-to-complete")] * 4
    consumer = Assigned(answers=True)
    assert feed(watch, clock, consumer, silent) == [False, False, True, True]
    assert consumer.probed == 4 and watch.why()["member"] is False


def test_no_group_coordinator_while_the_broker_answers_is_a_stall() -> None:
    clock = Clock()
    watch = StallWatch(after_s=10.0, clock=clock)
    said = feed(watch, clock, Assigned(), [stats(5 * i, {}, cgrp_state="wait-coord") for i in range(1, 5)])
    assert said == [False, False, False, True]
    assert watch.why()["coordinator"] is False


def test_a_broker_that_answers_nothing_is_an_outage_not_a_stall() -> None:
    clock = Clock()
    watch = StallWatch(after_s=10.0, clock=clock)
    consumer = Assigned(0, answers=False)
    # A paused broker: nothing received, metadata requests time out; the partition not fetched, no coordinator.
    assert not any(feed(watch, clock, consumer, [stats(7, {0: "none"}, "query-coord", "init")] * 12))
    assert consumer.probed == 12
    # Back: the first answers start the count afresh (the pause itself does not count).
    consumer.answers = True
    said = feed(watch, clock, consumer, [stats(7 + i, {0: "none"}) for i in range(1, 5)])
    assert said == [False, False, True, True]


def test_healthy_or_recovering_consumers_are_left_alone() -> None:
    clock = Clock()
    watch = StallWatch(after_s=10.0, clock=clock)
    consumer = Assigned(0)
    # Partition 1 is another member's: its fetch state "none" is none of this consumer's business.
    assert not any(feed(watch, clock, consumer, [stats(i, {0: "active", 1: "none"}) for i in range(1, 10)]))
    # Stuck for a while, then fetching again before the limit: the count starts over.
    samples = [stats(100 + i, {0: "none" if i % 3 else "offset-query"}) for i in range(1, 10)]
    assert not any(feed(watch, clock, consumer, samples))
    # A rebalance (joining again) that ends before the limit is no stall either.
    samples = [stats(200 + i, {0: "active"}, join_state="steady" if i % 3 == 0 else "wait-sync") for i in range(9)]
    assert not any(feed(watch, clock, consumer, samples))
    assert consumer.probed == 0  # the answers received said the broker answers


def test_judged_once_per_statistics_and_afresh_after_reset() -> None:
    clock = Clock()
    watch = StallWatch(after_s=10.0, clock=clock)
    consumer = Assigned(0)
    assert feed(watch, clock, consumer, [stats(i, {0: "stopped"}) for i in range(1, 5)])[-1]
    asked = consumer.asked
    assert not watch.stalled(consumer) and consumer.asked == asked  # no new statistics: nothing judged, nothing asked
    watch.reset()  # a new consumer took over: its own statistics only, from scratch
    assert feed(watch, clock, consumer, [stats(i, {0: "none"}) for i in range(1, 4)]) == [False, False, False]
    assert not watch.stalled(consumer)


def test_odd_statistics_never_raise() -> None:
    clock = Clock()
    watch = StallWatch(after_s=0.0, clock=clock)
    for raw in ("not json", "[]", json.dumps({"brokers": {"b": {"rx": "x"}}}), json.dumps({"topics": {"t": {}}})):
        watch.statistics(raw)
    assert watch.why() == {}
    assert not watch.stalled(Assigned(0, answers=True))


def test_the_consumer_config_chains_the_lag_metric_and_the_watch() -> None:
    seen: list[str] = []
    settings = Settings(kafka_bootstrap="127.0.0.1:1")
    assert consumer_config(settings, "g-stall")["stats_cb"] is LagStatistics.of("g-stall")
    config = consumer_config(settings, "g-stall", on_stats=seen.append)
    callback = config["stats_cb"]
    assert callable(callback)
    callback(stats(1, {0: "active"}))
    assert seen == [stats(1, {0: "active"})]
    both: list[str] = []
    chain(both.append, lambda raw: both.append(raw.upper()))("a")
    assert both == ["a", "A"]


class FakeConsumer:
    """A group consumer that never delivers anything; `stats` stands for librdkafka's statistics callback."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.stats_cb: Callable[[str], None] | None = config.get("stats_cb") if config else None
        self.on_revoke: Callable[..., None] | None = None
        self.partitions = [TopicPartition(TOPIC, 0)]
        self.subscribed: list[str] = []
        self.commits = 0
        self.closed = False

    def subscribe(self, topics: list[str], **callbacks: Callable[..., None]) -> None:
        self.subscribed = topics
        self.on_revoke = callbacks.get("on_revoke")

    def assignment(self) -> list[TopicPartition]:
        return [] if self.closed else self.partitions

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> object:
        return object()

    def poll(self, timeout: float) -> None:
        return None

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...

    def store_offsets(self, **_: object) -> None: ...

    def commit(self, asynchronous: bool) -> None:
        self.commits += 1

    def close(self) -> None:
        if self.on_revoke is not None:
            self.on_revoke(self, self.partitions)
        self.closed = True


def never_decoded(_msg: object) -> Event | None:
    return None


def test_the_runner_intake_replaces_a_stalled_consumer() -> None:
    clock = Clock()
    watch = StallWatch(after_s=10.0, clock=clock)
    made: list[FakeConsumer] = []

    def open_consumer() -> Any:
        made.append(FakeConsumer())
        return made[-1]

    intake = Intake(open_consumer, TOPIC, Slots(capacity=1), never_decoded, watch)
    intake.join()
    stop = threading.Event()
    renewed = []
    for i in range(1, 6):
        clock.now += 5
        watch.statistics(stats(i, {0: "none"}))
        renewed.append(intake.renew_if_stalled(stop))
    assert renewed == [False, False, True, False, False]  # and the new consumer is judged afresh
    first, second = made
    assert first.closed and first.commits == 1  # left the group as when it stops taking work
    assert intake.consumer is second and second.subscribed == [TOPIC] and not second.closed
    assert not intake.slots.full()  # taking work again


def test_an_intake_without_a_watch_never_replaces_its_consumer() -> None:
    consumer = FakeConsumer()
    intake = Intake(lambda: consumer, TOPIC, Slots(capacity=1), never_decoded)  # type: ignore[arg-type,return-value]
    intake.join()
    assert not intake.renew_if_stalled(threading.Event()) and intake.consumer is consumer


def test_the_shared_consumer_loop_replaces_a_stalled_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[FakeConsumer] = []
    stop = threading.Event()

    class Stalled(FakeConsumer):
        """Each poll is 5 s of a partition never fetched while the broker answers; the third consumer ends it."""

        def poll(self, timeout: float) -> None:
            if len(made) == 3:
                stop.set()
            assert self.stats_cb is not None
            self.rx = getattr(self, "rx", 0) + 1
            clock.now += 5
            self.stats_cb(stats(self.rx, {0: "none"}))

    clock = Clock()

    def new_consumer(config: dict[str, Any]) -> Stalled:
        made.append(Stalled(config))
        return made[-1]

    monkeypatch.setattr(consumer_module, "Consumer", new_consumer)
    monkeypatch.setattr(consumer_module, "StallWatch", lambda: StallWatch(after_s=10.0, clock=clock))
    revoked: list[int] = []
    run_consumer(
        Settings(kafka_bootstrap="127.0.0.1:1"),
        "g-loop",
        [TOPIC],
        lambda _event, _msg: None,
        producer=None,  # type: ignore[arg-type]
        stop=stop,
        on_revoke=lambda _c, partitions: revoked.extend(p.partition for p in partitions),
    )
    assert len(made) == 3 and all(c.closed for c in made)  # two replaced, the last closed when stopping
    assert all(c.subscribed == [TOPIC] for c in made) and revoked == [0, 0, 0]
