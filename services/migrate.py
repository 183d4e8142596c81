"""`python -m services.migrate`: the migration, run once per deployment (by `make run` before the services, by
the compose `migrate` service, by the Kubernetes migrate Job) rather than by every service racing at start-up.

It creates the Kafka topics and every store's Cassandra tables when missing (each statement idempotent, so a
second run, or two at once, is harmless), aligns the topics' settings and the tables' retention, then records the
schema's version in `<keyspace>.schema_versions` (one row per version applied). The version is a digest of what
the code declares (every store's tables and added columns, the topics and their settings): a change to any of
them is a new version, with no number to bump by hand. Each service, at start-up, only waits until its own
version is among those applied (`await_migrated`), so a service never runs on a schema older than its code; an
older code's version stays applied, so a rollback (or an old pod restarted during an upgrade) starts at once.

`--check` exits 0 when the backends are at this code's version, 1 otherwise; `--wait` waits until they are (up to
FASTLANE_STARTUP_TIMEOUT_S; an init container's job).

Each store declares its own tables next to the code that uses them; this is the one place that knows them all.
"""

import argparse
import hashlib
import json
import logging
import sys
import time

from cassandra import InvalidRequest
from confluent_kafka.admin import AdminClient

from services.api.idempotency import SCHEMA as IDEMPOTENCY
from services.notifier.store import SCHEMA as DELIVERIES
from services.notifier.waiting import SCHEMA as WAITING
from services.recorder.tables import SCHEMA as READ_MODEL
from services.runner.ledger import SCHEMA as LEDGER
from shared.contract.topics import Topics
from shared.infra.cassandra import connect, migrate
from shared.infra.kafka.admin import ensure_topics, wait_for_kafka
from shared.process.logs import setup_logging
from shared.process.settings import Settings

log = logging.getLogger("migrate")
SCHEMAS = (READ_MODEL, LEDGER, DELIVERIES, WAITING, IDEMPOTENCY)
# One row per version ever applied: migrations only add (tables, columns, topics), so a schema that reached a
# newer version still serves the code of an older one (a rollback, an old pod restarted mid-upgrade).
VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS {ks}.schema_versions"
    " (name text, version text, applied_at timestamp, PRIMARY KEY (name, version))"
)
WAIT_LOG_EVERY_S = 10.0
SCHEMA_AGREEMENT_S = 300.0


def schema_version() -> str:
    """The digest of everything the migration creates, as this code declares it (prefix and keyspace aside)."""
    topics = Topics.from_settings(Settings(topic_prefix=""))
    declared = {
        "tables": [[list(s.tables), [list(c) for c in s.added_columns], list(s.retained)] for s in SCHEMAS],
        "topics": {name: topics.config(name) for name in sorted(topics.all())},
    }
    return hashlib.sha256(json.dumps(declared, sort_keys=True).encode()).hexdigest()[:16]


def prepare_backends(settings: Settings) -> None:
    """The migration: wait for Kafka and Cassandra, create the topics and tables that are missing, align their
    settings, then record this code's schema version (last: a version recorded means everything is there)."""
    ensure_topics(settings)
    migrate(settings, SCHEMAS)
    cluster, session = connect(settings)
    try:
        session.execute(VERSION_TABLE.format(ks=settings.keyspace), timeout=60)
        # On a cluster every node must know every table before services are told they may start: a node still
        # behind would answer "table ... does not exist" to the first query it coordinates.
        if not cluster.control_connection.wait_for_schema_agreement(wait_time=SCHEMA_AGREEMENT_S):
            raise RuntimeError(f"the Cassandra nodes did not agree on the schema within {SCHEMA_AGREEMENT_S} s")
        session.execute(
            f"INSERT INTO {settings.keyspace}.schema_versions (name, version, applied_at) "
            "VALUES ('fastlane', %s, toTimestamp(now()))",
            (schema_version(),),
        )
    finally:
        cluster.shutdown()
    log.info("migrated", extra={"version": schema_version(), "keyspace": settings.keyspace})


def behind(settings: Settings) -> list[str]:
    """What keeps the backends from being at this code's schema version (empty when they are)."""
    missing = []
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    topics = set(admin.list_topics(timeout=10).topics)
    absent = sorted(set(Topics.from_settings(settings).all()) - topics)
    if absent:
        missing.append(f"topics missing: {', '.join(absent)}")
    cluster, session = connect(settings)
    try:
        rows = session.execute(
            f"SELECT version FROM {settings.keyspace}.schema_versions WHERE name = 'fastlane'", timeout=10
        )
        applied = [row.version for row in rows]
    except InvalidRequest:  # no keyspace or no table yet
        applied = []
    finally:
        cluster.shutdown()
    if schema_version() not in applied:
        missing.append(f"schema version {schema_version()} not applied (applied: {', '.join(applied) or 'none'})")
    return missing


def await_migrated(settings: Settings) -> None:
    """Wait (up to FASTLANE_STARTUP_TIMEOUT_S) until the migration has brought the backends to this code's
    schema version; RuntimeError after that. What every service does at start-up instead of migrating."""
    wait_for_kafka(settings)
    deadline = time.monotonic() + settings.startup_timeout_s
    said = 0.0
    while True:
        missing = behind(settings)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the backends were not migrated (run `python -m services.migrate`): {missing}")
        if time.monotonic() - said >= WAIT_LOG_EVERY_S:
            log.warning("waiting for the migration (`python -m services.migrate`)", extra={"missing": missing})
            said = time.monotonic()
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.migrate", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 0 when migrated to this code's version, else 1")
    mode.add_argument("--wait", action="store_true", help="wait until migrated (FASTLANE_STARTUP_TIMEOUT_S)")
    args = parser.parse_args(argv)
    settings = Settings()
    setup_logging(settings)
    if args.check:
        missing = behind(settings)
        print("\n".join(missing) or f"migrated: schema version {schema_version()}")
        return 1 if missing else 0
    if args.wait:
        await_migrated(settings)
        return 0
    prepare_backends(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
