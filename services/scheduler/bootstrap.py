"""The scheduler's wiring: the Kafka clients and settings, handed to the loop. Nothing else happens here."""

import logging
import threading
import uuid
from datetime import timedelta

from confluent_kafka import Consumer, Producer

from services.migrate import await_migrated
from services.scheduler.handlers import Policy
from services.scheduler.job_store import JobStore
from services.scheduler.loop import Scheduler
from services.scheduler.state_reader import StateReader
from services.scheduler.transactions import TransactionGuard
from shared.contract.events import RetryBackoff
from shared.contract.topics import Topics, group_id
from shared.infra.kafka.consumer_stall import StallWatch, chain
from shared.infra.kafka.producer import PARTITIONER
from shared.process.metrics import LagStatistics, serve_probes
from shared.process.settings import SchedulerSettings

log = logging.getLogger("scheduler")


def policy_from(settings: SchedulerSettings) -> Policy:
    backoff = RetryBackoff(
        min_ms=settings.retry_backoff_min_ms,
        factor=settings.retry_backoff_factor,
        max_ms=settings.retry_backoff_max_ms,
    )
    return Policy(default_backoff=backoff, missed_fire_grace=timedelta(seconds=settings.missed_fire_grace_s))


def group_consumer(settings: SchedulerSettings, watch: StallWatch | None = None) -> Consumer:
    """The consumer of the jobs and executions topics, whose offsets only the loop's transactions commit; its
    statistics go to the lag metric and to `watch`."""
    group = group_id(settings, "scheduler")
    lag = LagStatistics.of(group)
    return Consumer(
        {
            **lag.config(),
            **({"stats_cb": chain(lag, watch.statistics)} if watch is not None else {}),
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,  # offsets are committed inside our transactions
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "range",  # co-partitioned topics go to the same instance
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
        }
    )


def state_reader(settings: SchedulerSettings) -> StateReader:
    """The reader of the state and archive topics, with its probe of where their writers have reached."""
    return StateReader(lambda: state_consumers(settings))


def state_consumers(settings: SchedulerSettings) -> tuple[Consumer, Consumer]:
    """(probe, reader) of the state and archive topics."""
    loader = f"{group_id(settings, 'scheduler')}-loader"
    # Where writers have reached, transactions still open included (read_committed stops before those).
    probe = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": loader,
            "isolation.level": "read_uncommitted",
        }
    )
    reader = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": loader,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            # The end (a transaction marker) is only known from a fetch that finds nothing more to read; the
            # broker holds such a fetch this long (default 500 ms: 1 s per partition and rebalance).
            "fetch.wait.max.ms": 10,
        }
    )
    return probe, reader


def job_store(settings: SchedulerSettings) -> JobStore:
    topics = Topics.from_settings(settings)
    return JobStore(state_reader(settings), topics.scheduler_state, topics.scheduler_archive)


def transactional_producer(settings: SchedulerSettings, instance: str) -> Producer:
    """A producer of this instance's transactional id: a new one fences the one before (same id)."""
    return Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "transactional.id": f"{group_id(settings, 'scheduler')}-{instance}",
            "transaction.timeout.ms": 10_000,
            "partitioner": PARTITIONER,
            "linger.ms": 0,
            "message.max.bytes": settings.max_message_bytes,
        }
    )


def bootstrap(settings: SchedulerSettings) -> Scheduler:
    """A scheduler instance on the Kafka of `settings`."""
    instance = settings.scheduler_instance or uuid.uuid4().hex[:12]
    watch = StallWatch()  # replaces a consumer stalled after a broker pause (consumer_stall.py)
    consumer = group_consumer(settings, watch)
    store = job_store(settings)
    transactions = TransactionGuard(lambda: transactional_producer(settings, instance))
    topics = Topics.from_settings(settings)
    return Scheduler(
        consumer,
        transactions,
        store,
        topics,
        policy_from(settings),
        settings.max_message_bytes,
        new_consumer=lambda: group_consumer(settings, watch),
        stall_watch=watch,
    )


def serve(settings: SchedulerSettings, stop: threading.Event) -> None:
    await_migrated(settings)
    scheduler = bootstrap(settings)
    probes = serve_probes(settings, None)
    log.info("scheduler started")
    try:
        scheduler.run(stop)
    finally:
        if probes is not None:
            probes.close()
        log.info("scheduler stopped")
