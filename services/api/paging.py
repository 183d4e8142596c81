"""Pages of tasks (GET /tasks, GET /search): the query parameters, the `after` cursor a nextUrl carries, and
the page envelope of the original API. Free of I/O."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query

from services.api.errors import BadRequest
from shared.domain.links import Links

PageParam = Annotated[int, Query(ge=1, le=100_000, description="page number, from 1")]
AfterParam = Annotated[str | None, Query(max_length=300, description="where the previous page ended (set in nextUrl)")]

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
