"""The work of one worker thread: one execution, from its claim to its reported end (or its hand-back to the farm).

Failures of the broker or Cassandra are retried (safe: the claim and the container are found again); an engine
that never got the request hands the execution back to the farm; an engine that may have started the container
is asked again, never bypassed (another host would run it a second time). The container itself is run by
`handlers.run_execution`.
"""

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable

from services.runner.breaker import Breaker
from services.runner.handlers import Limits, clip_error, container_name, run_execution
from services.runner.offsets import Position
from services.runner.ports import ContainerRuntime, EngineUnavailable, Interrupted, Ledger, OutputSink, Publisher
from services.runner.slots import Slot, Slots
from services.runner.stops import StopRequests
from shared.contract.events import ExecutionDue, ExecutionFinished, ExecutionStarted, JobMessage
from shared.infra.failures import GaveUp
from shared.infra.kafka.consumer import event_ids, retry_until_done
from shared.process.logs import bound, trace_ids

log = logging.getLogger("runner")
# An ExecutionFinished up to this size is kept with the claim when reported (larger ones carry logs, read again
# from the container, which is removed only after the report).
REPORT_KEPT_BYTES = 64 * 1024


class TakenAway(Exception):
    """The execution's claim was taken from this host (a peer declared it lost and reported the execution
    failed): its end is not reported here, and its container is removed."""


