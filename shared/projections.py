"""The Cassandra projections of the event stream: one writer used by the recorder (their owner) and by the API
(for read-your-writes right after a POST).

Every write uses the event's time as its Cassandra write timestamp, so the two writers converge, a replayed
event is a no-op, and a late-arriving older event never overwrites a newer status.
"""

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cassandra.cluster import Session

from shared.events import Event, ExecutionDue, ExecutionFinished, ExecutionStarted, JobRequested


def write_time(at: datetime) -> int:
    """Cassandra write timestamp (microseconds) for an event time."""
    return int(at.timestamp() * 1_000_000)


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
        self._insert_job = session.prepare(
            f"INSERT INTO {ks}.jobs (task_id, job_id, created_at, last_modified_at, image, command, envs, metadata,"
            " request_ip, scheduled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._enqueue = session.prepare(
            f"UPDATE {ks}.executions USING TIMESTAMP ? SET status = 'enqueued', created_at = ?, image = ?,"
            " command = ?, attempt = ? WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._set_request_ip = session.prepare(
            f"UPDATE {ks}.executions USING TIMESTAMP ? SET request_ip = ?"
            " WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._start = session.prepare(
            f"UPDATE {ks}.executions USING TIMESTAMP ? SET status = 'running', started_at = ?, container_id = ?,"
            " docker_host = ? WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._finish = session.prepare(
            f"UPDATE {ks}.executions USING TIMESTAMP ? SET status = ?, finished_at = ?, exit_code = ?, stdout = ?,"
            " stderr = ?, error = ?, docker_host = ? WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._handlers: dict[type, Callable[[Any], None]] = {
            JobRequested: self.job_requested,
            ExecutionDue: self.execution_due,
            ExecutionStarted: self.execution_started,
            ExecutionFinished: self.execution_finished,
        }

    def apply(self, event: Event) -> None:
        self._handlers[type(event)](event)

    def job_requested(self, e: JobRequested) -> None:
        ts = write_time(e.occurred_at)
        d = e.definition
        self._session.execute(
            self._insert_job,
            (
                e.task_id,
                e.job_id,
                e.occurred_at,
                e.occurred_at,
                d.image,
                d.command,
                d.envs,
                json.dumps(d.metadata),
                e.request_ip,
                e.execution_id is None,
                ts,
            ),
        )
        self._session.execute(self._touch_task, (ts, e.occurred_at, e.task_id))
        if e.execution_id is not None:
            self._enqueue_execution(ts, e.task_id, e.job_id, e.execution_id, d.image, d.command, 1)
            self._session.execute(self._set_request_ip, (ts, e.request_ip, e.task_id, e.job_id, e.execution_id))

    def execution_due(self, e: ExecutionDue) -> None:
        self._enqueue_execution(
            write_time(e.occurred_at), e.task_id, e.job_id, e.execution_id, e.image, e.command, e.attempt
        )

    def _enqueue_execution(
        self,
        ts: int,
        task_id: str,
        job_id: uuid.UUID,
        execution_id: uuid.UUID,
        image: str,
        command: str,
        attempt: int,
    ) -> None:
        created = execution_created_at(execution_id)
        self._session.execute(self._enqueue, (ts, created, image, command, attempt, task_id, job_id, execution_id))

    def execution_started(self, e: ExecutionStarted) -> None:
        self._session.execute(
            self._start,
            (
                write_time(e.occurred_at),
                e.occurred_at,
                e.container_id,
                e.host,
                e.task_id,
                e.job_id,
                e.execution_id,
            ),
        )

    def execution_finished(self, e: ExecutionFinished) -> None:
        self._session.execute(
            self._finish,
            (
                write_time(e.occurred_at),
                e.status,
                e.occurred_at,
                e.exit_code,
                e.stdout,
                e.stderr,
                e.error,
                e.host,
                e.task_id,
                e.job_id,
                e.execution_id,
            ),
        )
