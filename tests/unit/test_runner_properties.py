"""Properties of `run_execution` for any behaviour of the container engine, drawn by Hypothesis.

The fake engine starts the container or refuses to (the job's fault, the engine's, or a ValueError), reports it
running, silent or ended, hands back any log (hostile ones included) or none, and may not answer the removal.
Time is simulated: the runner's clock (`time` in services.runner.handlers) only moves when the runner waits,
so engine patience, timeouts and grace periods cost nothing.
"""

import dataclasses
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from unittest import mock

import pydantic_core
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from services.runner import handlers as runner_handlers
from services.runner.handlers import Limits, run_execution
from services.runner.ports import ContainerSpec, EngineUnavailable, Interrupted, RuntimeFailure, Started
from shared.contract.events import (
    FINAL_STATUSES,
    ExecutionDue,
    ExecutionFinished,
    ExecutionPulling,
    ExecutionStarted,
    JobMessage,
    encode,
    new_execution_id,
    utcnow,
)

HOST = "host-1"
CONTAINER = "cid-1"
FOREVER = -1


class Clock:
    """The runner's monotonic clock, moved on only by the waits of the runner and of the fake engine. It starts
    far from zero: a real monotonic clock is never 0."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_800_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class RunnerStop(threading.Event):
    """The runner's `stop` event: waiting on it never blocks, it moves the clock on instead."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        self.clock.now += timeout or 0
        return self.is_set()


@dataclass
class Script:
    """How the fake engine behaves for one execution."""

    start: str  # "ok", "failure" (RuntimeFailure: the job's fault), "engine" (EngineUnavailable), "value"
    start_message: str
    pulls: bool  # the image is pulled first (ExecutionPulling)
    waits: list[str]  # what wait() answers, in order: "running" or "silent"; then the exit code
    silent_forever: bool  # after `waits`, the engine never answers wait() again
    exit_code: int
    logs_silent: int  # logs() does not answer this many times (FOREVER: never)
    stdout: bytes
    stderr: bytes
    remove_silent: bool
    cancel_after: int | None  # the execution is stopped on request at this wait() call
    stop_after: int | None  # the runner itself stops at this wait() call

    def summary(self) -> str:
        logs = {name: (len(raw), raw[:20]) for name, raw in (("stdout", self.stdout), ("stderr", self.stderr))}
        return f"{ {k: v for k, v in vars(self).items() if k not in ('stdout', 'stderr')} } logs={logs}"


@dataclass
class FakeEngine:
    """A ContainerRuntime that follows its Script and records what it was asked."""

    script: Script
    clock: Clock
    cancel: threading.Event
    stop_runner: threading.Event
    starts: list[ContainerSpec] = field(default_factory=list)
    wait_calls: int = 0
    log_calls: int = 0
    stops: list[float] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)

    def start(self, spec: ContainerSpec, on_pull: Any = lambda: None) -> Started:
        self.starts.append(spec)
        if self.script.pulls:
            on_pull()
        failure = {"failure": RuntimeFailure, "engine": EngineUnavailable, "value": ValueError}.get(self.script.start)
        if failure is not None:
            raise failure(self.script.start_message)
        return Started(CONTAINER)

    def wait(self, container_id: str, seconds: float) -> int | None:
        assert container_id == CONTAINER
        self.wait_calls += 1
        if self.script.cancel_after == self.wait_calls:
            self.cancel.set()
        if self.script.stop_after == self.wait_calls:
            self.stop_runner.set()
        if self.wait_calls <= len(self.script.waits):
            if self.script.waits[self.wait_calls - 1] == "silent":
                raise EngineUnavailable("the Docker engine does not answer: connection refused")
            self.clock.now += seconds  # still running after `seconds`
            return None
        if self.script.silent_forever:
            raise EngineUnavailable("the Docker engine does not answer: connection reset")
        return self.script.exit_code

    def stop(self, container_id: str, grace_s: float) -> None:
        self.stops.append(grace_s)

    def logs(self, container_id: str) -> tuple[bytes, bytes]:
        self.log_calls += 1
        if self.script.logs_silent == FOREVER or self.log_calls <= self.script.logs_silent:
            raise EngineUnavailable("the Docker engine does not answer: read timed out")
        return self.script.stdout, self.script.stderr

    def remove(self, container_id: str) -> None:
        self.removes.append(container_id)
        if self.script.remove_silent:
            raise EngineUnavailable("the Docker engine does not answer: connection refused")


