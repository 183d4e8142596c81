"""Running one execution: the runner's logic, independent of Kafka (tested with a fake runtime)."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.runner.runtime import (
    LABEL,
    ContainerRuntime,
    ContainerSpec,
    EngineUnavailable,
    Interrupted,
    RuntimeFailure,
    split_command,
)
from shared.events import (
    ExecutionDue,
    ExecutionFinished,
    ExecutionPulling,
    ExecutionStarted,
    ExecutionStatus,
    Message,
    utcnow,
)

log = logging.getLogger(__name__)

Publish = Callable[[Message], None]


def container_name(due: ExecutionDue) -> str:
    """One container per execution: a redelivered ExecutionDue finds the container instead of starting another."""
    return f"fastlane-{due.execution_id}"


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


def clip(raw: bytes, limit: int) -> str:
    """Decode a log, keeping its last `limit` bytes (the end of a log is what explains a failure)."""
    if len(raw) <= limit:
        return raw.decode("utf-8", errors="replace")
    kept = raw[-limit:].decode("utf-8", errors="replace")
    return f"[fastlane: first {len(raw) - limit} bytes cut]\n{kept}"


@dataclass(frozen=True)
class Limits:
    """Runner-wide limits: log size kept, longest run allowed, grace between SIGTERM and SIGKILL."""

    max_log_bytes: int = 256 * 1024
    hard_timeout_s: float = 1800.0
    stop_grace_s: float = 10.0


def run_execution(
    due: ExecutionDue,
    runtime: ContainerRuntime,
    publish: Publish,
    host: str,
    limits: Limits,
    stop: threading.Event,
    cancel: threading.Event | None = None,
    on_exit: Callable[[], None] | None = None,
) -> None:
    """Run the container of `due` to its end, publishing ExecutionStarted and ExecutionFinished.

    `on_exit` is called as soon as the container has ended, before its logs are read and reported and it is
    removed: the caller may start another container then (an ended container no longer counts as running).

    Ends `expired` without running when it is past its expiration, `stopped` when `cancel` is set (before or
    while it runs), `timedout` when it runs longer than its timeout (capped by the hard limit). Raises
    Interrupted when the runner itself stops first: nothing is published and the message is not acknowledged,
    so the execution is picked up again (and its container found by name).
    """
    cancel = cancel or threading.Event()
    ids: dict[str, Any] = {"task_id": due.task_id, "job_id": due.job_id, "execution_id": due.execution_id}
    if due.expiration is not None and utcnow() > due.expiration:
        reason = f"expired: it was due to start by {due.expiration.isoformat()} and was not run"
        publish(ExecutionFinished(**ids, status="expired", error=reason, host=host))
        return
    if cancel.is_set():
        publish(ExecutionFinished(**ids, status="stopped", error="stopped before it started", host=host))
        return
    try:
        started = runtime.start(
            container_spec(due), on_pull=lambda: publish(ExecutionPulling(**ids, host=host, image=due.image))
        )
    except EngineUnavailable:
        raise  # not the job's fault: the caller hands the execution to another host
    except (RuntimeFailure, ValueError) as exc:
        log.warning("could not run", extra={"execution_id": str(due.execution_id), "error": str(exc)})
        publish(ExecutionFinished(**ids, status="failed", error=str(exc), host=host))
        return
    container_id = started.container_id
    started_at: datetime = started.started_at or utcnow()
    publish(ExecutionStarted(**ids, host=host, container_id=container_id, occurred_at=started_at))
    timeout = min(limits.hard_timeout_s if due.timeout_s is None else due.timeout_s, limits.hard_timeout_s)
    deadline = time.monotonic() + timeout
    ended_by: ExecutionStatus | None = None
    error: str | None = None
    while (exit_code := runtime.wait(container_id, 1.0)) is None:
        if stop.is_set():
            raise Interrupted(container_id)
        if cancel.is_set() or time.monotonic() > deadline:
            ended_by = "stopped" if cancel.is_set() else "timedout"
            error = "stopped on request" if ended_by == "stopped" else f"timed out after {timeout:g}s"
            runtime.stop(container_id, limits.stop_grace_s)
            while (exit_code := runtime.wait(container_id, limits.stop_grace_s + 5)) is None:
                runtime.stop(container_id, 0)
            break
    if on_exit is not None:
        on_exit()
    stdout, stderr = runtime.logs(container_id)
    publish(
        ExecutionFinished(
            **ids,
            status=ended_by or ("done" if exit_code == 0 else "failed"),
            exit_code=exit_code,
            stdout=clip(stdout, limits.max_log_bytes),
            stderr=clip(stderr, limits.max_log_bytes),
            error=error,
            host=host,
            started_at=started_at,
        )
    )
    runtime.remove(container_id)
