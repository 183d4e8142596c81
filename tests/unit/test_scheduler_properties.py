"""Properties of the scheduler's pure decisions, for any job the API accepts and any order of events.

Job definitions are drawn as request bodies and go through the API's own validation (`parse_job_spec`): what it
refuses is discarded, what it accepts is valid by definition and the scheduler must cope with it. A simulated
runner keeps every published ExecutionDue "running" until the test sends its ExecutionFinished.
"""

import copy
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from services.api.errors import BadRequest
from services.api.schemas import parse_job_spec
from services.scheduler.handlers import Decision, Policy, fire_due_timers, handle
from services.scheduler.state import JobState
from shared.contract.events import (
    Event,
    ExecutionDue,
    ExecutionFinished,
    ExecutionStopRequested,
    HostEvent,
    JobDefinition,
    JobMessage,
    JobRequested,
    JobRetryRequested,
    JobStopRequested,
    JobUpdated,
    StopExecution,
    decode,
    encode,
    new_execution_id,
)

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
# The simulated clock stops in year 5000. Execution ids are time-based UUIDs (60-bit ticks of 100 ns from 1582),
# which end in 5236, and a job accepted then may still add `startIn` (up to 100 years) to the clock. A timer set
# after that never fires here (nor, in practice, anywhere: the API accepts dates up to 9999).
END_OF_TIME = datetime(5000, 1, 1, tzinfo=UTC)
TIMEOUT_HARD_LIMIT_S = 1800
POLICY = Policy()
TASK = "task-1"
JOB = uuid.UUID("6f1c1b8e-2d43-4c53-9a43-0b6f2f0d6c11")
YEAR_9999 = 253_402_300_799  # the last second a datetime holds, as a Unix timestamp
MAX_BACKOFF_MS = 86_400_000

# --- request bodies ------------------------------------------------------------------------------------------

ZONES = st.sampled_from(
    [
        "UTC",
        "America/Sao_Paulo",
        "Europe/London",
        "Australia/Lord_Howe",  # a 30-minute DST shift
        "America/New_York",
        "Pacific/Chatham",  # UTC+12:45 / +13:45
        "Asia/Kolkata",
        "Mars/Olympus_Mons",  # refused
    ]
)


def cron_field(lo: int, hi: int, names: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """One cron field: `*`, `*/n`, numbers, ranges, steps of ranges, and lists of them."""
    number = st.integers(lo, hi)
    value = (number.map(str) | st.sampled_from(names)) if names else number.map(str)
    span = st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}")
    step = st.tuples(st.just("*") | span, st.integers(1, hi - lo + 1)).map(lambda s: f"{s[0]}/{s[1]}")
    part = st.one_of(st.just("*"), value, span, step)
    return st.one_of(st.just("*"), part, st.lists(part, min_size=2, max_size=3).map(",".join))


MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# Impossible dates (the API refuses them now, an older producer may not have), leap days, and fire times that a
# DST change skips or repeats (01:30 in London, 02:00 on Lord Howe).
SPECIAL_CRONS = (
    "0 0 31 2 *",
    "0 0 30 2 *",
    "0 0 31 4 *",
    "0 0 31 11 *",
    "0 0 29 2 *",
    "0 0 31 2 1",
    "30 1 * * *",
    "0 2 * * *",
    "0 0 * * *",
    "15,45 1-2 * 3,10 0",
    "* * * * *",
    "59 23 31 12 *",
)
CRONS = st.one_of(
    st.sampled_from(SPECIAL_CRONS),
    st.tuples(
        cron_field(0, 59),
        cron_field(0, 23),
        cron_field(1, 31),
        cron_field(1, 12, MONTHS),
        cron_field(0, 7, DAYS),
    ).map(" ".join),
)
NEVER_FIRING_CRONS = st.sampled_from(["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *", "0 0 31 6,9 *"])


def duration() -> st.SearchStrategy[str]:
    """`startIn`: `2h30m50s` with each part optional, from 0 to (past) the longest allowed."""
    part = st.none() | st.integers(0, 2_000_000)
    return st.tuples(part, part, part).map(
        lambda hms: "".join(f"{n}{unit}" for n, unit in zip(hms, "hms", strict=True) if n is not None) or "0s"
    )


