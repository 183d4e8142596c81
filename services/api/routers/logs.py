"""Logs: an execution's stdout, stderr, or both (`logs`), and those of a job's last execution, as plain text;
with `?follow=true`, followed live as Server-Sent Events (services/api/routers/live.py)."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from services.api.deps import BackendsDep, QueriesDep
from services.api.ids import parse_uuid
from services.api.models import TEXT_ROUTE_ERRORS
from services.api.openapi import route
from services.api.routers.live import event_stream, follower_of

router = APIRouter()
KINDS = ("stdout", "stderr", "logs")
FollowQuery = Annotated[
    bool,
    Query(
        description="Follow the output live as Server-Sent Events (text/event-stream): the output so far, then "
        "each chunk as it is written, then an `end` event (docs/live-logs.md)."
    ),
]
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The text; with follow=true, an event stream",
        "content": {"text/plain": {"schema": {"type": "string"}}, "text/event-stream": {"schema": {"type": "string"}}},
    }
}


def log_text(execution: dict[str, Any], kind: str) -> str:
    """stdout, stderr, or both with a `-=-` line between them."""
    if kind == "stdout":
        return str(execution["log"])
    if kind == "stderr":
        return str(execution["error"])
    stdout = execution["log"]
    return f"{stdout}{'' if not stdout or stdout.endswith(chr(10)) else chr(10)}-=-\n{execution['error']}"


def _add_log_routes(kind: str) -> None:
    streams = None if kind == "logs" else frozenset({kind})

    async def execution_log(
        task_id: str,
        job_id: str,
        execution_id: str,
        queries: QueriesDep,
        backends: BackendsDep,
        follow: FollowQuery = False,
    ) -> Response:
        jid, eid = parse_uuid(job_id, "jobId"), parse_uuid(execution_id, "executionId")
        if follow:
            return await event_stream(follower_of(backends).execution(task_id, jid, eid, streams=streams))
        return PlainTextResponse(log_text(await run_in_threadpool(queries.execution, task_id, jid, eid), kind))

    async def job_log(
        task_id: str, job_id: str, queries: QueriesDep, backends: BackendsDep, follow: FollowQuery = False
    ) -> Response:
        jid = parse_uuid(job_id, "jobId")
        if follow:
            return await event_stream(follower_of(backends).job(task_id, jid, streams=streams))
        return PlainTextResponse(log_text(await run_in_threadpool(queries.last_execution, task_id, jid), kind))

    # The operation ids come from these names (execution_log_tasks_..._stdout_get): clients may rely on them.
    text = {"response_class": PlainTextResponse, "responses": TEXT_ROUTE_ERRORS | SSE_RESPONSE}
    route(
        router,
        "GET",
        f"/tasks/{{task_id}}/jobs/{{job_id}}/executions/{{execution_id}}/{kind}",
        summary=f"An execution's {kind} as plain text, or followed live (follow=true)",
        **text,
    )(execution_log)
    route(
        router,
        "GET",
        f"/tasks/{{task_id}}/jobs/{{job_id}}/{kind}",
        summary=f"The {kind} of a job's last execution as plain text, or the job's output followed live",
        **text,
    )(job_log)


for _kind in KINDS:
    _add_log_routes(_kind)
