"""The status page's queue lengths on the real broker: messages on each worker group's topic that the group has
not committed past, read with a consumer of the group's id that never joins the group (services/api/probes.py)."""

import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from services.api.probes import queue_lengths
from shared.contract.topics import Topics, group_id
from tests.conftest import AllSettings


def answered(ask: Callable[[], dict[str, dict[str, int]]], within: float = 30) -> dict[str, dict[str, int]]:
    """The first answer of `ask`: the topics were created just before, and a partition whose leader is not settled
    yet answers NOT_LEADER_FOR_PARTITION for a moment (the status page then shows no queue lengths)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return ask()
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_queue_lengths_are_the_messages_past_each_groups_committed_offsets(own_topics: AllSettings) -> None:
    topics = Topics.from_settings(own_topics)
    producer = Producer({"bootstrap.servers": own_topics.kafka_bootstrap})
    for n in range(7):
        producer.produce(topics.jobs, key=f"job-{n}".encode(), value=b"{}", partition=0)
    for n in range(3):
        producer.produce(topics.executions, key=f"execution-{n}".encode(), value=b"{}", partition=1)
    assert producer.flush(30) == 0

    # The scheduler's group has done 5 of the 7 jobs messages; the recorder's group has committed nothing yet.
    scheduler = Consumer(
        {"bootstrap.servers": own_topics.kafka_bootstrap, "group.id": group_id(own_topics, "scheduler")}
    )
    scheduler.commit(offsets=[TopicPartition(topics.jobs, 0, 5)], asynchronous=False)
    scheduler.close()

    queues = answered(lambda: queue_lengths(own_topics, topics, timeout=10))
    assert queues[topics.jobs] == {"length": 2}
    assert queues[topics.executions] == {"length": 3}
    assert queues[topics.output] == {"length": 0}
    # Asked again (the readers are kept, one per group): the same answer.
    assert queue_lengths(own_topics, topics, timeout=10) == queues
