"""A group consumer that stalled while the broker answers, told from librdkafka's statistics.

After a broker pause librdkafka can keep a consumer that never gets anything again although the broker is back:
an assigned partition whose committed offset could not be read (the OffsetFetch met a coordinator that moved)
is never fetched and never tried again (librdkafka issue 5586), the group's coordinator is never found again
(issues 3082, 3396 and kin), or the consumer never gets back into its group (the fault suite saw a recorder's
group stay empty while it polled). Polling goes on, no error comes; a new consumer recovers at once.

`StallWatch` reads the statistics every consumer already sends (the consumer-lag metric's, every 5 s) and says
when one has been stuck for `after_s` while the broker answers. Stuck: no group coordinator, not a settled member
of its group (join state other than "steady"), or an assigned partition not being fetched. The broker answers:
the consumer's connections received something since the previous statistics, or else a metadata request made
then (at most `PROBE_TIMEOUT_S`) succeeds. A broker away or paused answers nothing: an outage, waited out as
usual (the count starts again), never a reason to start over.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaException, TopicPartition

log = logging.getLogger(__name__)

STALLED_AFTER_S = 30.0  # stuck this long, the broker answering all along: a new consumer
PROBE_TIMEOUT_S = 2.0  # the metadata request asking whether the broker answers
# A partition's fetch states (librdkafka's STATISTICS.md) in which it is fetched, or about to be.
FETCHING = frozenset({"active", "offset-query", "offset-wait", "validate-epoch-wait"})

Partition = tuple[str, int]


class Watched(Protocol):
    """The part of a consumer the watch asks: its partitions, and whether the broker answers."""

    def assignment(self) -> list[TopicPartition]: ...
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...


@dataclass(frozen=True)
class Sample:
    """What one statistics message says."""

    at: float
    answered: bool  # some broker connection received something since the previous statistics
    coordinator: bool  # the group's coordinator is known (cgrp state "up"), or the consumer has no group
    member: bool  # a settled member of its group (join state "steady"), or the consumer has no group
    not_fetched: frozenset[Partition]  # partitions in a fetch state outside FETCHING


def chain(*callbacks: Callable[[str], None]) -> Callable[[str], None]:
    """One `stats_cb` calling each of `callbacks` (e.g. the lag metric's and a StallWatch's)."""

    def stats_cb(raw: str) -> None:
        for callback in callbacks:
            callback(raw)

    return stats_cb


class StallWatch:
    """Fed a consumer's statistics (`statistics`, its `stats_cb`); `stalled` says when to replace it. One watch per
    consumer at a time: `reset` when a new consumer takes over."""

    def __init__(self, after_s: float = STALLED_AFTER_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.after_s = after_s
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self._received: dict[str, int] = {}
        self._latest: Sample | None = None
        self._judged: Sample | None = None
        self._since: float | None = None
        self._stuck: list[Partition] = []

    def statistics(self, raw: str) -> None:
        """librdkafka's statistics (JSON), called from the consumer's poll; never raises."""
        try:
            stats = json.loads(raw)
            received = {name: int(b.get("rx", 0)) for name, b in (stats.get("brokers") or {}).items()}
            answered = any(count > self._received.get(name, count) for name, count in received.items())
            self._received = received
            cgrp = stats.get("cgrp")
            not_fetched = frozenset(
                (topic, int(partition))
                for topic, details in (stats.get("topics") or {}).items()
                for partition, p in (details.get("partitions") or {}).items()
                if partition != "-1" and p.get("fetch_state", "active") not in FETCHING
            )
            coordinator = cgrp is None or cgrp.get("state") == "up"
            member = cgrp is None or cgrp.get("join_state") == "steady"
            self._latest = Sample(self._clock(), answered, coordinator, member, not_fetched)
        except Exception:  # statistics must never break a consumer
            log.exception("could not read the consumer's statistics")

    def stalled(self, consumer: Watched) -> bool:
        """True once `consumer` has been stuck for `after_s` while the broker answered: judged on each new
        statistics message (the consumer is only asked then), so a call between two costs nothing."""
        sample = self._latest
        if sample is None or sample is self._judged:
            return False
        self._judged = sample
        assigned = ((tp.topic, tp.partition) for tp in consumer.assignment())
        self._stuck = [tp for tp in assigned if tp in sample.not_fetched]
        stuck = not (sample.coordinator and sample.member) or bool(self._stuck)
        if not stuck or not (sample.answered or self._answers(consumer)):
            self._since = None  # fine, or an outage: either way the count starts again
            return False
        if self._since is None:
            self._since = sample.at
        return sample.at - self._since >= self.after_s

    @staticmethod
    def _answers(consumer: Watched) -> bool:
        """Whether the broker answers a metadata request (a consumer stuck outside its group may send nothing)."""
        try:
            consumer.list_topics(timeout=PROBE_TIMEOUT_S)
            return True
        except KafkaException:
            return False

    @property
    def latest(self) -> Sample | None:
        """What the latest statistics said."""
        return self._latest

    def why(self) -> dict[str, object]:
        """The latest statistics' findings, for the log."""
        sample = self._judged
        if sample is None:
            return {}
        not_fetched = sorted(f"{topic}[{partition}]" for topic, partition in self._stuck)
        return {
            "coordinator": sample.coordinator,
            "member": sample.member,
            "not_fetched": not_fetched[:20],
            "stuck_s": self.after_s,
        }
