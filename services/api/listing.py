"""GET /tasks: every task newest first, read from the hour buckets of `tasks_by_creation` (services/recorder/
buckets.py says why hours) and then from the legacy bucket 0, which holds the tasks listed before buckets.

A page by number (`?page=N`) walks `task_buckets` (one row per non-empty hour, with its task count) newest
first and skips whole hours by their counts, then reads the hour holding the page's first task (the tasks of
that hour before it are read and dropped) and as many following hours as the page needs, all at once. A page
after a cursor (`?after=`, from nextUrl) reads on from the cursor's task in its own bucket (its gate row says
which), then the older hours, then the legacy bucket from its top: each task is in one bucket, every bucket
is read in order, so walking nextUrl never repeats or skips a task, whatever arrives meanwhile.
"""

from collections.abc import Iterator
from datetime import datetime
from itertools import chain
from typing import Any

from cassandra.cluster import Session

from services.api.paging import BucketRead, read_buckets, skip_buckets
from services.recorder.buckets import LEGACY_BUCKET, listing_bucket, stored_bucket
from shared.infra.cassandra import retried_reads

LISTED = "created_at, task_id, last_modified_at, jobs_count"
BUCKETS_FETCHED = 1000  # hour rows per round trip while skipping hours


class TaskListing:
    """The rows of a page of all tasks, newest first (the columns in LISTED)."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self._session = session
        ks = keyspace
        self._buckets = session.prepare(f"SELECT bucket, tasks FROM {ks}.task_buckets WHERE listing = 'all'")
        self._buckets.fetch_size = BUCKETS_FETCHED
        self._older_buckets = session.prepare(
            f"SELECT bucket, tasks FROM {ks}.task_buckets WHERE listing = 'all' AND bucket < ?"
        )
        self._older_buckets.fetch_size = BUCKETS_FETCHED
        self._bucket_top = session.prepare(f"SELECT {LISTED} FROM {ks}.tasks_by_creation WHERE bucket = ? LIMIT ?")
        self._bucket_after = session.prepare(
            f"SELECT {LISTED} FROM {ks}.tasks_by_creation WHERE bucket = ? AND (created_at, task_id) < (?, ?) LIMIT ?"
        )
        self._task_bucket = session.prepare(f"SELECT bucket FROM {ks}.task_index WHERE task_id = ?")
        retried_reads(self)  # a slow coordinator is asked again (shared/infra/cassandra.py)

    def page(self, page: int, size: int) -> list[Any]:
        """Page `page` (from 1)."""
        offset = (page - 1) * size
        buckets = self._counted(self._session.execute(self._buckets))
        holding, skipped = skip_buckets(buckets, offset)
        if not holding:  # past every hour: the page is in the legacy bucket
            return self._legacy(offset - skipped, size)
        rows = self._read(chain(holding, buckets), offset - skipped, size)
        return rows + self._legacy(0, size - len(rows)) if len(rows) < size else rows

    def after(self, created_at: datetime, task_id: str, size: int) -> list[Any]:
        """The page after the task `task_id` created at `created_at` (the previous page's last)."""
        bucket = self._bucket_of(task_id, created_at)
        rows = list(self._session.execute(self._bucket_after, (bucket, created_at, task_id, size)))
        if bucket == LEGACY_BUCKET or len(rows) == size:
            return rows
        rows += self._read(self._counted(self._session.execute(self._older_buckets, (bucket,))), 0, size - len(rows))
        return rows + self._legacy(0, size - len(rows)) if len(rows) < size else rows

    def _bucket_of(self, task_id: str, created_at: datetime) -> int:
        row = self._session.execute(self._task_bucket, (task_id,)).one()
        # No gate row: a cursor not written by a nextUrl; read on from its time.
        return stored_bucket(row.bucket) if row is not None else listing_bucket(created_at)

    @staticmethod
    def _counted(rows: Any) -> Iterator[tuple[int, int]]:
        return ((row.bucket, int(row.tasks or 0)) for row in rows)

    def _read(self, buckets: Iterator[tuple[int, int]], skip: int, wanted: int) -> list[Any]:
        return read_buckets(buckets, skip, wanted, self._fetch)

    def _fetch(self, reads: list[BucketRead]) -> list[list[Any]]:
        answers = [self._session.execute_async(self._bucket_top, (r.bucket, r.limit)) for r in reads]
        return [list(answer.result()) for answer in answers]

    def _legacy(self, skip: int, wanted: int) -> list[Any]:
        """Rows of the legacy bucket: read as before buckets, `skip` + `wanted` rows (deep pages cost that)."""
        if wanted <= 0:
            return []
        return list(self._session.execute(self._bucket_top, (LEGACY_BUCKET, skip + wanted)))[skip:]
