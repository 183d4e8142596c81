"""The projection's rows: what each message writes to the tables the API shows (tasks, jobs, executions, the
blacklist, stop requests). Two writers use it: the recorder (its owner) for every event, and the API for its
own orders right after publishing them (read-your-writes); their writes converge (services/recorder/timestamps.py).
Which message writes what is decided in one table, services/recorder/handlers.py.
"""

import json
import uuid
from datetime import datetime

from cassandra.cluster import Session

from services.recorder.timestamps import execution_created_at, first_write_wins, lifecycle_time, write_time
from shared.contract.events import (
    ExecutionDue,
    ExecutionFinished,
    ExecutionOutput,
    ExecutionPulling,
    ExecutionStarted,
    HostBlacklisted,
    JobDefinition,
    JobOrder,
    JobRetryRequested,
    JobStopRequested,
    StopExecution,
)
from shared.infra.writes import Writes

# The columns of a job's row that hold its definition; services/recorder/reads.py reads them back.
DEFINITION_COLUMNS = {"image", "command", "envs", "metadata"}


def schedule_column(definition: JobDefinition) -> str:
    """The `definition` column: everything of the definition but the columns of its own (DEFINITION_COLUMNS)."""
    return definition.model_dump_json(exclude=DEFINITION_COLUMNS)


class ProjectionRows:
    """Each method adds one message's row writes to `w`; every write is idempotent."""

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
            " stderr = ?, error = ?, docker_host = ?, created_at = ?, output_bytes = ?"
            " WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._output = session.prepare(
            f"INSERT INTO {ks}.execution_output (execution_id, at, stream, chunk, size, skipped)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        )
        self._blacklist = session.prepare(f"INSERT INTO {ks}.blacklist (host, since) VALUES (?, ?) USING TIMESTAMP ?")
        self._unblacklist = session.prepare(f"DELETE FROM {ks}.blacklist USING TIMESTAMP ? WHERE host = ?")
        self._stop_requested = session.prepare(
            f"INSERT INTO {ks}.stop_requests (execution_id, requested_at) VALUES (?, ?)"
        )

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

    def job_ordered(self, e: JobOrder, w: Writes) -> None:
        """A job created (POST) or created/replaced (PUT)."""
        ts = write_time(e.occurred_at)
        d = e.definition
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
                schedule_column(d),
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

    def execution_output(self, e: ExecutionOutput, w: Writes) -> None:
        w.add(self._output, (e.execution_id, e.offset, e.stream, e.text, e.size, e.skipped))

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
                e.output_bytes,
                e.task_id,
                e.job_id,
                e.execution_id,
            ),
        )
