"""The Ledger port's contract, run against the fake ledger (tests/fakes/ledger.py) and CassandraLedger on the real
node: claims with compare-and-set semantics and their `done:`, `lost:`, `handed-back:` transitions, what each host
holds, liveness tokens, and what the API records for runners (blacklist, stop requests).
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from services.runner.ledger import CassandraLedger
from services.runner.ports import Ledger
from shared.contract.events import ExecutionDue, ExecutionFinished, new_execution_id
from tests.fakes.ledger import FakeLedger


@dataclass
class LedgerUnderTest:
    """The ledger, and how a test records what the API would (a blacklisted host, a stop request)."""

    ledger: Ledger
    blacklist: Callable[[str], None]
    request_stop: Callable[[uuid.UUID], None]


@pytest.fixture(params=["fake", "cassandra"])
def under_test(request: pytest.FixtureRequest) -> LedgerUnderTest:
    if request.param == "fake":
        fake = FakeLedger()
        return LedgerUnderTest(fake, fake.blacklist, fake.request_stop)
    session, keyspace = request.getfixturevalue("cassandra"), request.getfixturevalue("backends").keyspace
    now = "toTimestamp(now())"
    blacklisted = session.prepare(f"INSERT INTO {keyspace}.blacklist (host, since) VALUES (?, {now})")
    asked = session.prepare(f"INSERT INTO {keyspace}.stop_requests (execution_id, requested_at) VALUES (?, {now})")

    def blacklist(host: str) -> None:
        session.execute(blacklisted, (host,))

    def request_stop(execution_id: uuid.UUID) -> None:
        session.execute(asked, (execution_id,))

    return LedgerUnderTest(CassandraLedger(session, keyspace), blacklist, request_stop)


@pytest.fixture
def ledger(under_test: LedgerUnderTest) -> Ledger:
    return under_test.ledger


@pytest.fixture
def hosts() -> tuple[str, str]:
    """Two hosts of this test's own (the node is shared by the session's tests)."""
    run = uuid.uuid4().hex[:8]
    return f"contract-{run}-a", f"contract-{run}-b"


def due() -> ExecutionDue:
    return ExecutionDue(task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), image="img", command="x")


def held_ids(ledger: Ledger, host: str) -> list[uuid.UUID]:
    return [d.execution_id for d in ledger.held(host)]


def test_the_first_claim_wins_and_the_second_host_holds_nothing(ledger: Ledger, hosts: tuple[str, str]) -> None:
    a, b = hosts
    d = due()
    assert ledger.owner(d.execution_id) is None
    assert ledger.claim(d, a) == (a, True)
    assert ledger.claim(d, b) == (a, False)
    assert ledger.owner(d.execution_id) == a
    assert held_ids(ledger, a) == [d.execution_id] and held_ids(ledger, b) == []
    assert ledger.held(a) == [d]  # the ExecutionDue itself, for a restart to take up


def test_a_second_claim_by_the_owner_is_not_applied_but_still_its_own(ledger: Ledger, hosts: tuple[str, str]) -> None:
    a, _ = hosts
    d = due()
    ledger.claim(d, a)
    ledger.done(d.execution_id, a)
    assert ledger.claim(d, a) == (a, False)
    assert held_ids(ledger, a) == [d.execution_id]  # recorded again: it runs there


def test_done_drops_the_record_and_keeps_the_claim(ledger: Ledger, hosts: tuple[str, str]) -> None:
    a, b = hosts
    d = due()
    ledger.claim(d, a)
    ledger.done(d.execution_id, a)
    assert held_ids(ledger, a) == [] and ledger.owner(d.execution_id) == a
    assert ledger.claim(d, b) == (a, False)  # a replay finds the claim


def test_finishing_marks_the_end_as_the_hosts_and_keeps_the_report(ledger: Ledger, hosts: tuple[str, str]) -> None:
    a, b = hosts
    d = due()
    report = ExecutionFinished(
        task_id="t", job_id=d.job_id, execution_id=d.execution_id, status="done"
    ).model_dump_json()
    ledger.claim(d, a)
    assert ledger.finish(d.execution_id, a, report)
    assert ledger.reported(d.execution_id) == (f"done:{a}", report)
    assert ledger.finish(d.execution_id, a, report)  # again, after a crash: still its to report
    assert ledger.claim(d, b) == (f"done:{a}", False) and ledger.claim(d, a) == (f"done:{a}", False)
    assert not ledger.finish(d.execution_id, b)
    assert not ledger.take_from_lost(d.execution_id, a)  # a marked end is never taken away


def test_finishing_without_a_claim_is_nobody_elses(ledger: Ledger, hosts: tuple[str, str]) -> None:
    a, _ = hosts
    d = due()
    assert ledger.finish(d.execution_id, a)
    assert ledger.reported(d.execution_id) == (None, None)


def test_an_execution_taken_from_a_lost_host_cannot_be_finished_there(ledger: Ledger, hosts: tuple[str, str]) -> None:
    a, b = hosts
    d = due()
    ledger.claim(d, a)
    assert ledger.take_from_lost(d.execution_id, a)
    assert ledger.take_from_lost(d.execution_id, a)  # again: taken already
    assert ledger.owner(d.execution_id) == f"lost:{a}"
    assert not ledger.finish(d.execution_id, a, None)
    assert held_ids(ledger, a) == [d.execution_id]  # until the peer that reported it drops it
    assert not ledger.take_from_lost(d.execution_id, b)  # not b's
    assert ledger.claim(d, b) == (f"lost:{a}", False)


def test_an_execution_handed_back_goes_to_the_next_claim(ledger: Ledger, hosts: tuple[str, str]) -> None:
    a, b = hosts
    d = due()
    ledger.claim(d, a)
    assert ledger.release(d.execution_id, a)
    assert ledger.release(d.execution_id, a)  # again, after a crash
    assert ledger.reported(d.execution_id) == (f"handed-back:{a}", None)
    assert not ledger.release(d.execution_id, b)
    assert ledger.claim(d, b) == (b, True)
    assert held_ids(ledger, b) == [d.execution_id]
    assert not ledger.release(d.execution_id, a)  # no longer a's


def test_owners_are_read_together(ledger: Ledger, hosts: tuple[str, str]) -> None:
    a, b = hosts
    first, second, unclaimed = due(), due(), due()
    ledger.claim(first, a)
    ledger.claim(second, b)
    ids = [first.execution_id, second.execution_id, unclaimed.execution_id]
    assert ledger.owners(ids) == dict(zip(ids, [a, b, None], strict=True))


def test_a_hosts_token_changes_at_each_beat(ledger: Ledger, hosts: tuple[str, str]) -> None:
    a, b = hosts
    assert ledger.beats([a, b]) == {}
    ledger.beat(a)
    first = ledger.beats([a, b])
    ledger.beat(a)
    second = ledger.beats([a, b])
    assert set(first) == set(second) == {a} and first[a] != second[a]


def test_the_blacklist_and_stop_requests_are_read(under_test: LedgerUnderTest, hosts: tuple[str, str]) -> None:
    ledger, (a, b) = under_test.ledger, hosts
    asked, other = new_execution_id(), new_execution_id()
    under_test.blacklist(a)
    under_test.request_stop(asked)
    assert ledger.blacklisted(a) and not ledger.blacklisted(b)
    assert ledger.stops_requested([asked, other]) == [asked]
    assert ledger.stops_requested([]) == []
