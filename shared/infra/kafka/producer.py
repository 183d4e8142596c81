"""The idempotent producer every service publishes with, and the dead-letter record of a parked message."""

import logging
import threading

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from shared.contract.events import HostEvent, JobMessage, encode
from shared.process.logs import trace_headers
from shared.process.settings import Settings

log = logging.getLogger(__name__)


# Java clients' default partitioner: external producers keyed by job id land where ours do.
PARTITIONER = "murmur2_random"


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
        the event's encoding when the caller has it already. The current context's trace goes in its headers."""
        value = encoded if encoded is not None else encode(event)
        self._send(topic, event.key, value, list(trace_headers()) or None, timeout)

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


class OutputProducer:
    """The producer of live output (ExecutionOutput), apart from the event producer: chunks are queued without
    waiting (a flush of the event producer waits for everything in flight, and lifecycle events must not queue
    behind output). Bounded: librdkafka's queue holds at most `queue_kbytes`; a chunk that does not fit is not
    sent, and the caller counts it as skipped. Delivery failures are logged, not raised: live output is best
    effort."""

    def __init__(self, settings: Settings, topic: str, queue_kbytes: int = 32 * 1024) -> None:
        self._topic = topic
        self._failed = 0
        self._producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "acks": "all",
                "linger.ms": 5,
                "partitioner": PARTITIONER,
                "message.max.bytes": settings.max_message_bytes,
                "queue.buffering.max.kbytes": queue_kbytes,
                "message.timeout.ms": 30_000,
            }
        )

    def send(self, chunk: JobMessage) -> bool:
        try:
            self._producer.produce(
                self._topic,
                key=chunk.key,
                value=encode(chunk),
                headers=list(trace_headers()) or None,
                on_delivery=self._delivered,
            )
        except (BufferError, KafkaException):
            return False
        finally:
            self._producer.poll(0)
        return True

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failed += 1
            if self._failed in (1, 10, 100) or self._failed % 1000 == 0:
                log.warning("live output lost", extra={"error": str(err), "lost_so_far": self._failed})

    def flush(self, timeout: float) -> None:
        self._producer.flush(timeout)

    def close(self) -> None:
        self._producer.flush(5)


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
