"""The runner's watch: every heartbeat interval it probes the engine (feeding the circuit breaker), reads the
blacklist, catches up on stop requests and on executions taken from this host, and reports this host in a
RunnerHeartbeat."""

import logging
import threading

from services.runner.breaker import Breaker
from services.runner.handlers import clip_error
from services.runner.ports import LOST, ContainerRuntime, EngineUnavailable, Ledger, Publisher
from services.runner.restart import remove_orphans
from services.runner.slots import Slots
from services.runner.stops import StopRequests
from shared.contract.events import RunnerHeartbeat

log = logging.getLogger("runner")
RUNNER_VERSION = "0.1.0"


class Watch:
    def __init__(
        self,
        host: str,
        farm: str,
        runtime: ContainerRuntime,
        ledger: Ledger,
        publisher: Publisher,
        heartbeats_topic: str,
        slots: Slots,
        stops: StopRequests,
        breaker: Breaker,
    ) -> None:
        self.host = host
        self.farm = farm
        self.runtime = runtime
        self.ledger = ledger
        self.publisher = publisher
        self.heartbeats_topic = heartbeats_topic
        self.slots = slots
        self.stops = stops
        self.breaker = breaker
        self.blacklisted = False  # read by the poll loop: a blacklisted host takes no new work
        self._engine_was_ok = True

    def run(self, interval_s: float, stop: threading.Event) -> None:
        """Look around every `interval_s` until `stop`."""
        while not stop.is_set():
            try:
                self.look_around()
            except Exception:  # never the end of the watch
                log.exception("watch failed; going on")
            stop.wait(interval_s)

    def look_around(self) -> None:
        """One look of the watch (see the module's docstring)."""
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
            farm=self.farm,
            capacity=self.slots.capacity,
            running=self.slots.running(),
            circuit=self.breaker.state,
            engine_ok=engine_ok,
            error=clip_error(error),
            runner_version=RUNNER_VERSION,
        )
        try:
            self.publisher.publish(self.heartbeats_topic, beat)
        except Exception as exc:
            log.warning("heartbeat not sent", extra={"error": str(exc)})

    def _clear_after_outage(self) -> None:
        """The engine answers again: remove the containers of executions failed while it was silent."""
        try:
            remove_orphans(self.host, self.runtime, self.ledger, self.slots.held())
        except Exception as exc:  # the next outage's end tries again; `make prune` removes leftovers
            log.warning("could not remove containers after an engine outage", extra={"error": str(exc)})

    def _catch_up_on_stops(self) -> None:
        """Stop requests broadcast while this runner was down (or before it listened) are in the ledger too."""
        held = list(self.slots.held())
        if not held:
            return
        for execution_id in self.ledger.stops_requested(held):
            self.stops.request(execution_id)
        # Taken from this host while it was away (paused past the lost-host limit): a peer reported them failed,
        # so their containers stop now; their ends are not reported here (worker.TakenAway).
        for execution_id, owner in self.ledger.owners(held).items():
            if owner == LOST + self.host:
                log.warning("taken from this host; stopping it", extra={"execution_id": str(execution_id)})
                self.stops.request(execution_id)