def instant(extreme: bool) -> st.SearchStrategy[int | float]:
    """A Unix timestamp the API may accept: the whole range of a datetime and, with `extreme`, beyond it."""
    within = st.integers(0, YEAR_9999) | st.floats(0, YEAR_9999 + 0.999)
    if not extreme:
        return within
    return within | st.integers(YEAR_9999, 10**20) | st.floats(min_value=YEAR_9999, allow_nan=False)


SCHEDULES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "none": st.just({}),
    "startIn": duration().map(lambda d: {"startIn": d}),
    "cron": st.fixed_dictionaries({"cron": CRONS}, optional={"cronTimezone": ZONES}),
}

JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def backoff() -> st.SearchStrategy[dict[str, Any]]:
    """`retryBackoff` over its whole range: minMs 1, maxMs 1, factor 100, and maxMs < minMs (refused)."""
    factor = st.integers(1, 100) | st.floats(1, 100) | st.sampled_from([1, 100, 100.0, 1.0000001])
    return st.integers(1, MAX_BACKOFF_MS).flatmap(
        lambda low: st.fixed_dictionaries(
            {
                "minMs": st.just(low),
                "factor": factor,
                "maxMs": st.integers(low, MAX_BACKOFF_MS) | st.integers(1, MAX_BACKOFF_MS),
            }
        )
    )


def timeout(extreme: bool) -> st.SearchStrategy[int | float]:
    within = st.integers(1, 10**9) | st.floats(min_value=0, max_value=1e12, exclude_min=True)
    return within | st.floats(min_value=0, exclude_min=True, allow_nan=False) if extreme else within


COMMANDS = st.sampled_from(["echo hi", "sh -c 'exit 1'", 'python -c "print(1)"', "true", "sleep 3600"]) | st.text(
    min_size=1, max_size=40
)
IMAGES = st.sampled_from(["busybox", "alpine:3.20", "ghcr.io/acme/job:1.2@sha256:" + "ab" * 32]) | st.text(
    st.characters(codec="ascii", exclude_categories=["Cc"]), min_size=1, max_size=30
)


@st.composite
def job_bodies(draw: st.DrawFn, extreme: bool = False) -> dict[str, Any]:
    """A JSON request body touching every field JobSpec accepts, each present or not. `extreme` adds numbers far
    past what a datetime holds (and infinity, which Python's JSON reads as `Infinity`)."""
    schedules = dict(SCHEDULES)
    schedules["startAt"] = instant(extreme).map(lambda t: {"startAt": t})
    kind = draw(st.sampled_from(sorted(schedules)))
    body: dict[str, Any] = {"image": draw(IMAGES), "command": draw(COMMANDS), **draw(schedules[kind])}
    if draw(st.integers(0, 20)) == 0:  # two schedules at once: refused
        other = draw(st.sampled_from(sorted(schedules)))
        body.update(draw(schedules[other]))
    optional = st.fixed_dictionaries(
        {},
        optional={
            "envs": st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
            "metadata": st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3),
            "cronTimezone": ZONES,
            "retries": st.integers(0, 1000) | st.sampled_from([0, 1, 155, 156, 1000, 1001]),
            "retryBackoff": backoff(),
            "expiration": instant(extreme),
            "timeout": timeout(extreme),
            "concurrencyPolicy": st.sampled_from(["Allow", "Forbid", "Replace"]),
            "catchUp": st.booleans(),
            "additionalDNSEntries": st.sampled_from([{}, {"db.internal": "10.0.0.7"}, {"v6.example": "::1"}]),
            "resources": st.fixed_dictionaries(
                {}, optional={"cpus": st.floats(0, 1024, exclude_min=True), "memoryMB": st.integers(6, 4_194_304)}
            ),
            "webhooks": st.sampled_from([{}, {"fails": [{"url": "https://hooks.example.com/x", "retries": 3}]}]),
            "notify": st.sampled_from([{}, {"finishes": ["ops@example.com"]}]),
        },
    )
    body.update(draw(optional))
    return body


