"""Scheduling decisions, free of Kafka: each handler returns the events to publish."""

import uuid
from collections.abc import Callable
from typing import Any

from shared.events import Event, ExecutionDue, JobRequested


def schedule_job(cmd: JobRequested) -> list[ExecutionDue]:
    """A job that runs now gets its first execution at once, with the id the API already gave the client."""
    if cmd.execution_id is None:
        return []  # delayed and periodic jobs: not built yet (issue: scheduling and job lifecycle)
    d = cmd.definition
    # Deterministic id and time: a redelivered JobRequested yields the very same event, which every consumer
    # then treats as a repeat (and whose projection write cannot overwrite a later status).
    return [
        ExecutionDue(
            event_id=uuid.uuid5(cmd.execution_id, "due"),
            occurred_at=cmd.occurred_at,
            task_id=cmd.task_id,
            job_id=cmd.job_id,
            execution_id=cmd.execution_id,
            image=d.image,
            command=d.command,
            envs=d.envs,
            attempt=1,
        )
    ]


HANDLERS: dict[type, Callable[[Any], list[ExecutionDue]]] = {JobRequested: schedule_job}


def handle(event: Event) -> list[ExecutionDue]:
    handler = HANDLERS.get(type(event))
    return handler(event) if handler else []
