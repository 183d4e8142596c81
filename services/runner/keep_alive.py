"""This host's liveness token, and the executions of farm peers found lost (services/runner/liveness.py judges).

A thread of its own, beside the watch: a slow engine (a ping can take a minute to time out) never makes this
host look lost."""

import logging
import threading

from services.runner.liveness import Liveness
from services.runner.ports import DONE, Ledger, Publisher
from shared.contract.events import ExecutionDue, ExecutionFinished

log = logging.getLogger("runner")


class KeepAlive:
    def __init__(
        self,
        host: str,
        peers: list[str],
        ledger: Ledger,
        publisher: Publisher,
        executions_topic: str,
        liveness: Liveness,
    ) -> None:
        self.host = host
        self.peers = [peer for peer in peers if peer != host]
        self.ledger = ledger
        self.publisher = publisher
        self.executions_topic = executions_topic
        self.liveness = liveness

    def run(self, interval_s: float, stop: threading.Event) -> None:
        """Every `interval_s` until `stop`: rewrite this host's token and fail the executions of lost peers."""
        while not stop.is_set():
            self.beat()
            stop.wait(interval_s)

    def beat(self) -> None:
        try:
            self.ledger.beat(self.host)
            self.reap_lost_hosts()
        except Exception as exc:
            self.liveness.blind()
            log.warning("liveness: ledger unavailable", extra={"error": str(exc)})

    def reap_lost_hosts(self) -> None:
        """Fail the executions of farm peers whose liveness token stopped changing. Each is taken from its host
        (a transaction; a host that marked an end finished keeps it), reported failed, and only then dropped
        from the host's record: a failure in between leaves it for the next turn (of this runner or another),
        never unreported."""
        if not self.peers:
            return
        for peer in self.liveness.look(self.ledger.beats(self.peers)):
            for due in self.ledger.held(peer):
                if not self.ledger.take_from_lost(due.execution_id, peer):
                    self._report_for_lost(due, peer)
                    continue
                silent = f"{self.liveness.lost_after:g}s"
                log.warning(
                    "failing an execution of a lost host", extra={"execution_id": str(due.execution_id), "host": peer}
                )
                self.publisher.publish(
                    self.executions_topic,
                    ExecutionFinished(
                        task_id=due.task_id,
                        job_id=due.job_id,
                        execution_id=due.execution_id,
                        status="failed",
                        error=f"host {peer} lost: its runner gave no sign of life for {silent}",
                        host=peer,
                    ),
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
        self.publisher.publish(self.executions_topic, ExecutionFinished.model_validate_json(report))
        self.ledger.done(due.execution_id, peer)