# --- logs ----------------------------------------------------------------------------------------------------


def seeded(make: Any) -> st.SearchStrategy[bytes]:
    """Large bytes made from a drawn seed: Hypothesis draws (and shrinks) the seed, not a megabyte."""
    return st.integers(0, 2**32 - 1).map(lambda seed: make(random.Random(seed)))


CONTROL = bytes(range(32)) + b"\x7f"
HOSTILE_LOGS = st.one_of(
    st.just(b"\x00" * 200_000),  # each NUL serializes as six bytes: \u0000
    st.just(b"\xff\xfe" * 50_000),  # not UTF-8 at all
    seeded(lambda r: r.randbytes(1_000_000)),
    seeded(lambda r: bytes(r.choices(b'"\\', k=300_000))),  # each escapes to two bytes
    seeded(lambda r: bytes(r.choices(CONTROL, k=300_000))),
    seeded(lambda r: "é😀\u2028".encode() * r.randint(1, 120_000)),  # multi-byte characters, cut anywhere
    seeded(lambda r: b"line\n" * r.randint(1, 300_000) + b"the end: exit 3\n"),
    st.binary(max_size=3000),
    st.text(max_size=300).map(str.encode),
)
SMALL_LOGS = st.binary(max_size=300) | st.text(max_size=100).map(str.encode) | st.just(b'\x00\xff"\\\n' * 20)


@st.composite
def scripts(draw: st.DrawFn, logs: st.SearchStrategy[bytes], start: st.SearchStrategy[str]) -> Script:
    calls = st.one_of(st.none(), st.none(), st.none(), st.integers(1, 12))  # set at that wait() call, or never
    return Script(
        start=draw(start, label="start"),
        start_message=draw(
            st.sampled_from(["No such image: nope:latest", 'exec: "nope": executable file not found in $PATH', ""])
            | st.text(max_size=200),
            label="start message",
        ),
        pulls=draw(st.booleans(), label="pulls"),
        waits=draw(st.lists(st.sampled_from(["running"] * 5 + ["silent"]), max_size=10), label="waits"),
        silent_forever=draw(st.sampled_from([False] * 9 + [True]), label="silent forever"),
        exit_code=draw(
            st.sampled_from([0, 0, 0, 0, 0, 1, 2, 125, 126, 127, 137, 143, 255]) | st.integers(0, 255), label="exit"
        ),
        logs_silent=draw(st.sampled_from([0, 0, 0, 1, 2, 5, FOREVER]), label="logs silent"),
        stdout=draw(logs, label="stdout"),
        stderr=draw(logs, label="stderr"),
        remove_silent=draw(st.sampled_from([False] * 4 + [True]), label="remove silent"),
        cancel_after=draw(calls, label="cancel after"),
        stop_after=draw(calls, label="stop after"),
    )


# The last cannot be split into arguments: ValueError before the engine is asked anything.
COMMANDS = st.sampled_from(["echo 'it works'"] * 4 + ["sh -c 'exit 3'"] * 4 + ["echo 'unbalanced"])


@st.composite
def dues(draw: st.DrawFn) -> ExecutionDue:
    now = utcnow()
    return ExecutionDue(
        task_id="t",
        job_id=uuid.uuid4(),
        execution_id=new_execution_id(),
        image="img:1",
        command=draw(COMMANDS, label="command"),
        timeout_s=draw(st.none() | st.integers(0, 10), label="timeout_s"),
        expiration=draw(
            st.sampled_from([None] * 6 + [now - timedelta(seconds=1), now + timedelta(days=1)]),
            label="expiration",
        ),
    )


