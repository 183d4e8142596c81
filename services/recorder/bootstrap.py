"""The recorder's wiring: builds its adapters and hands them to the consumer loop; nothing else."""

import logging
import threading

from services.migrate import await_migrated
from services.recorder.handlers import Recorder
from services.recorder.indexes import Indexes
from services.recorder.rows import ProjectionRows
from shared.contract.topics import Topics, group_id
from shared.infra.cassandra import connect
from shared.infra.kafka.consumer import run_consumer
from shared.infra.kafka.producer import EventProducer
from shared.process.metrics import serve_probes
from shared.process.settings import Settings

log = logging.getLogger("recorder")


def serve(settings: Settings, stop: threading.Event) -> None:
    await_migrated(settings)
    topics = Topics.from_settings(settings)
    cluster, session = connect(settings)
    probes = serve_probes(settings, session)
    producer = EventProducer(settings)
    recorder = Recorder(session, ProjectionRows(session, settings.keyspace), Indexes(session, settings.keyspace))
    log.info("recorder started")
    # Live output has a consumer (and group) of its own: a job that writes a lot never delays the projection of
    # every job's lifecycle.
    output = threading.Thread(
        target=run_consumer,
        args=(settings, group_id(settings, "recorder.output"), [topics.output], recorder.record, producer, stop),
        name="recorder-output",
        daemon=True,
    )
    output.start()
    try:
        run_consumer(
            settings,
            group_id(settings, "recorder"),
            [topics.jobs, *topics.all_due, topics.executions, topics.heartbeats, topics.control],
            recorder.record,
            producer,
            stop,
            on_poison=recorder.record_poison,
        )
    finally:
        stop.set()
        output.join(timeout=10)
        producer.close()
        if probes is not None:
            probes.close()
        cluster.shutdown()
        log.info("recorder stopped")
