"""The recorder's wiring: consume every topic and keep the Cassandra projections up to date."""

import logging
import threading

from confluent_kafka import Message

from services.migrate import prepare_backends
from services.recorder.indexes import Indexes
from services.recorder.projections import Projections
from shared.contract.events import Event, ExecutionFinished
from shared.contract.topics import Topics, group_id
from shared.infra.cassandra import connect
from shared.infra.kafka import EventProducer, run_consumer
from shared.infra.writes import Writes
from shared.process.settings import Settings

log = logging.getLogger("recorder")


def serve(settings: Settings, stop: threading.Event) -> None:
    prepare_backends(settings)
    topics = Topics.from_settings(settings)
    cluster, session = connect(settings)
    producer = EventProducer(settings)
    projections = Projections(session, settings.keyspace)
    indexes = Indexes(session, settings.keyspace)

    def record(event: Event, _msg: Message) -> None:
        writes = Writes(session)  # the event's writes, sent together
        projections.apply(event, writes)
        indexes.apply(event, writes)
        writes.send()

    def record_poison(event: Event, why: str) -> None:
        """An execution's end that cannot be recorded as it came still ends the execution: without its logs,
        with the reason (the event itself goes to the dead-letter topic)."""
        if isinstance(event, ExecutionFinished):
            error = f"fastlane could not record this execution's outcome as reported ({why})"
            bare = {"stdout": "", "stderr": "", "error": error, "exit_code": None, "host": None}
            record(event.model_copy(update=bare), _msg=None)  # type: ignore[arg-type]

    log.info("recorder started")
    try:
        run_consumer(
            settings,
            group_id(settings, "recorder"),
            [topics.jobs, *topics.all_due, topics.executions, topics.heartbeats, topics.control],
            record,
            producer,
            stop,
            on_poison=record_poison,
        )
    finally:
        producer.close()
        cluster.shutdown()
        log.info("recorder stopped")
