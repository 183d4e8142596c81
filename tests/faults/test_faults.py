"""Fault rounds against the real stack (tests/faults/stack.py), one fault per round: submit 24 jobs (short,
`sleep`, failing with retries, failing at first then passing, delayed; half of them with a webhook), inject
the fault 3 s later, heal it, then let the independent checker (tests/faults/checker.py) count lost,
duplicated and wrong executions. A round passes with 0/0/0; every round's row goes to .local/faults/results.md
and the summary at the end of the run, failed or not.

`make test` runs the rounds not marked `faults_long`; `make test-faults` runs them all."""

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.faults import report
from tests.faults.checker import Checker, JobSpec
from tests.faults.stack import TEST_IMAGE, FaultStack

JOBS = 24
FAULT_AT_S = 3.0  # after the first POST
DOWN_S = 5.0  # a killed part stays down this long before it is started again
SETTLE_BOUND_S = 180.0  # after the heal, every accepted job must have reached its end within this
QUIET_S = 8.0  # after everything ended: late duplicates or status moves still show up in this window
ZOMBIE_PAUSE_S = 75.0
POST_PAUSE_S = 20.0  # Kafka paused while POSTs arrive
LONG_S = 85  # the `long` jobs of the rounds whose pause is beyond FASTLANE_HOST_LOST_AFTER_S (60 s)


@dataclass(frozen=True)
class Fault:
    part: str  # a part of the stack (FaultStack.parts), or "scheduler" for the zombie round
    kind: str  # kill | pause | zombie | posts
    seconds: float = 0.0  # pause length
    quick: bool = False  # also run by `make test`

    @property
    def id(self) -> str:
        if self.kind == "kill":
            return f"kill9-{self.part}"
        if self.kind == "pause":
            return f"pause{int(self.seconds)}s-{self.part}"
        if self.kind == "zombie":
            return f"zombie-scheduler-paused{int(self.seconds)}s"
        return f"kafka-paused{int(self.seconds)}s-during-posts"


PARTS = ("api", "scheduler", "runner-h1", "recorder", "notifier", "kafka", "cassandra", "dockerd")
# `make test` runs two: the broker and a runner killed mid-flight (a scheduler killed mid-firing is in
# tests/e2e/test_scheduler_faults.py, a broker paused in tests/e2e/test_poison.py); all run in `make test-faults`.
QUICK = {"kill9-kafka", "kill9-runner-h1"}
FAULTS = [
    *(Fault(p, "kill") for p in PARTS),
    *(Fault(p, "pause", 15) for p in PARTS),
    *(Fault(p, "pause", 75) for p in PARTS),
    Fault("scheduler", "zombie", ZOMBIE_PAUSE_S),
    Fault("kafka", "posts", POST_PAUSE_S),
]


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[FaultStack]:
    stack = FaultStack()
    stack.acquire()
    report.start(stack.run)

    def interrupt(*_: object) -> None:  # SIGTERM (a cancelled CI job, a `kill`): tear the stack down first
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        signal.signal(signal.SIGTERM, previous)


KINDS = ("echo", "sleep", "fail", "flaky", "delayed", "echo-retry")


