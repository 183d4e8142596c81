"""Taking up what this host held after a restart (services/runner/restart.py), on the fake engine, ledger and
publisher."""

import uuid

from services.runner.handlers import container_spec
from services.runner.ports import ContainerSpec
from services.runner.restart import remove_orphans, take_up_held
from services.runner.slots import Slots
from shared.contract.events import ExecutionDue, ExecutionFinished, new_execution_id
from tests.fakes.engine import FOREVER, FakeEngine, Program
from tests.fakes.ledger import FakeLedger
from tests.fakes.publisher import RecordingPublisher

HOST, PEER = "host-1", "host-2"


def due() -> ExecutionDue:
    return ExecutionDue(task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), image="img", command="x")


class Restarted:
    def __init__(self) -> None:
        self.engine = FakeEngine(default=Program(running_waits=FOREVER))
        self.ledger, self.publisher, self.slots = FakeLedger(), RecordingPublisher(), Slots(2)
        self.run: list[ExecutionDue] = []

    def take_up(self) -> None:
        take_up_held(HOST, self.engine, self.ledger, self.publisher, ("due", "executions"), self.slots, self.run.append)

    def names(self) -> list[str]:
        return [c.spec.name for c in self.engine.containers.values()]


def test_what_this_host_runs_is_taken_up_once() -> None:
    r, d = Restarted(), due()
    r.ledger.claim(d, HOST)
    r.engine.start(container_spec(d))
    r.take_up()
    r.take_up()  # a second attempt of the step
    assert r.run == [d] and r.slots.held() == {d.execution_id}
    assert r.names() == [f"fastlane-{d.execution_id}"]  # followed, not removed


def test_an_end_marked_before_a_crash_is_reported_again_never_run_again() -> None:
    r, d = Restarted(), due()
    r.ledger.claim(d, HOST)
    report = ExecutionFinished(task_id="t", job_id=d.job_id, execution_id=d.execution_id, status="done")
    r.ledger.finish(d.execution_id, HOST, report.model_dump_json())
    r.engine.start(container_spec(d))
    r.take_up()
    assert r.publisher.on("executions") == [report] and r.run == []
    assert r.names() == [] and r.ledger.held(HOST) == []


def test_an_end_marked_without_a_report_is_run_to_its_report_while_its_container_is_left() -> None:
    """(A large end is not kept: it is read from the container again.)"""
    r, d = Restarted(), due()
    r.ledger.claim(d, HOST)
    r.ledger.finish(d.execution_id, HOST, None)
    r.engine.start(container_spec(d))
    r.take_up()
    assert r.run == [d] and r.publisher.published == []


def test_an_execution_handed_back_before_a_crash_is_put_back_on_the_farms_topic() -> None:
    r, d = Restarted(), due()
    r.ledger.claim(d, HOST)
    r.ledger.release(d.execution_id, HOST)
    r.take_up()
    assert r.publisher.on("due") == [d] and r.run == [] and r.ledger.held(HOST) == []


def test_an_execution_taken_from_this_host_while_it_was_away_is_dropped_with_its_container() -> None:
    r, d = Restarted(), due()
    r.ledger.claim(d, HOST)
    r.engine.start(container_spec(d))
    r.ledger.take_from_lost(d.execution_id, HOST)
    r.take_up()
    assert r.run == [] and r.names() == [] and r.ledger.held(HOST) == []


def test_only_this_hosts_containers_nothing_holds_are_orphans() -> None:
    r = Restarted()
    mine, held, peers, unlabelled = due(), due(), due(), due()
    for d, host in ((mine, HOST), (held, HOST), (peers, PEER)):
        r.ledger.claim(d, host)
        r.engine.start(container_spec(d))
    r.engine.start(ContainerSpec(f"other-{unlabelled.execution_id}", "img", ["x"]))
    remove_orphans(HOST, r.engine, r.ledger, {held.execution_id})
    assert sorted(r.names()) == sorted(
        [f"fastlane-{held.execution_id}", f"fastlane-{peers.execution_id}", f"other-{unlabelled.execution_id}"]
    )
