"""What a live follower reads from Cassandra: an execution's state, its output so far (the recorder's
`execution_output` table), a job's latest execution and whether more of them may come."""

import json
import uuid
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session

from shared.contract.events import FINAL_STATUSES
from shared.infra.cassandra import awaited

PAGE = 256  # chunks per read


@dataclass(frozen=True)
class ExecutionState:
    execution_id: uuid.UUID
    status: str
    exit_code: int | None
    error: str | None
    stdout: str
    stderr: str
    output_bytes: int | None
    attempt: int | None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def of(cls, row: Any) -> "ExecutionState":
        return cls(
            row.execution_id,
            row.status or "enqueued",
            row.exit_code,
            row.error,
            row.stdout or "",
            row.stderr or "",
            getattr(row, "output_bytes", None),
            row.attempt,
        )


@dataclass(frozen=True)
class Chunk:
    """A chunk of output as a follower handles it (from the table or from the hub)."""

    stream: str
    text: str
    offset: int
    size: int
    skipped: int = 0

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class JobState:
    scheduled: bool
    cron: str | None
    retries: int


class LiveReads:
    def __init__(self, session: Session, keyspace: str) -> None:
        ks = keyspace
        self._session = session
        columns = "execution_id, status, exit_code, error, stdout, stderr, output_bytes, attempt"
        self._execution = session.prepare(
            f"SELECT {columns} FROM {ks}.executions WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._latest = session.prepare(
            f"SELECT {columns} FROM {ks}.executions WHERE task_id = ? AND job_id = ? LIMIT 1"
        )
        self._job = session.prepare(f"SELECT scheduled, definition FROM {ks}.jobs WHERE task_id = ? AND job_id = ?")
        self._output = session.prepare(
            f"SELECT at, stream, chunk, size, skipped FROM {ks}.execution_output WHERE execution_id = ? AND at >= ?"
            " LIMIT ?"
        )

    async def _rows(self, statement: Any, args: tuple[Any, ...]) -> list[Any]:
        """Awaited on the event loop: no thread waits for Cassandra (many followers would otherwise queue
        behind the loop's few executor threads)."""
        return await awaited(self._session.execute_async(statement, args))

    async def _one(self, statement: Any, args: tuple[Any, ...]) -> Any:
        rows = await self._rows(statement, args)
        return rows[0] if rows else None

    async def execution(self, task_id: str, job_id: uuid.UUID, execution_id: uuid.UUID) -> ExecutionState | None:
        if execution_id.version != 1:
            return None  # execution ids are time-based (the table's timeuuid refuses any other)
        row = await self._one(self._execution, (task_id, job_id, execution_id))
        return ExecutionState.of(row) if row is not None else None

    async def latest(self, task_id: str, job_id: uuid.UUID) -> ExecutionState | None:
        row = await self._one(self._latest, (task_id, job_id))
        return ExecutionState.of(row) if row is not None else None

    async def job(self, task_id: str, job_id: uuid.UUID) -> JobState | None:
        row = await self._one(self._job, (task_id, job_id))
        if row is None:
            return None
        definition = json.loads(row.definition or "{}")
        return JobState(bool(row.scheduled), definition.get("cron"), int(definition.get("retries") or 0))

    async def output(self, execution_id: uuid.UUID, start: int) -> list[Chunk]:
        """Chunks that end after `start`, in order, a page at a time (the caller reads on from the last end)."""
        rows = await self._rows(self._output, (execution_id, max(0, start), PAGE))
        return [Chunk(r.stream, r.chunk or "", r.at, r.size or 0, r.skipped or 0) for r in rows]
