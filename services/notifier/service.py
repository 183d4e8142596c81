"""The notifier's wiring: plan deliveries from execution events, and deliver them apart from the queue.

The consumer only plans: it reads the job's definition, writes each delivery it asks for to Cassandra, and
acknowledges the event. Deliveries are made by a pool of workers, each attempt bounded in time, retried with
backoff: a slow or dead receiver holds one worker for at most one timeout per attempt, never the consumer,
another job's deliveries or the execution itself. Pending deliveries belong to the partition of their event:
the notifier that holds that partition takes them up after a restart or a rebalance (at least once; the
delivery id lets receivers de-duplicate)."""

import heapq
import itertools
import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from cassandra.cluster import Session
from confluent_kafka import Consumer, Message, TopicPartition
from pydantic import ValidationError

from services.migrate import prepare_backends
from services.notifier.plan import Delivery, plan
from services.notifier.send import Failed, Sender
from services.notifier.store import Store
from services.notifier.waiting import Waiting, WaitingEvents
from shared.contract.events import Event, ExecutionFinished, ExecutionStarted, JobDefinition, encode, utcnow
from shared.contract.topics import Topics, group_id
from shared.domain.links import Links
from shared.domain.schedule import backoff_delay
from shared.infra.cassandra import connect
from shared.infra.kafka import EventProducer, retry_until_done, run_consumer
from shared.process.settings import NotifierSettings

log = logging.getLogger("notifier")

FINAL = ("delivered", "failed")  # delivery states after which nothing more is attempted


class Dispatcher:
    """Due deliveries to a worker pool, in order of their next attempt; failures rescheduled with backoff."""

    def __init__(self, settings: NotifierSettings, store: Store, sender: Sender, stop: threading.Event) -> None:
        self.settings = settings
        self.store = store
        self.sender = sender
        self.stop = stop
        self.pool = ThreadPoolExecutor(settings.notify_workers, thread_name_prefix="deliver")
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, uuid.UUID]] = []
        self._waiting: dict[uuid.UUID, Delivery] = {}  # scheduled or being attempted
        self._owned: set[int] = set()
        self._seq = itertools.count()

    def own(self, partitions: list[int], deliveries: list[Delivery]) -> None:
        with self._lock:
            self._owned.update(partitions)
        for d in deliveries:
            self.add(d)

    def owned(self) -> list[int]:
        with self._lock:
            return sorted(self._owned)

    def disown(self, partitions: list[int]) -> None:
        """Partitions taken away: their deliveries are the new owner's (dropped here when they come up)."""
        with self._lock:
            self._owned.difference_update(partitions)

    def add(self, d: Delivery) -> None:
        with self._lock:
            if d.delivery_id in self._waiting:
                return
            self._waiting[d.delivery_id] = d
            heapq.heappush(self._heap, (d.next_at.timestamp(), next(self._seq), d.delivery_id))
            self._lock.notify()

    def run(self) -> None:
        while not self.stop.is_set():
            with self._lock:
                wait = self._heap[0][0] - utcnow().timestamp() if self._heap else 0.5
                if wait > 0:
                    self._lock.wait(min(wait, 0.5))
                    continue
                _, _, delivery_id = heapq.heappop(self._heap)
                d = self._waiting[delivery_id]
                if d.partition not in self._owned:
                    del self._waiting[delivery_id]
                    continue
            self.pool.submit(self._attempt, d)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.sender.close()

    def _attempt(self, d: Delivery) -> None:
        context: dict[str, object] = {"delivery_id": str(d.delivery_id), "target": d.target, "event": d.event}
        try:
            status_code = self.sender.send(d, utcnow())
        except Failed as exc:
            self._failed(d, exc, context)
            return
        except Exception as exc:  # a bug must not kill the worker silently: counted as a failed attempt
            log.exception("delivery attempt crashed", extra=context)
            self._failed(d, Failed(f"{type(exc).__name__}: {exc}"), context)
            return
        done = d.model_copy(update={"attempts": d.attempts + 1})
        log.info("delivered", extra={**context, "attempts": done.attempts, "status_code": status_code})
        if retry_until_done(lambda: self.store.finish(done, "delivered", status_code, None), self.stop, context):
            self._forget(d)

    def _failed(self, d: Delivery, exc: Failed, context: dict[str, object]) -> None:
        attempts = d.attempts + 1
        if exc.retry and attempts <= d.retries:
            pause = backoff_delay(attempts, self.settings.notify_backoff)
            again = d.model_copy(update={"attempts": attempts, "next_at": utcnow() + pause})
            log.warning("delivery failed; will retry", extra={**context, "attempts": attempts, "error": str(exc)})

            def reschedule() -> None:
                self.store.keep(again)
                self.store.record(again, "retrying", exc.status_code, str(exc))

            if retry_until_done(reschedule, self.stop, context):
                self._forget(d)
                self.add(again)
            return
        gave_up = d.model_copy(update={"attempts": attempts})
        log.warning("delivery failed; giving up", extra={**context, "attempts": attempts, "error": str(exc)})
        if retry_until_done(
            lambda: self.store.finish(gave_up, "failed", exc.status_code, str(exc)), self.stop, context
        ):
            self._forget(d)

    def _forget(self, d: Delivery) -> None:
        with self._lock:
            self._waiting.pop(d.delivery_id, None)


