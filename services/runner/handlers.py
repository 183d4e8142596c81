"""Running one execution's container to its end: the runner's logic, independent of Kafka and of the ledger
(tested with a fake engine)."""

import logging
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from services.runner.output import OutputFollower, OutputLimits
from services.runner.ports import (
    LABEL,
    ContainerRuntime,
    ContainerSpec,
    EngineUnavailable,
    Interrupted,
    OutputSink,
    RuntimeFailure,
)
from shared.contract.events import (
    ExecutionDue,
    ExecutionFinished,
    ExecutionPulling,
    ExecutionStarted,
    ExecutionStatus,
    JobMessage,
    utcnow,
)
from shared.process.metrics import EXECUTION_DURATION, QUEUE_WAIT, observe_between

T = TypeVar("T")
log = logging.getLogger(__name__)

Publish = Callable[[JobMessage], None]


def container_name(due: ExecutionDue) -> str:
    """One container per execution: a redelivered ExecutionDue finds the container instead of starting another."""
    return f"fastlane-{due.execution_id}"


def split_command(command: str) -> list[str]:
    """Split a command the way a shell would into argv, without running a shell."""
    return shlex.split(command)


def container_spec(due: ExecutionDue) -> ContainerSpec:
    return ContainerSpec(
        name=container_name(due),
        image=due.image,
        argv=split_command(due.command),
        envs=dict(due.envs),
        labels={
            "fastlane.task-id": due.task_id,
            "fastlane.job-id": str(due.job_id),
            LABEL: str(due.execution_id),
        },
        extra_hosts=dict(due.extra_hosts),
        cpus=due.resources.cpus if due.resources else None,
        memory_mb=due.resources.memory_mb if due.resources else None,
    )


ERROR_BUDGET = 16 * 1024  # serialized bytes of an ExecutionFinished's `error`
_SHORT_ESCAPES = frozenset('"\\\n\r\t\b\f')
CUT_NOTE_ROOM = 64  # serialized bytes kept free for the "[fastlane: first N bytes cut]" line


def serialized_size(char: str) -> int:
    """Bytes `char` takes inside a JSON string as the event contract writes it (UTF-8, control characters
    escaped: a NUL byte takes six, `\u0000`)."""
    if char in _SHORT_ESCAPES:
        return 2
    if char < " ":
        return 6
    return len(char.encode("utf-8", errors="surrogatepass"))


def clip(raw: bytes, budget: int) -> str:
    """Decode a log (invalid UTF-8 replaced), keeping its end within `budget` bytes once serialized as JSON (the
    end of a log is what explains a failure; escapes can make a log six times its raw size). `raw` may be a
    LogTail, which says how many bytes before it the runtime dropped already."""
    earlier: int = getattr(raw, "cut", 0)
    text = raw.decode("utf-8", errors="replace")
    if not earlier and (len(text) * 6 <= budget or sum(map(serialized_size, text)) <= budget):
        return text
    room, size, start = budget - CUT_NOTE_ROOM, 0, len(text)
    while start > 0:
        cost = serialized_size(text[start - 1])
        if size + cost > room:
            break
        size += cost
        start -= 1
    kept = text[start:]
    dropped = earlier + max(0, len(raw) - len(kept.encode("utf-8")))
    return f"[fastlane: first {dropped} bytes cut]\n{kept}"


def clip_error(error: str | None) -> str | None:
    """fastlane's own reasons (engine explanations included) within ERROR_BUDGET once serialized."""
    return None if error is None else clip(error.encode("utf-8", errors="replace"), ERROR_BUDGET)


