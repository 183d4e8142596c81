"""Due deliveries to a pool of workers, in order of their next attempt; each attempt bounded in time, its
outcome recorded, a failure rescheduled with backoff (services/notifier/decisions.py). A slow or dead receiver
holds one worker for at most one timeout per attempt, never the consumer or another job's deliveries.

Deliveries belong to the partition of their event: the dispatcher attempts those of the partitions it owns, and
drops the others when they come up (their new owner takes them up from the store)."""

import heapq
import itertools
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from services.notifier.decisions import GiveUp, after_failure, delivered
from services.notifier.plan import Delivery
from services.notifier.ports import DeliveryStore, Failed, Sender
from shared.contract.events import RetryBackoff, utcnow
from shared.infra.kafka.consumer import retry_until_done
from shared.process.logs import bound, trace_ids
from shared.process.metrics import DELIVERIES

log = logging.getLogger("notifier")


class Dispatcher:
    """Due deliveries to a worker pool, in order of their next attempt; failures rescheduled with backoff."""

    def __init__(
        self, store: DeliveryStore, sender: Sender, workers: int, backoff: RetryBackoff, stop: threading.Event
    ) -> None:
        self.store = store
        self.sender = sender
        self.backoff = backoff
        self.stop = stop
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="deliver")
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
        """Schedule `d` for its next attempt; a delivery already scheduled or being attempted is ignored."""
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
        ids = {"task_id": d.task_id, "job_id": d.job_id, "execution_id": d.execution_id, "delivery_id": d.delivery_id}
        with bound(**ids, **trace_ids(d.trace)):
            self._attempt_bound(d)

    def _attempt_bound(self, d: Delivery) -> None:
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
        done = delivered(d)
        DELIVERIES.labels(d.channel, "delivered").inc()
        log.info("delivered", extra={**context, "attempts": done.attempts, "status_code": status_code})
        if retry_until_done(lambda: self.store.finish(done, "delivered", status_code, None), self.stop, context):
            self._forget(d)

    def _failed(self, d: Delivery, exc: Failed, context: dict[str, object]) -> None:
        outcome = after_failure(d, exc.retry, utcnow(), self.backoff)
        attempts = outcome.delivery.attempts
        DELIVERIES.labels(d.channel, "failed" if isinstance(outcome, GiveUp) else "retrying").inc()
        if isinstance(outcome, GiveUp):
            gave_up = outcome.delivery
            log.warning("delivery failed; giving up", extra={**context, "attempts": attempts, "error": str(exc)})
            if retry_until_done(
                lambda: self.store.finish(gave_up, "failed", exc.status_code, str(exc)), self.stop, context
            ):
                self._forget(d)
            return
        again = outcome.delivery
        log.warning("delivery failed; will retry", extra={**context, "attempts": attempts, "error": str(exc)})

        def reschedule() -> None:
            self.store.keep(again)
            self.store.record(again, "retrying", exc.status_code, str(exc))

        if retry_until_done(reschedule, self.stop, context):
            self._forget(d)
            self.add(again)

    def _forget(self, d: Delivery) -> None:
        with self._lock:
            self._waiting.pop(d.delivery_id, None)
