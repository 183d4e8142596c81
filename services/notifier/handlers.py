"""The notifier's handlers, dispatched from ONE table by message type (HANDLERS): an execution event's
deliveries (plan.py decides which) are written to the store and scheduled; an event that comes before its
job's row waits for it (waiting.py) and is looked at again, until the row comes or patience ends. Kafka-free:
each handler takes the event with the partition and offset it was read at, and works through the ports."""

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Message

from services.notifier.decisions import park_reason, planned_before
from services.notifier.plan import Delivery, plan
from services.notifier.ports import DeadLetters, DeliveryStore, JobDefinitions, Waiting, WaitingStore
from shared.contract.events import Event, ExecutionFinished, ExecutionStarted, encode, utcnow
from shared.contract.topics import Topics
from shared.domain.links import Links
from shared.process.settings import NotifierSettings

log = logging.getLogger("notifier")


class Planner:
    """Plans deliveries from execution events; `schedule` hands a delivery to the dispatcher."""

    def __init__(
        self,
        settings: NotifierSettings,
        jobs: JobDefinitions,
        store: DeliveryStore,
        waiting: WaitingStore,
        dead_letters: DeadLetters,
        schedule: Callable[[Delivery], None],
    ) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.links = Links(settings.public_url)
        self.jobs = jobs
        self.store = store
        self.waiting = waiting
        self.dead_letters = dead_letters
        self.schedule = schedule
        # How long an event waits for its job's row before it is parked.
        self.patience_s = settings.notify_job_wait_s

    def handle(self, event: Event, msg: Message) -> None:
        """The consumer's handler: `event` to its entry in HANDLERS (other types concern no notification)."""
        handler = HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event, msg.partition() or 0, msg.offset() or 0)

    def execution_event(self, event: ExecutionStarted | ExecutionFinished, partition: int, offset: int) -> None:
        if not self.plan_event(event, partition):
            # The job's row is not there yet: kept, and planned when it comes (services/notifier/waiting.py).
            self.waiting.add(partition, event, offset, utcnow())
            log.info(
                "job row not found yet; the event waits for it",
                extra={"job_id": str(event.job_id), "event_id": str(event.event_id)},
            )

    def plan_event(self, event: ExecutionStarted | ExecutionFinished, partition: int) -> bool:
        """Plan the deliveries `event` asks for; False when its job's row is not (completely) written yet."""
        try:
            definition = self.jobs.definition(event.task_id, event.job_id)
        except ValueError as exc:  # retrying cannot mend it: say so and go on
            log.error(
                "job definition unreadable; no notifications", extra={"job_id": str(event.job_id), "error": str(exc)}
            )
            return True
        if definition is None:
            return False
        if not definition.webhooks and not definition.notify:
            return True
        s = self.settings
        deliveries = plan(
            event, definition, partition, self.links, s.env_blacklist, s.webhook_default_retries, s.mail_retries
        )
        for d in deliveries:
            todo = planned_before(self.store.state(d))
            if todo == "plan":
                self.store.plan(d)
                self.schedule(d)
            elif todo == "take up":  # the dispatcher ignores a delivery it has already
                pending = self.store.pending_one(d)
                if pending is not None:
                    self.schedule(pending)
        return True

    def recheck(self, partitions: list[int]) -> None:
        """Look again at the waiting events of `partitions` (the ones this notifier owns)."""
        for partition in partitions:
            try:
                for waiting in self.waiting.of(partition):
                    self._recheck(waiting)
            except Exception:  # Cassandra or Kafka away: the next round tries again
                log.exception("waiting events not rechecked", extra={"partition": partition})

    def _recheck(self, w: Waiting) -> None:
        event = w.event
        if self.plan_event(event, w.partition):
            log.info("job row found; the waiting event is planned", extra={"event_id": str(event.event_id)})
            self.waiting.remove(w.partition, event.event_id)
            return
        why = park_reason(w, utcnow(), self.patience_s)
        if why is None:
            return
        log.error("waiting event parked", extra={"event_id": str(event.event_id), "reason": why})
        origin = (self.topics.executions, w.partition, w.offset)
        self.dead_letters.park_value(self.topics.dead_letter, event.key, encode(event), origin, why)
        self.waiting.remove(w.partition, event.event_id)


# Every message type the notifier acts on; the rest of the `executions` topic concerns no notification.
HANDLERS: dict[type, Callable[[Planner, Any, int, int], None]] = {
    ExecutionStarted: Planner.execution_event,
    ExecutionFinished: Planner.execution_event,
}
