"""The Cassandra projections of the event stream: one writer used by the recorder (their owner) and by the API
(for read-your-writes right after a POST).

Every write uses the event's time as its Cassandra write timestamp, so the two writers converge, a replayed
event is a no-op, and a late-arriving older event never overwrites a newer one. An execution's row is the
exception: its writes are ordered by the execution's lifecycle first (`lifecycle_time`), since its events come
from different machines whose clocks may disagree (a runner whose clock is behind the API's must still move
`enqueued` to `done`), and the first final status written is the one that stays.
"""

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cassandra.cluster import Session

from shared.contract.events import (
    Command,
    Event,
    ExecutionDue,
    ExecutionFinished,
    ExecutionPulling,
    ExecutionStarted,
    HostBlacklisted,
    JobRequested,
    JobRetryRequested,
    JobStopRequested,
    JobUpdated,
    StopExecution,
)
from shared.infra.writes import Writes, joined


def write_time(at: datetime) -> int:
    """Cassandra write timestamp (microseconds) for an event time."""
    return int(at.timestamp() * 1_000_000)


def first_write_wins(ts: int) -> int:
    """A write timestamp under which the EARLIEST event wins (for values set once, like created_at): Cassandra
    keeps the highest timestamp, and this one is higher the earlier the event."""
    return (1 << 62) - ts


# An execution's stages, in the order they happen; a write of a later stage always wins over an earlier one.
STAGES = {"enqueued": 1, "pulling": 2, "running": 3, "final": 4}
_STAGE_SPAN = 1 << 53  # microseconds: event times up to the year 2255 fit below it


def lifecycle_time(stage: str, at: datetime) -> int:
    """Write timestamp for an execution's row: ordered by stage, then by event time within a stage, except for
    final statuses, where the EARLIEST wins (a status once final never moves, e.g. `failed` then `done`)."""
    micros = min(max(write_time(at), 0), _STAGE_SPAN - 1)
    within = _STAGE_SPAN - 1 - micros if stage == "final" else micros
    return STAGES[stage] * _STAGE_SPAN + within


def execution_created_at(execution_id: uuid.UUID) -> datetime:
    """An execution's creation time is the time inside its v1 UUID: every writer derives the same value."""
    assert execution_id.version == 1, "execution ids are time-based UUIDs"
    return datetime.fromtimestamp((execution_id.time - 0x01B21DD213814000) / 10_000_000, UTC)