def serialized_size(text: str) -> int:
    """Bytes `text` takes inside a JSON string as the event contract writes it."""
    return len(pydantic_core.to_json(text)) - 2


@dataclass
class Outcome:
    published: list[JobMessage]
    engine: FakeEngine
    returned: bool | None = None
    raised: BaseException | None = None
    cancelled_before: bool = False


def run(
    due: ExecutionDue, script: Script, limits: Limits, cancelled_before: bool = False
) -> tuple[Outcome, threading.Event]:
    """run_execution on the fake engine and the simulated clock; what it published, returned or raised."""
    clock = Clock()
    stop, cancel = RunnerStop(clock), threading.Event()
    if cancelled_before:
        cancel.set()
    engine = FakeEngine(script, clock, cancel, stop)
    outcome = Outcome(published=[], engine=engine, cancelled_before=cancelled_before)
    with mock.patch.object(runner_handlers, "time", clock):
        try:
            outcome.returned = run_execution(due, engine, outcome.published.append, HOST, limits, stop, cancel)
        except Exception as exc:  # what it raises is part of the properties
            outcome.raised = exc
    return outcome, stop


def silences(script: Script) -> list[float]:
    """Lengths of the runs of consecutive wait() calls the engine does not answer (inf: for good)."""
    runs: list[float] = []
    current = 0
    for answer in script.waits:
        if answer == "silent":
            current += 1
        else:
            runs.append(current)
            current = 0
    runs.append(float("inf") if script.silent_forever else current)
    return runs


def lost(silent_calls: float, limits: Limits) -> bool:
    """The runner retries each second: n unanswered calls in a row span n - 1 seconds of silence."""
    return silent_calls - 1 >= limits.engine_lost_after_s


