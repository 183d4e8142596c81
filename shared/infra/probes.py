"""Whether the backing services answer: the API's `/healthcheck` and `/readyz`, and every other service's
`/readyz` (shared/process/metrics.py) ask these."""

from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient


def kafka_answers(bootstrap: str, timeout: float) -> None:
    AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout)


def cassandra_answers(session: Session, timeout: float) -> None:
    session.execute("SELECT release_version FROM system.local", timeout=timeout)


def unanswered(bootstrap: str, session: Session | None, timeout: float) -> list[str]:
    """What does not answer within `timeout` (each asked in turn), as `kafka: <why>` lines; empty when all do.
    Cassandra is not asked without a `session` (a service that does not use it)."""
    errors = []
    try:
        kafka_answers(bootstrap, timeout)
    except Exception as exc:
        errors.append(f"kafka: {exc or type(exc).__name__}")
    if session is not None:
        try:
            cassandra_answers(session, timeout)
        except Exception as exc:
            errors.append(f"cassandra: {exc or type(exc).__name__}")
    return errors
