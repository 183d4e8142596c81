"""The at-least-once consumer loop: offsets stored after the handler succeeded, outages waited out, poison
parked on the dead-letter topic, a consumer stalled after a broker pause replaced (consumer_stall.py)."""

import contextlib
import logging
import threading
from collections.abc import Callable
from functools import partial

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_not_exception_type, wait_exponential

from shared.contract.events import Event, decode
from shared.contract.topics import Topics
from shared.infra.failures import POISON_ATTEMPTS, GaveUp, is_transient
from shared.infra.kafka.consumer_stall import StallWatch, chain
from shared.infra.kafka.producer import EventProducer
from shared.process.logs import bound, trace_ids, traceparent_of
from shared.process.metrics import BACKEND_ERRORS, LagStatistics, backend_of
from shared.process.settings import Settings

log = logging.getLogger(__name__)


def is_record(msg: Message | None) -> bool:
    """True for a polled message that carries a record; consumer errors are logged (end-of-partition
    notices are not errors) and skipped."""
    if msg is None:
        return False
    error = msg.error()
    if error is not None:
        if error.code() != KafkaError._PARTITION_EOF:
            BACKEND_ERRORS.labels("kafka").inc()
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


def event_ids(event: object) -> dict[str, object]:
    """The ids a message is about, for the log context (shared/process/logs.py)."""
    return {name: getattr(event, name, None) for name in ("task_id", "job_id", "execution_id", "host")}


def consumer_config(settings: Settings, group: str, on_stats: Callable[[str], None] | None = None) -> dict[str, object]:
    """At-least-once: offsets are stored by us after the handler succeeded, then auto-committed. The consumer's
    lag goes to the `fastlane_consumer_lag_messages` metric; its statistics to `on_stats` too (a StallWatch's)."""
    lag = LagStatistics.of(group)
    return {
        **lag.config(),
        **({"stats_cb": chain(lag, on_stats)} if on_stats is not None else {}),
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
    `on_poison` (which may record a final state for it) had its chance; then the loop goes on. A consumer that
    stalled after a broker pause (consumer_stall.py) is closed (committing what was stored) and a new one
    subscribes: what was polled but not stored comes again.
    """
    topics = Topics.from_settings(settings)
    watch = StallWatch()
    callbacks = {name: f for name, f in (("on_assign", on_assign), ("on_revoke", on_revoke)) if f is not None}

    def open_consumer() -> Consumer:
        watch.reset()
        consumer = Consumer(consumer_config(settings, group, on_stats=watch.statistics))
        consumer.subscribe(subscribe_to, **callbacks)
        return consumer

    consumer = open_consumer()
    try:
        while not stop.is_set():
            if watch.stalled(consumer):
                log.warning("Kafka consumer stalled; starting over with a new one", extra=watch.why())
                with contextlib.suppress(Exception):
                    consumer.close()
                consumer = open_consumer()
            msg = consumer.poll(0.5)
            if not is_record(msg):
                continue
            assert msg is not None
            event = decode_or_park(msg, producer, topics)
            context = {"type": getattr(event, "type", None), "topic": msg.topic(), "offset": msg.offset()}
            with bound(**event_ids(event), **trace_ids(traceparent_of(msg.headers()))):
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
        elif error is not None:
            BACKEND_ERRORS.labels(backend_of(error)).inc()
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
