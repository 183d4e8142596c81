"""Query tables and counters for listing, search and /status, maintained by the recorder (and, for a new task's
listing only, by the API right after its first order: services/recorder/projections.py).

Counters cannot be written idempotently, so each is gated by the first sighting of what it counts: a
lightweight transaction (INSERT ... IF NOT EXISTS) on an index table; only the writer whose insert applied
increments. A replayed event finds the index row and counts nothing. The one gap: a crash between the applied
insert and the increment loses that increment (the count is one low); the listing rows themselves are always
rewritten, so nothing disappears from lists.
"""

import json
import re
import uuid
from datetime import datetime

from cassandra.cluster import Session

from services.recorder.buckets import listing_bucket, stored_bucket
from services.recorder.numbers import ExecutionNumbers
from services.recorder.timestamps import write_time
from shared.contract.events import (
    ExecutionDue,
    ExecutionFinished,
    ExecutionStarted,
    JobOrder,
    JobRetryRequested,
    JobStopRequested,
    RunnerHeartbeat,
)
from shared.infra.writes import Writes

BUCKET = 0  # /status's running and scheduled lists: one partition each (the task listing: buckets.py)
GATED_MEMORY = 10_000  # execution ids whose gate this process has passed, remembered (oldest forgotten first)


def task_words(task_id: str) -> set[str]:
    """Whole words of a task id: split on anything not a letter or digit, lower-cased."""
    return {w for w in re.split(r"[^0-9a-zA-Z]+", task_id.lower()) if w}