def job_specs(round_id: str, count: int, hook_url: str, *, tag: str = "", extra: tuple[str, ...] = ()) -> list[JobSpec]:
    """A mix of jobs (`count` of the usual kinds, then the `extra` ones); every command prints its marker first
    thing (the checker looks for it in the log)."""
    specs = []
    soon = int(time.time()) + 4
    kinds = [KINDS[i % len(KINDS)] for i in range(count)] + list(extra)
    for i, kind in enumerate(kinds):
        marker = f"m-{uuid.uuid4().hex[:10]}"
        body: dict[str, Any] = {"image": TEST_IMAGE}
        if kind == "echo":
            body["command"] = f"echo {marker}"
        elif kind == "sleep":
            body["command"] = f'sh -c "echo {marker}; sleep 3"'
        elif kind == "fail":
            body |= {"command": f'sh -c "echo {marker}; exit 1"', "retries": 2}
        elif kind == "flaky":  # fails until a few seconds after submission, then passes
            body |= {"command": f'sh -c "echo {marker}; test $(date +%s) -ge {soon}"', "retries": 3}
        elif kind == "delayed":
            body |= {"command": f"echo {marker}", "startIn": "5s"}
        elif kind == "long":  # still running when a long pause crosses the lost-host limit
            body |= {"command": f'sh -c "echo {marker}; sleep {LONG_S}"', "retries": 1}
        elif kind == "late":  # due just as a paused scheduler wakes up
            body |= {"command": f"echo {marker}", "startIn": f"{int(FAULT_AT_S + ZOMBIE_PAUSE_S) - 2 + i % 6}s"}
        else:
            body |= {"command": f"echo {marker}", "retries": 1}
        if (i // 6) % 2 == 0:
            body["webhooks"] = {"finishes": [{"url": hook_url, "retries": 10}]}
        task = f"f-{round_id}{tag}-{i}-{uuid.uuid4().hex[:6]}"
        specs.append(JobSpec(kind, task, marker, body))
    return specs


def extra_jobs(fault: Fault) -> tuple[str, ...]:
    """Work that is in flight at the moment that matters: jobs still running when a pause passes the lost-host
    limit; timers coming due as the zombie scheduler wakes up."""
    if fault.kind == "zombie":
        return ("late",) * 6
    if fault.seconds > 60:
        return ("long",) * 2  # two of the four slots: the other jobs still run meanwhile
    return ()


def inject(stack: FaultStack, fault: Fault, checker: Checker, round_id: str) -> float:
    """Inject the fault and heal it; returns the monotonic time of the heal."""
    part = stack.parts[fault.part]
    if fault.kind == "kill":
        part.kill()
        time.sleep(DOWN_S)
        healed = time.monotonic()
        part.restart()
        return healed
    if fault.kind in ("pause", "zombie"):
        part.pause()
        time.sleep(fault.seconds)
        healed = time.monotonic()
        part.resume()
        return healed
    # posts: Kafka paused while POSTs arrive, in waves over the pause
    part.pause()
    threads = []
    for wave in range(4):
        for spec in job_specs(round_id, 3, stack.hooks.url, tag=f"w{wave}"):
            t = threading.Thread(target=checker.submit, args=(spec,))
            t.start()
            threads.append(t)
        time.sleep(fault.seconds / 4)
    healed = time.monotonic()
    part.resume()
    for t in threads:
        t.join(60)
    return healed


@pytest.mark.parametrize(
    "fault",
    [pytest.param(f, id=f.id, marks=[] if f.id in QUICK else [pytest.mark.faults_long]) for f in FAULTS],
)
@pytest.mark.timeout(1200)
def test_round(fault_stack: FaultStack, fault: Fault) -> None:
    stack = fault_stack
    round_id = uuid.uuid4().hex[:4]
    notes: list[str] = []
    if fault.kind == "zombie":
        stack.stack.start("scheduler", name="scheduler-2")
        stack.wait_for_assignment(("scheduler", "scheduler-2"), timeout=60)
    checker = stack.checker()
    engine_pid = stack.engine.pid()
    try:
        started = time.monotonic()
        for spec in job_specs(round_id, JOBS, stack.hooks.url, extra=extra_jobs(fault)):
            checker.submit(spec)
        time.sleep(max(0.0, started + FAULT_AT_S - time.monotonic()))
        healed = inject(stack, fault, checker, round_id)
        try:
            stack.parts[fault.part].wait_ready()
        except RuntimeError as exc:
            notes.append(f"{fault.part} not ready after the heal: {exc}")
        recovered = checker.wait_settled(SETTLE_BOUND_S - (time.monotonic() - healed))
        seconds = None if recovered is None else time.monotonic() - healed
        time.sleep(QUIET_S)
        verdict = checker.verdict()
        started, finished, hooked = verdict.seen
        notes.append(f"seen: {started} container starts, {finished} ends on Kafka, {hooked} with webhooks")
        if verdict.taken:
            notes.append(f"{len(verdict.taken)} ran on a host declared lost: failed by a peer, log unknown")
        if started == 0 or finished == 0:
            notes.append("CHECKER BLIND: it saw no container start or no execution end")
        if fault.id != "kill9-dockerd" and stack.engine.alive() and stack.engine.pid() != engine_pid:
            notes.append("the second engine was restarted by something else during the round (test_farms?)")
        crashed = stack.crashed()
        if crashed:
            notes.append(f"down at the end, not by the harness: {', '.join(crashed)}")
        if checker.refused:
            notes.append(f"{len(checker.refused)} POSTs not accepted: {sorted({g for _, g in checker.refused})}")
    finally:
        if fault.kind == "zombie" and "scheduler-2" in stack.stack.procs:
            stack.stack.terminate("scheduler-2")
    row = report.Row(
        fault.id,
        len(checker.accepted),
        len(verdict.lost),
        len(verdict.duplicated),
        len(verdict.wrong),
        seconds,
        "; ".join(notes),
    )
    evidence = list(verdict.lines())
    report.add(row, evidence)
    try:
        restarted = stack.repair()
    except Exception as exc:
        report.note(f"after {fault.id}: the stack did not come back: {exc}")
        raise
    if restarted:
        report.note(f"after {fault.id}: started again: {', '.join(restarted)}")
    assert verdict.seen[0] and verdict.seen[1], f"{fault.id}: the checker saw nothing: {row.line()}"
    assert verdict.ok, f"{fault.id}: {row.line()}\n" + "\n".join(evidence[:40])
