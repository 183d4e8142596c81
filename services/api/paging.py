"""Pages of tasks (GET /tasks, GET /search): the query parameters, the `after` cursor a nextUrl carries, and
the page envelope of the original API; where a page lies in the listing's hour buckets and in a job's
numbered executions (docs/read-model.md). Free of I/O."""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import Query

from services.api.errors import BadRequest
from shared.domain.links import Links

PageParam = Annotated[int, Query(ge=1, le=100_000, description="page number, from 1")]
AfterParam = Annotated[str | None, Query(max_length=300, description="where the previous page ended (set in nextUrl)")]

T = TypeVar("T")
CURSOR_MILLIS = re.compile(r"[0-9]{1,15}")  # ASCII digits only: str.isdigit() also takes '²'


def parse_cursor(after: str | None) -> tuple[datetime, str] | None:
    """The created_at and id of the previous page's last task, from `after` as a nextUrl wrote it."""
    if after is None:
        return None
    millis, _, task_id = after.partition(":")
    if not CURSOR_MILLIS.fullmatch(millis) or not task_id:
        raise BadRequest("after must be the value found in a nextUrl")
    try:
        return datetime.fromtimestamp(int(millis) / 1000, UTC), task_id
    except (ValueError, OverflowError, OSError) as exc:  # past the years a date can hold
        raise BadRequest("after must be the value found in a nextUrl") from exc


def page_of_tasks(
    urls: Links, path: str, params: dict[str, str], items: list[dict[str, Any]], total: int, page: int, size: int
) -> dict[str, Any]:
    """The page envelope of the original API."""
    cursors = [item.pop("cursor") for item in items]
    for item in items:
        item["url"] = urls.task(item["taskId"])
    pages = max(1, -(-total // size))

    def url(n: int, after: str | None = None) -> str:
        return f"{urls.base}{path}?{urlencode(params | {'page': n} | ({'after': after} if after else {}))}"

    return {
        "items": items,
        "total": total,
        "page": page,
        "pages": pages,
        "perPage": size,
        "hasNext": page < pages,
        "hasPrev": page > 1,
        # nextUrl carries where this page ended, so following it never repeats or skips a task.
        "nextUrl": url(page + 1, cursors[-1] if cursors else None) if page < pages else None,
        "prevUrl": url(page - 1) if page > 1 else None,
    }


@dataclass(frozen=True)
class BucketRead:
    """One partition's read for a page: `limit` rows from its top, of which the first `skip` are dropped."""

    bucket: int
    skip: int
    limit: int


def skip_buckets(buckets: Iterator[tuple[int, int]], offset: int) -> tuple[list[tuple[int, int]], int]:
    """Skip, by their counts, the whole buckets (newest first, with their task counts) that lie before the
    `offset`-th row: the bucket holding it (a list of one, or none when every bucket lies before) and the number
    of rows skipped. Consumes `buckets` up to that bucket only."""
    skipped = 0
    for bucket, count in buckets:
        if skipped + count > offset:
            return [(bucket, count)], skipped
        skipped += count
    return [], skipped


def plan_bucket_reads(buckets: Iterator[tuple[int, int]], skip: int, wanted: int) -> list[BucketRead]:
    """The reads, sent together, of the next buckets (newest first, with their counts) that hold `wanted` rows
    after `skip` rows of the first; consumes `buckets` up to the last one planned.

    Each bucket is read for the whole `wanted` (not what its count leaves to it): a count one low (see
    services/recorder/indexes.py) then costs a few rows more, never a row lost, because the rows taken in order
    stop at the first bucket that filled the page by itself. Fewer rows than wanted means every planned bucket
    was read to its end; the caller plans the following ones."""
    reads: list[BucketRead] = []
    covered = 0
    for bucket, count in buckets:
        reads.append(BucketRead(bucket, skip, skip + wanted))
        covered += max(0, count - skip)
        skip = 0
        if covered >= wanted:
            break
    return reads


def read_buckets(
    buckets: Iterator[tuple[int, int]],
    skip: int,
    wanted: int,
    fetch: Callable[[list[BucketRead]], list[list[T]]],
) -> list[T]:
    """`wanted` rows from the top of `buckets` (newest first, with their counts), after `skip` rows of the first:
    the buckets the counts say the page needs are fetched at once (`fetch` answers each read's rows, skip
    included), then the next ones while rows are missing."""
    rows: list[T] = []
    while len(rows) < wanted:
        reads = plan_bucket_reads(buckets, skip, wanted - len(rows))
        if not reads:
            break
        for read, answer in zip(reads, fetch(reads), strict=True):
            rows += answer[read.skip :]
        skip = 0
    return rows[:wanted]


@dataclass(frozen=True)
class ExecutionsPlan:
    """Where page N of a job's executions (newest first) lies: a range of execution numbers (inclusive, None
    when the page holds none), then rows of the executions older than the numbered ones (the legacy ones,
    recorded before executions had numbers), `legacy_skip` skipped and `legacy_take` taken."""

    numbers: tuple[int, int] | None
    legacy_skip: int
    legacy_take: int


def executions_plan(top: int, bottom: int, page: int, size: int) -> ExecutionsPlan:
    """Page `page` (from 1) of `size` of a job whose executions hold the numbers `bottom`..`top` (0 and 0: none),
    the newest first, followed by its unnumbered older executions."""
    numbered = top - bottom + 1 if top > 0 else 0
    first, last = (page - 1) * size, page * size  # the page's ranks, newest first: [first, last)
    numbers = (top - min(last, numbered) + 1, top - first) if first < numbered else None
    return ExecutionsPlan(numbers, max(0, first - numbered), max(0, last - max(first, numbered)))