class Notifier:
    def __init__(self, settings: NotifierSettings, session: Session, producer: EventProducer) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.producer = producer
        self.store = Store(session, settings.keyspace)
        self.links = Links(settings.public_url)
        ks = settings.keyspace
        self._session = session
        self._definition = session.prepare(
            f"SELECT image, command, envs, metadata, definition FROM {ks}.jobs WHERE task_id = ? AND job_id = ?"
        )
        self.waiting = WaitingEvents(session, ks)
        # How long an event waits for its job's row before it is parked, and how often it is looked at again.
        self.patience_s = settings.notify_job_wait_s
        self.recheck_s = settings.notify_job_recheck_s
        self.dispatcher: Dispatcher | None = None
        self._stop = threading.Event()

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        if not self.settings.webhook_secret:
            log.warning("FASTLANE_WEBHOOK_SECRET is not set: webhooks go out unsigned")
        self.dispatcher = Dispatcher(self.settings, self.store, Sender(self.settings), stop)
        delivering = threading.Thread(target=self.dispatcher.run, name="dispatcher", daemon=True)
        delivering.start()
        rechecking = threading.Thread(target=self._wait_for_rows, name="waiting", daemon=True)
        rechecking.start()
        try:
            run_consumer(
                self.settings,
                group_id(self.settings, "notifier"),
                [self.topics.executions],
                self._plan,
                self.producer,
                stop,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
            )
        finally:
            delivering.join(timeout=self.settings.webhook_timeout_s + 5)
            rechecking.join(timeout=15)

    def _plan(self, event: Event, msg: Message) -> None:
        if not isinstance(event, ExecutionStarted | ExecutionFinished):
            return
        partition = msg.partition() or 0
        if not self._plan_event(event, partition):
            # The job's row is not there yet: kept, and planned when it comes (services/notifier/waiting.py).
            self.waiting.add(partition, event, msg.offset() or 0, utcnow())
            log.info(
                "job row not found yet; the event waits for it",
                extra={"job_id": str(event.job_id), "event_id": str(event.event_id)},
            )

    def _plan_event(self, event: ExecutionStarted | ExecutionFinished, partition: int) -> bool:
        """Plan the deliveries `event` asks for; False when its job's row is not (completely) written yet."""
        row = self._session.execute(self._definition, (event.task_id, event.job_id)).one()
        if row is None or not row.definition or not row.image:
            return False
        try:
            definition = JobDefinition.model_validate(
                {
                    **json.loads(row.definition),
                    "image": row.image,
                    "command": row.command,
                    "envs": dict(row.envs or {}),
                    "metadata": json.loads(row.metadata or "{}"),
                }
            )
        except (ValueError, ValidationError) as exc:  # retrying cannot mend it: say so and go on
            log.error(
                "job definition unreadable; no notifications", extra={"job_id": str(event.job_id), "error": str(exc)}
            )
            return True
        if not definition.webhooks and not definition.notify:
            return True
        s = self.settings
        deliveries = plan(
            event,
            definition,
            partition,
            self.links,
            s.env_blacklist,
            s.webhook_default_retries,
            s.mail_retries,
        )
        assert self.dispatcher is not None
        for d in deliveries:
            state = self.store.state(d)
            if state is None:
                self.store.plan(d)
                self.dispatcher.add(d)
            elif state not in FINAL:
                # Planned when this event came before, not finished: maybe by a notifier that lost the partition
                # after this one read its pending deliveries. Taken up here (the dispatcher ignores a second add).
                pending = self.store.pending_one(d)
                if pending is not None:
                    self.dispatcher.add(pending)
        return True

    def _wait_for_rows(self) -> None:
        """Look again, every `recheck_s`, at the waiting events of the partitions this notifier owns."""
        while not self._stop.wait(self.recheck_s):
            assert self.dispatcher is not None
            for partition in self.dispatcher.owned():
                try:
                    for waiting in self.waiting.of(partition):
                        self._recheck(waiting)
                except Exception:  # Cassandra or Kafka away: the next round tries again
                    log.exception("waiting events not rechecked", extra={"partition": partition})

    def _recheck(self, w: Waiting) -> None:
        event = w.event
        if self._plan_event(event, w.partition):
            log.info("job row found; the waiting event is planned", extra={"event_id": str(event.event_id)})
            self.waiting.remove(w.partition, event.event_id)
            return
        waited = (utcnow() - w.first_seen).total_seconds()
        if waited < self.patience_s:
            return
        why = f"no row for job {event.job_id} in task {event.task_id!r} within {waited:.0f} s: no notification sent"
        log.error("waiting event parked", extra={"event_id": str(event.event_id), "reason": why})
        self.producer.park_value(
            self.topics.dead_letter, event.key, encode(event), (self.topics.executions, w.partition, w.offset), why
        )
        self.waiting.remove(w.partition, event.event_id)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [p.partition for p in partitions]
        taken_up: list[Delivery] = []
        context: dict[str, object] = {"step": "reading pending deliveries", "partitions": numbers}
        retry_until_done(lambda: taken_up.extend(self.store.pending(numbers)), self._stop, context)
        if taken_up:
            log.info("taking up pending deliveries", extra={"count": len(taken_up), "partitions": numbers})
        assert self.dispatcher is not None
        self.dispatcher.own(numbers, taken_up)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self.dispatcher is not None
        self.dispatcher.disown([p.partition for p in partitions])


def serve(settings: NotifierSettings, stop: threading.Event) -> None:
    prepare_backends(settings)
    cluster, session = connect(settings)
    producer = EventProducer(settings)
    log.info("notifier started")
    try:
        Notifier(settings, session, producer).run(stop)
    finally:
        producer.close()
        cluster.shutdown()
        log.info("notifier stopped")
