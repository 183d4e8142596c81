"""Tasks: enqueue a job in a task (POST), a task and its jobs, every task a page at a time, and search."""

import uuid
from typing import Any

from fastapi import APIRouter

from services.api.deps import QueriesDep, SettingsDep, UrlsDep
from services.api.errors import BadRequest
from services.api.job_orders import JobOrdersDep, order_answer
from services.api.models import Enqueued, TaskJobs, TaskPage
from services.api.openapi import job_writes, reads, route
from services.api.paging import AfterParam, PageParam, page_of_tasks, parse_cursor
from services.recorder.indexes import task_words
from shared.contract.events import JobRequested

router = APIRouter()


@route(
    router, "POST", "/tasks/{task_id}", summary="Enqueue a job in a task (created on first use)", **job_writes(Enqueued)
)
async def enqueue(task_id: str, orders: JobOrdersDep, urls: UrlsDep) -> dict[str, Any]:
    command = await orders.take(JobRequested, task_id, uuid.uuid4())
    return order_answer(urls, command, with_execution=True)


@route(router, "GET", "/tasks/{task_id}", summary="A task and its jobs", **reads(TaskJobs))
def get_task(task_id: str, queries: QueriesDep, urls: UrlsDep) -> dict[str, Any]:
    jobs = queries.task_job_ids(task_id)
    return {"taskId": task_id, "jobs": [{"id": str(j), "url": urls.job(task_id, j)} for j in jobs]}


@route(router, "GET", "/tasks", summary="Every task, newest first, a page at a time", **reads(TaskPage))
def list_tasks(
    queries: QueriesDep, settings: SettingsDep, urls: UrlsDep, page: PageParam = 1, after: AfterParam = None
) -> dict[str, Any]:
    size = settings.page_size
    items, total = queries.tasks_page(page, size, after=parse_cursor(after))
    return page_of_tasks(urls, "/tasks", {}, items, total, page, size)


@route(
    router,
    "GET",
    "/search",
    summary="Tasks whose id contains a whole word, newest first, a page at a time",
    **reads(TaskPage),
)
def search(
    queries: QueriesDep,
    settings: SettingsDep,
    urls: UrlsDep,
    query: str = "",
    page: PageParam = 1,
    after: AfterParam = None,
) -> dict[str, Any]:
    words = task_words(query)
    if len(words) != 1:
        raise BadRequest("query must be one word of letters and digits, e.g. /search?query=billing")
    size = settings.page_size
    (word,) = words
    items, total = queries.tasks_page(page, size, word=word, after=parse_cursor(after))
    return page_of_tasks(urls, "/search", {"query": word}, items, total, page, size)
