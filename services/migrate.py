"""`python -m services.migrate`: create the Kafka topics and every store's Cassandra tables (idempotent).

Each store declares its own tables next to the code that uses them; this is the one place that knows them all.
"""

from services.api.idempotency import SCHEMA as IDEMPOTENCY
from services.notifier.store import SCHEMA as DELIVERIES
from services.notifier.waiting import SCHEMA as WAITING
from services.recorder.tables import SCHEMA as READ_MODEL
from services.runner.ledger import SCHEMA as LEDGER
from shared.infra.cassandra import migrate
from shared.infra.kafka.admin import ensure_topics
from shared.process.logs import setup_logging
from shared.process.settings import Settings

SCHEMAS = (READ_MODEL, LEDGER, DELIVERIES, WAITING, IDEMPOTENCY)


def prepare_backends(settings: Settings) -> None:
    """Wait for Kafka and Cassandra, then create the topics and tables that are missing (idempotent)."""
    ensure_topics(settings)
    migrate(settings, SCHEMAS)


def main() -> None:
    settings = Settings()
    setup_logging(settings)
    prepare_backends(settings)


if __name__ == "__main__":
    main()
