"""The runner's poll loop, and the parts it is made of (each in a module of its own):

- intake.py: the farm's consumer group and the offsets of its messages;
- slots.py: what is in hand, and the `capacity` slots of running containers;
- worker.py: one execution, from its claim to its reported end, on a worker thread;
- restart.py: taking up what this host held after a restart;
- watch.py: the engine's health, the blacklist, stop requests missed, heartbeats;
- keep_alive.py: this host's liveness token, and failing the executions of lost peers;
- stops.py: stop requests, read from the control topic.
"""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Consumer, Message

from services.runner.breaker import Breaker
from services.runner.handlers import Limits
from services.runner.intake import Intake
from services.runner.keep_alive import KeepAlive
from services.runner.liveness import Liveness
from services.runner.offsets import Position
from services.runner.ports import ContainerRuntime, Ledger, OutputSink, Publisher
from services.runner.restart import take_up_held
from services.runner.slots import Slots
from services.runner.stops import ControlConsumer, StopRequests, listen_for_stops
from services.runner.watch import Watch
from services.runner.worker import Worker
from shared.contract.events import Event, ExecutionDue
from shared.contract.topics import Topics, runner_group
from shared.infra.failures import GaveUp
from shared.infra.kafka.consumer import retry_until_done
from shared.infra.kafka.consumer_stall import StallWatch
from shared.process.metrics import LagStatistics
from shared.process.settings import RunnerSettings

log = logging.getLogger("runner")


class Runner:
    """Poll loop: takes each ExecutionDue of its farm and hands it to a worker thread, pauses at capacity, and
    takes no new work while its host is blacklisted or its engine's circuit is open (it leaves the farm's
    consumer group, so the farm's other runners take the partitions)."""

    def __init__(
        self,
        settings: RunnerSettings,
        limits: Limits,
        runtime: ContainerRuntime,
        publisher: Publisher,
        ledger: Ledger,
        open_consumer: Callable[[], Consumer],
        open_control_consumer: Callable[[], ControlConsumer],
        decode: Callable[[Message], Event | None],
        output: OutputSink | None = None,
        stall_watch: StallWatch | None = None,
    ) -> None:
        """`open_consumer`: a new consumer of the farm's group; `open_control_consumer`: the stop listener's;
        `decode`: a message's event, or None when it is not one (parked); `output`: where live output goes;
        `stall_watch`: fed the statistics of `open_consumer`'s consumers, it tells when one stalled."""
        self.host = settings.host_label
        self.farm = settings.my_farm
        self.capacity = settings.capacity
        self.interval_s = settings.heartbeat_interval_s
        self.topics = Topics.from_settings(settings)
        self.due_topic = self.topics.farm_due[self.farm.name]
        self.group = runner_group(settings, self.farm.name)
        self.runtime, self.publisher, self.ledger = runtime, publisher, ledger
        self._open_control_consumer = open_control_consumer
        self.slots = Slots(self.capacity)
        self.stops = StopRequests()
        self.breaker = Breaker(settings.breaker_threshold, settings.breaker_open_s)
        self.intake = Intake(open_consumer, self.due_topic, self.slots, decode, stall_watch)
        # Each message in hand has a thread; at most `capacity` of them run a container at once (slots.py).
        self.pool = ThreadPoolExecutor(self.capacity + self.slots.lookahead, thread_name_prefix="execution")
        self.worker = Worker(
            self.host,
            limits,
            runtime,
            publisher,
            ledger,
            (self.due_topic, self.topics.executions),
            self.slots,
            self.stops,
            self.breaker,
            self.intake.done_with,
            output,
        )
        self.watch = Watch(
            self.host,
            self.farm.name,
            runtime,
            ledger,
            publisher,
            self.topics.heartbeats,
            self.slots,
            self.stops,
            self.breaker,
        )
        liveness = Liveness(settings.host_lost_after_s, settings.heartbeat_interval_s)
        self.keep_alive = KeepAlive(self.host, self.farm.hosts, ledger, publisher, self.topics.executions, liveness)

    def run(self, stop: threading.Event) -> None:
        listener = threading.Thread(
            target=listen_for_stops,
            args=(self._open_control_consumer, self.topics.control, self.stops, stop),
            name="stop-listener",
            daemon=True,
        )
        listener.start()
        context: dict[str, object] = {"step": "taking up what this host held"}
        try:
            retry_until_done(lambda: self._take_up_held(stop), stop, context)  # waits for the engine and ledger
        except GaveUp:
            log.error("could not take up what this host held; going on without", extra=context)
        threading.Thread(target=self.watch.run, args=(self.interval_s, stop), name="watch", daemon=True).start()
        threading.Thread(target=self.keep_alive.run, args=(self.interval_s, stop), name="liveness", daemon=True).start()
        try:
            while not stop.is_set():
                try:
                    self._turn(stop)
                except Exception:  # a bug or an outage the step did not expect: logged, never the end of the runner
                    log.exception("runner loop failed; going on")
                    stop.wait(1.0)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)  # workers see `stop` within a second
            self.intake.close()

    def _turn(self, stop: threading.Event) -> None:
        self.intake.store_done()
        accepting = not self.watch.blacklisted and self.breaker.allows_work()
        if accepting and not self.intake.joined:
            log.info("taking work", extra={"host": self.host, "farm": self.farm.name})
            self.intake.join()
        elif not accepting and self.intake.joined:
            reason = "blacklisted" if self.watch.blacklisted else f"circuit {self.breaker.state}"
            log.warning("taking no new work", extra={"host": self.host, "reason": reason})
            self.intake.leave(stop)
            LagStatistics.of(self.group).forget()  # it reads none of the farm's partitions now
        if not self.intake.joined:
            stop.wait(0.2)
            return
        self.intake.renew_if_stalled(stop)
        taken = self.intake.poll()
        if taken is not None:
            self._dispatch(*taken, stop)

    def _dispatch(self, event: Event | None, position: Position, stop: threading.Event) -> None:
        """An ExecutionDue not in hand yet goes to a worker; anything else is done with at once."""
        if not isinstance(event, ExecutionDue) or not self.slots.hold(event.execution_id):
            # (an ExecutionDue held already was delivered again while this runner still has it)
            if isinstance(event, ExecutionDue):
                self.intake.traces.pop(event.execution_id, None)
            self.intake.done_with(position)
            return
        self.slots.queued()
        trace = self.intake.traces.pop(event.execution_id, None)
        self.pool.submit(self.worker.work, event, position, stop, trace)

    def _take_up_held(self, stop: threading.Event) -> None:
        def run(due: ExecutionDue) -> None:
            self.pool.submit(self.worker.work, due, None, stop)

        topics = (self.due_topic, self.topics.executions)
        take_up_held(self.host, self.runtime, self.ledger, self.publisher, topics, self.slots, run)
