"""The runner's wiring: consume its farm's ExecutionDue and run up to its capacity of containers at once."""

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import docker
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from pydantic import ValidationError

from services.migrate import prepare_backends
from services.runner.breaker import Breaker
from services.runner.handlers import Limits, clip_error, container_name, run_execution
from services.runner.ledger import DONE, HANDED_BACK, LOST, Ledger
from services.runner.liveness import Liveness
from services.runner.offsets import OffsetTracker
from services.runner.runtime import DockerRuntime, EngineUnavailable, Interrupted
from shared.contract.events import (
    ExecutionDue,
    ExecutionFinished,
    ExecutionStarted,
    JobMessage,
    RunnerHeartbeat,
    StopExecution,
    decode,
)
from shared.contract.topics import Topics, group_id, runner_group
from shared.infra.cassandra import connect
from shared.infra.failures import GaveUp
from shared.infra.kafka import EventProducer, consumer_config, decode_or_park, is_record, retry_until_done
from shared.process.settings import RunnerSettings

log = logging.getLogger("runner")
RUNNER_VERSION = "0.1.0"
# An ExecutionFinished up to this size is kept with the claim when reported (larger ones carry logs, read again
# from the container, which is removed only after the report).
REPORT_KEPT_BYTES = 64 * 1024


class TakenAway(Exception):
    """The execution's claim was taken from this host (a peer declared it lost and reported the execution
    failed): its end is not reported here, and its container is removed."""


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
    """Poll loop: claims each ExecutionDue, hands it to a worker thread, pauses at capacity, and takes no new
    work while its host is blacklisted or its engine's circuit is open (it leaves the farm's consumer group,
    so the farm's other runners take the partitions)."""

    def __init__(
        self, settings: RunnerSettings, runtime: DockerRuntime, producer: EventProducer, ledger: Ledger
    ) -> None:
        self.settings = settings
        self.host = settings.host_label
        self.farm = settings.my_farm
        self.capacity = settings.capacity
        self.topics = Topics.from_settings(settings)
        self.due_topic = self.topics.farm_due[self.farm.name]
        self.runtime = runtime
        self.producer = producer
        self.ledger = ledger
        self.tracker = OffsetTracker()
        self.finished: queue.SimpleQueue[tuple[str, int, int]] = queue.SimpleQueue()
        # Messages taken ahead of a free slot: a freed slot starts the next one at once instead of waiting for a
        # fetch from the broker (hundreds of ms after a resume, measured). Each message in hand has a thread;
        # at most `capacity` of them run a container at once (`_take_slot`).
        self.lookahead = self.capacity
        self.pool = ThreadPoolExecutor(self.capacity + self.lookahead, thread_name_prefix="execution")
        self.consumer: Consumer | None = None  # a fresh one each time this runner joins its farm's group
        self._paused = False
        self._reassigned = False
        self._slot_freed = threading.Event()  # wakes the poll loop when a message in hand is done with
        self.limits = limits_from(settings)
        self.stops = StopRequests()
        self.breaker = Breaker(settings.breaker_threshold, settings.breaker_open_s)
        self.blacklisted = False
        self._held: set[uuid.UUID] = set()  # in hand: running, or queued for a worker
        self._held_lock = threading.Lock()
        self._slot_free = threading.Condition(self._held_lock)
        self._running = 0  # slots taken: containers being started or running (at most `capacity`)
        self._unsettled = 0  # handed to a worker, neither claimed nor skipped yet
        self._draining = False  # leaving the group: queued messages are left to the farm
        self.liveness = Liveness(settings.host_lost_after_s, settings.heartbeat_interval_s)
        self._engine_was_ok = True

    def run(self, stop: threading.Event) -> None:
        listener = threading.Thread(target=self._listen_for_stops, args=(stop,), name="stop-listener", daemon=True)
        listener.start()
        adopt_context: dict[str, object] = {"step": "taking up what this host held"}
        try:
            retry_until_done(lambda: self._adopt(stop), stop, adopt_context)  # waits for the engine and Cassandra
        except GaveUp:
            log.error("could not take up what this host held; going on without", extra=adopt_context)
        threading.Thread(target=self._watch, args=(stop,), name="watch", daemon=True).start()
        threading.Thread(target=self._keep_alive, args=(stop,), name="liveness", daemon=True).start()
        try:
            while not stop.is_set():
                try:
                    self._turn(stop)
                except Exception:  # a bug or an outage the step did not expect: logged, never the end of the runner
                    log.exception("runner loop failed; going on")
                    stop.wait(1.0)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)  # workers see `stop` within a second
            if self.consumer is not None:
                self._store_finished()
                self.consumer.close()

    def _turn(self, stop: threading.Event) -> None:
        self._store_finished()
        accepting = not self.blacklisted and self.breaker.allows_work()
        if accepting and self.consumer is None:
            self.consumer = self._join()
        elif not accepting and self.consumer is not None:
            self._leave(self.consumer, stop)
            self.consumer = None
        if self.consumer is None:
            stop.wait(0.2)
            return
        self._poll(self.consumer, stop)

    @property
    def subscribed(self) -> bool:
        return self.consumer is not None

    def _join(self) -> Consumer:
        """Join the farm's consumer group with a new consumer: nothing (paused partitions, a half-finished
        rebalance) carries over from an earlier membership."""
        log.info("taking work", extra={"host": self.host, "farm": self.farm.name})
        consumer = Consumer(consumer_config(self.settings, runner_group(self.settings, self.farm.name)))
        consumer.subscribe(
            [self.due_topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        self._paused, self._reassigned, self._draining = False, True, False
        return consumer

    def _poll(self, consumer: Consumer, stop: threading.Event) -> None:
        """One turn of the loop: when full, wait for a slot (polling without fetching keeps the membership
        alive); otherwise take the next message."""
        self._apply_capacity(consumer)
        if self._paused:
            if self._slot_freed.wait(0.2):
                self._slot_freed.clear()
            msg = consumer.poll(0)
        else:
            msg = consumer.poll(0.2)
        if is_record(msg):
            assert msg is not None
            self._dispatch(msg, stop)

    def _leave(self, consumer: Consumer, stop: threading.Event) -> None:
        """Stop taking work: let the messages being claimed be acknowledged, then leave the group (running
        containers go on and are reported; their messages are acknowledged already)."""
        reason = "blacklisted" if self.blacklisted else f"circuit {self.breaker.state}"
        log.warning("taking no new work", extra={"host": self.host, "reason": reason})
        self._draining = True
        deadline = time.monotonic() + 30
        while self._settling() and time.monotonic() < deadline and not stop.is_set():
            self._store_finished()
            time.sleep(0.05)
        self._store_finished()
        with contextlib.suppress(KafkaException):
            consumer.commit(asynchronous=False)
        consumer.close()  # leaves the group at once: the farm's other runners take the partitions

    def _adopt(self, stop: threading.Event) -> None:
        """After a restart: take up what this host held. Containers still running are followed, ended ones
        reported (exit code, logs), ones never created are started; executions a farm peer declared lost
        while this runner was away are dropped (their containers removed)."""
        held = self.ledger.held(self.host)
        self._remove_orphans({due.execution_id for due in held})
        for due in held:
            owner, report = self.ledger.reported(due.execution_id)
            if owner == HANDED_BACK + self.host:  # a crash came while handing it back: put it back again
                self.producer.publish(self.due_topic, due)
                self.ledger.done(due.execution_id, self.host)
                continue
            if owner == DONE + self.host and (report is not None or not self._container_left(due)):
                # Its end was reported, or about to be (a crash came between): report it again, from what was
                # kept (a report with its container gone), never by starting it again.
                log.info("reporting an ended execution again", extra={"execution_id": str(due.execution_id)})
                if report is not None:
                    self.producer.publish(self.topics.executions, ExecutionFinished.model_validate_json(report))
                self.runtime.remove(container_name(due))
                self.ledger.done(due.execution_id, self.host)
                continue
            if owner not in (self.host, DONE + self.host):
                log.warning("dropping an execution taken from this host", extra={"execution_id": str(due.execution_id)})
                self.runtime.remove(container_name(due))
                self.ledger.done(due.execution_id, self.host)
                continue
            if not self._hold(due.execution_id):
                continue  # taken up already, by an earlier attempt of this step
            log.info("taking up an execution after a restart", extra={"execution_id": str(due.execution_id)})
            self.pool.submit(self._work, due, None, stop)

    def _container_left(self, due: ExecutionDue) -> bool:
        return any(eid == str(due.execution_id) for _, eid, _ in self.runtime.executions())

    def _remove_orphans(self, held: set[uuid.UUID]) -> None:
        """Containers of this host's executions that nothing holds any more: reported already (a crash came
        between the report and the removal) or taken away while this host was lost. Containers of other
        runners sharing the engine are left alone."""
        for container_id, execution_id, _state in self.runtime.executions():
            eid = uuid.UUID(execution_id)
            if eid in held:
                continue
            owner = self.ledger.owner(eid)
            if owner in (self.host, LOST + self.host, DONE + self.host, HANDED_BACK + self.host):
                log.info("removing an orphan container", extra={"execution_id": execution_id, "owner": owner})
                self.runtime.remove(container_id)

    def _hold(self, execution_id: uuid.UUID) -> bool:
        """Note that this runner has the execution in hand; False when it had it already."""
        with self._held_lock:
            if execution_id in self._held:
                return False
            self._held.add(execution_id)
            return True

    def running(self) -> int:
        with self._held_lock:
            return self._running

    def _in_hand(self) -> int:
        with self._held_lock:
            return len(self._held)

    def _settling(self) -> int:
        with self._held_lock:
            return self._unsettled

    def _settled(self) -> None:
        with self._held_lock:
            self._unsettled -= 1

    def _take_slot(self, stop: threading.Event) -> bool:
        """Wait for one of the `capacity` slots; False when the runner stops or leaves its farm's group first
        (the message is then left unacknowledged, to the farm)."""
        with self._slot_free:
            while self._running >= self.capacity and not (self._draining or stop.is_set()):
                self._slot_free.wait(0.2)
            if self._draining or stop.is_set():
                return False
            self._running += 1
            return True

    def _give_slot(self) -> None:
        with self._slot_free:
            self._running -= 1
            self._slot_free.notify()

    def _dispatch(self, msg: Message, stop: threading.Event) -> None:
        partition = (msg.topic() or "", msg.partition() or 0)
        offset = msg.offset() or 0
        self.tracker.started(partition, offset)
        event = decode_or_park(msg, self.producer, self.topics)
        if not isinstance(event, ExecutionDue):
            self.finished.put((*partition, offset))
            return
        if not self._hold(event.execution_id):  # delivered again while this runner still has it
            self.finished.put((*partition, offset))
            return
        with self._held_lock:
            self._unsettled += 1
        self.pool.submit(self._work, event, (*partition, offset), stop)

    def _work(self, due: ExecutionDue, message: tuple[str, int, int] | None, stop: threading.Event) -> None:
        """Claim (unless taken up after a restart), acknowledge, run to the end. Failures of the broker or
        Cassandra are retried (safe: the claim and the container are found again); an engine that does not
        answer hands the execution back to the farm."""
        eid = due.execution_id
        context: dict[str, object] = {"execution_id": str(eid)}
        cancel = self.stops.track(eid)
        slot = False

        def give_slot() -> None:  # once: when the container has ended, or when the work ends without one
            nonlocal slot
            if slot:
                slot = False
                self._give_slot()

        try:
            if message is None:  # taken up after a restart: running already
                with self._held_lock:
                    self._running += 1
                slot = True
            else:
                # Queued when this runner left its farm's group: another runner takes it.
                slot = self._take_slot(stop)
                if not slot:
                    self._settled()
                    return
                claims: list[tuple[str, bool]] = []
                try:
                    if not retry_until_done(lambda: claims.append(self.ledger.claim(due, self.host)), stop, context):
                        self._settled()
                        return
                except GaveUp as exc:  # the execution itself cannot be claimed: it ends, and the message is done
                    self._fail(due, None, f"fastlane could not claim this execution: {exc}", stop)
                    self.finished.put(message)
                    self._settled()
                    return
                self.finished.put(message)  # claimed (or someone else's): the message is done with
                self._settled()
                owner, claimed = claims[-1]
                if not claimed and owner != self.host:
                    # Another host runs it, or this host reported its end already (a redelivery after a
                    # restart). (Owned by this host but not claimed by the last call: an earlier attempt's
                    # claim applied though its answer was lost, or a restart left it; it runs here.)
                    log.info("already claimed; not run again", extra={**context, "owner": owner})
                    give_slot()
                    return

            engine_answered: list[bool] = []
            started: list[ExecutionStarted] = []

            def publish(event: JobMessage) -> None:
                if isinstance(event, ExecutionFinished):
                    self._report_end(event)
                else:
                    self._publish(event)
                if isinstance(event, ExecutionStarted):
                    started.append(event)

            def attempt() -> None:
                engine_answered.append(
                    run_execution(due, self.runtime, publish, self.host, self.limits, stop, cancel, give_slot)
                )

            silent_since: float | None = None
            while True:
                try:
                    if not retry_until_done(
                        attempt, stop, context, give_up_on=(Interrupted, EngineUnavailable, TakenAway)
                    ):
                        return
                except GaveUp as exc:  # something in this execution keeps failing: it ends with the reason
                    why = f"fastlane could not run it to its end: {exc}"
                    self._fail(due, started[-1] if started else None, why, stop)
                    engine_answered.append(True)
                except Interrupted:
                    log.info("left running; taken up again when this runner restarts", extra=context)
                    return
                except TakenAway:
                    log.warning("taken from this host while it ran; its end is not reported here", extra=context)
                    with contextlib.suppress(Exception):
                        self.runtime.remove(container_name(due))
                    engine_answered.append(True)
                except EngineUnavailable as exc:
                    if not started and not exc.reached:
                        # The engine never got the request: nothing runs here, another host may run it.
                        self._hand_back(due, str(exc), stop)
                        return
                    if not started:
                        # The engine may have created or started the container without answering: handing it
                        # to another host could run it twice. Ask again until the engine answers (the container
                        # is found by its name), for as long as a running container's engine is waited for.
                        self.breaker.failure()
                        silent_since = silent_since or time.monotonic()
                        if time.monotonic() - silent_since < self.limits.engine_lost_after_s:
                            if stop.wait(1.0):
                                return  # left to the restart: the claim and the held record stay
                            continue
                        why = f"the Docker engine of host {self.host} did not answer whether it started it: {exc}"
                    else:
                        # Started here already (a retry after an unexpected error found the engine gone): never
                        # handed to another host, where it would run a second time. It fails like an engine lost.
                        why = f"the Docker engine of host {self.host} stopped answering while the container ran: {exc}"
                    self._fail(due, started[-1] if started else None, why, stop, remove_container=False)
                    engine_answered.append(False)
                break
            if engine_answered[-1]:
                self.breaker.success()
            else:
                self.breaker.failure()
            with contextlib.suppress(GaveUp):
                retry_until_done(lambda: self.ledger.done(eid, self.host), stop, context)
        finally:
            give_slot()
            self.stops.untrack(eid)
            with self._held_lock:
                self._held.discard(eid)
            self._slot_freed.set()

    def _fail(
        self,
        due: ExecutionDue,
        started: ExecutionStarted | None,
        why: str,
        stop: threading.Event,
        remove_container: bool = True,
    ) -> None:
        """End an execution `failed` with `why`; its container, if it was started, is removed first unless the
        engine is known to be gone (left to the clean-up after the outage)."""
        log.warning("execution ends failed", extra={"execution_id": str(due.execution_id), "error": why})
        ended = ExecutionFinished(
            task_id=due.task_id,
            job_id=due.job_id,
            execution_id=due.execution_id,
            status="failed",
            error=clip_error(why),
            host=self.host,
            started_at=started.occurred_at if started else None,
        )
        try:
            retry_until_done(
                lambda: self._report_end(ended), stop, {"execution_id": str(due.execution_id)}, give_up_on=(TakenAway,)
            )
        except TakenAway:
            log.warning(
                "taken from this host; its end is not reported here", extra={"execution_id": str(due.execution_id)}
            )
        except GaveUp:
            log.error("could not report the execution's end", extra={"execution_id": str(due.execution_id)})
        if started is not None and remove_container:
            with contextlib.suppress(Exception):
                self.runtime.remove(started.container_id)

    def _report_end(self, ended: ExecutionFinished) -> None:
        """Publish an execution's end, unless its claim was taken from this host (TakenAway). The claim is
        marked finished first, keeping the event itself when it is small (it then need not be read from the
        container again): a crash after the mark makes the restart report it, never run it again."""
        encoded = ended.model_dump_json()
        report = encoded if len(encoded) <= REPORT_KEPT_BYTES else None
        if not self.ledger.finish(ended.execution_id, self.host, report):
            raise TakenAway(str(ended.execution_id))
        self._publish(ended)

    def _hand_back(self, due: ExecutionDue, error: str, stop: threading.Event) -> None:
        """The engine failed before the container ran: release the claim and put the execution back on the
        farm's topic, for a runner whose engine answers (this one takes none while its circuit is open)."""
        self.breaker.failure()
        log.warning(
            "engine failed; handing the execution back", extra={"execution_id": str(due.execution_id), "error": error}
        )

        def give_back() -> None:
            if self.ledger.release(due.execution_id, self.host):
                self.producer.publish(self.due_topic, due)
            self.ledger.done(due.execution_id, self.host)

        context: dict[str, object] = {"execution_id": str(due.execution_id)}
        try:
            retry_until_done(give_back, stop, context)
        except GaveUp as exc:
            self._fail(due, None, f"fastlane could not hand this execution to another host: {exc}", stop)

    def _keep_alive(self, stop: threading.Event) -> None:
        """Every heartbeat interval: rewrite this host's liveness token and fail the executions of lost farm
        peers. A thread of its own, so a slow engine (a ping can take a minute to time out) never makes this
        host look lost."""
        while not stop.is_set():
            try:
                self.ledger.beat(self.host)
                self._reap_lost_hosts()
            except Exception as exc:
                self.liveness.blind()
                log.warning("liveness: ledger unavailable", extra={"error": str(exc)})
            stop.wait(self.settings.heartbeat_interval_s)

    def _watch(self, stop: threading.Event) -> None:
        """Every heartbeat interval: probe the engine (feeds the breaker), read the blacklist, catch up on stop
        requests and executions taken from this host, and report this host."""
        while not stop.is_set():
            try:
                self._look_around()
            except Exception:  # never the end of the watch
                log.exception("watch failed; going on")
            stop.wait(self.settings.heartbeat_interval_s)

    def _look_around(self) -> None:
        """One look of the watch (see `_watch`)."""
        engine_ok, error = True, None
        try:
            self.runtime.ping()
            if self.breaker.state != "open":
                self.breaker.success()
            if not self._engine_was_ok:
                self._clear_after_outage()
        except EngineUnavailable as exc:
            engine_ok, error = False, str(exc)
            self.breaker.failure()
        self._engine_was_ok = engine_ok
        try:
            self.blacklisted = self.ledger.blacklisted(self.host)
            self._catch_up_on_stops()
        except Exception as exc:
            log.warning("ledger unavailable", extra={"error": str(exc)})
        beat = RunnerHeartbeat(
            host=self.host,
            farm=self.farm.name,
            capacity=self.capacity,
            running=self.running(),
            circuit=self.breaker.state,
            engine_ok=engine_ok,
            error=clip_error(error),
            runner_version=RUNNER_VERSION,
        )
        try:
            self.producer.publish(self.topics.heartbeats, beat)
        except Exception as exc:
            log.warning("heartbeat not sent", extra={"error": str(exc)})

    def _clear_after_outage(self) -> None:
        """The engine answers again: remove the containers of executions failed while it was silent."""
        with self._held_lock:
            held = set(self._held)
        try:
            self._remove_orphans(held)
        except Exception as exc:  # the next outage's end tries again; `make prune` removes leftovers
            log.warning("could not remove containers after an engine outage", extra={"error": str(exc)})

    def _catch_up_on_stops(self) -> None:
        """Stop requests broadcast while this runner was down (or before it listened) are in Cassandra too."""
        with self._held_lock:
            held = list(self._held)
        if not held:
            return
        for execution_id in self.ledger.stops_requested(held):
            self.stops.request(execution_id)
        # Taken from this host while it was away (paused past the lost-host limit): a peer reported them
        # failed, so their containers stop now; their ends are not reported here (TakenAway).
        for execution_id, owner in self.ledger.owners(held).items():
            if owner == LOST + self.host:
                log.warning("taken from this host; stopping it", extra={"execution_id": str(execution_id)})
                self.stops.request(execution_id)

    def _reap_lost_hosts(self) -> None:
        """Fail the executions of farm peers whose liveness token stopped changing (services/runner/liveness.py).
        Each is taken from its host (a transaction; a host that marked an end finished keeps it), reported
        failed, and only then dropped from the host's record: a failure in between leaves it for the next
        turn (of this runner or another), never unreported."""
        peers = [peer for peer in self.farm.hosts if peer != self.host]
        if not peers:
            return
        for peer in self.liveness.look(self.ledger.beats(peers)):
            for due in self.ledger.held(peer):
                if not self.ledger.take_from_lost(due.execution_id, peer):
                    self._report_for_lost(due, peer)
                    continue
                silent = f"{self.settings.host_lost_after_s:g}s"
                log.warning(
                    "failing an execution of a lost host", extra={"execution_id": str(due.execution_id), "host": peer}
                )
                self._publish(
                    ExecutionFinished(
                        task_id=due.task_id,
                        job_id=due.job_id,
                        execution_id=due.execution_id,
                        status="failed",
                        error=f"host {peer} lost: its runner gave no sign of life for {silent}",
                        host=peer,
                    )
                )
                self.ledger.done(due.execution_id, peer)

    def _report_for_lost(self, due: ExecutionDue, peer: str) -> None:
        """A lost host had marked this execution's end (`done:<peer>`) and may have died before publishing it:
        the end it kept is published again (the same event: a repeat is harmless). Without a kept end (a large
        one, read from the container) it is left to that host's restart."""
        owner, report = self.ledger.reported(due.execution_id)
        if owner != DONE + peer or report is None:
            return
        log.warning("reporting the end a lost host marked", extra={"execution_id": str(due.execution_id), "host": peer})
        self.producer.publish(self.topics.executions, ExecutionFinished.model_validate_json(report))
        self.ledger.done(due.execution_id, peer)

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
                try:
                    msg = consumer.poll(0.5)
                except KafkaException as exc:
                    log.warning("stop listener: Kafka failed", extra={"error": str(exc)})
                    stop.wait(1.0)
                    continue
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

    def _publish(self, event: JobMessage) -> None:
        self.producer.publish(self.topics.executions, event)

    def _store_finished(self) -> None:
        if self.consumer is None:
            return  # acknowledged when this runner joins again: the tracker keeps them
        while not self.finished.empty():
            topic, part, offset = self.finished.get()
            next_offset = self.tracker.finished((topic, part), offset)
            if next_offset is not None:
                try:
                    self.consumer.store_offsets(offsets=[TopicPartition(topic, part, next_offset)])
                except KafkaException as exc:
                    log.warning("could not store offset", extra={"error": str(exc)})

    def _apply_capacity(self, consumer: Consumer) -> None:
        """Pause the assignment when capacity plus look-ahead executions are in hand, resume when one ends: on
        changes only, and again after a rebalance (librdkafka keeps a partition's pause across one)."""
        full = self._in_hand() >= self.capacity + self.lookahead
        if full == self._paused and not self._reassigned:
            return
        assignment = consumer.assignment()
        if not assignment:
            return
        if full:
            consumer.pause(assignment)
        else:
            consumer.resume(assignment)
        self._paused, self._reassigned = full, False

    def _on_assign(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self._reassigned = True

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.tracker.forget([(p.topic, p.partition) for p in partitions])
        self._reassigned = True


def limits_from(settings: RunnerSettings) -> Limits:
    return Limits(
        settings.max_log_bytes,
        settings.timeout_hard_limit_s,
        settings.stop_grace_s,
        settings.host_lost_after_s,
        settings.max_message_bytes,
    )


def docker_tls(settings: RunnerSettings) -> docker.tls.TLSConfig | None:
    if not settings.docker_tls_cert:
        return None
    return docker.tls.TLSConfig(  # the engine's certificate is checked: against docker_tls_ca, else the usual CAs
        client_cert=(settings.docker_tls_cert, settings.docker_tls_key),
        ca_cert=settings.docker_tls_ca or None,
        verify=True,
    )


def serve(settings: RunnerSettings, stop: threading.Event) -> None:
    prepare_backends(settings)
    runtime = DockerRuntime(
        settings.docker_host,
        settings.pull_policy,
        settings.registry_auth,
        docker_tls(settings),
        log_tail_bytes=limits_from(settings).log_budget,
    )
    producer = EventProducer(settings)
    cluster, session = connect(settings)
    runner = Runner(settings, runtime, producer, Ledger(session, settings.keyspace))
    log.info("runner started", extra={"host": runner.host, "farm": runner.farm.name, "capacity": runner.capacity})
    try:
        runner.run(stop)
    finally:
        producer.close()
        cluster.shutdown()
        log.info("runner stopped")
