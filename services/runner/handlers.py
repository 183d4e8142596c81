"""Running one execution: the runner's logic, independent of Kafka (tested with a fake runtime)."""

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.runner.runtime import ContainerRuntime, ContainerSpec, RuntimeFailure, split_command
from shared.events import ExecutionDue, ExecutionFinished, ExecutionStarted, Message, utcnow

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
            "fastlane.execution-id": str(due.execution_id),
        },
    )


def clip(raw: bytes, limit: int) -> str:
    """Decode a log, keeping its last `limit` bytes (the end of a log is what explains a failure)."""
    if len(raw) <= limit:
        return raw.decode("utf-8", errors="replace")
    kept = raw[-limit:].decode("utf-8", errors="replace")
    return f"[fastlane: first {len(raw) - limit} bytes cut]\n{kept}"


def run_execution(
    due: ExecutionDue,
    runtime: ContainerRuntime,
    publish: Publish,
    host: str,
    max_log_bytes: int,
    stop: threading.Event,
) -> None:
    """Run the container of `due` to its end, publishing ExecutionStarted and ExecutionFinished.

    Raises Interrupted when the runner stops first: nothing is published and the message is not acknowledged,
    so the execution is picked up again (and its container found by name).
    """
    ids: dict[str, Any] = {"task_id": due.task_id, "job_id": due.job_id, "execution_id": due.execution_id}
    try:
        spec = container_spec(due)
        container_id = runtime.start(spec)
    except (RuntimeFailure, ValueError) as exc:
        log.warning("could not run", extra={"execution_id": str(due.execution_id), "error": str(exc)})
        publish(ExecutionFinished(**ids, status="failed", error=str(exc), host=host))
        return
    started_at: datetime = utcnow()
    publish(ExecutionStarted(**ids, host=host, container_id=container_id, occurred_at=started_at))
    exit_code = runtime.wait(container_id, stop)
    stdout, stderr = runtime.logs(container_id)
    publish(
        ExecutionFinished(
            **ids,
            status="done" if exit_code == 0 else "failed",
            exit_code=exit_code,
            stdout=clip(stdout, max_log_bytes),
            stderr=clip(stderr, max_log_bytes),
            host=host,
            started_at=started_at,
        )
    )
    runtime.remove(container_id)
