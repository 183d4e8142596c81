"""The runner's watch and keep-alive (services/runner/watch.py, keep_alive.py), on the fake engine, ledger and
publisher."""

import uuid

from services.runner.breaker import Breaker
from services.runner.keep_alive import KeepAlive
from services.runner.liveness import Liveness
from services.runner.ports import LABEL, ContainerSpec
from services.runner.slots import Slots
from services.runner.stops import StopRequests
from services.runner.watch import Watch
from shared.contract.events import ExecutionDue, ExecutionFinished, RunnerHeartbeat, new_execution_id
from tests.fakes.engine import FOREVER, FakeEngine, Program
from tests.fakes.ledger import FakeLedger
from tests.fakes.publisher import RecordingPublisher

HOST, PEER = "host-1", "host-2"


def due() -> ExecutionDue:
    return ExecutionDue(task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), image="img", command="x")


class Watched:
    def __init__(self) -> None:
        self.engine = FakeEngine(default=Program(running_waits=FOREVER))
        self.ledger, self.publisher = FakeLedger(), RecordingPublisher()
        self.slots, self.stops, self.breaker = Slots(capacity=3), StopRequests(), Breaker(2, 60)
        self.watch = Watch(
            HOST, "farm-a", self.engine, self.ledger, self.publisher, "beats", self.slots, self.stops, self.breaker
        )

    def beats(self) -> list[RunnerHeartbeat]:
        return [e for e in self.publisher.on("beats") if isinstance(e, RunnerHeartbeat)]


def test_each_look_reports_this_host_in_a_heartbeat() -> None:
    w = Watched()
    w.slots.take_at_once()
    w.watch.look_around()
    [beat] = w.beats()
    assert (beat.host, beat.farm, beat.capacity, beat.running) == (HOST, "farm-a", 3, 1)
    assert (beat.engine_ok, beat.circuit, beat.error) == (True, "closed", None)


def test_an_engine_that_does_not_answer_is_reported_and_opens_the_circuit() -> None:
    w = Watched()
    w.engine.answering = False
    w.watch.look_around()
    w.watch.look_around()
    first, second = w.beats()
    assert not first.engine_ok and first.error and "does not answer" in first.error
    assert second.circuit == "open" and not w.breaker.allows_work()


def test_the_blacklist_is_read_at_each_look() -> None:
    w = Watched()
    w.watch.look_around()
    assert not w.watch.blacklisted
    w.ledger.blacklist(HOST)
    w.watch.look_around()
    assert w.watch.blacklisted


def test_stop_requests_missed_and_executions_taken_away_are_stopped() -> None:
    w = Watched()
    asked, taken, left = new_execution_id(), due(), new_execution_id()
    cancels = {eid: w.stops.track(eid) for eid in (asked, taken.execution_id, left)}
    for eid in cancels:
        w.slots.hold(eid)
    w.ledger.request_stop(asked)
    w.ledger.claim(taken, HOST)
    w.ledger.take_from_lost(taken.execution_id, HOST)
    w.watch.look_around()
    assert {eid for eid, cancel in cancels.items() if cancel.is_set()} == {asked, taken.execution_id}


def test_a_ledger_that_does_not_answer_still_lets_the_heartbeat_out() -> None:
    w = Watched()
    w.ledger.answering = False
    w.watch.look_around()
    assert len(w.beats()) == 1


def test_when_the_engine_answers_again_containers_of_executions_failed_meanwhile_are_removed() -> None:
    w = Watched()
    failed, running = due(), due()
    for d in (failed, running):
        w.ledger.claim(d, HOST)
        w.engine.start(ContainerSpec(f"fastlane-{d.execution_id}", "img", ["x"], labels={LABEL: str(d.execution_id)}))
    w.slots.hold(running.execution_id)  # still followed by a worker: its container stays
    w.engine.answering = False
    w.watch.look_around()
    w.engine.answering = True
    w.watch.look_around()
    assert [eid for _, eid, _ in w.engine.executions()] == [str(running.execution_id)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keep_alive(ledger: FakeLedger, publisher: RecordingPublisher, clock: Clock) -> KeepAlive:
    return KeepAlive(HOST, [HOST, PEER], ledger, publisher, "executions", Liveness(3.0, 1.0, clock))


def test_a_peer_silent_past_the_limit_has_its_executions_failed_and_its_marked_end_reported() -> None:
    ledger, publisher, clock = FakeLedger(), RecordingPublisher(), Clock()
    running, ended = due(), due()
    ledger.claim(running, PEER)
    ledger.claim(ended, PEER)
    report = ExecutionFinished(
        task_id="t", job_id=ended.job_id, execution_id=ended.execution_id, status="done", host=PEER
    )
    ledger.finish(ended.execution_id, PEER, report.model_dump_json())
    ledger.beat(PEER)
    alive = keep_alive(ledger, publisher, clock)
    for _ in range(3):  # the peer's token does not change while this runner keeps looking
        alive.beat()
        clock.now += 1.0
    assert publisher.published == []  # 2 s of silence: not yet
    alive.beat()
    failed, kept = publisher.on("executions")
    assert isinstance(failed, ExecutionFinished) and failed.execution_id == running.execution_id
    assert (failed.status, failed.host, failed.error) == (
        "failed",
        PEER,
        f"host {PEER} lost: its runner gave no sign of life for 3s",
    )
    assert kept == report
    assert ledger.held(PEER) == [] and ledger.owner(running.execution_id) == f"lost:{PEER}"
    assert HOST in ledger.beats([HOST])


def test_a_peer_whose_token_changes_is_never_lost() -> None:
    ledger, publisher, clock = FakeLedger(), RecordingPublisher(), Clock()
    ledger.claim(due(), PEER)
    alive = keep_alive(ledger, publisher, clock)
    for _ in range(10):
        ledger.beat(PEER)
        alive.beat()
        clock.now += 1.0
    assert publisher.published == []


def test_a_runner_that_could_not_reach_the_ledger_starts_watching_its_peers_over() -> None:
    ledger, publisher, clock = FakeLedger(), RecordingPublisher(), Clock()
    ledger.claim(due(), PEER)
    ledger.beat(PEER)
    alive = keep_alive(ledger, publisher, clock)
    alive.beat()
    clock.now += 2.0
    ledger.answering = False
    alive.beat()  # blind: what it saw so far proves nothing
    ledger.answering = True
    clock.now += 1.5
    alive.beat()
    assert publisher.published == []  # 3.5 s since it first saw the token, but it was blind in between
