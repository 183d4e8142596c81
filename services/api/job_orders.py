"""The one builder of job orders: POST /tasks/{t} (JobRequested) and PUT /tasks/{t}/jobs/{j} (JobUpdated) both
take their order through `JobOrderDesk`, so they make the same checks in the same order: the task id, a farm
that takes it, the body's size, the job definition, and that the order fits in a Kafka message with room to
spare (the scheduler keeps the definition in its state). `build_job_order` is the decision part, free of I/O."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from services.api.accepting import Acceptor, JobCommand, JobOrderDraft
from services.api.deps import IdempotencyKeyHeader, client_ip_of
from services.api.errors import BadRequest, PayloadTooLarge
from services.api.idempotency import fingerprint, read_key
from services.api.ids import check_task_id
from services.api.schemas import parse_job_spec
from shared.contract.events import JobRequested, JobUpdated, encode, new_execution_id, utcnow
from shared.domain.farms import farm_for
from shared.domain.links import Links
from shared.process.settings import ApiSettings


def check_target(task_id: str, settings: ApiSettings) -> None:
    """The task id is well formed and a farm takes it."""
    check_task_id(task_id)
    if farm_for(task_id, settings.farms) is None:
        patterns = ", ".join(repr(f.match) for f in settings.farms)
        raise BadRequest(f"no farm takes task {task_id!r}: its id matches none of {patterns}")


def build_job_order(
    kind: type[JobCommand],
    task_id: str,
    job_id: uuid.UUID,
    body: bytes,
    settings: ApiSettings,
    request_ip: str | None,
    now: datetime,
) -> JobOrderDraft[JobCommand]:
    """The order a POST or PUT gives, after every check of its target and its body."""
    check_target(task_id, settings)
    spec = parse_job_spec(body, settings.webhooks_refuse_private)
    definition = spec.definition(now, settings.timeout_hard_limit_s)
    command = kind(
        task_id=task_id,
        job_id=job_id,
        occurred_at=now,
        execution_id=new_execution_id(now) if definition.runs_now else None,
        definition=definition,
        request_ip=request_ip,
    )
    encoded, limit = encode(command), settings.max_message_bytes // 2
    if len(encoded) > limit:
        raise PayloadTooLarge(f"job definition too large: {len(encoded)} bytes once encoded, at most {limit}")
    return JobOrderDraft(command, encoded, body)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past the limit (also when no Content-Length announced it)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body too large: more than {limit} bytes")
    return body


class JobOrderDesk:
    """POST's and PUT's one way in: read the request, build its order, accept it."""

    def __init__(
        self,
        request: Request,
        response: Response,
        writes: Acceptor,
        settings: ApiSettings,
        request_ip: str | None,
        key: str | None,
    ) -> None:
        self._request, self._response, self._writes = request, response, writes
        self._settings, self._request_ip, self._key = settings, request_ip, key

    async def take(self, kind: type[JobCommand], task_id: str, job_id: uuid.UUID) -> JobCommand:
        """The order accepted; with an Idempotency-Key sent again, the key's first order (marked replayed).
        The target is checked before the body is read (a bad one answers 400 without reading a large body),
        and again by build_job_order, which stays complete on its own."""
        request, settings = self._request, self._settings
        check_target(task_id, settings)
        body = await read_body(request, settings.max_body_bytes)
        draft = build_job_order(kind, task_id, job_id, body, settings, self._request_ip, utcnow())
        key = read_key(self._key)
        request_print = fingerprint(request.method, request.url.path.rstrip("/"), body) if key else ""
        command, replayed = await self._writes.accept_job_async(draft, key, request_print)
        if replayed:
            self._response.headers["Idempotent-Replayed"] = "true"
        return command


async def job_order_desk(request: Request, response: Response, key: IdempotencyKeyHeader = None) -> JobOrderDesk:
    """One dependency that reaches everything itself (each dependency FastAPI resolves costs every POST)."""
    backends = request.app.state.backends
    return JobOrderDesk(request, response, backends.writes, backends.settings, client_ip_of(request), key)


JobOrdersDep = Annotated[JobOrderDesk, Depends(job_order_desk)]


def order_refs(urls: Links, task_id: str, job_id: uuid.UUID, execution_id: uuid.UUID | None = None) -> dict[str, Any]:
    """The ids and URLs an answer to an order gives: its task and job, and its execution when it has one."""
    refs = {"taskId": task_id, "jobId": str(job_id), "taskUrl": urls.task(task_id), "jobUrl": urls.job(task_id, job_id)}
    if execution_id is not None:
        refs |= {"executionId": str(execution_id), "executionUrl": urls.execution(task_id, job_id, execution_id)}
    return refs


def order_answer(urls: Links, command: JobRequested | JobUpdated, with_execution: bool) -> dict[str, Any]:
    """What POST and PUT answer: order_refs and the order's event id; with_execution, the execution fields
    even when null (a delayed or periodic job's execution appears on the job when it fires)."""
    execution_id = command.execution_id if with_execution else None
    answer = order_refs(urls, command.task_id, command.job_id, execution_id)
    answer["queueJobId"] = str(command.event_id)
    if with_execution and execution_id is None:
        answer |= {"executionId": None, "executionUrl": None}
    return answer