def accepted(body: dict[str, Any], now: datetime) -> JobDefinition | None:
    """The definition the API hands the scheduler for `body`, None when the API refuses the body."""
    try:
        spec = parse_job_spec(json.dumps(body).encode())
    except BadRequest:
        return None
    return spec.definition(now, TIMEOUT_HARD_LIMIT_S)


def over_the_wire(message: JobMessage | HostEvent) -> Any:
    """What the scheduler reads: the message encoded by its producer and decoded from Kafka."""
    return decode(encode(message))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(body=job_bodies(extreme=True))
def test_every_body_the_api_accepts_becomes_a_definition_that_reaches_the_scheduler_intact(
    body: dict[str, Any],
) -> None:
    note(f"body: {json.dumps(body)}")  # (this Hypothesis prints no argument of a failing case)
    definition = accepted(body, NOW)  # anything but BadRequest raised here is a bug of the API
    assume(definition is not None)
    assert definition is not None
    message = JobRequested(task_id=TASK, job_id=JOB, definition=definition)
    assert over_the_wire(message) == message


# --- the simulation ------------------------------------------------------------------------------------------

RETRYABLE = ("failed", "timedout")
RUNNER_STATUSES = st.sampled_from(["done", "failed", "timedout", "stopped", "expired"])


class Simulation:
    """One job: the scheduler's state, the clock, and what the simulated runner knows of its executions.

    `thorough` (the default) also checks what is costly to check at every step: that each message survives the
    wire and the state its compacted topic. A job's run to its end (up to 1000 retries) skips those."""

    def __init__(self) -> None:
        self.state: JobState | None = None
        self.now = NOW
        self.dues: set[uuid.UUID] = set()  # every execution the scheduler published an ExecutionDue for
        self.finals: dict[uuid.UUID, ExecutionFinished] = {}  # each execution's final state (ours or the scheduler's)
        self.running: set[uuid.UUID] = set()  # due and not final: what our runner runs
        self.sent: list[ExecutionFinished] = []  # ExecutionFinished the runner sent, for replays
        self.retryable_ends: Counter[int] = Counter()  # failed/timedout ends of running executions, by attempt
        self.dues_by_attempt: Counter[int] = Counter()

    @property
    def outstanding(self) -> list[uuid.UUID]:
        return sorted(self.running)

    def send(self, message: Event, thorough: bool = True) -> Decision:
        """The scheduler handles `message` as read from Kafka."""
        if thorough:
            message = over_the_wire(message)
        running = self.state.running if self.state else {}
        if isinstance(message, ExecutionFinished) and message.status in RETRYABLE and message.execution_id in running:
            self.retryable_ends[running[message.execution_id]] += 1
        return self._apply(handle(self.state, message, self.now, POLICY), thorough)  # (a) never raises

    def advance(self, by: timedelta, thorough: bool = True) -> Decision:
        """The clock moves on; every due timer fires."""
        self.now += max(min(by, END_OF_TIME - self.now), timedelta(0))
        assert self.state is not None
        return self._apply(fire_due_timers(self.state, self.now, POLICY), thorough)  # (a) never raises

    def finish(self, execution_id: uuid.UUID, status: str, thorough: bool = True) -> Decision:
        """The runner reports the execution's end."""
        exit_code = {"done": 0, "failed": 1, "timedout": 143, "stopped": 143}.get(status)
        finished = ExecutionFinished(
            task_id=TASK,
            job_id=JOB,
            execution_id=execution_id,
            status=status,  # type: ignore[arg-type]
            exit_code=exit_code,
            occurred_at=self.now,
        )
        self.finals[execution_id] = finished
        self.running.discard(execution_id)
        self.sent.append(finished)
        return self.send(finished, thorough)

    def _apply(self, decision: Decision, thorough: bool) -> Decision:
        echoes = []
        for message in decision.publish:
            if thorough:  # (e) every published message travels: it encodes and decodes back to itself
                assert decode(encode(message)) == message, message
            assert message.job_id == JOB and message.task_id == TASK
            if isinstance(message, ExecutionDue):
                eid, attempt = message.execution_id, message.attempt
                # (b) an execution is decided once
                assert eid not in self.dues, f"ExecutionDue twice for {eid}"
                assert decision.state is not None
                # (c) no chain runs more than 1 + retries attempts, and every retry (attempt n > 1) answers one
                # failed or timed-out attempt n - 1
                assert 1 <= attempt <= decision.state.definition.retries + 1, message
                self.dues_by_attempt[attempt] += 1
                if attempt > 1:
                    event("a retry was due")
                    assert self.dues_by_attempt[attempt] <= self.retryable_ends[attempt - 1], (
                        f"{self.dues_by_attempt[attempt]} executions of attempt {attempt} "
                        f"for {self.retryable_ends[attempt - 1]} failures of attempt {attempt - 1}"
                    )
                self.dues.add(eid)
                self.running.add(eid)
            elif isinstance(message, ExecutionFinished):
                # Only for a job it cannot schedule: `failed`, saying why. It is that execution's final state.
                assert message.status == "failed" and message.error, message
                assert message.execution_id not in self.finals, f"a second final state for {message.execution_id}"
                self.finals[message.execution_id] = message
                self.running.discard(message.execution_id)
                echoes.append(message)
                event("the scheduler ended a job it cannot schedule")
            else:
                assert isinstance(message, StopExecution), message
        self.state = decision.state
        for echo in echoes:  # published on the executions topic, which the scheduler reads too
            self.send(echo, thorough)
        self.check(thorough)
        return decision

    def check(self, thorough: bool = True) -> None:
        state = self.state
        assert state is not None
        # (b) every execution due and not final is still known as running, and only those are
        assert state.running.keys() == self.running, (state.running, self.running)
        # (e) timers fire at real, timezone-aware instants
        for timer in state.timers:
            assert isinstance(timer.fire_at, datetime) and timer.fire_at.utcoffset() is not None, timer
        if state.stopped:
            assert state.timers == (), state.timers
        if thorough:
            # (f) the state survives its compacted topic
            assert JobState.model_validate_json(state.model_dump_json()) == state

    def run_to_the_end(self, statuses: list[str]) -> None:
        """(d) Finish whatever runs, move the clock past every timer, again and again: a job without a cron, or a
        stopped one, comes to its end — nothing runs and no timer is left (but one set after END_OF_TIME)."""
        assert self.state is not None
        chains = len(self.running) + len(self.state.timers) + 1
        for step in range(2 * (self.state.definition.retries + 2) * chains + 10):
            if self.running:
                for n, execution_id in enumerate(self.outstanding):
                    self.finish(execution_id, statuses[(step + n) % len(statuses)], thorough=False)
            elif self.state.timers and (
                self.now < END_OF_TIME or any(t.fire_at <= self.now for t in self.state.timers)
            ):
                next_fire = self.state.next_fire()
                assert next_fire is not None
                self.advance(max(next_fire - self.now, timedelta(0)), thorough=False)  # overdue ones fire now
            else:
                break
        event(f"run to its end: {'stopped' if self.state.stopped else 'not stopped'}")
        event(f"run to its end: up to attempt {10 ** len(str(max(self.dues_by_attempt, default=0)))}")
        self.check()
        assert self.state.running == {} and not self.running, self.state.running
        assert all(t.fire_at > END_OF_TIME for t in self.state.timers), self.state.timers
        assert self.advance(timedelta(days=365 * 100)).publish == []


