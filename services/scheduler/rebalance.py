"""The consumer group's rebalance callbacks: partitions assigned are loaded, partitions revoked forgotten.

The scheduler owns jobs by partition: it consumes the `jobs` and `executions` topics with the range assignor,
so partition p of both (same key, same partitioner, same count) goes to one instance, which also owns
partition p of the state and archive topics.
"""

import logging
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from services.scheduler.job_store import JobStore

log = logging.getLogger("scheduler")


class Rebalances:
    """Called by the consumer's poll; counts rebalances so that a batch taken across one can be dropped."""

    def __init__(
        self,
        store: JobStore,
        on_load_failure: Callable[[], None],
        start_at: Callable[[list[TopicPartition]], None] | None = None,
    ) -> None:
        """`start_at`: sets where the assigned partitions are read from (the loop's committed offsets)."""
        self.store = store
        self.on_load_failure = on_load_failure
        self.start_at = start_at
        self.count = 0

    def on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.count += 1
        try:
            for p in {tp.partition for tp in partitions} - set(self.store.jobs):
                self.store.load(p)
        except Exception as exc:  # Kafka away (or a bug): the loop waits, then reloads every assigned partition
            log.error("could not load the job states", extra={"error": str(exc)})
            self.on_load_failure()
        if self.start_at is not None:
            self.start_at(partitions)
        log.info("partitions assigned", extra={"partitions": sorted(self.store.jobs)})

    def on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.count += 1
        for p in {tp.partition for tp in partitions}:
            self.store.drop(p)
        log.info("partitions revoked", extra={"partitions": sorted({tp.partition for tp in partitions})})
