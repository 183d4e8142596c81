"""Kafka topics: waiting for the broker, creating the stack's topics, keeping their settings aligned."""

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from shared.contract.topics import Topics
from shared.infra.net import wait_for_port
from shared.process.settings import Settings

log = logging.getLogger(__name__)


def wait_for_kafka(settings: Settings) -> None:
    """Block until a broker answers metadata requests (start-up order in `make run` is not guaranteed)."""
    servers = [server.strip().rpartition(":") for server in settings.kafka_bootstrap.split(",") if server.strip()]
    wait_for_port([(host, int(port)) for host, _, port in servers], settings.startup_timeout_s, "Kafka")
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    deadline = time.monotonic() + settings.startup_timeout_s
    while True:
        try:
            admin.list_topics(timeout=2)
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {settings.kafka_bootstrap} did not answer") from exc
            time.sleep(1)


def ensure_topics(settings: Settings) -> None:
    """Create the stack's topics when missing; safe to run from several processes at once."""
    wait_for_kafka(settings)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    topics = Topics.from_settings(settings)
    # Every topic has the same partition count: one job's messages land in the same partition number on each
    # (same key, same partitioner), which is what lets the scheduler own a job's commands, events and state.
    wanted = [
        NewTopic(
            name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.kafka_replication_factor,
            config=topics.config(name),
        )
        for name in topics.all()
        if name not in existing
    ]
    for name, future in (admin.create_topics(wanted, operation_timeout=30) if wanted else {}).items():
        try:
            future.result()
            log.info("created topic", extra={"topic": name})
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    align_config(admin, topics, [name for name in topics.all() if name in existing])


def align_config(admin: AdminClient, topics: Topics, names: list[str]) -> None:
    """Topics made by an earlier version take the configured settings too (the message size limit, the state
    topics' compaction pace); data is kept. The cleanup policy is set at creation only."""
    if not names:
        return
    resources = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in topics.config(name).items()
                if key != "cleanup.policy"
            ],
        )
        for name in names
    ]
    for future in admin.incremental_alter_configs(resources).values():
        future.result()
