"""Executions: read one (with its notifications' deliveries), stop one."""

from typing import Any

from fastapi import APIRouter

from services.api.deps import QueriesDep, UrlsDep, WritesDep
from services.api.ids import parse_uuid
from services.api.job_orders import order_refs
from services.api.models import ExecutionAnswer, ExecutionOrdered
from services.api.openapi import reads, route
from shared.contract.events import ExecutionStopRequested

router = APIRouter()


@route(
    router,
    "POST",
    "/tasks/{task_id}/jobs/{job_id}/executions/{execution_id}/stop",
    summary="Stop one execution (a cron keeps its schedule)",
    **reads(ExecutionOrdered),
)
def stop_execution(
    task_id: str, job_id: str, execution_id: str, queries: QueriesDep, writes: WritesDep, urls: UrlsDep
) -> dict[str, Any]:
    jid, eid = parse_uuid(job_id, "jobId"), parse_uuid(execution_id, "executionId")
    queries.execution(task_id, jid, eid)  # 404 for an unknown execution
    writes.accept(ExecutionStopRequested(task_id=task_id, job_id=jid, execution_id=eid))
    return order_refs(urls, task_id, jid, eid)


@route(
    router,
    "GET",
    "/tasks/{task_id}/jobs/{job_id}/executions/{execution_id}",
    summary="One execution",
    **reads(ExecutionAnswer),
)
def get_execution(task_id: str, job_id: str, execution_id: str, queries: QueriesDep, urls: UrlsDep) -> dict[str, Any]:
    jid = parse_uuid(job_id, "jobId")
    eid = parse_uuid(execution_id, "executionId")
    return {
        "task": {"id": task_id, "url": urls.task(task_id)},
        "job": {"id": str(jid), "url": urls.job(task_id, jid)},
        "execution": queries.execution(task_id, jid, eid),
    }
