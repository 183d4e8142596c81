"""Process lifecycle shared by the Kafka-driven services: prepare the backing stores, stop on a signal."""

import logging
import signal
import threading

from shared.cassandra import migrate
from shared.kafka import ensure_topics
from shared.settings import Settings

log = logging.getLogger(__name__)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: loops finish the message in hand, then exit cleanly."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def prepare_backends(settings: Settings) -> None:
    """Wait for Kafka and Cassandra, then create topics and schema if missing (idempotent)."""
    ensure_topics(settings)
    migrate(settings)