class AJobOverItsLife(RuleBasedStateMachine):
    """A job is requested, then anything happens to it in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.sim = Simulation()

    def _definition(self, data: st.DataObject) -> JobDefinition | None:
        """A definition the API accepted (None: it refused the body, so nothing reaches the scheduler)."""
        definition = accepted(data.draw(job_bodies(), label="body"), self.sim.now)
        if definition is None:
            return None
        if data.draw(st.integers(0, 15), label="older producer") == 0:
            # an older API did not refuse crons that never fire: the scheduler must cope all the same
            cron = data.draw(NEVER_FIRING_CRONS, label="never-firing cron")
            definition = definition.model_copy(update={"cron": cron, "start_at": None})
        return definition

    def _execution_id(self, definition: JobDefinition, data: st.DataObject) -> uuid.UUID | None:
        if definition.runs_now and data.draw(st.booleans(), label="API chose the execution id"):
            return new_execution_id(self.sim.now)
        return None

    @initialize(data=st.data())
    def a_job_is_requested(self, data: st.DataObject) -> None:
        definition = self._definition(data)
        assume(definition is not None)
        assert definition is not None
        event("cron" if definition.cron else "start at" if definition.start_at else "runs now")
        execution_id = self._execution_id(definition, data)
        self.sim.send(
            JobRequested(task_id=TASK, job_id=JOB, definition=definition, execution_id=execution_id, occurred_at=NOW)
        )

    @rule(
        by=st.one_of(
            st.integers(0, 120),
            st.integers(0, 3600),
            st.integers(0, 86_400 * 3),
            st.integers(0, 86_400 * 366 * 5),
        )
    )
    def the_clock_advances(self, by: int) -> None:
        self.sim.advance(timedelta(seconds=by))

    @precondition(lambda self: self.sim.state is not None and self.sim.state.timers)
    @rule(late=st.integers(0, 120))
    def the_clock_reaches_the_next_timer(self, late: int) -> None:
        assert self.sim.state is not None
        next_fire = self.sim.state.next_fire()
        assert next_fire is not None
        self.sim.advance(max(next_fire - self.sim.now, timedelta(0)) + timedelta(seconds=late))

    @precondition(lambda self: self.sim.outstanding)
    @rule(pick=st.integers(0, 1000), status=RUNNER_STATUSES)
    def an_execution_ends(self, pick: int, status: str) -> None:
        running = self.sim.outstanding
        self.sim.finish(running[pick % len(running)], status)

    @precondition(lambda self: self.sim.sent)
    @rule(pick=st.integers(0, 1000), status=st.none() | RUNNER_STATUSES)
    def an_end_is_delivered_again(self, pick: int, status: str | None) -> None:
        """Kafka redelivers, or a runner reports an execution twice (perhaps differently): nothing changes."""
        before = self.sim.state
        again = self.sim.sent[pick % len(self.sim.sent)]
        if status is not None:
            again = again.model_copy(update={"status": status, "event_id": uuid.uuid4()})
        decision = self.sim.send(again)
        assert decision.publish == [] and decision.state == before

    @rule(status=RUNNER_STATUSES)
    def an_unknown_execution_ends(self, status: str) -> None:
        before = self.sim.state
        unknown = ExecutionFinished(
            task_id=TASK,
            job_id=JOB,
            execution_id=new_execution_id(self.sim.now),
            status=status,  # type: ignore[arg-type]
        )
        decision = self.sim.send(unknown)
        assert decision.publish == [] and decision.state == before

    @rule()
    def the_job_is_stopped(self) -> None:
        self.sim.send(JobStopRequested(task_id=TASK, job_id=JOB))

    @rule()
    def the_job_is_retried(self) -> None:
        self.sim.send(JobRetryRequested(task_id=TASK, job_id=JOB, execution_id=new_execution_id(self.sim.now)))

    @rule(pick=st.none() | st.integers(0, 1000))
    def one_execution_is_stopped(self, pick: int | None) -> None:
        known = self.sim.outstanding
        execution_id = known[pick % len(known)] if known and pick is not None else new_execution_id(self.sim.now)
        self.sim.send(ExecutionStopRequested(task_id=TASK, job_id=JOB, execution_id=execution_id))

    @rule(data=st.data())
    def the_job_is_updated(self, data: st.DataObject) -> None:
        definition = self._definition(data)
        if definition is None:
            return  # refused with a 400: nothing reaches the scheduler
        execution_id = self._execution_id(definition, data)
        self.sim.send(JobUpdated(task_id=TASK, job_id=JOB, definition=definition, execution_id=execution_id))

    @precondition(
        lambda self: self.sim.state is not None and (self.sim.state.definition.cron is None or self.sim.state.stopped)
    )
    @rule(statuses=st.lists(RUNNER_STATUSES, min_size=1, max_size=6))
    def the_job_comes_to_its_end(self, statuses: list[str]) -> None:
        copy.deepcopy(self.sim).run_to_the_end(statuses)  # on a copy: the job's life goes on


AJobOverItsLife.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
TestTheSchedulerCopesWithAnyJobAndAnyOrderOfEvents = AJobOverItsLife.TestCase
