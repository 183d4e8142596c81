"""What the scheduler remembers per job, kept on a compacted Kafka topic keyed by job id."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.contract.events import JobDefinition

TimerKind = Literal["start", "cron", "retry"]


class Timer(BaseModel):
    """A pending execution: when, why, and which attempt of its retry chain it is."""

    model_config = ConfigDict(frozen=True)

    fire_at: datetime
    kind: TimerKind
    attempt: int = 1


class JobState(BaseModel):
    """One job as the scheduler sees it. Replaced whole on every change (an event-sourced snapshot)."""

    model_config = ConfigDict(frozen=True)

    version: int = 1
    task_id: str
    job_id: uuid.UUID
    definition: JobDefinition
    generation: int = 0  # bumped by every update: ids of executions decided under a definition differ
    decided: int = 0  # executions decided so far under this generation: seeds deterministic execution ids
    timers: tuple[Timer, ...] = ()
    running: dict[uuid.UUID, int] = {}  # execution id -> attempt, from ExecutionDue until ExecutionFinished
    stopped: bool = False
    trace: str | None = None  # traceparent of the order that made this definition: its executions carry it

    def next_fire(self) -> datetime | None:
        return min((t.fire_at for t in self.timers), default=None)
