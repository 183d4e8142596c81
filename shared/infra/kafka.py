"""Kafka plumbing: topic creation, an idempotent producer, and an at-least-once consumer loop."""

import logging
import threading
import time
from collections.abc import Callable
from functools import partial

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)
from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_not_exception_type, wait_exponential

from shared.contract.events import Event, HostEvent, JobMessage, decode, encode
from shared.contract.topics import Topics
from shared.infra.failures import POISON_ATTEMPTS, GaveUp, is_transient
from shared.infra.net import wait_for_port
from shared.process.settings import Settings

log = logging.getLogger(__name__)

# Java clients' default partitioner: external producers keyed by job id land where ours do.
PARTITIONER = "murmur2_random"


def wait_for_kafka(settings: Settings) -> None:
    """Block until the broker answers metadata requests (start-up order in `make run` is not guaranteed)."""
    first = settings.kafka_bootstrap.split(",")[0]
    host, _, port = first.rpartition(":")
    wait_for_port(host, int(port), settings.startup_timeout_s, "Kafka")
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
        NewTopic(name, num_partitions=settings.topic_partitions, replication_factor=1, config=topics.config(name))
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


class EventProducer:
    """Idempotent producer (acks=all): `publish` returns once the broker has the message.

    An idempotent producer can fail fatally: after a broker restarted from a kill -9 it may find the log's
    sequence numbers behind its own (OutOfOrderSequence) and then refuses every message for good. Such a producer
    is replaced by a new one (a new producer id) and the failure raised, so the caller's retry goes through."""

    def __init__(self, settings: Settings) -> None:
        self._max_message_bytes = settings.max_message_bytes
        self._lock = threading.Lock()
        self._config: dict[str, object] = {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,
            "partitioner": PARTITIONER,
            "message.max.bytes": settings.max_message_bytes,
            # A message the broker has not taken within this is dropped from the queue and reported failed:
            # the API's 503 then means the order was not accepted, rather than "queued, sent later".
            "message.timeout.ms": 10_000,
        }
        self._producer = Producer(self._config)

    def publish(
        self, topic: str, event: JobMessage | HostEvent, timeout: float = 12.0, encoded: bytes | None = None
    ) -> None:
        """Send and wait for the broker's acknowledgement; raises KafkaException when it did not come. `encoded`:
        the event's encoding when the caller has it already."""
        self._send(topic, event.key, encoded if encoded is not None else encode(event), None, timeout)

    def park(self, topic: str, msg: Message, reason: str) -> None:
        """Send a message no handler could use to the dead-letter topic with where it came from and why; raises
        KafkaException when the broker did not take it."""
        value, headers = dead_letter_record(msg, reason, self._max_message_bytes)
        self._send(topic, (msg.key() or b"")[:1024] or None, value, headers, 12.0)

    def park_value(
        self, topic: str, key: bytes | None, value: bytes, origin: tuple[str, int, int], reason: str
    ) -> None:
        """Park a record read earlier (its message is gone: `origin` is its topic, partition and offset) with the
        same headers as `park`; raises KafkaException when the broker did not take it."""
        headers: list[tuple[str, str | bytes | None]] = [
            ("origin-topic", origin[0].encode()),
            ("origin-partition", str(origin[1]).encode()),
            ("origin-offset", str(origin[2]).encode()),
            ("reason", reason[:1000].encode("utf-8", errors="replace")),
        ]
        self._send(topic, key, value, headers, 12.0)

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None,
        timeout: float,
    ) -> None:
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        producer = self._producer
        try:
            producer.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery)
        except KafkaException as exc:
            self._replace_if_fatal(producer, exc.args[0] if exc.args else None)
            raise
        remaining = producer.flush(timeout)
        if errors:
            self._replace_if_fatal(producer, errors[0])
            raise KafkaException(errors[0])
        if remaining:
            raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "broker did not acknowledge in time"))

    def _replace_if_fatal(self, failed: Producer, error: object) -> None:
        fatal = isinstance(error, KafkaError) and (error.fatal() or error.code() == KafkaError._FATAL)
        if not fatal:
            return
        with self._lock:
            if self._producer is failed:  # once, whichever thread saw it first
                log.error("the Kafka producer failed fatally; replacing it", extra={"error": str(error)})
                self._producer = Producer(self._config)

    def close(self) -> None:
        self._producer.flush(10)


# Room a parked message's headers (origin, reason) take at most: a message that filled its topic's limit is cut
# by this much to fit on the dead-letter topic, whose limit is the same.
DEAD_LETTER_ROOM = 16 * 1024


