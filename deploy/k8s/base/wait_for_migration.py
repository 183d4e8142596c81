"""Init container of every fastlane service: waits until the migrate Job has created the stack's Kafka topics
and Cassandra tables, so a service never starts on a half-made schema. Runs in the fastlane image (its code on
PYTHONPATH) with the service's own FASTLANE_* settings; gives up after FASTLANE_STARTUP_TIMEOUT_S (the pod's
init then restarts)."""

import re
import sys
import time

from confluent_kafka.admin import AdminClient

from services.migrate import SCHEMAS
from shared.contract.topics import Topics
from shared.infra.cassandra import connect
from shared.process.settings import Settings

TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS \{ks\}\.(\w+)", re.IGNORECASE)


def missing_topics(settings: Settings) -> set[str]:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    return set(Topics.from_settings(settings).all()) - set(admin.list_topics(timeout=5).topics)


def missing_tables(settings: Settings) -> set[str]:
    wanted = {m.group(1) for schema in SCHEMAS for statement in schema.tables for m in TABLE.finditer(statement)}
    cluster, session = connect(settings)
    try:
        rows = session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (settings.keyspace,)
        )
        return wanted - {row.table_name for row in rows}
    finally:
        cluster.shutdown()


def main() -> int:
    settings = Settings()
    deadline = time.monotonic() + settings.startup_timeout_s
    while True:
        try:
            missing = missing_topics(settings) | missing_tables(settings)
        except Exception as exc:  # the backends may not answer yet: keep waiting
            missing = {f"an answer ({exc})"}
        if not missing:
            print("migration done: every topic and table exists", flush=True)
            return 0
        if time.monotonic() > deadline:
            print(f"still missing after {settings.startup_timeout_s:g}s: {sorted(missing)}", flush=True)
            return 1
        print(f"waiting for the migrate Job: missing {sorted(missing)}", flush=True)
        time.sleep(5)


if __name__ == "__main__":
    sys.exit(main())
