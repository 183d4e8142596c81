"""What the recorder writes for each message: ONE table by message type, of the projection's rows (rows.py:
what the API shows) and the indexes' writes (indexes.py: listings, counters, /status). The API's early write of
its own orders takes the projection's column only (projections.py)."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session
from confluent_kafka import Message

from services.recorder.indexes import Indexes
from services.recorder.rows import ProjectionRows
from shared.contract.events import (
    Command,
    Event,
    ExecutionDue,
    ExecutionFinished,
    ExecutionOutput,
    ExecutionPulling,
    ExecutionStarted,
    HostBlacklisted,
    JobRequested,
    JobRetryRequested,
    JobStopRequested,
    JobUpdated,
    RunnerHeartbeat,
    StopExecution,
)
from shared.infra.writes import Writes
from shared.process.metrics import EXECUTIONS_FINISHED

log = logging.getLogger("recorder")


@dataclass(frozen=True)
class Recording:
    """What one message type writes: its projection rows, its index writes (either may be nothing)."""

    rows: Callable[[ProjectionRows, Any, Writes], None] | None = None
    indexes: Callable[[Indexes, Any, Writes], None] | None = None


# ExecutionStopRequested is absent: an order to the scheduler that changes no table (the StopExecution it leads
# to does).
HANDLERS: dict[type, Recording] = {
    JobRequested: Recording(ProjectionRows.job_ordered, Indexes.job_ordered),
    JobUpdated: Recording(ProjectionRows.job_ordered, Indexes.job_ordered),
    JobStopRequested: Recording(ProjectionRows.job_stop_requested, Indexes.job_stop_requested),
    JobRetryRequested: Recording(ProjectionRows.job_retry_requested, Indexes.job_retry_requested),
    ExecutionDue: Recording(ProjectionRows.execution_due, Indexes.execution_due),
    ExecutionPulling: Recording(ProjectionRows.execution_pulling),
    ExecutionStarted: Recording(ProjectionRows.execution_started, Indexes.execution_started),
    ExecutionFinished: Recording(ProjectionRows.execution_finished, Indexes.execution_finished),
    ExecutionOutput: Recording(ProjectionRows.execution_output),
    StopExecution: Recording(ProjectionRows.stop_execution),
    HostBlacklisted: Recording(ProjectionRows.host_blacklisted),
    RunnerHeartbeat: Recording(indexes=Indexes.host_seen),
}


def project(event: Event | Command, rows: ProjectionRows, w: Writes) -> None:
    """Add the projection's rows of `event` to `w` (its indexes are the recorder's alone)."""
    recording = HANDLERS.get(type(event))
    if recording is not None and recording.rows is not None:
        recording.rows(rows, event, w)


def record(event: Event, rows: ProjectionRows, indexes: Indexes, w: Writes) -> None:
    """Add everything `event` writes to `w`: its projection rows first, then its index writes."""
    project(event, rows, w)
    recording = HANDLERS.get(type(event))
    if recording is not None and recording.indexes is not None:
        recording.indexes(indexes, event, w)


def unrecordable_end(event: Event, why: str) -> ExecutionFinished | None:
    """What the recorder writes instead of a message it cannot record: an execution's end still ends the
    execution, without its logs, with the reason (the message itself goes to the dead-letter topic); any
    other message writes nothing."""
    if not isinstance(event, ExecutionFinished):
        return None
    error = f"fastlane could not record this execution's outcome as reported ({why})"
    return event.model_copy(update={"stdout": "", "stderr": "", "error": error, "exit_code": None, "host": None})


class Recorder:
    """The consumer's handlers: each event's writes are sent together, once all of them are known."""

    def __init__(self, session: Session, rows: ProjectionRows, indexes: Indexes) -> None:
        self._session = session
        self._rows = rows
        self._indexes = indexes

    def record(self, event: Event, _msg: Message | None = None) -> None:
        writes = Writes(self._session)
        record(event, self._rows, self._indexes, writes)
        writes.send()
        if isinstance(event, ExecutionFinished):
            EXECUTIONS_FINISHED.labels(event.status).inc()
            log.info("recorded the end", extra={"status": event.status})

    def record_poison(self, event: Event, why: str) -> None:
        bare = unrecordable_end(event, why)
        if bare is not None:
            self.record(bare)
