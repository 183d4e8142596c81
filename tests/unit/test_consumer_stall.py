"""The guard against a consumer stalled after a broker pause (shared/infra/kafka/consumer_stall.py), on made-up
librdkafka statistics and fake consumers: when it says "stalled", when it does not, and what the runner's intake
and the shared consumer loop do then."""

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import TopicPartition

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


def stats(
    rx: int,
    fetch: dict[int, str],
    cgrp_state: str | None = "up",
    join_state: str = "steady",
    coordinator_rx: int | None = None,
) -> str:
    """librdkafka's statistics, the parts the watch reads: the responses each connection received (`rx`; the
    group coordinator's, `coordinator_rx`, the same unless told), the group's state and join state, each
    partition's fetch state (the "-1" pseudo-partition included, as librdkafka sends it)."""
    partitions: dict[str, Any] = {str(p): {"fetch_state": state, "consumer_lag": -1} for p, state in fetch.items()}
    partitions["-1"] = {"fetch_state": "none"}
    body: dict[str, Any] = {
        "brokers": {
            "127.0.0.2:9092/1": {"nodeid": 1, "state": "UP", "rx": rx},
            "GroupCoordinator": {"nodeid": -1, "state": "UP", "rx": rx if coordinator_rx is None else coordinator_rx},
        },
        "topics": {TOPIC: {"partitions": partitions}},
    }
    if cgrp_state is not None:
        body["cgrp"] = {"state": cgrp_state, "join_state": join_state}
    return json.dumps(body)


class Assigned:
    def __init__(self, *partitions: int) -> None:
        self.partitions = list(partitions)
        self.asked = 0

    def assignment(self) -> list[TopicPartition]:
        self.asked += 1
        return [TopicPartition(TOPIC, p) for p in self.partitions]


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
    # The first statistics have nothing to compare rx with; the count starts at the second (t=110), so t=130 says so.
    assert said == [False, False, False, False, False, True, True]
    assert watch.why()["stuck_partitions"] == [f"{TOPIC}[1]"]


def test_no_group_coordinator_or_no_settled_membership_while_the_broker_answers_is_a_stall() -> None:
    for cgrp_state, join_state in (("wait-coord", "init"), ("up", "wait-join"), ("up", "wait-unassign-to-complete")):
        clock = Clock()
        watch = StallWatch(after_s=10.0, clock=clock)
        samples = [stats(5 * i, {}, cgrp_state, join_state) for i in range(1, 5)]
        assert feed(watch, clock, Assigned(), samples) == [False, False, False, True], (cgrp_state, join_state)


def test_a_member_whose_coordinator_stopped_answering_is_a_stall() -> None:
    clock = Clock()
    watch = StallWatch(after_s=10.0, clock=clock)
    consumer = Assigned(0)
    # Settled, fetching, but its requests to the coordinator time out unsent (the recorder and the notifier in the
    # fault suite): no heartbeat answered while fetches are.
    samples = [stats(10 + i, {0: "active"}, coordinator_rx=10) for i in range(1, 6)]
    assert feed(watch, clock, consumer, samples) == [False, False, False, True, True]
    assert watch.why()["heartbeats"] is False


def test_a_broker_that_answers_nothing_is_an_outage_until_the_longer_limit() -> None:
    clock = Clock()
    watch = StallWatch(after_s=10.0, clock=clock)  # and 30 s when nothing answers
    consumer = Assigned(0)
    # A paused broker: nothing received, no coordinator: the count of the short limit never starts.
    assert feed(watch, clock, consumer, [stats(7, {0: "none"}, "query-coord", "init")] * 3) == [False] * 3
    # Back: answers start the count of the short limit afresh.
    said = feed(watch, clock, consumer, [stats(7 + i, {0: "none"}) for i in range(1, 5)])
    assert said == [False, False, True, True]
    # A consumer that hears nothing at all, stuck: replaced at the longer limit anyway.
    watch.reset()
    said = feed(watch, clock, consumer, [stats(3, {}, "up", "wait-join")] * 8)
    assert said == [False] * 6 + [True, True]


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
    # Nor is a broker pause shorter than the longer limit.
    samples = [*[stats(300, {0: "active"}, "up", "steady")] * 4, *[stats(300 + i, {0: "active"}) for i in range(3)]]
    assert not any(feed(watch, clock, consumer, samples))


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


def test_no_statistics_while_polling_is_a_stall_but_not_while_the_caller_was_busy() -> None:
    clock = Clock()
    watch = StallWatch(after_s=10.0, clock=clock)
    consumer = Assigned(0)
    watch.statistics(stats(1, {0: "active"}))
    assert not watch.stalled(consumer)
    clock.now += 30  # the caller was busy (a handler retrying): the statistics wait for its next poll
    assert not watch.stalled(consumer)
    for _ in range(9):  # polling every second, statistics never come
        clock.now += 1
        assert not watch.stalled(consumer)
    clock.now += 1
    assert watch.stalled(consumer)
    assert watch.why()["coordinator"] is True


def test_odd_statistics_never_raise() -> None:
    clock = Clock()
    watch = StallWatch(after_s=5.0, clock=clock)
    for raw in ("not json", "[]", json.dumps({"brokers": {"b": {"rx": "x"}}}), json.dumps({"topics": {"t": {}}})):
        watch.statistics(raw)
    assert watch.why() == {"statistics": "none lately"}
    assert not watch.stalled(Assigned(0))


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
    assert renewed == [False, False, False, True, False]  # and the new consumer is judged afresh
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