class Indexes:
    """Each method adds one message's writes to the listing tables and counters to `w` (which message calls
    which: services/recorder/handlers.py); the gates and reads are answered at once."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self._session = session
        # An execution is gated when its job is requested and again when it falls due (both events are keyed by
        # the job, so they reach the same recorder): the second transaction is skipped when this process saw
        # the first. Index rows are never removed, so a remembered gate stays true.
        self._gated: dict[uuid.UUID, None] = {}
        ks = keyspace
        # The gate records the task's listing bucket too (values: task_gate_values), once: the bucket never moves.
        self.task_gate = session.prepare(
            f"INSERT INTO {ks}.task_index (task_id, created_at, bucket) VALUES (?, ?, ?) IF NOT EXISTS"
        )
        self.task_listing = session.prepare(f"SELECT created_at FROM {ks}.task_index WHERE task_id = ?")
        self._job_gate = session.prepare(f"INSERT INTO {ks}.job_index (task_id, job_id) VALUES (?, ?) IF NOT EXISTS")
        self._execution_gate = session.prepare(
            f"INSERT INTO {ks}.execution_index (task_id, job_id, execution_id, numbering) VALUES (?, ?, ?, true)"
            " IF NOT EXISTS"
        )
        self._numbers = ExecutionNumbers(session, keyspace)
        # Listing rows. last_modified_at is written at the event's time, so the latest modification wins
        # whatever the order of arrival. jobs_count is a copy of the task's counter written with the count
        # itself as write timestamp: counts only grow, so the highest one read wins even when two recorders
        # (jobs of a task are on different partitions) copy it in the opposite order.
        self._list_task = session.prepare(
            f"UPDATE {ks}.tasks_by_creation USING TIMESTAMP ? SET last_modified_at = ?"
            " WHERE bucket = ? AND created_at = ? AND task_id = ?"
        )
        self._list_count = session.prepare(
            f"UPDATE {ks}.tasks_by_creation USING TIMESTAMP ? SET jobs_count = ?"
            " WHERE bucket = ? AND created_at = ? AND task_id = ?"
        )
        self._word = session.prepare(
            f"UPDATE {ks}.task_words USING TIMESTAMP ? SET last_modified_at = ?"
            " WHERE word = ? AND created_at = ? AND task_id = ?"
        )
        self._word_count = session.prepare(
            f"UPDATE {ks}.task_words USING TIMESTAMP ? SET jobs_count = ?"
            " WHERE word = ? AND created_at = ? AND task_id = ?"
        )
        self._jobs_of_task = session.prepare(f"SELECT jobs FROM {ks}.task_counters WHERE task_id = ?")
        self._count = session.prepare(f"UPDATE {ks}.counters SET value = value + 1 WHERE name = ?")
        self._count_in_bucket = session.prepare(
            f"UPDATE {ks}.task_buckets SET tasks = tasks + 1 WHERE listing = 'all' AND bucket = ?"
        )
        self._count_job = session.prepare(f"UPDATE {ks}.task_counters SET jobs = jobs + 1 WHERE task_id = ?")
        self._schedule = session.prepare(
            f"INSERT INTO {ks}.scheduled_jobs (bucket, task_id, job_id) VALUES (?, ?, ?) USING TIMESTAMP ?"
        )
        self._unschedule = session.prepare(
            f"DELETE FROM {ks}.scheduled_jobs USING TIMESTAMP ? WHERE bucket = ? AND task_id = ? AND job_id = ?"
        )
        self._job_definition = session.prepare(f"SELECT definition FROM {ks}.jobs WHERE task_id = ? AND job_id = ?")
        self._running = session.prepare(
            f"INSERT INTO {ks}.running_executions (bucket, execution_id, task_id, job_id, host, container_id,"
            " started_at) VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._not_running = session.prepare(
            f"DELETE FROM {ks}.running_executions USING TIMESTAMP ? WHERE bucket = ? AND execution_id = ?"
        )
        self._host = session.prepare(
            f"UPDATE {ks}.hosts USING TIMESTAMP ? SET last_seen = ?, capacity = ?, running = ?, circuit = ?,"
            " engine_ok = ?, error = ?, runner_version = ?, farm = ? WHERE host = ?"
        )
        self._count_execution = session.prepare(
            f"UPDATE {ks}.job_counters SET executions = executions + 1 WHERE task_id = ? AND job_id = ?"
        )

    def job_ordered(self, e: JobOrder, w: Writes) -> None:
        """A job created or replaced: its task, the job and its first execution listed and counted once; a job
        that runs later is listed as scheduled."""
        created, bucket = self._task_seen(e.task_id, e.occurred_at, w)
        self._job_seen(e.task_id, e.job_id, w)
        if e.execution_id is not None:
            self._execution_seen(e.task_id, e.job_id, e.execution_id, w)
        self._copy_jobs_count(e.task_id, created, bucket, w)
        ts = write_time(e.occurred_at)
        if e.definition.runs_now:
            w.add(self._unschedule, (ts, BUCKET, e.task_id, e.job_id))
        else:
            w.add(self._schedule, (BUCKET, e.task_id, e.job_id, ts))

    def job_stop_requested(self, e: JobStopRequested, w: Writes) -> None:
        w.add(self._unschedule, (write_time(e.occurred_at), BUCKET, e.task_id, e.job_id))

    def job_retry_requested(self, e: JobRetryRequested, w: Writes) -> None:
        self._execution_seen(e.task_id, e.job_id, e.execution_id, w)

    def execution_due(self, e: ExecutionDue, w: Writes) -> None:
        """Counted once; a job that does not come back (not a cron) is no longer scheduled."""
        self._execution_seen(e.task_id, e.job_id, e.execution_id, w)
        if not self._is_cron(e.task_id, e.job_id):
            w.add(self._unschedule, (write_time(e.occurred_at), BUCKET, e.task_id, e.job_id))

    def execution_started(self, e: ExecutionStarted, w: Writes) -> None:
        ts = write_time(e.occurred_at)
        w.add(self._running, (BUCKET, e.execution_id, e.task_id, e.job_id, e.host, e.container_id, e.occurred_at, ts))

    def execution_finished(self, e: ExecutionFinished, w: Writes) -> None:
        w.add(self._not_running, (write_time(e.occurred_at), BUCKET, e.execution_id))

    def _is_cron(self, task_id: str, job_id: uuid.UUID) -> bool:
        row = self._session.execute(self._job_definition, (task_id, job_id)).one()
        return bool(row and row.definition and json.loads(row.definition).get("cron"))

    def host_seen(self, beat: RunnerHeartbeat, w: Writes) -> None:
        w.add(
            self._host,
            (
                write_time(beat.occurred_at),
                beat.occurred_at,
                beat.capacity,
                beat.running,
                beat.circuit,
                beat.engine_ok,
                beat.error,
                beat.runner_version,
                beat.farm,
                beat.host,
            ),
        )

    @staticmethod
    def task_gate_values(task_id: str, at: datetime) -> tuple[str, datetime, int]:
        """The values of `task_gate` for a task first seen at `at`: listed in the hour it was created in."""
        return task_id, at, listing_bucket(at)

    def _task_seen(self, task_id: str, at: datetime, w: Writes) -> tuple[datetime, int]:
        """Lists the task (counted once) and marks it modified at `at`; returns its creation time and bucket."""
        result = self._session.execute(self.task_gate, self.task_gate_values(task_id, at)).one()
        # An applied gate answers [applied] alone; one not applied also the row it found.
        if result.applied:
            return self.task_listed(task_id, at, True, None, w), listing_bucket(at)
        bucket = stored_bucket(getattr(result, "bucket", None))
        return self.task_listed(task_id, at, False, getattr(result, "created_at", None), w, bucket), bucket

    def task_listed(
        self, task_id: str, at: datetime, first: bool, created_at: datetime | None, w: Writes, bucket: int | None = None
    ) -> datetime:
        """The listing writes of a task whose gate (`task_gate` with `task_gate_values(task_id, at)`) answered
        `first` (applied), or the stored `created_at` and `bucket`; returns its creation time. The API uses it
        too, for a task it sees first."""
        created = at if first or created_at is None else created_at  # the task's one creation time
        listed_in = listing_bucket(created) if bucket is None else bucket
        ts = write_time(at)
        w.add(self._list_task, (ts, at, listed_in, created, task_id))
        words = task_words(task_id)
        for word in words:
            w.add(self._word, (ts, at, word, created, task_id))
        if first:
            w.count(self._count, ("tasks",))
            w.count(self._count_in_bucket, (listed_in,))
            for word in words:
                w.count(self._count, (f"word:{word}",))
        return created

    def _copy_jobs_count(self, task_id: str, created: datetime, bucket: int, w: Writes) -> None:
        w.send_counts()  # the task's count may have just been incremented
        row = self._session.execute(self._jobs_of_task, (task_id,)).one()
        jobs = int(row.jobs) if row else 0
        w.add(self._list_count, (jobs, jobs, bucket, created, task_id))
        for word in task_words(task_id):
            w.add(self._word_count, (jobs, jobs, word, created, task_id))

    def _job_seen(self, task_id: str, job_id: uuid.UUID, w: Writes) -> None:
        if self._session.execute(self._job_gate, (task_id, job_id)).one().applied:
            w.count(self._count, ("jobs",))
            w.count(self._count_job, (task_id,))

    def _execution_seen(self, task_id: str, job_id: uuid.UUID, execution_id: uuid.UUID, w: Writes) -> None:
        if execution_id in self._gated:
            return
        gate = self._session.execute(self._execution_gate, (task_id, job_id, execution_id)).one()
        if gate.applied:
            w.count(self._count_execution, (task_id, job_id))
        # Numbered when first seen; a gate passed without a number written is another recorder's claim under way
        # or a claim cut short (services/recorder/numbers.py). An execution gated by an older recorder (no
        # `numbering`) stays unnumbered: its job page reads it the old way.
        if gate.applied:
            self._numbers.number(task_id, job_id, execution_id, w)
        elif getattr(gate, "numbering", None) and getattr(gate, "number", None) is None:
            self._numbers.number_pending(task_id, job_id, execution_id, w)
        self._gated[execution_id] = None
        if len(self._gated) > GATED_MEMORY:
            del self._gated[next(iter(self._gated))]
