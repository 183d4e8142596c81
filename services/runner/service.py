"""The runner's wiring: consume ExecutionDue and run up to `max_running` containers at once."""

import logging
import queue
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from pydantic import ValidationError

from services.runner.handlers import Limits, run_execution
from services.runner.offsets import OffsetTracker
from services.runner.runtime import DockerRuntime, Interrupted
from shared.events import ExecutionDue, RunnerHeartbeat, StopExecution, decode
from shared.events import Message as EventMessage
from shared.kafka import EventProducer, consumer_config, decode_or_park, is_record, retry_until_done
from shared.lifecycle import prepare_backends
from shared.settings import RunnerSettings
from shared.topics import Topics, group_id

log = logging.getLogger("runner")
RUNNER_VERSION = "0.1.0"


class StopRequests:
    """Stop requests by execution id: a cancel flag for each execution this runner holds, and a bounded
    memory of requests for executions it does not hold (yet: they may still be queued for it)."""

    def __init__(self, remember: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._active: dict[uuid.UUID, threading.Event] = {}
        self._early: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._remember = remember

    def track(self, execution_id: uuid.UUID) -> threading.Event:
        with self._lock:
            cancel = self._active.setdefault(execution_id, threading.Event())
            if execution_id in self._early:
                cancel.set()
            return cancel

    def active(self) -> int:
        with self._lock:
            return len(self._active)

    def untrack(self, execution_id: uuid.UUID) -> None:
        with self._lock:
            self._active.pop(execution_id, None)

    def request(self, execution_id: uuid.UUID) -> None:
        with self._lock:
            if execution_id in self._active:
                self._active[execution_id].set()
            self._early[execution_id] = None
            while len(self._early) > self._remember:
                self._early.popitem(last=False)


class Runner:
    """Poll loop: hands messages to worker threads, pauses at capacity, stores offsets in order as work ends."""

    def __init__(self, settings: RunnerSettings, runtime: DockerRuntime, producer: EventProducer) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.runtime = runtime
        self.producer = producer
        self.tracker = OffsetTracker()
        self.finished: queue.SimpleQueue[tuple[str, int, int]] = queue.SimpleQueue()
        self.pool = ThreadPoolExecutor(settings.max_running, thread_name_prefix="execution")
        self.consumer = Consumer(consumer_config(settings, group_id(settings, "runner")))
        self.limits = Limits(settings.max_log_bytes, settings.timeout_hard_limit_s, settings.stop_grace_s)
        self.stops = StopRequests()

    def run(self, stop: threading.Event) -> None:
        self.consumer.subscribe([self.topics.due], on_revoke=self._on_revoke, on_lost=self._on_revoke)
        listener = threading.Thread(target=self._listen_for_stops, args=(stop,), name="stop-listener", daemon=True)
        listener.start()
        threading.Thread(target=self._heartbeat, args=(stop,), name="heartbeat", daemon=True).start()
        try:
            while not stop.is_set():
                self._store_finished()
                self._apply_capacity()
                msg = self.consumer.poll(0.2)
                if is_record(msg):
                    assert msg is not None
                    self._dispatch(msg, stop)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)  # workers see `stop` within a second
            self._store_finished()
            self.consumer.close()

    def _dispatch(self, msg: Message, stop: threading.Event) -> None:
        partition = (msg.topic() or "", msg.partition() or 0)
        offset = msg.offset() or 0
        self.tracker.started(partition, offset)
        event = decode_or_park(msg, self.producer, self.topics)
        if not isinstance(event, ExecutionDue):
            self.finished.put((*partition, offset))
            return
        self.pool.submit(self._work, event, partition, offset, stop)

    def _work(self, due: ExecutionDue, partition: tuple[str, int], offset: int, stop: threading.Event) -> None:
        """Run one execution; failures (engine or broker trouble) are retried, which is safe because the
        container is found again by name. Only a stop leaves the message unacknowledged."""

        cancel = self.stops.track(due.execution_id)

        def attempt() -> None:
            run_execution(due, self.runtime, self._publish, self.settings.host_label, self.limits, stop, cancel)

        context = {"execution_id": str(due.execution_id), "offset": offset}
        try:
            if not retry_until_done(attempt, stop, context, give_up_on=(Interrupted,)):
                return
        except Interrupted:
            log.info("left running for a later runner", extra={"execution_id": str(due.execution_id)})
            return
        finally:
            self.stops.untrack(due.execution_id)
        self.finished.put((*partition, offset))

    def _heartbeat(self, stop: threading.Event) -> None:
        """Report the host every few seconds: /status is built from these."""
        while not stop.is_set():
            try:
                engine_ok, error = self.runtime.ping(), None
            except Exception as exc:
                engine_ok, error = False, str(exc)
            beat = RunnerHeartbeat(
                host=self.settings.host_label,
                capacity=self.settings.max_running,
                running=self.stops.active(),
                engine_ok=engine_ok,
                error=error,
                runner_version=RUNNER_VERSION,
            )
            try:
                self.producer.publish(self.topics.heartbeats, beat)
            except KafkaException as exc:
                log.warning("heartbeat not sent", extra={"error": str(exc)})
            stop.wait(self.settings.heartbeat_interval_s)

    def _listen_for_stops(self, stop: threading.Event) -> None:
        """Every runner reads every StopExecution (a group of its own, from the latest message on)."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": f"{group_id(self.settings, 'runner-control')}-{uuid.uuid4().hex[:12]}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([self.topics.control])
        try:
            while not stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                try:
                    event = decode(msg.value() or b"")
                except ValidationError:
                    continue
                if isinstance(event, StopExecution):
                    self.stops.request(event.execution_id)
        finally:
            consumer.close()

    def _publish(self, event: EventMessage) -> None:
        self.producer.publish(self.topics.executions, event)

    def _store_finished(self) -> None:
        while not self.finished.empty():
            topic, part, offset = self.finished.get()
            next_offset = self.tracker.finished((topic, part), offset)
            if next_offset is not None:
                try:
                    self.consumer.store_offsets(offsets=[TopicPartition(topic, part, next_offset)])
                except KafkaException as exc:
                    log.warning("could not store offset", extra={"error": str(exc)})

    def _apply_capacity(self) -> None:
        assignment = self.consumer.assignment()
        if not assignment:
            return
        if self.tracker.inflight() >= self.settings.max_running:
            self.consumer.pause(assignment)
        else:
            self.consumer.resume(assignment)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.tracker.forget([(p.topic, p.partition) for p in partitions])


def serve(settings: RunnerSettings, stop: threading.Event) -> None:
    prepare_backends(settings)
    runtime = DockerRuntime(settings.docker_host)
    runtime.ping()
    producer = EventProducer(settings)
    log.info("runner started", extra={"host": settings.host_label, "max_running": settings.max_running})
    try:
        Runner(settings, runtime, producer).run(stop)
    finally:
        producer.close()
        log.info("runner stopped")
