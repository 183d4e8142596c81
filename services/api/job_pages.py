"""A page of a job's executions, newest first, at the cost of about one page whatever its number.

Page 1 is the job's newest rows (LIMIT size): it shows an execution the API's early projection has just written,
before the recorder numbers it. Page N > 1 is a range of execution numbers (services/recorder/numbers.py): the
job's newest and oldest numbers, then the numbers of the page (one range read) and their rows (`IN` reads in
the job's partition). Executions recorded before numbering existed are older than every numbered one and come
after them: read as before (LIMIT skip + size from the oldest numbered one down), so only pages deep into such
a job's old executions cost what every page did.
"""

import uuid
from typing import Any

from cassandra.cluster import ResponseFuture, Session

from services.api.paging import executions_plan
from shared.infra.cassandra import retried_reads

IN_CHUNK = 100  # execution ids per IN read (a page of 10,000 is 100 reads sent at once)


class ExecutionPages:
    """The execution rows (`columns`) of page N of a job."""

    def __init__(self, session: Session, keyspace: str, columns: str) -> None:
        self._session = session
        ks = keyspace
        job = "task_id = ? AND job_id = ?"
        self._newest = session.prepare(f"SELECT {columns} FROM {ks}.executions WHERE {job} LIMIT ?")
        self._older = session.prepare(f"SELECT {columns} FROM {ks}.executions WHERE {job} AND execution_id < ? LIMIT ?")
        self._top = session.prepare(f"SELECT number, execution_id FROM {ks}.execution_numbers WHERE {job} LIMIT 1")
        self._bottom = session.prepare(
            f"SELECT number, execution_id FROM {ks}.execution_numbers WHERE {job} ORDER BY number ASC LIMIT 1"
        )
        self._numbered = session.prepare(
            f"SELECT number, execution_id FROM {ks}.execution_numbers WHERE {job} AND number >= ? AND number <= ?"
        )
        self._rows = session.prepare(f"SELECT {columns} FROM {ks}.executions WHERE {job} AND execution_id IN ?")
        retried_reads(self)  # a slow coordinator is asked again (shared/infra/cassandra.py)

    def start(self, task_id: str, job_id: uuid.UUID, page: int, size: int) -> tuple[ResponseFuture, ...]:
        """The first reads of the page, sent now (the caller reads the job's row meanwhile)."""
        if page == 1:
            return (self._session.execute_async(self._newest, (task_id, job_id, size)),)
        return (
            self._session.execute_async(self._top, (task_id, job_id)),
            self._session.execute_async(self._bottom, (task_id, job_id)),
        )

    def rows(
        self, started: tuple[ResponseFuture, ...], task_id: str, job_id: uuid.UUID, page: int, size: int
    ) -> list[Any]:
        """The page's rows, newest first, from the reads `start` sent."""
        if page == 1:
            return list(started[0].result())
        top, bottom = (future.result().one() for future in started)
        plan = executions_plan(top.number if top else 0, bottom.number if bottom else 0, page, size)
        rows = self._numbered_rows(task_id, job_id, plan.numbers) if plan.numbers else []
        if plan.legacy_take:
            if bottom is None:  # no numbered execution: the job's rows from the newest
                legacy = self._session.execute(self._newest, (task_id, job_id, plan.legacy_skip + plan.legacy_take))
            else:
                legacy = self._session.execute(
                    self._older, (task_id, job_id, bottom.execution_id, plan.legacy_skip + plan.legacy_take)
                )
            rows += list(legacy)[plan.legacy_skip :]
        return rows

    def _numbered_rows(self, task_id: str, job_id: uuid.UUID, numbers: tuple[int, int]) -> list[Any]:
        slots = list(self._session.execute(self._numbered, (task_id, job_id, *numbers)))  # newest first
        ids = [slot.execution_id for slot in slots]
        answers = [
            self._session.execute_async(self._rows, (task_id, job_id, ids[i : i + IN_CHUNK]))
            for i in range(0, len(ids), IN_CHUNK)
        ]
        by_id = {row.execution_id: row for answer in answers for row in answer.result()}
        # In number order; an execution whose row is gone (retention) leaves a gap in the page.
        return [by_id[i] for i in ids if i in by_id]
