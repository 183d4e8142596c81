"""Jobs: create or replace a job (PUT), read it with a page of its executions, stop it, run it again."""

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from services.api.deps import ClientIpDep, QueriesDep, SettingsDep, UrlsDep, WritesDep
from services.api.ids import parse_uuid
from services.api.job_orders import JobOrdersDep, order_answer, order_refs
from services.api.models import ExecutionOrdered, JobAnswer, JobStopped, Updated
from services.api.openapi import job_writes, reads, route
from services.api.paging import PageParam
from shared.contract.events import JobRetryRequested, JobStopRequested, JobUpdated, new_execution_id
from shared.domain.redaction import redact

router = APIRouter()


@dataclass(frozen=True)
class JobRef:
    task_id: str
    job_id: uuid.UUID


def existing_job(task_id: str, job_id: str, queries: QueriesDep) -> JobRef:
    """The job the path names: 400 for a malformed id, 404 for an unknown job."""
    ref = JobRef(task_id, parse_uuid(job_id, "jobId"))
    queries.job(ref.task_id, ref.job_id)
    return ref


ExistingJobDep = Annotated[JobRef, Depends(existing_job)]


@route(
    router,
    "PUT",
    "/tasks/{task_id}/jobs/{job_id}",
    summary="Create or replace the job with this id",
    response_model_exclude_unset=True,
    **job_writes(Updated),
)
async def update(task_id: str, job_id: str, orders: JobOrdersDep, urls: UrlsDep) -> dict[str, Any]:
    jid = parse_uuid(job_id, "jobId")
    command = await orders.take(JobUpdated, task_id, jid)
    return order_answer(urls, command, with_execution=command.definition.runs_now)


@route(
    router,
    "GET",
    "/tasks/{task_id}/jobs/{job_id}",
    summary="A job, its definition and its executions",
    **reads(JobAnswer),
)
def get_job(
    task_id: str, job_id: str, queries: QueriesDep, settings: SettingsDep, urls: UrlsDep, page: PageParam = 1
) -> dict[str, Any]:
    jid = parse_uuid(job_id, "jobId")
    size = settings.executions_page_size
    job, executions, count = queries.job_page(task_id, jid, page, size)
    job["envs"] = redact(job["envs"], settings.env_blacklist)
    for e in executions:
        e["url"] = urls.execution(task_id, jid, e["executionId"])
    job["executions"] = executions
    # The counter is the recorder's; right after a POST the early projection may be ahead of it (a page past the
    # last, empty, says nothing about the count).
    job["executionCount"] = max(count, (page - 1) * size + len(executions)) if executions else count
    job["executionsPage"] = page
    job["executionsPerPage"] = size
    return {"task": {"id": task_id, "url": urls.task(task_id)}, "job": job}


@route(
    router,
    "POST",
    "/tasks/{task_id}/jobs/{job_id}/stop",
    summary="Stop the job: its running execution and all future ones",
    **reads(JobStopped),
)
def stop_job(job: ExistingJobDep, writes: WritesDep, urls: UrlsDep) -> dict[str, Any]:
    writes.accept(JobStopRequested(task_id=job.task_id, job_id=job.job_id))
    return order_refs(urls, job.task_id, job.job_id)


@route(
    router,
    "POST",
    "/tasks/{task_id}/jobs/{job_id}/retry",
    summary="Run the job again now, as a new execution",
    **reads(ExecutionOrdered),
)
def retry_job(job: ExistingJobDep, writes: WritesDep, urls: UrlsDep, request_ip: ClientIpDep) -> dict[str, Any]:
    execution_id = new_execution_id()
    writes.accept(
        JobRetryRequested(task_id=job.task_id, job_id=job.job_id, execution_id=execution_id, request_ip=request_ip)
    )
    return order_refs(urls, job.task_id, job.job_id, execution_id)
