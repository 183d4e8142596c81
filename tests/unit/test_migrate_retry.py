"""The migration sends a schema change again when its answer did not come (a busy node), after the nodes agree
on the schema; a change refused for good is not retried. The driver is faked: the migration on a real node is
every integration test's set-up, on a real cluster the cluster test's."""

from typing import Any

import pytest
from cassandra import InvalidRequest, OperationTimedOut

import shared.infra.cassandra as cassandra_module
from shared.infra.cassandra import Schema, migrate
from shared.process.settings import Settings


class FlakySession:
    """Times out on the first `timeouts` statements, then answers."""

    def __init__(self, timeouts: int = 0, refuse: bool = False) -> None:
        self.timeouts, self.refuse = timeouts, refuse
        self.sent: list[str] = []

    def execute(self, statement: str, *_args: Any, **_kwargs: Any) -> Any:
        self.sent.append(statement)
        if self.refuse:
            raise InvalidRequest("no such thing")
        if self.timeouts:
            self.timeouts -= 1
            raise OperationTimedOut({"127.0.2.2:9042": "Connection defunct by heartbeat"})
        return FoundNothing()


class FoundNothing:
    def one(self) -> None:
        return None


class Agreement:
    def __init__(self) -> None:
        self.waits = 0

    def wait_for_schema_agreement(self, wait_time: float) -> bool:
        self.waits += 1
        return True


class FakeCluster:
    def __init__(self) -> None:
        self.control_connection = Agreement()
        self.shut = False

    def shutdown(self) -> None:
        self.shut = True


SCHEMA = Schema(tables=("CREATE TABLE IF NOT EXISTS {ks}.t (k int PRIMARY KEY)",))


def migrate_on(session: FlakySession, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster()
    monkeypatch.setattr(cassandra_module, "connect", lambda _settings: (cluster, session))
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda _s: None)
    migrate(Settings(keyspace="ks", startup_timeout_s=30), [SCHEMA])
    return cluster


def test_a_change_whose_answer_did_not_come_is_sent_again_once_the_nodes_agree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = FlakySession(timeouts=2)
    cluster = migrate_on(session, monkeypatch)
    keyspace, table = session.sent[0], "CREATE TABLE IF NOT EXISTS ks.t (k int PRIMARY KEY)"
    assert keyspace.startswith("CREATE KEYSPACE IF NOT EXISTS ks")
    assert session.sent == [keyspace, keyspace, keyspace, table]
    assert cluster.control_connection.waits == 2
    assert cluster.shut


def test_a_change_refused_is_not_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    session = FlakySession(refuse=True)
    with pytest.raises(InvalidRequest):
        migrate_on(session, monkeypatch)
    assert len(session.sent) == 1