def dead_letter_record(
    msg: Message, reason: str, max_message_bytes: int
) -> tuple[bytes | None, list[tuple[str, str | bytes | None]]]:
    """(value, headers) of a parked message: where it came from and why it was parked; a value too large to
    fit with them is cut, and a `truncated` header gives its full size."""
    value = msg.value()
    headers: list[tuple[str, str | bytes | None]] = [
        ("origin-topic", (msg.topic() or "").encode()),
        ("origin-partition", str(msg.partition()).encode()),
        ("origin-offset", str(msg.offset()).encode()),
        ("reason", reason[:1000].encode("utf-8", errors="replace")),
    ]
    room = max_message_bytes - DEAD_LETTER_ROOM
    if value is not None and len(value) + len(msg.key() or b"") > room:
        headers.append(("truncated", f"value of {len(value)} bytes cut to its first {room // 2}".encode()))
        value = value[: room // 2]
    return value, headers


def is_record(msg: Message | None) -> bool:
    """True for a polled message that carries a record; consumer errors are logged (end-of-partition
    notices are not errors) and skipped."""
    if msg is None:
        return False
    error = msg.error()
    if error is not None:
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error", extra={"error": str(error)})
        return False
    return True


def park_poison(
    event: Event,
    msg: Message,
    why: str,
    producer: EventProducer,
    topics: Topics,
    stop: threading.Event,
    on_poison: Callable[[Event, str], None] | None,
    context: dict[str, object],
) -> bool:
    """Give the message's owner its final state (`on_poison`, best effort), then park it; False if stopping
    before it was parked."""
    if on_poison is not None:
        try:
            retry_until_done(lambda: on_poison(event, why), stop, context)
        except GaveUp:
            log.error("could not record the poison message's outcome either", extra=context)
    try:
        return retry_until_done(lambda: producer.park(topics.dead_letter, msg, why), stop, context)
    except GaveUp:
        log.error("the poison message could not be parked either; skipped", extra=context)
        return True


def consumer_config(settings: Settings, group: str) -> dict[str, object]:
    """At-least-once: offsets are stored by us after the handler succeeded, then auto-committed."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": group,
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
    }


def decode_or_park(msg: Message, producer: EventProducer, topics: Topics) -> Event | None:
    """Decode a message; one outside the contract is parked on the dead-letter topic and None returned."""
    try:
        return decode(msg.value() or b"")
    except ValidationError as exc:
        why = f"not an event of the contract: {exc}"
    where: dict[str, object] = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
    log.error("unparseable message parked", extra=where)
    try:
        retry_until_done(lambda: producer.park(topics.dead_letter, msg, why), threading.Event(), where)
    except GaveUp:
        log.error("unparseable message could not be parked either; skipped", extra=where)
    return None


def run_consumer(
    settings: Settings,
    group: str,
    subscribe_to: list[str],
    handle: Callable[[Event, Message], None],
    producer: EventProducer,
    stop: threading.Event,
    on_assign: Callable[[Consumer, list[TopicPartition]], None] | None = None,
    on_revoke: Callable[[Consumer, list[TopicPartition]], None] | None = None,
    on_poison: Callable[[Event, str], None] | None = None,
) -> None:
    """Poll `subscribe_to` until `stop` is set, calling `handle` for each event (with its message) in order;
    `on_assign`/`on_revoke` are told of rebalances.

    A handler that raises is retried (growing pauses) while a backing service is down: the offset is only
    stored after success, so a crash means redelivery, never loss. Handlers must therefore be idempotent. A
    message that keeps failing by its own fault is parked on the dead-letter topic with the reason, after
    `on_poison` (which may record a final state for it) had its chance; then the loop goes on.
    """
    topics = Topics.from_settings(settings)
    consumer = Consumer(consumer_config(settings, group))
    callbacks = {name: f for name, f in (("on_assign", on_assign), ("on_revoke", on_revoke)) if f is not None}
    consumer.subscribe(subscribe_to, **callbacks)
    try:
        while not stop.is_set():
            msg = consumer.poll(0.5)
            if not is_record(msg):
                continue
            assert msg is not None
            event = decode_or_park(msg, producer, topics)
            context = {"type": getattr(event, "type", None), "topic": msg.topic(), "offset": msg.offset()}
            try:
                if event is not None and not retry_until_done(partial(handle, event, msg), stop, context):
                    break  # stopping mid-retry: leave the offset unstored so the message comes again
            except GaveUp as poison:
                assert event is not None
                if not park_poison(event, msg, str(poison), producer, topics, stop, on_poison, context):
                    break
            consumer.store_offsets(msg)
    finally:
        consumer.close()


def pause_after(failures: int) -> float:
    """Seconds to wait after `failures` consecutive failures of a backing service: 0.2 s doubling up to 10 s."""
    return float(min(10.0, 0.2 * 2 ** min(max(failures - 1, 0), 10)))


def retry_until_done(
    action: Callable[[], None],
    stop: threading.Event,
    context: dict[str, object],
    give_up_on: tuple[type[BaseException], ...] = (),
) -> bool:
    """Run `action` until it succeeds, pausing longer after each failure (0.2 s doubling up to 10 s).

    Failures of a backing service (shared.infra.failures.is_transient) are retried for as long as they last. Any
    other failure is the message's own: after POISON_ATTEMPTS of those, GaveUp is raised (from the last one)
    and the caller parks the message or ends its execution with the reason, then goes on.

    Returns False when `stop` was set before it succeeded: the caller then leaves its message unacknowledged,
    so it is delivered again later. Exceptions in `give_up_on` are not retried but raised at once.
    """
    poisoned = 0

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.error("handling failed; retrying", exc_info=error, extra=context)

    def pause(seconds: float) -> None:
        stop.wait(seconds)  # a stop request cuts the pause short

    def enough(state: RetryCallState) -> bool:
        nonlocal poisoned
        error = state.outcome.exception() if state.outcome else None
        if error is not None and not is_transient(error):
            poisoned += 1
        return stop.is_set() or poisoned >= POISON_ATTEMPTS

    retrying = Retrying(
        retry=retry_if_not_exception_type(give_up_on),
        wait=wait_exponential(multiplier=0.2, max=10),
        stop=enough,
        sleep=pause,
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        retrying(action)
        return True
    except give_up_on:
        raise
    except Exception as exc:
        if poisoned >= POISON_ATTEMPTS:
            log.error("giving up on this message", exc_info=exc, extra=context)
            raise GaveUp(exc) from exc
        return False  # only reached once stopping
