"""The migration runs once and is versioned (services/migrate.py): on real Kafka and Cassandra, a fresh prefix
and keyspace are behind until `python -m services.migrate` runs; services only wait for it; a recorded version
other than the code's is behind too; two migrations at once are harmless."""

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from services import migrate as migrate_module
from services.migrate import await_migrated, behind, main, prepare_backends, schema_version
from shared.infra.cassandra import connect
from tests.conftest import AllSettings, drop_stack_data


@pytest.fixture
def fresh(backends: AllSettings) -> Iterator[AllSettings]:
    run = uuid.uuid4().hex[:8]
    settings = backends.model_copy(
        update={"topic_prefix": f"{backends.topic_prefix}mig{run}.", "keyspace": f"mig_{run}", "startup_timeout_s": 3}
    )
    yield settings
    drop_stack_data(settings)


def test_the_version_is_a_digest_of_what_the_code_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    now = schema_version()
    assert len(now) == 16 and now == schema_version()
    first = migrate_module.SCHEMAS[0]
    changed = dataclasses.replace(first, added_columns=(*first.added_columns, ("jobs", "extra", "text")))
    monkeypatch.setattr(migrate_module, "SCHEMAS", (changed, *migrate_module.SCHEMAS[1:]))
    assert schema_version() != now  # a new column is a new version, with nothing to bump by hand


def test_fresh_backends_are_behind_until_migrated_once(fresh: AllSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"FASTLANE_TOPIC_PREFIX": fresh.topic_prefix, "FASTLANE_KEYSPACE": fresh.keyspace}.items():
        monkeypatch.setenv(name, value)
    missing = behind(fresh)
    assert len(missing) == 2 and missing[0].startswith("topics missing:") and "(applied: none)" in missing[1]
    assert main(["--check"]) == 1
    assert main([]) == 0
    assert behind(fresh) == []
    assert main(["--check"]) == 0
    assert main(["--wait"]) == 0


def test_a_service_waits_for_the_migration_and_gives_up_without_it(fresh: AllSettings) -> None:
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"services\.migrate"):
        await_migrated(fresh)
    assert time.monotonic() - started >= 3  # it waited its start-up timeout, creating nothing meanwhile
    assert len(behind(fresh)) == 2

    patient = fresh.model_copy(update={"startup_timeout_s": 120})
    later = threading.Timer(1.5, prepare_backends, (fresh,))
    later.start()
    await_migrated(patient)  # returns once the migration has recorded its version
    later.join()
    assert behind(fresh) == []


def test_only_an_older_version_applied_is_behind_and_an_older_one_stays_applied(fresh: AllSettings) -> None:
    prepare_backends(fresh)
    cluster, session = connect(fresh)
    table = f"{fresh.keyspace}.schema_versions"
    try:
        session.execute(f"DELETE FROM {table} WHERE name = 'fastlane' AND version = %s", (schema_version(),))
        session.execute(f"INSERT INTO {table} (name, version) VALUES ('fastlane', 'older')")
        assert behind(fresh) == [f"schema version {schema_version()} not applied (applied: older)"]
        prepare_backends(fresh)
        assert behind(fresh) == []  # and the older code's version is still there: a rollback starts too
        assert sorted(r.version for r in session.execute(f"SELECT version FROM {table}")) == sorted(
            ["older", schema_version()]
        )
    finally:
        cluster.shutdown()


def test_two_migrations_at_once_both_succeed(fresh: AllSettings) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            prepare_backends(fresh)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and behind(fresh) == []