class Worker:
    def __init__(
        self,
        host: str,
        limits: Limits,
        runtime: ContainerRuntime,
        publisher: Publisher,
        ledger: Ledger,
        topics: tuple[str, str],
        slots: Slots,
        stops: StopRequests,
        breaker: Breaker,
        done_with: Callable[[Position], None],
        output: OutputSink | None = None,
    ) -> None:
        """`topics`: (the farm's due topic, where executions are handed back; the executions topic).
        `done_with`: told when the message of an execution may be acknowledged. `output`: where live output
        goes (none: not followed)."""
        self.host = host
        self.limits = limits
        self.runtime = runtime
        self.publisher = publisher
        self.ledger = ledger
        self.due_topic, self.executions_topic = topics
        self.slots = slots
        self.stops = stops
        self.breaker = breaker
        self.done_with = done_with
        self.output = output

    def work(
        self, due: ExecutionDue, position: Position | None, stop: threading.Event, trace: str | None = None
    ) -> None:
        """Claim (unless taken up after a restart: `position` None, running already), acknowledge, run to the
        end, drop it from this host's record. Every log line and message of it carries its ids and `trace`."""
        with bound(**event_ids(due), **trace_ids(trace)):
            self._work(due, position, stop)

    def _work(self, due: ExecutionDue, position: Position | None, stop: threading.Event) -> None:
        eid = due.execution_id
        cancel = self.stops.track(eid)
        slot = Slot(self.slots)
        try:
            if position is None:
                slot.take_at_once()
            elif not self._claim(due, position, slot, stop):
                return
            answered = self._run_to_end(due, cancel, slot, stop)
            if answered is None:
                return
            if answered:
                self.breaker.success()
            else:
                self.breaker.failure()
            with contextlib.suppress(GaveUp):
                retry_until_done(lambda: self.ledger.done(eid, self.host), stop, _context(eid))
        finally:
            slot.give()
            self.stops.untrack(eid)
            self.slots.let_go(eid)

    def _claim(self, due: ExecutionDue, position: Position, slot: Slot, stop: threading.Event) -> bool:
        """Take a slot and claim the execution; True when it runs here. Its message is done with once claimed
        (or someone else's); left unacknowledged when the runner stops or leaves its farm's group first."""
        context = _context(due.execution_id)
        if not slot.take(stop):  # queued when this runner left its farm's group: another runner takes it
            self.slots.settled()
            return False
        claims: list[tuple[str, bool]] = []
        try:
            if not retry_until_done(lambda: claims.append(self.ledger.claim(due, self.host)), stop, context):
                self.slots.settled()
                return False
        except GaveUp as exc:  # the execution itself cannot be claimed: it ends, and the message is done
            self._fail(due, None, f"fastlane could not claim this execution: {exc}", stop)
            self.done_with(position)
            self.slots.settled()
            return False
        self.done_with(position)
        self.slots.settled()
        owner, claimed = claims[-1]
        if not claimed and owner != self.host:
            # Another host runs it, or this host reported its end already (a redelivery after a restart). (Owned
            # by this host but not claimed by the last call: an earlier attempt's claim applied though its
            # answer was lost, or a restart left it; it runs here.)
            log.info("already claimed; not run again", extra={**context, "owner": owner})
            slot.give()
            return False
        return True

    def _run_to_end(self, due: ExecutionDue, cancel: threading.Event, slot: Slot, stop: threading.Event) -> bool | None:
        """Run the container and report its end: whether the engine answered throughout, or None when the
        execution is left (to the restart, or handed back to the farm)."""
        context = _context(due.execution_id)
        engine_answered: list[bool] = []
        started: list[ExecutionStarted] = []

        def publish(event: JobMessage) -> None:
            if isinstance(event, ExecutionFinished):
                self._report_end(event)
            else:
                self.publisher.publish(self.executions_topic, event)
            if isinstance(event, ExecutionStarted):
                started.append(event)

        def attempt() -> None:
            engine_answered.append(
                run_execution(due, self.runtime, publish, self.host, self.limits, stop, cancel, slot.give, self.output)
            )

        silent_since: float | None = None
        while True:
            try:
                if not retry_until_done(attempt, stop, context, give_up_on=(Interrupted, EngineUnavailable, TakenAway)):
                    return None
            except GaveUp as exc:  # something in this execution keeps failing: it ends with the reason
                self._fail(due, started[-1] if started else None, f"fastlane could not run it to its end: {exc}", stop)
                engine_answered.append(True)
            except Interrupted:
                log.info("left running; taken up again when this runner restarts", extra=context)
                return None
            except TakenAway:
                log.warning("taken from this host while it ran; its end is not reported here", extra=context)
                with contextlib.suppress(Exception):
                    self.runtime.remove(container_name(due))
                engine_answered.append(True)
            except EngineUnavailable as exc:
                if not started and not exc.reached:
                    # The engine never got the request: nothing runs here, another host may run it.
                    self._hand_back(due, str(exc), stop)
                    return None
                if not started:
                    # The engine may have created or started the container without answering: handing it to
                    # another host could run it twice. Ask again until the engine answers (the container is found
                    # by its name), for as long as a running container's engine is waited for.
                    self.breaker.failure()
                    silent_since = silent_since or time.monotonic()
                    if time.monotonic() - silent_since < self.limits.engine_lost_after_s:
                        if stop.wait(1.0):
                            return None  # left to the restart: the claim and the held record stay
                        continue
                    why = f"the Docker engine of host {self.host} did not answer whether it started it: {exc}"
                else:
                    # Started here already (a retry after an unexpected error found the engine gone): never
                    # handed to another host, where it would run a second time. It fails like an engine lost.
                    why = f"the Docker engine of host {self.host} stopped answering while the container ran: {exc}"
                self._fail(due, started[-1] if started else None, why, stop, remove_container=False)
                engine_answered.append(False)
            break
        return engine_answered[-1]

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
            retry_until_done(lambda: self._report_end(ended), stop, _context(due.execution_id), give_up_on=(TakenAway,))
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
        self.publisher.publish(self.executions_topic, ended)

    def _hand_back(self, due: ExecutionDue, error: str, stop: threading.Event) -> None:
        """The engine failed before the container ran: release the claim and put the execution back on the
        farm's topic, for a runner whose engine answers (this one takes none while its circuit is open)."""
        self.breaker.failure()
        log.warning(
            "engine failed; handing the execution back", extra={"execution_id": str(due.execution_id), "error": error}
        )

        def give_back() -> None:
            if self.ledger.release(due.execution_id, self.host):
                self.publisher.publish(self.due_topic, due)
            self.ledger.done(due.execution_id, self.host)

        try:
            retry_until_done(give_back, stop, _context(due.execution_id))
        except GaveUp as exc:
            self._fail(due, None, f"fastlane could not hand this execution to another host: {exc}", stop)


def _context(execution_id: uuid.UUID) -> dict[str, object]:
    return {"execution_id": str(execution_id)}
