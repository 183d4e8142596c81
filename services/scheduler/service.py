"""The scheduler's wiring: turn job orders into ExecutionDue events."""

import logging
import threading

from services.scheduler.handlers import handle
from shared.events import Event
from shared.kafka import EventProducer, run_consumer
from shared.lifecycle import prepare_backends
from shared.settings import Settings
from shared.topics import Topics, group_id

log = logging.getLogger("scheduler")


def serve(settings: Settings, stop: threading.Event) -> None:
    prepare_backends(settings)
    topics = Topics.from_settings(settings)
    producer = EventProducer(settings)

    def on_event(event: Event) -> None:
        for due in handle(event):
            producer.publish(topics.due, due)
            log.info("execution due", extra={"job_id": str(due.job_id), "execution_id": str(due.execution_id)})

    log.info("scheduler started")
    try:
        run_consumer(settings, group_id(settings, "scheduler"), [topics.jobs], on_event, producer, stop)
    finally:
        producer.close()
        log.info("scheduler stopped")