@dataclass(frozen=True)
class Limits:
    """Runner-wide limits: log size kept, longest run allowed, grace between SIGTERM and SIGKILL."""

    max_log_bytes: int = 256 * 1024
    hard_timeout_s: float = 1800.0
    stop_grace_s: float = 10.0
    engine_lost_after_s: float = 60.0  # an engine silent this long is taken for gone, with its containers
    max_message_bytes: int = 2 * 1024 * 1024  # the size every Kafka message fits in (Settings.max_message_bytes)
    output: OutputLimits = field(default_factory=OutputLimits)  # live output (output.py)

    @property
    def log_budget(self) -> int:
        """Serialized bytes each of stdout and stderr may take in an ExecutionFinished: both, the error and the
        envelope fit in one message."""
        return max(1024, min(self.max_log_bytes, (self.max_message_bytes - ERROR_BUDGET - 8 * 1024) // 2))


class EngineLost(Exception):
    """The engine stopped answering while a container ran, for longer than `Limits.engine_lost_after_s`."""


def run_execution(
    due: ExecutionDue,
    runtime: ContainerRuntime,
    publish: Publish,
    host: str,
    limits: Limits,
    stop: threading.Event,
    cancel: threading.Event | None = None,
    on_exit: Callable[[], None] | None = None,
    output: OutputSink | None = None,
) -> bool:
    """Run the container of `due` to its end, publishing ExecutionStarted and ExecutionFinished.

    `on_exit` is called as soon as the container has ended, before its logs are read and reported and it is
    removed: the caller may start another container then (an ended container no longer counts as running).

    Ends `expired` without running when it is past its expiration, `stopped` when `cancel` is set (before or
    while it runs), `timedout` when it runs longer than its timeout (capped by the hard limit). Raises
    Interrupted when the runner itself stops first: nothing is published and the message is not acknowledged,
    so the execution is picked up again (and its container found by name). Ends `failed` when the engine stops
    answering for `limits.engine_lost_after_s` while the container runs (a retry, if the job has one, goes
    wherever the farm's runners take it). Once the container has ended, a silent engine costs its logs (the
    execution is reported with its exit code and why the logs are missing), never a second run. Returns False
    when the engine failed, True otherwise.

    With `output`, the container's output is also published live while it runs (output.py), and the
    ExecutionFinished says how many bytes it was (`output_bytes`).
    """
    cancel = cancel or threading.Event()
    ids: dict[str, Any] = {"task_id": due.task_id, "job_id": due.job_id, "execution_id": due.execution_id}
    if due.expiration is not None and utcnow() > due.expiration:
        reason = f"expired: it was due to start by {due.expiration.isoformat()} and was not run"
        publish(ExecutionFinished(**ids, status="expired", error=reason, host=host))
        return True
    if cancel.is_set():
        publish(ExecutionFinished(**ids, status="stopped", error="stopped before it started", host=host))
        return True
    try:
        started = runtime.start(
            container_spec(due), on_pull=lambda: publish(ExecutionPulling(**ids, host=host, image=due.image))
        )
    except EngineUnavailable:
        raise  # not the job's fault: the caller hands the execution to another host
    except (RuntimeFailure, ValueError) as exc:
        log.warning("could not run", extra={"execution_id": str(due.execution_id), "error": str(exc)})
        why = str(exc) or f"the container could not be started ({type(exc).__name__}, no message from the engine)"
        publish(ExecutionFinished(**ids, status="failed", error=clip_error(why), host=host))
        return True
    container_id = started.container_id
    started_at: datetime = started.started_at or utcnow()
    observe_between(QUEUE_WAIT, started_at, due.occurred_at)
    publish(ExecutionStarted(**ids, host=host, container_id=container_id, occurred_at=started_at))
    log.info("container started", extra={"container_id": container_id})
    timeout = min(limits.hard_timeout_s if due.timeout_s is None else due.timeout_s, limits.hard_timeout_s)
    follower = None
    if output is not None:
        follower = OutputFollower(runtime, container_id, {**ids, "host": host}, output, limits.output).start()
    try:
        exit_code, ended_by, error = _await_end(runtime, container_id, timeout, limits, stop, cancel)
    except EngineLost as exc:
        lost: EngineLost | None = exc
    except BaseException:
        if follower is not None:
            follower.abandon()
        raise
    else:
        lost = None
    if on_exit is not None:
        on_exit()  # the container has ended (or its engine is gone): no longer running
    if lost is None:
        observe_between(EXECUTION_DURATION, utcnow(), started_at)
    output_bytes = None
    if follower is not None:
        if lost is None:
            output_bytes = follower.finish()
        else:
            follower.abandon()
    if lost is not None:
        log.warning("engine lost; the execution fails", extra={"execution_id": str(due.execution_id)})
        error = f"the Docker engine of host {host} has not answered for {limits.engine_lost_after_s:g}s: {lost}"
        publish(ExecutionFinished(**ids, status="failed", error=clip_error(error), host=host, started_at=started_at))
        return False
    # The container has run: from here on the execution is never handed to another host. An engine that
    # stops answering now costs the logs (after the same patience), not a second run.
    answered = True
    try:
        stdout, stderr = _patiently(lambda: runtime.logs(container_id), limits, stop)
    except EngineLost as exc:
        answered, stdout, stderr = False, b"", b""
        unread = f"its logs could not be read: the Docker engine of host {host} has not answered for "
        error = "; ".join(filter(None, [error, f"{unread}{limits.engine_lost_after_s:g}s: {exc}"]))
    status = ended_by or ("done" if exit_code == 0 else "failed")
    publish(
        ExecutionFinished(
            **ids,
            status=status,
            exit_code=exit_code,
            stdout=clip(stdout, limits.log_budget),
            stderr=clip(stderr, limits.log_budget),
            error=clip_error(error),
            host=host,
            started_at=started_at,
            output_bytes=output_bytes,
        )
    )
    log.info(
        "execution finished",
        extra={"status": ended_by or ("done" if exit_code == 0 else "failed"), "exit_code": exit_code},
    )
    try:
        runtime.remove(container_id)
    except EngineUnavailable:
        answered = False  # left on the engine: removed when it answers again (or by `make prune`)
    return answered


def _patiently(call: Callable[[], T], limits: Limits, stop: threading.Event) -> T:
    """`call`, tried again each second while the engine does not answer; EngineLost after
    `limits.engine_lost_after_s` of silence, Interrupted when the runner stops first."""
    silent_since = time.monotonic()
    while True:
        try:
            return call()
        except EngineUnavailable as exc:
            if time.monotonic() - silent_since >= limits.engine_lost_after_s:
                raise EngineLost(str(exc)) from exc
        if stop.wait(1.0):
            raise Interrupted("the runner is stopping")


def _await_end(
    runtime: ContainerRuntime,
    container_id: str,
    timeout: float,
    limits: Limits,
    stop: threading.Event,
    cancel: threading.Event,
) -> tuple[int, ExecutionStatus | None, str | None]:
    """(exit code, status it was ended with, why) once the container has ended; it is stopped on request or
    after `timeout` (SIGTERM, SIGKILL after the grace). Raises Interrupted when the runner stops first, and
    EngineLost when the engine does not answer for `limits.engine_lost_after_s`."""
    deadline = time.monotonic() + timeout
    ended_by: ExecutionStatus | None = None
    error: str | None = None
    silent_since: float | None = None
    while True:
        if stop.is_set() and ended_by is None:
            raise Interrupted(container_id)
        try:
            if ended_by is None and (cancel.is_set() or time.monotonic() > deadline):
                ended_by = "stopped" if cancel.is_set() else "timedout"
                error = "stopped on request" if ended_by == "stopped" else f"timed out after {timeout:g}s"
                runtime.stop(container_id, limits.stop_grace_s)
            elif ended_by is not None:
                runtime.stop(container_id, 0)  # still running after its grace
            exit_code = runtime.wait(container_id, 1.0 if ended_by is None else limits.stop_grace_s + 5)
            silent_since = None
        except EngineUnavailable as exc:
            silent_since = silent_since or time.monotonic()
            if time.monotonic() - silent_since >= limits.engine_lost_after_s:
                raise EngineLost(str(exc)) from exc
            stop.wait(1.0)
            continue
        if exit_code is not None:
            return exit_code, ended_by, error
