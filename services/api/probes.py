"""Questions the operating routes ask the backing services directly (not the read model): does Kafka answer,
does Cassandra answer, and how many messages each worker group has yet to process."""

import threading

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from shared.contract.topics import Topics, group_id, runner_group
from shared.process.settings import ApiSettings

_ADMINS: dict[str, AdminClient] = {}
# Admin clients given up on (their requests kept failing): kept referenced, never destroyed, since destroying one
# with requests pending crashed librdkafka; at most RETIRED_MAX, then the last one is used as it is.
_RETIRED: list[AdminClient] = []
RETIRED_MAX = 8
_ASKING = threading.Lock()  # one status request asks Kafka at a time; the others answer without queue lengths
# (bootstrap, group) -> a consumer of that group id that never joins it, kept: it reads the group's committed offsets.
_READERS: dict[tuple[str, str], Consumer] = {}


def _admin(bootstrap: str) -> AdminClient:
    """One admin client per process and cluster, kept while it answers. A client made per request and let go
    while its requests were still pending (the status page timed out on them during a broker's death) crashed
    librdkafka's main thread in the cluster test: a segfault that took an API worker down. One that stops
    answering (stale metadata after a broker's death) is retired and a new one made."""
    if bootstrap not in _ADMINS:
        _ADMINS[bootstrap] = AdminClient({"bootstrap.servers": bootstrap})
    return _ADMINS[bootstrap]


def _committed_reader(bootstrap: str, group: str) -> Consumer:
    """A consumer with the group's id that never subscribes (so never joins the group), kept for the process's
    life: its `committed` reads the group's offsets. Not the admin client's list_consumer_group_offsets: when the
    group's coordinator answers NOT_COORDINATOR (it moved: a broker died or came back), librdkafka dereferences
    the admin client's missing consumer group and crashes (librdkafka issue 5040): a segfault that took an API
    worker down in the cluster test when a scheduler replica was killed. A consumer has that group state."""
    key = (bootstrap, group)
    if key not in _READERS:
        _READERS[key] = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    return _READERS[key]


def queue_lengths(settings: ApiSettings, topics: Topics, timeout: float) -> dict[str, dict[str, int]]:
    """Consumer lag per topic: messages not yet processed by the group that works that topic. One request asks at
    a time (a request asking Kafka can wait up to a few timeouts: those would fill the API's thread pool while a
    broker is away); TimeoutError when another is asking."""
    if not _ASKING.acquire(blocking=False):
        raise TimeoutError("another status request is asking Kafka for the queue lengths")
    try:
        return _queue_lengths(settings, topics, timeout)
    except Exception:
        if len(_RETIRED) < RETIRED_MAX and settings.kafka_bootstrap in _ADMINS:
            _RETIRED.append(_ADMINS.pop(settings.kafka_bootstrap))
        raise
    finally:
        _ASKING.release()


def _queue_lengths(settings: ApiSettings, topics: Topics, timeout: float) -> dict[str, dict[str, int]]:
    workers = {
        topics.jobs: group_id(settings, "scheduler"),
        **{topic: runner_group(settings, farm) for farm, topic in topics.farm_due.items()},
        topics.executions: group_id(settings, "recorder"),
        topics.output: group_id(settings, "recorder.output"),
    }
    admin = _admin(settings.kafka_bootstrap)
    metadata = admin.list_topics(timeout=timeout).topics
    queues: dict[str, dict[str, int]] = {}
    for topic, group in workers.items():
        partitions = [TopicPartition(topic, p) for p in metadata[topic].partitions] if topic in metadata else []
        latest = admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in partitions},  # type: ignore[no-untyped-call]
            request_timeout=timeout,
        )
        ends = {tp.partition: f.result(timeout=timeout).offset for tp, f in latest.items()}
        reader = _committed_reader(settings.kafka_bootstrap, group)
        read = reader.committed(partitions, timeout=timeout) if partitions else []
        committed = {tp.partition: tp.offset for tp in read}
        queues[topic] = {"length": sum(max(0, end - max(committed.get(p, 0), 0)) for p, end in ends.items())}
    return queues