class Projections:
    """Applies events to the tables; `apply` is idempotent."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self._session = session
        ks = keyspace
        self._touch_task = session.prepare(
            f"UPDATE {ks}.tasks USING TIMESTAMP ? SET last_modified_at = ? WHERE task_id = ?"
        )
        self._upsert_job = session.prepare(
            f"UPDATE {ks}.jobs USING TIMESTAMP ? SET last_modified_at = ?, image = ?, command = ?, envs = ?,"
            " metadata = ?, request_ip = ?, scheduled = ?, definition = ? WHERE task_id = ? AND job_id = ?"
        )
        # created_at is written with a "first write wins" timestamp (see first_write_wins).
        self._job_created = session.prepare(
            f"UPDATE {ks}.jobs USING TIMESTAMP ? SET created_at = ? WHERE task_id = ? AND job_id = ?"
        )
        self._unschedule_job = session.prepare(
            f"UPDATE {ks}.jobs USING TIMESTAMP ? SET scheduled = false WHERE task_id = ? AND job_id = ?"
        )
        self._enqueue = session.prepare(
            f"UPDATE {ks}.executions USING TIMESTAMP ? SET status = 'enqueued', created_at = ?, image = ?,"
            " command = ?, attempt = ? WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._enqueue_bare = session.prepare(
            f"UPDATE {ks}.executions USING TIMESTAMP ? SET status = 'enqueued', created_at = ?, attempt = 1,"
            " request_ip = ? WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._set_request_ip = session.prepare(
            f"UPDATE {ks}.executions USING TIMESTAMP ? SET request_ip = ?"
            " WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._pulling = session.prepare(
            f"UPDATE {ks}.executions USING TIMESTAMP ? SET status = 'pulling', docker_host = ?"
            " WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._start = session.prepare(
            f"UPDATE {ks}.executions USING TIMESTAMP ? SET status = 'running', started_at = ?, container_id = ?,"
            " docker_host = ? WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        # created_at too (the same value every writer derives from the id): an execution that ended without ever
        # being due (the scheduler refused its job) still lists by age.
        self._finish = session.prepare(
            f"UPDATE {ks}.executions USING TIMESTAMP ? SET status = ?, finished_at = ?, exit_code = ?, stdout = ?,"
            " stderr = ?, error = ?, docker_host = ?, created_at = ?"
            " WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._blacklist = session.prepare(f"INSERT INTO {ks}.blacklist (host, since) VALUES (?, ?) USING TIMESTAMP ?")
        self._unblacklist = session.prepare(f"DELETE FROM {ks}.blacklist USING TIMESTAMP ? WHERE host = ?")
        self._stop_requested = session.prepare(
            f"INSERT INTO {ks}.stop_requests (execution_id, requested_at) VALUES (?, ?)"
        )
        self._handlers: dict[type, Callable[[Any, Writes], None]] = {
            HostBlacklisted: self.host_blacklisted,
            JobRequested: self.job_requested,
            JobUpdated: self.job_requested,
            JobStopRequested: self.job_stop_requested,
            JobRetryRequested: self.job_retry_requested,
            ExecutionDue: self.execution_due,
            ExecutionPulling: self.execution_pulling,
            ExecutionStarted: self.execution_started,
            ExecutionFinished: self.execution_finished,
            StopExecution: self.stop_execution,
        }

    def host_blacklisted(self, e: HostBlacklisted, w: Writes) -> None:
        ts = write_time(e.occurred_at)
        if e.blacklisted:
            w.add(self._blacklist, (e.host, e.occurred_at, ts))
        else:
            w.add(self._unblacklist, (ts, e.host))

    def stop_execution(self, e: StopExecution, w: Writes) -> None:
        """Remembered for the runner that holds the execution: it also looks here, for the stop requests
        broadcast while it was down."""
        w.add(self._stop_requested, (e.execution_id, e.occurred_at))

    def apply(self, event: Event | Command, writes: Writes | None = None) -> None:
        """Project `event`; its writes join `writes` when given (the caller sends them), else they are sent
        before this returns."""
        handler = self._handlers.get(type(event))
        if handler is None:  # stop orders change no table
            return
        with joined(self._session, writes) as w:
            handler(event, w)

    def job_requested(self, e: JobRequested | JobUpdated, w: Writes) -> None:
        """A job created (POST) or created/replaced (PUT)."""
        ts = write_time(e.occurred_at)
        d = e.definition
        schedule = d.model_dump_json(exclude={"image", "command", "envs", "metadata"})
        w.add(
            self._upsert_job,
            (
                ts,
                e.occurred_at,
                d.image,
                d.command,
                d.envs,
                json.dumps(d.metadata),
                e.request_ip,
                not d.runs_now,
                schedule,
                e.task_id,
                e.job_id,
            ),
        )
        w.add(self._job_created, (first_write_wins(ts), e.occurred_at, e.task_id, e.job_id))
        w.add(self._touch_task, (ts, e.occurred_at, e.task_id))
        if e.execution_id is not None:
            self._enqueue_execution(w, e.occurred_at, e.task_id, e.job_id, e.execution_id, d.image, d.command, 1)
            enqueued_ts = lifecycle_time("enqueued", e.occurred_at)
            w.add(self._set_request_ip, (enqueued_ts, e.request_ip, e.task_id, e.job_id, e.execution_id))

    def job_stop_requested(self, e: JobStopRequested, w: Writes) -> None:
        w.add(self._unschedule_job, (write_time(e.occurred_at), e.task_id, e.job_id))

    def job_retry_requested(self, e: JobRetryRequested, w: Writes) -> None:
        """The new execution shows as enqueued at once; its image and command arrive with its ExecutionDue."""
        created = execution_created_at(e.execution_id)
        ts = lifecycle_time("enqueued", e.occurred_at)
        w.add(self._enqueue_bare, (ts, created, e.request_ip, e.task_id, e.job_id, e.execution_id))

    def execution_pulling(self, e: ExecutionPulling, w: Writes) -> None:
        ts = lifecycle_time("pulling", e.occurred_at)
        w.add(self._pulling, (ts, e.host, e.task_id, e.job_id, e.execution_id))

    def execution_due(self, e: ExecutionDue, w: Writes) -> None:
        self._enqueue_execution(w, e.occurred_at, e.task_id, e.job_id, e.execution_id, e.image, e.command, e.attempt)

    def _enqueue_execution(
        self,
        w: Writes,
        at: datetime,
        task_id: str,
        job_id: uuid.UUID,
        execution_id: uuid.UUID,
        image: str,
        command: str,
        attempt: int,
    ) -> None:
        created = execution_created_at(execution_id)
        ts = lifecycle_time("enqueued", at)
        w.add(self._enqueue, (ts, created, image, command, attempt, task_id, job_id, execution_id))

    def execution_started(self, e: ExecutionStarted, w: Writes) -> None:
        w.add(
            self._start,
            (
                lifecycle_time("running", e.occurred_at),
                e.occurred_at,
                e.container_id,
                e.host,
                e.task_id,
                e.job_id,
                e.execution_id,
            ),
        )

    def execution_finished(self, e: ExecutionFinished, w: Writes) -> None:
        w.add(
            self._finish,
            (
                lifecycle_time("final", e.occurred_at),
                e.status,
                e.occurred_at,
                e.exit_code,
                e.stdout,
                e.stderr,
                e.error,
                e.host,
                execution_created_at(e.execution_id) if e.execution_id.version == 1 else None,
                e.task_id,
                e.job_id,
                e.execution_id,
            ),
        )