LIMITS = st.builds(
    Limits,
    max_log_bytes=st.sampled_from([1024, 256 * 1024]),
    hard_timeout_s=st.sampled_from([0.0, 3.0, 1800.0, 1800.0]),
    stop_grace_s=st.just(0.0),
    engine_lost_after_s=st.sampled_from([0.0, 1.0, 3.0, 30.0]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    due=dues(),
    script=scripts(SMALL_LOGS, st.sampled_from(["ok"] * 7 + ["failure", "engine", "value"])),
    limits=LIMITS,
    cancelled_before=st.sampled_from([False] * 15 + [True]),
)
def test_every_execution_ends_exactly_once_and_its_container_is_removed(
    due: ExecutionDue, script: Script, limits: Limits, cancelled_before: bool
) -> None:
    # (this Hypothesis prints no argument of a failing case: what was drawn is noted instead)
    note(f"due: command={due.command!r} timeout_s={due.timeout_s} expiration={due.expiration}")
    note(f"script: {script.summary()}")
    note(f"limits: {limits}")
    outcome, stop = run(due, script, limits, cancelled_before)
    published, engine = outcome.published, outcome.engine
    note(f"published: {[type(m).__name__ for m in published]}; returned {outcome.returned}; raised {outcome.raised!r}")
    started = [m for m in published if isinstance(m, ExecutionStarted)]
    finished = [m for m in published if isinstance(m, ExecutionFinished)]
    container_started = bool(engine.starts) and script.start == "ok"

    # (a) nothing is raised but Interrupted (the runner stops) and an engine down before any container started
    if outcome.raised is not None:
        event(f"raised {type(outcome.raised).__name__}")
        assert isinstance(outcome.raised, Interrupted | EngineUnavailable), repr(outcome.raised)
        if isinstance(outcome.raised, EngineUnavailable):
            assert script.start == "engine" and not container_started
            assert all(isinstance(m, ExecutionPulling) for m in published), published
        else:
            assert stop.is_set(), "Interrupted while the runner was not stopping"
            assert container_started and finished == [], published  # left to a later runner, unreported
            assert engine.removes == []
        return

    # (b) exactly one ExecutionFinished, final, last; ExecutionStarted before it iff the container started
    assert len(finished) == 1, published
    [end] = finished
    event(f"ended {end.status}")
    assert end.status in FINAL_STATUSES and published[-1] is end, published
    assert end.execution_id == due.execution_id and end.host == HOST
    assert len(started) == (1 if container_started else 0), (container_started, published)
    if started:
        assert published.index(started[0]) < published.index(end)
        assert all(isinstance(m, ExecutionPulling) for m in published[: published.index(started[0])]), published
    if end.status == "done":
        assert end.exit_code == 0, end

    # (d) a container the engine cannot run because of the job fails, saying why
    if engine.starts and script.start in ("failure", "value"):
        assert (end.status, end.exit_code) == ("failed", None), end
        assert end.error, f"no reason given for {script.start_message!r}"
    if "unbalanced" in due.command and not (due.expiration and due.expiration < utcnow()) and not cancelled_before:
        assert end.status == "failed" and end.error and engine.starts == []

    # (e) a container that started is removed, unless the engine stopped answering; the answer says which
    if container_started:
        lost_while_running = any(lost(n, limits) for n in silences(script))
        event("engine lost while the container ran" if lost_while_running else "engine answered while it ran")
        if lost_while_running:
            assert end.status == "failed" and end.error and "has not answered" in end.error, end
            assert engine.removes == [] and outcome.returned is False
        else:
            logs_lost = lost(float("inf") if script.logs_silent == FOREVER else script.logs_silent, limits)
            assert engine.removes == [CONTAINER], engine.removes
            assert outcome.returned is (not logs_lost and not script.remove_silent), (logs_lost, outcome.returned)
            if logs_lost:
                assert (end.stdout, end.stderr) == ("", "") and end.error and "logs could not be read" in end.error
    else:
        assert engine.removes == [] and outcome.returned is True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    due=dues(),
    script=scripts(HOSTILE_LOGS, st.just("ok")),
    max_log_bytes=st.sampled_from([1024, 64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024]),
    max_message_bytes=st.sampled_from([256 * 1024, 1024 * 1024, 2 * 1024 * 1024]),
)
def test_every_message_fits_the_size_limit_and_keeps_the_end_of_each_log(
    due: ExecutionDue, script: Script, max_log_bytes: int, max_message_bytes: int
) -> None:
    # Logs are read (after at most one silence, waited out) so that every example reaches their clipping.
    logs_silent = 1 if script.logs_silent == FOREVER else min(script.logs_silent, 1)
    script = dataclasses.replace(script, logs_silent=logs_silent, silent_forever=False, stop_after=None)
    limits = Limits(
        max_log_bytes=max_log_bytes,
        hard_timeout_s=1800.0,
        stop_grace_s=0,
        engine_lost_after_s=30,
        max_message_bytes=max_message_bytes,
    )
    note(f"script: {script.summary()}")
    note(f"limits: {limits}")
    outcome, _ = run(due, script, limits)
    assert outcome.raised is None, repr(outcome.raised)

    # (c) every message fits in one Kafka message, whatever the logs hold
    for message in outcome.published:
        size = len(encode(message))
        assert size <= limits.max_message_bytes, f"{type(message).__name__} of {size} bytes"
    [end] = [m for m in outcome.published if isinstance(m, ExecutionFinished)]
    if not outcome.engine.starts or outcome.engine.log_calls == 0:
        return  # expired, or the command could not be split: no container, no logs
    for name, raw, kept in (("stdout", script.stdout, end.stdout), ("stderr", script.stderr, end.stderr)):
        text = raw.decode("utf-8", errors="replace")
        fits = len(raw) <= max_log_bytes and serialized_size(text) <= min(max_log_bytes, max_message_bytes // 4)
        event(f"{name} {'fits' if fits else 'clipped'}")
        if fits:  # a log that fits is kept whole
            assert kept == text, f"{name} of {len(raw)} bytes ({serialized_size(text)} serialized) not kept whole"
        else:  # the end of a log is what explains a failure: it is kept
            assert kept.endswith(text[-64:]), f"{name}: the end of the log is lost: {kept[-80:]!r}"
