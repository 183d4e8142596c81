"""`python -m shared.migrate`: create the Kafka topics and the Cassandra schema (idempotent)."""

from shared.cassandra import migrate
from shared.kafka import ensure_topics
from shared.logs import setup_logging
from shared.settings import Settings


def main() -> None:
    settings = Settings()
    setup_logging(settings)
    ensure_topics(settings)
    migrate(settings)


if __name__ == "__main__":
    main()
