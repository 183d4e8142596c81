"""A group consumer that stalled after a broker pause, told from librdkafka's statistics.

After a broker pause librdkafka can keep a consumer that never gets anything again although the broker is back:
an assigned partition whose committed offset could not be read (the OffsetFetch met a coordinator that moved)
is never fetched and never tried again (librdkafka issue 5586), the group's coordinator is never found again
(issues 3082, 3396 and kin), or the consumer never gets back into its group (the fault suite saw the recorder's
and the notifier's groups stay empty while they polled: their requests to the coordinator timed out unsent).
Polling goes on, no error comes; a new consumer recovers at once.

`StallWatch` reads the statistics every consumer already sends (the consumer-lag metric's, every 5 s). Stuck:
no group coordinator; not a settled member of its group (join state other than "steady"); a settled member whose
coordinator answered nothing since the previous statistics (it heartbeats every second); or an assigned
partition not being fetched. Stuck for `after_s` while the broker answers (some connection of the consumer
received something since the previous statistics), or for `silent_after_s` whatever it answers (a consumer whose
connections are all wedged hears nothing), or no statistics at all for `after_s` while the caller polls: the
consumer is to be replaced. A broker away or paused answers nothing: an outage, waited out as usual; only the
longer limit applies to it.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import TopicPartition

log = logging.getLogger(__name__)

STALLED_AFTER_S = 30.0  # stuck this long, the broker answering all along: a new consumer
SILENT_AFTER_S = 90.0  # stuck this long, whatever the broker answers
POLL_GAP_S = 5.0  # calls further apart than this: the caller was busy, not polling (no statistics expected)
# A partition's fetch states (librdkafka's STATISTICS.md) in which it is fetched, or about to be.
FETCHING = frozenset({"active", "offset-query", "offset-wait", "validate-epoch-wait"})

Partition = tuple[str, int]


@dataclass(frozen=True)
class Sample:
    """What one statistics message says."""

    at: float
    answered: bool  # some broker connection received something since the previous statistics
    coordinator: bool  # the group's coordinator is known (cgrp state "up"), or the consumer has no group
    member: bool  # a settled member of its group (join state "steady"), or the consumer has no group
    heartbeats: bool  # the group coordinator answered something since the previous statistics
    not_fetched: frozenset[Partition]  # partitions in a fetch state outside FETCHING


class Watched(Protocol):
    """The part of a consumer the watch asks: its partitions."""

    def assignment(self) -> list[TopicPartition]: ...


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
        self.silent_after_s = max(after_s, SILENT_AFTER_S * after_s / STALLED_AFTER_S)
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        now = self._clock()
        self._received: dict[str, int] = {}
        self._latest: Sample | None = None
        self._judged: Sample | None = None
        self._since: float | None = None  # stuck since, the broker answering all along
        self._stuck_since: float | None = None  # stuck since, whatever the broker answered
        self._stuck: list[Partition] = []
        self._heard_at = now  # the latest statistics, or the reset
        self._called_at = now

    def statistics(self, raw: str) -> None:
        """librdkafka's statistics (JSON), called from the consumer's poll; never raises."""
        try:
            stats = json.loads(raw)
            received = {name: int(b.get("rx", 0)) for name, b in (stats.get("brokers") or {}).items()}
            heard = {name for name, count in received.items() if count > self._received.get(name, count)}
            first = not self._received
            self._received = received
            cgrp = stats.get("cgrp")
            partitions = {
                (topic, int(partition)): p
                for topic, details in (stats.get("topics") or {}).items()
                for partition, p in (details.get("partitions") or {}).items()
                if partition != "-1"
            }
            self._latest = Sample(
                at=self._clock(),
                answered=bool(heard),
                coordinator=cgrp is None or cgrp.get("state") == "up",
                member=cgrp is None or cgrp.get("join_state") == "steady",
                heartbeats=cgrp is None or first or any(name.startswith("GroupCoordinator") for name in heard),
                not_fetched=frozenset(tp for tp, p in partitions.items() if p.get("fetch_state") not in FETCHING),
            )
            self._heard_at = self._latest.at
        except Exception:  # statistics must never break a consumer
            log.exception("could not read the consumer's statistics")

    def stalled(self, consumer: Watched) -> bool:
        """True once `consumer` is to be replaced (see the module). Judged on each new statistics message (the
        consumer is only asked then), so a call between two costs next to nothing; call it from the poll loop."""
        now = self._clock()
        if now - self._called_at > POLL_GAP_S:
            self._heard_at = max(self._heard_at, now)  # the caller was busy: statistics wait for its next poll
        self._called_at = now
        sample = self._latest
        if sample is None or sample is self._judged:
            return now - self._heard_at >= self.after_s  # polling, and librdkafka tells nothing any more
        self._judged = sample
        self._stuck = [(tp.topic, tp.partition) for tp in consumer.assignment()]
        self._stuck = [tp for tp in self._stuck if tp in sample.not_fetched]
        if sample.coordinator and sample.member and sample.heartbeats and not self._stuck:
            self._since = self._stuck_since = None
            return False
        self._stuck_since = sample.at if self._stuck_since is None else self._stuck_since
        if not sample.answered:
            self._since = None  # an outage, or a consumer that hears nothing: only the longer limit applies
        elif self._since is None:
            self._since = sample.at
        return (self._since is not None and sample.at - self._since >= self.after_s) or (
            sample.at - self._stuck_since >= self.silent_after_s
        )

    @property
    def latest(self) -> Sample | None:
        """What the latest statistics said."""
        return self._latest

    def why(self) -> dict[str, object]:
        """The latest statistics' findings, for the log."""
        sample = self._judged
        if sample is None:
            return {"statistics": "none lately"}
        return {
            "coordinator": sample.coordinator,
            "member": sample.member,
            "heartbeats": sample.heartbeats,
            "stuck_partitions": sorted(f"{topic}[{partition}]" for topic, partition in self._stuck)[:20],
            "answered": sample.answered,
        }
