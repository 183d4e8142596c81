"""The notifier's wiring: builds its adapters (Cassandra stores, the recorder's reader of job definitions,
the HTTP/SMTP sender, the producer) and hands them to the loop; nothing else."""

import logging
import threading

from services.migrate import await_migrated
from services.notifier import consumer
from services.notifier.dispatcher import Dispatcher
from services.notifier.handlers import Planner
from services.notifier.send import HttpAndMailSender
from services.notifier.store import CassandraDeliveryStore
from services.notifier.waiting import CassandraWaitingEvents
from services.recorder.reads import JobDefinitions
from shared.infra.cassandra import connect
from shared.infra.kafka.producer import EventProducer
from shared.process.metrics import serve_probes
from shared.process.settings import NotifierSettings

log = logging.getLogger("notifier")


def serve(settings: NotifierSettings, stop: threading.Event) -> None:
    await_migrated(settings)
    cluster, session = connect(settings)
    probes = serve_probes(settings, session)
    producer = EventProducer(settings)
    log.info("notifier started")
    try:
        store = CassandraDeliveryStore(session, settings.keyspace)
        sender = HttpAndMailSender(settings)
        dispatcher = Dispatcher(store, sender, settings.notify_workers, settings.notify_backoff, stop)
        jobs = JobDefinitions(session, settings.keyspace)
        waiting = CassandraWaitingEvents(session, settings.keyspace)
        planner = Planner(settings, jobs, store, waiting, producer, dispatcher.add)
        consumer.run(settings, planner, dispatcher, store, producer, stop)
    finally:
        producer.close()
        if probes is not None:
            probes.close()
        cluster.shutdown()
        log.info("notifier stopped")
