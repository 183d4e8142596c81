"""Logs as plain text: an execution's stdout, stderr, or both (`logs`), and those of a job's last execution."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from services.api.deps import QueriesDep
from services.api.ids import parse_uuid
from services.api.models import TEXT_ROUTE_ERRORS
from services.api.openapi import route

router = APIRouter()
KINDS = ("stdout", "stderr", "logs")


def log_text(execution: dict[str, Any], kind: str) -> str:
    """stdout, stderr, or both with a `-=-` line between them."""
    if kind == "stdout":
        return str(execution["log"])
    if kind == "stderr":
        return str(execution["error"])
    stdout = execution["log"]
    return f"{stdout}{'' if not stdout or stdout.endswith(chr(10)) else chr(10)}-=-\n{execution['error']}"


def _add_log_routes(kind: str) -> None:
    def execution_log(task_id: str, job_id: str, execution_id: str, queries: QueriesDep) -> PlainTextResponse:
        jid, eid = parse_uuid(job_id, "jobId"), parse_uuid(execution_id, "executionId")
        return PlainTextResponse(log_text(queries.execution(task_id, jid, eid), kind))

    def job_log(task_id: str, job_id: str, queries: QueriesDep) -> PlainTextResponse:
        jid = parse_uuid(job_id, "jobId")
        return PlainTextResponse(log_text(queries.last_execution(task_id, jid), kind))

    # The operation ids come from these names (execution_log_tasks_..._stdout_get): clients may rely on them.
    text = {"response_class": PlainTextResponse, "responses": TEXT_ROUTE_ERRORS}
    route(
        router,
        "GET",
        f"/tasks/{{task_id}}/jobs/{{job_id}}/executions/{{execution_id}}/{kind}",
        summary=f"An execution's {kind} as plain text",
        **text,
    )(execution_log)
    route(
        router,
        "GET",
        f"/tasks/{{task_id}}/jobs/{{job_id}}/{kind}",
        summary=f"The {kind} of a job's last execution as plain text",
        **text,
    )(job_log)


for _kind in KINDS:
    _add_log_routes(_kind)
