"""One execution from its claim to its reported end or its hand-back (services/runner/worker.py), on the fake
engine, ledger and publisher."""

import threading
import uuid

from services.runner.breaker import Breaker
from services.runner.handlers import Limits
from services.runner.offsets import Position
from services.runner.slots import Slots
from services.runner.stops import StopRequests
from services.runner.worker import REPORT_KEPT_BYTES, Worker
from shared.contract.events import ExecutionDue, ExecutionFinished, ExecutionStarted, new_execution_id
from tests.fakes.engine import FOREVER, FakeEngine
from tests.fakes.ledger import FakeLedger
from tests.fakes.publisher import RecordingPublisher

HOST, PEER = "host-1", "host-2"
DUE_TOPIC, EXECUTIONS = "due", "executions"
POSITION: Position = ("due", 0, 7)


class Parts:
    """A worker and the fakes around it."""

    def __init__(self, engine: FakeEngine | None = None, capacity: int = 1) -> None:
        self.engine = engine or FakeEngine.with_program(exit_code=0, stdout=b"it works\n")
        self.ledger, self.publisher = FakeLedger(), RecordingPublisher()
        self.slots, self.stops, self.breaker = Slots(capacity), StopRequests(), Breaker(1, 60)
        self.acknowledged: list[Position] = []
        self.worker = Worker(
            HOST,
            Limits(max_log_bytes=1024, stop_grace_s=3, engine_lost_after_s=0.5),
            self.engine,
            self.publisher,
            self.ledger,
            (DUE_TOPIC, EXECUTIONS),
            self.slots,
            self.stops,
            self.breaker,
            self.acknowledged.append,
        )

    def work(self, due: ExecutionDue, position: Position | None = POSITION) -> None:
        """As the poll loop does: held, queued (when it came in a message), then worked on."""
        self.slots.hold(due.execution_id)
        if position is not None:
            self.slots.queued()
        self.worker.work(due, position, threading.Event())

    def ends(self) -> list[ExecutionFinished]:
        return [e for e in self.publisher.on(EXECUTIONS) if isinstance(e, ExecutionFinished)]


def due(command: str = "echo 'it works'") -> ExecutionDue:
    return ExecutionDue(task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), image="img", command=command)


def test_an_execution_is_claimed_acknowledged_run_reported_and_let_go() -> None:
    parts, d = Parts(), due()
    parts.work(d)
    started, finished = parts.publisher.on(EXECUTIONS)
    assert isinstance(started, ExecutionStarted) and isinstance(finished, ExecutionFinished)
    assert (finished.status, finished.stdout, finished.host) == ("done", "it works\n", HOST)
    assert parts.acknowledged == [POSITION]
    assert parts.ledger.reported(d.execution_id) == (f"done:{HOST}", finished.model_dump_json())  # kept: small
    assert parts.ledger.held(HOST) == []  # dropped from the host's record once reported
    assert (parts.slots.running(), parts.slots.held(), parts.slots.settling()) == (0, set(), 0)
    assert parts.engine.removed == ["cid-1"] and parts.breaker.state == "closed"


def test_an_execution_another_host_claimed_is_acknowledged_and_not_run() -> None:
    parts, d = Parts(), due()
    parts.ledger.claim(d, PEER)
    parts.work(d)
    assert parts.engine.started == [] and parts.publisher.published == []
    assert parts.acknowledged == [POSITION] and parts.slots.running() == 0


def test_an_execution_this_host_claimed_before_runs_here() -> None:
    """The claim applied though its answer was lost: the claim is this host's, and it runs."""
    parts, d = Parts(), due()
    parts.ledger.claim(d, HOST)
    parts.ledger.done(d.execution_id, HOST)
    parts.work(d)
    assert [e.status for e in parts.ends()] == ["done"]


def test_an_engine_never_reached_hands_the_execution_back_to_the_farm() -> None:
    engine = FakeEngine.with_program()
    engine.answering = False
    parts, d = Parts(engine), due()
    parts.work(d)
    assert parts.publisher.on(DUE_TOPIC) == [d] and parts.ends() == []
    assert parts.ledger.owner(d.execution_id) == f"handed-back:{HOST}" and parts.ledger.held(HOST) == []
    assert parts.breaker.state == "open"  # (threshold 1) this runner takes no new work for a while
    assert parts.acknowledged == [POSITION]  # the message is done with: the execution is on the topic again


def test_an_execution_taken_from_this_host_while_it_ran_is_not_reported_and_its_container_goes() -> None:
    parts, d = Parts(FakeEngine.with_program(running_waits=2)), due()
    parts.engine.on_wait.append(lambda: parts.ledger.take_from_lost(d.execution_id, HOST))
    parts.work(d)
    assert parts.ends() == [] and parts.engine.containers == {}
    assert parts.ledger.owner(d.execution_id) == f"lost:{HOST}" and parts.ledger.held(HOST) == []


def test_a_stop_request_ends_the_execution_stopped_with_the_engines_exit_code() -> None:
    parts, d = Parts(FakeEngine.with_program(running_waits=FOREVER)), due()
    parts.engine.on_wait.append(lambda: parts.stops.request(d.execution_id))
    parts.work(d)
    [end] = parts.ends()
    assert (end.status, end.exit_code) == ("stopped", 137) and parts.engine.stopped == [3]
    assert parts.stops.active() == 0


def test_an_execution_taken_up_after_a_restart_runs_without_a_new_claim() -> None:
    parts, d = Parts(), due()
    parts.ledger.claim(d, HOST)
    parts.work(d, position=None)
    assert [e.status for e in parts.ends()] == ["done"] and parts.acknowledged == []
    assert parts.ledger.held(HOST) == [] and parts.slots.running() == 0


def test_a_job_the_engine_cannot_run_fails_with_the_reason() -> None:
    parts, d = Parts(), due("no-such-binary")
    parts.engine.default = None  # every argv is a binary missing from the image
    parts.work(d)
    [end] = parts.ends()
    assert end.status == "failed" and end.error is not None and "no-such-binary" in end.error
    assert parts.breaker.state == "closed"  # the job's fault, not the engine's


def test_a_large_end_is_reported_without_being_kept_with_the_claim() -> None:
    parts, d = Parts(FakeEngine.with_program(stdout=b"x" * (REPORT_KEPT_BYTES + 1))), due()
    parts.worker.limits = Limits(max_log_bytes=4 * REPORT_KEPT_BYTES)
    parts.work(d)
    assert len(parts.ends()) == 1 and parts.ledger.reported(d.execution_id) == (f"done:{HOST}", None)


def test_a_runner_stopping_while_the_container_runs_leaves_it_to_the_restart() -> None:
    parts, d, stop = Parts(FakeEngine.with_program(running_waits=FOREVER)), due(), threading.Event()
    parts.engine.on_wait.append(stop.set)
    parts.slots.hold(d.execution_id)
    parts.slots.queued()
    parts.worker.work(d, POSITION, stop)
    assert parts.ends() == [] and parts.engine.removed == [] and parts.engine.stopped == []
    assert [x.execution_id for x in parts.ledger.held(HOST)] == [d.execution_id]  # taken up when it restarts
    assert parts.slots.held() == set() and parts.slots.running() == 0
