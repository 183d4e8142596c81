"""Reads for the API, straight from the tables the recorder maintains."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from cassandra.cluster import Session

from services.api.errors import NotFound
from services.api.job_pages import ExecutionPages
from services.api.listing import LISTED, TaskListing
from shared.domain.redaction import REDACTED
from shared.domain.schedule import next_cron_fire
from shared.infra.cassandra import retried_reads


def iso(value: datetime | None) -> str | None:
    """Cassandra hands back naive UTC datetimes; the API speaks ISO 8601 with an explicit offset."""
    return value.replace(tzinfo=UTC).isoformat() if value else None


class Queries:
    """One prepared statement per question the API asks."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self._session = session
        ks = keyspace
        listed = LISTED
        self._task_jobs = session.prepare(f"SELECT job_id FROM {ks}.jobs WHERE task_id = ?")
        self._job = session.prepare(f"SELECT * FROM {ks}.jobs WHERE task_id = ? AND job_id = ?")
        self._listing = TaskListing(session, keyspace)
        self._word_page = session.prepare(f"SELECT {listed} FROM {ks}.task_words WHERE word = ? LIMIT ?")
        # Keyset pages (nextUrl): rows strictly after the last one of the previous page, whatever was added since.
        self._word_after = session.prepare(
            f"SELECT {listed} FROM {ks}.task_words WHERE word = ? AND (created_at, task_id) < (?, ?) LIMIT ?"
        )
        self._counter = session.prepare(f"SELECT value FROM {ks}.counters WHERE name = ?")
        self._task_row = session.prepare(f"SELECT last_modified_at FROM {ks}.tasks WHERE task_id = ?")
        self._task_jobs_count = session.prepare(f"SELECT jobs FROM {ks}.task_counters WHERE task_id = ?")
        self._execution_pages = ExecutionPages(session, keyspace, SUMMARY_COLUMNS)
        self._executions_count = session.prepare(
            f"SELECT executions FROM {ks}.job_counters WHERE task_id = ? AND job_id = ?"
        )
        self._hosts = session.prepare(f"SELECT * FROM {ks}.hosts")
        self._blacklist = session.prepare(f"SELECT host FROM {ks}.blacklist")
        self._running = session.prepare(f"SELECT * FROM {ks}.running_executions WHERE bucket = 0 LIMIT 1000")
        self._scheduled = session.prepare(
            f"SELECT task_id, job_id FROM {ks}.scheduled_jobs WHERE bucket = 0 LIMIT 1000"
        )
        self._last_execution = session.prepare(
            f"SELECT * FROM {ks}.executions WHERE task_id = ? AND job_id = ? LIMIT 1"
        )
        self._execution = session.prepare(
            f"SELECT * FROM {ks}.executions WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._deliveries = session.prepare(
            f"SELECT * FROM {ks}.deliveries WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        retried_reads(self)  # a slow coordinator is asked again (shared/infra/cassandra.py)

    def task_job_ids(self, task_id: str) -> list[uuid.UUID]:
        rows = list(self._session.execute(self._task_jobs, (task_id,)))
        if not rows:
            raise NotFound(f"task {task_id} not found")
        return [r.job_id for r in rows]

    def job(self, task_id: str, job_id: uuid.UUID) -> dict[str, Any]:
        return self._job_doc(task_id, job_id, self._session.execute(self._job, (task_id, job_id)).one())

    def job_page(
        self, task_id: str, job_id: uuid.UUID, page: int, size: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
        """A job, page `page` (from 1) of its executions newest first, and its execution count: the job's row,
        its count and the page's first reads are in flight at once (services/api/job_pages.py: about one page
        of rows read, whatever the page's number)."""
        job = self._session.execute_async(self._job, (task_id, job_id))
        executions = self._execution_pages.start(task_id, job_id, page, size)
        count = self._session.execute_async(self._executions_count, (task_id, job_id))
        doc = self._job_doc(task_id, job_id, job.result().one())
        rows = self._execution_pages.rows(executions, task_id, job_id, page, size)
        count_row = count.result().one()
        return doc, [execution_summary(r) for r in rows], int(count_row.executions) if count_row else 0

    def _job_doc(self, task_id: str, job_id: uuid.UUID, row: Any) -> dict[str, Any]:
        if row is None:
            raise NotFound(f"job {job_id} not found in task {task_id}")
        return {
            "taskId": row.task_id,
            "jobId": str(row.job_id),
            "createdAt": iso(row.created_at),
            "lastModifiedAt": iso(row.last_modified_at),
            "image": row.image,
            "command": row.command,
            "metadata": {"custom": json.loads(row.metadata or "{}")},
            "scheduled": bool(row.scheduled),
            "requestIPAddress": row.request_ip,
            "envs": dict(row.envs or {}),
            **schedule_doc(row.definition),
        }

    def hosts(self) -> list[Any]:
        return list(self._session.execute(self._hosts))

    def blacklist(self) -> set[str]:
        return {row.host for row in self._session.execute(self._blacklist)}

    def running(self) -> list[Any]:
        return list(self._session.execute(self._running))

    def scheduled(self) -> list[Any]:
        return list(self._session.execute(self._scheduled))

    def count(self, name: str) -> int:
        row = self._session.execute(self._counter, (name,)).one()
        return int(row.value) if row else 0

    def tasks_page(
        self, page: int, size: int, word: str | None = None, after: tuple[datetime, str] | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Page `page` (from 1) of all tasks, or of those with `word` in their id, newest first; and the total.

        With `after` (the created_at and id of the previous page's last task) the page is read from there:
        walking the pages this way visits every task once even while new tasks arrive.
        """
        if after is not None and word is None:
            rows = self._listing.after(*after, size)
        elif after is not None:
            rows = list(self._session.execute(self._word_after, (word, *after, size)))
        elif word is None:
            rows = self._listing.page(page, size)
        else:  # a word's partition holds its tasks (search is not bucketed: docs/read-model.md)
            rows = list(self._session.execute(self._word_page, (word, page * size)))[(page - 1) * size :]
        total = self.count("tasks" if word is None else f"word:{word}")
        items = [
            {
                "cursor": f"{int(row.created_at.replace(tzinfo=UTC).timestamp() * 1000)}:{row.task_id}",
                "taskId": row.task_id,
                "createdAt": iso(row.created_at),
                "lastModifiedAt": iso(row.last_modified_at),
                "jobsCount": int(row.jobs_count or 0),
            }
            for row in rows
        ]
        self._complete_legacy_rows(items, rows)
        return items, max(total, len(items))

    def _complete_legacy_rows(self, items: list[dict[str, Any]], rows: list[Any]) -> None:
        """Rows listed before the listing tables carried last_modified_at and jobs_count: read those from the
        task's own tables (two single-partition reads per row, all in flight at once)."""
        legacy = [(item, row) for item, row in zip(items, rows, strict=True) if row.last_modified_at is None]
        modified = [self._session.execute_async(self._task_row, (row.task_id,)) for _, row in legacy]
        jobs = [self._session.execute_async(self._task_jobs_count, (row.task_id,)) for _, row in legacy]
        for (item, _), m, j in zip(legacy, modified, jobs, strict=True):
            task_row, count_row = m.result().one(), j.result().one()
            item["lastModifiedAt"] = iso(task_row.last_modified_at) if task_row else None
            item["jobsCount"] = int(count_row.jobs) if count_row else 0

    def last_execution(self, task_id: str, job_id: uuid.UUID) -> dict[str, Any]:
        row = self._session.execute(self._last_execution, (task_id, job_id)).one()
        if row is None:
            self.job(task_id, job_id)  # 404 for an unknown job
            raise NotFound(f"job {job_id} of task {task_id} has no execution yet")
        return execution_doc(row)

    def execution(self, task_id: str, job_id: uuid.UUID, execution_id: uuid.UUID) -> dict[str, Any]:
        """An execution with its notifications (webhook and e-mail deliveries); both reads at once."""
        if execution_id.version != 1:  # execution ids are time-based: the table's timeuuid refuses any other
            raise NotFound(f"execution {execution_id} not found in job {job_id} of task {task_id}")
        found = self._session.execute_async(self._execution, (task_id, job_id, execution_id))
        deliveries = self._session.execute_async(self._deliveries, (task_id, job_id, execution_id))
        row = found.result().one()
        if row is None:
            raise NotFound(f"execution {execution_id} not found in job {job_id} of task {task_id}")
        doc = execution_doc(row)
        doc["deliveries"] = sorted((delivery_doc(d) for d in deliveries.result()), key=lambda d: d["updatedAt"] or "")
        return doc


def _unix(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def next_run(definition: dict[str, Any]) -> str | None:
    """When a cron job fires next (from now: a stopped job still shows its cron, with `scheduled` false)."""
    if not definition.get("cron"):
        return None
    try:
        at = next_cron_fire(definition["cron"], definition.get("cron_timezone", "UTC"), datetime.now(UTC))
    except ValueError:
        return None
    return at.astimezone(UTC).isoformat()


def schedule_doc(definition_json: str | None) -> dict[str, Any]:
    """The job's schedule and limits, in the request's own field names (times as UNIX seconds)."""
    d = json.loads(definition_json or "{}")
    backoff = d.get("retry_backoff")
    resources = d.get("resources")
    return {
        "startAt": _unix(d.get("start_at")),
        "cron": d.get("cron"),
        "cronTimezone": d.get("cron_timezone", "UTC"),
        "nextRunAt": next_run(d),
        "retries": d.get("retries", 0),
        "retryBackoff": {"minMs": backoff["min_ms"], "factor": backoff["factor"], "maxMs": backoff["max_ms"]}
        if backoff
        else None,
        "expiration": _unix(d.get("expiration")),
        "timeout": d.get("timeout_s"),
        "concurrencyPolicy": d.get("concurrency_policy", "Allow"),
        "catchUp": d.get("catch_up", True),
        "additionalDNSEntries": d.get("extra_hosts") or {},
        "resources": {"cpus": resources.get("cpus"), "memoryMB": resources.get("memory_mb")} if resources else None,
        # Header values often carry credentials: shown as ***.
        "webhooks": {
            event: [
                {
                    "url": h["url"],
                    "headers": dict.fromkeys(h.get("headers") or {}, REDACTED),
                    "retries": h.get("retries"),
                }
                for h in hooks
            ]
            for event, hooks in (d.get("webhooks") or {}).items()
        },
        "notify": d.get("notify") or {},
    }


# What a job page shows of each execution: everything but the logs (up to the runner's log limit each; the
# execution's own page has them).
SUMMARY_COLUMNS = (
    "execution_id, status, created_at, started_at, finished_at, image, command, exit_code, attempt, request_ip,"
    " container_id, docker_host"
)


def execution_summary(row: Any) -> dict[str, Any]:
    return {
        "executionId": str(row.execution_id),
        "status": row.status,
        "createdAt": iso(row.created_at),
        "startedAt": iso(row.started_at),
        "finishedAt": iso(row.finished_at),
        "image": row.image,
        "command": row.command,
        "exitCode": row.exit_code,
        "attempt": row.attempt,
        "requestIPAddress": row.request_ip,
        "metadata": {"containerId": row.container_id, "dockerHost": row.docker_host},
    }


def delivery_doc(row: Any) -> dict[str, Any]:
    return {
        "deliveryId": str(row.delivery_id),
        "channel": row.channel,
        "event": row.event,
        "target": row.target,
        "state": row.state,
        "attempts": row.attempts,
        "statusCode": row.status_code,
        "lastError": row.last_error,
        "updatedAt": iso(row.updated_at),
    }


def execution_doc(row: Any) -> dict[str, Any]:
    # "error" is the container's stderr; when the container could not run at all, the reason it could not.
    error = "\n".join(part for part in (row.stderr, row.error) if part)
    return {**execution_summary(row), "log": row.stdout or "", "error": error}
