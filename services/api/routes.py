"""Routes for tasks, jobs and executions. Thin: parse, act through Backends, shape the answer."""

import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.api.deps import Backends, BackendsDep, client_ip
from services.api.errors import BadRequest, KeyReused, OutcomeUnknown, PayloadTooLarge, Unavailable
from services.api.idempotency import PUBLISHED, REFUSED, UNKNOWN, Claimed, fingerprint, read_key
from services.api.models import (
    ERRORS,
    TEXT_ROUTE_ERRORS,
    WRITE_ERRORS,
    BlacklistAnswer,
    Enqueued,
    ExecutionAnswer,
    ExecutionOrdered,
    JobAnswer,
    JobStopped,
    TaskJobs,
    TaskPage,
    Updated,
)
from services.api.orders import NotEnqueued
from services.api.orders import OutcomeUnknown as OrderOutcomeUnknown
from services.api.schemas import check_task_id, parse_job_spec
from services.recorder.indexes import task_words
from shared.contract.events import (
    Command,
    ExecutionStopRequested,
    HostBlacklisted,
    JobRequested,
    JobRetryRequested,
    JobStopRequested,
    JobUpdated,
    decode,
    encode,
    new_execution_id,
    utcnow,
)
from shared.domain.farms import farm_for
from shared.domain.links import Links
from shared.domain.redaction import redact

log = logging.getLogger(__name__)
router = APIRouter()


Handler = TypeVar("Handler", bound=Callable[..., Any])


def route(method: str, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    """Register a route with and without a trailing slash (both are part of the contract)."""

    def register(func: Handler) -> Handler:
        router.add_api_route(path, func, methods=[method], **kwargs)
        router.add_api_route(path + "/", func, methods=[method], include_in_schema=False, **kwargs)
        return func

    return register


def reads(model: type[BaseModel]) -> dict[str, Any]:
    return {"response_model": model, "responses": ERRORS}


def writes(model: type[BaseModel]) -> dict[str, Any]:
    """A route whose body is a job definition: read by hand (for 413 and plain 400 messages), documented here."""
    return {
        "response_model": model,
        "responses": ERRORS | WRITE_ERRORS,
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}}},
            }
        },
    }


PageParam = Annotated[int, Query(ge=1, le=100_000, description="page number, from 1")]
AfterParam = Annotated[str | None, Query(max_length=300, description="where the previous page ended (set in nextUrl)")]


CURSOR_MILLIS = re.compile(r"[0-9]{1,15}")  # ASCII digits only: str.isdigit() also takes '²'


def parse_cursor(after: str | None) -> tuple[datetime, str] | None:
    if after is None:
        return None
    millis, _, task_id = after.partition(":")
    if not CURSOR_MILLIS.fullmatch(millis) or not task_id:
        raise BadRequest("after must be the value found in a nextUrl")
    try:
        return datetime.fromtimestamp(int(millis) / 1000, UTC), task_id
    except (ValueError, OverflowError, OSError) as exc:  # past the years a date can hold
        raise BadRequest("after must be the value found in a nextUrl") from exc


UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_uuid(value: str, what: str) -> uuid.UUID:
    """A job or execution id in its one written form (uuid.UUID alone also takes braces, `urn:uuid:` and no
    hyphens: one resource would answer at several URLs)."""
    if not UUID_TEXT.fullmatch(value):
        raise BadRequest(f"{what} must be a UUID like 3fa85f64-5717-4562-b3fc-2c963f66afa6, got {value[:100]!r}")
    return uuid.UUID(value)


class Urls(Links):
    """Absolute URLs of resources, based on the address the client used."""

    def __init__(self, request: Request) -> None:
        super().__init__(str(request.base_url))


JobCommand = TypeVar("JobCommand", JobRequested, JobUpdated)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Optional. The same key sent again to the same task within 24 h with the same request answers "
        "the same ids and creates no second job; with a different request it answers 409.",
    ),
]


@route("POST", "/tasks/{task_id}", summary="Enqueue a job in a task (created on first use)", **writes(Enqueued))
async def enqueue(
    task_id: str, request: Request, response: Response, backends: BackendsDep, key: IdempotencyKeyHeader = None
) -> dict[str, Any]:
    command, encoded, body = await job_command(JobRequested, task_id, uuid.uuid4(), request, backends)
    command = await run_in_threadpool(accept_job, backends, command, encoded, read_key(key), request, body, response)
    return job_answer(Urls(request), command, with_execution=True)


@route(
    "PUT",
    "/tasks/{task_id}/jobs/{job_id}",
    summary="Create or replace the job with this id",
    response_model_exclude_unset=True,
    **writes(Updated),
)
async def update(
    task_id: str,
    job_id: str,
    request: Request,
    response: Response,
    backends: BackendsDep,
    key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    command, encoded, body = await job_command(JobUpdated, task_id, parse_uuid(job_id, "jobId"), request, backends)
    command = await run_in_threadpool(accept_job, backends, command, encoded, read_key(key), request, body, response)
    return job_answer(Urls(request), command, with_execution=command.definition.runs_now)


def accept_job(
    backends: Backends,
    command: JobCommand,
    encoded: bytes,
    key: str | None,
    request: Request,
    body: bytes,
    response: Response,
) -> JobCommand:
    """Accept a POST's or PUT's order; with an Idempotency-Key, the order the key was first used for."""
    if key is None:
        accept(backends, command, encoded=encoded)
        return command
    task_id, keys = command.task_id, backends.keys
    print_ = fingerprint(request.method, request.url.path.rstrip("/"), body)
    try:
        claimed = keys.claim(task_id, key, print_, encoded)
    except Exception as exc:  # nothing was published: the order is not enqueued (a retry may find the key)
        log.error("could not claim an idempotency key", extra={"task_id": task_id, "error": str(exc)})
        raise Unavailable("the job store is unavailable right now; nothing was enqueued, try again") from exc
    if claimed is None:
        publish_claimed(backends, command, encoded, key)
        return command
    if claimed.fingerprint != print_:
        raise KeyReused(
            f"Idempotency-Key {key[:100]!r} was already used in task {task_id!r} for a different request"
            " (method, path or body); send a new key for a new job"
        )
    first = decode(claimed.command)
    if not isinstance(first, type(command)):  # a fingerprint collision of POST and PUT cannot happen; be sure
        raise KeyReused(f"Idempotency-Key {key[:100]!r} was already used in task {task_id!r} for another request")
    response.headers["Idempotent-Replayed"] = "true"
    if wait_for_first(backends, task_id, key, claimed) != PUBLISHED:
        # Its first publishing failed, was not known to succeed, or its request died: the same order again.
        publish_claimed(backends, first, claimed.command, key)
    return first


def wait_for_first(backends: Backends, task_id: str, key: str, claimed: Claimed) -> str | None:
    """The key's state once its first request has answered (a concurrent request with the same key may still
    be publishing: waited for, so that it is not published twice), or as it stands after that request's
    longest possible wait."""
    orders = backends.orders
    budget = orders.ack_timeout_s * 2 + orders.commit_patience_s + 5 - claimed.age_s
    state, deadline = claimed.state, time.monotonic() + budget
    while state is None and time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            state = backends.keys.state(task_id, key)
        except Exception:
            log.exception("could not read an idempotency key's state")
    return state


def publish_claimed(backends: Backends, command: Command, encoded: bytes, key: str) -> None:
    """Publish a claimed key's order and note how it went (best effort: a state left unwritten only costs a
    retry one more publishing of the same order)."""
    try:
        accept(backends, command, encoded=encoded)
        state = PUBLISHED
    except Unavailable:
        state = REFUSED
        raise
    except OutcomeUnknown:
        state = UNKNOWN
        raise
    finally:
        try:
            backends.keys.set_state(command.task_id, key, state)
        except Exception:
            log.exception("could not note an idempotency key's state", extra={"task_id": command.task_id})


async def job_command(
    kind: type[JobCommand], task_id: str, job_id: uuid.UUID, request: Request, backends: Backends
) -> tuple[JobCommand, bytes, bytes]:
    """The order a POST or PUT gives, and its encoding, after every check: the task id, a farm that takes it,
    the body, and that the order fits in a Kafka message with room to spare (the scheduler keeps the definition
    with its state). The encoding measured is the one published."""
    check_task_id(task_id)
    check_farm(task_id, backends)
    body = await read_body(request, backends)
    spec = parse_job_spec(body, backends.settings.webhooks_refuse_private)
    now = utcnow()
    definition = spec.definition(now, backends.settings.timeout_hard_limit_s)
    command = kind(
        task_id=task_id,
        job_id=job_id,
        occurred_at=now,
        execution_id=new_execution_id(now) if definition.runs_now else None,
        definition=definition,
        request_ip=client_ip(request),
    )
    encoded, limit = encode(command), backends.settings.max_message_bytes // 2
    if len(encoded) > limit:
        raise PayloadTooLarge(f"job definition too large: {len(encoded)} bytes once encoded, at most {limit}")
    return command, encoded, body


def check_farm(task_id: str, backends: Backends) -> None:
    if farm_for(task_id, backends.settings.farms) is None:
        patterns = ", ".join(repr(f.match) for f in backends.settings.farms)
        raise BadRequest(f"no farm takes task {task_id!r}: its id matches none of {patterns}")


async def read_body(request: Request, backends: Backends) -> bytes:
    """The body, refused with 413 past the limit (also when no Content-Length announced it)."""
    limit = backends.settings.max_body_bytes
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body too large: more than {limit} bytes")
    return body


def job_answer(urls: "Urls", command: JobRequested | JobUpdated, with_execution: bool) -> dict[str, Any]:
    t, j, e = command.task_id, command.job_id, command.execution_id
    answer: dict[str, Any] = {
        "taskId": t,
        "jobId": str(j),
        "queueJobId": str(command.event_id),
        "taskUrl": urls.task(t),
        "jobUrl": urls.job(t, j),
    }
    if with_execution:  # null for delayed and periodic jobs: the execution appears on the job when it fires
        answer["executionId"] = str(e) if e else None
        answer["executionUrl"] = urls.execution(t, j, e) if e else None
    return answer


@route(
    "POST",
    "/tasks/{task_id}/jobs/{job_id}/stop",
    summary="Stop the job: its running execution and all future ones",
    **reads(JobStopped),
)
def stop_job(task_id: str, job_id: str, request: Request, backends: BackendsDep) -> dict[str, Any]:
    jid = parse_uuid(job_id, "jobId")
    backends.queries.job(task_id, jid)  # 404 for an unknown job
    accept(backends, JobStopRequested(task_id=task_id, job_id=jid))
    urls = Urls(request)
    return {"taskId": task_id, "jobId": str(jid), "taskUrl": urls.task(task_id), "jobUrl": urls.job(task_id, jid)}


@route(
    "POST",
    "/tasks/{task_id}/jobs/{job_id}/retry",
    summary="Run the job again now, as a new execution",
    **reads(ExecutionOrdered),
)
def retry_job(task_id: str, job_id: str, request: Request, backends: BackendsDep) -> dict[str, Any]:
    jid = parse_uuid(job_id, "jobId")
    backends.queries.job(task_id, jid)  # 404 for an unknown job
    command = JobRetryRequested(
        task_id=task_id, job_id=jid, execution_id=new_execution_id(), request_ip=client_ip(request)
    )
    accept(backends, command)
    urls = Urls(request)
    return {
        "taskId": task_id,
        "jobId": str(jid),
        "executionId": str(command.execution_id),
        "taskUrl": urls.task(task_id),
        "jobUrl": urls.job(task_id, jid),
        "executionUrl": urls.execution(task_id, jid, command.execution_id),
    }


@route(
    "POST",
    "/tasks/{task_id}/jobs/{job_id}/executions/{execution_id}/stop",
    summary="Stop one execution (a cron keeps its schedule)",
    **reads(ExecutionOrdered),
)
def stop_execution(
    task_id: str, job_id: str, execution_id: str, request: Request, backends: BackendsDep
) -> dict[str, Any]:
    jid = parse_uuid(job_id, "jobId")
    eid = parse_uuid(execution_id, "executionId")
    backends.queries.execution(task_id, jid, eid)  # 404 for an unknown execution
    accept(backends, ExecutionStopRequested(task_id=task_id, job_id=jid, execution_id=eid))
    urls = Urls(request)
    return {
        "taskId": task_id,
        "jobId": str(jid),
        "executionId": str(eid),
        "taskUrl": urls.task(task_id),
        "jobUrl": urls.job(task_id, jid),
        "executionUrl": urls.execution(task_id, jid, eid),
    }


def accept(
    backends: Backends, command: Command | HostBlacklisted, topic: str | None = None, encoded: bytes | None = None
) -> None:
    """Publish the order, then project it at once so a GET right after the request already sees it.

    The order is published in a Kafka transaction (services/api/orders.py): when this raises Unavailable (503)
    the order is not enqueued and never will be; OutcomeUnknown (504) is the one case the API cannot tell.
    The recorder writes the same rows from the same event with the same write timestamp, so the two writes
    converge; if this one fails the recorder's still lands, and the client's order is not lost.
    """
    context = {"type": command.type, "key": command.key.decode()}
    try:
        backends.orders.publish(topic or backends.topics.jobs, command.key, encoded or encode(command))
    except NotEnqueued as exc:
        log.error("order not enqueued", extra={**context, "error": str(exc)})
        raise Unavailable("the job queue is unavailable right now; nothing was changed, try again") from exc
    except OrderOutcomeUnknown as exc:
        log.error("order outcome unknown", extra={**context, "error": str(exc)})
        raise OutcomeUnknown(
            "the job queue did not confirm in time whether it took the order; it may or may not have. Retry with"
            " the same Idempotency-Key (or the same PUT) to be sure of exactly one job"
        ) from exc
    try:
        backends.projections.apply(command)
    except Exception:
        log.exception("early projection failed; the recorder will write it", extra=context)


@route("GET", "/tasks/{task_id}", summary="A task and its jobs", **reads(TaskJobs))
def get_task(task_id: str, request: Request, backends: BackendsDep) -> dict[str, Any]:
    urls = Urls(request)
    jobs = backends.queries.task_job_ids(task_id)
    return {"taskId": task_id, "jobs": [{"id": str(j), "url": urls.job(task_id, j)} for j in jobs]}


@route("GET", "/tasks/{task_id}/jobs/{job_id}", summary="A job, its definition and its executions", **reads(JobAnswer))
def get_job(task_id: str, job_id: str, request: Request, backends: BackendsDep, page: PageParam = 1) -> dict[str, Any]:
    jid = parse_uuid(job_id, "jobId")
    urls = Urls(request)
    size = backends.settings.executions_page_size
    job, executions, count = backends.queries.job_page(task_id, jid, page, size)
    job["envs"] = redact(job["envs"], backends.settings.env_blacklist)
    for e in executions:
        e["url"] = urls.execution(task_id, jid, e["executionId"])
    job["executions"] = executions
    # The counter is the recorder's; right after a POST the early projection may be ahead of it.
    job["executionCount"] = max(count, (page - 1) * size + len(executions))
    job["executionsPage"] = page
    job["executionsPerPage"] = size
    return {"task": {"id": task_id, "url": urls.task(task_id)}, "job": job}


@route("GET", "/tasks", summary="Every task, newest first, a page at a time", **reads(TaskPage))
def list_tasks(
    request: Request, backends: BackendsDep, page: PageParam = 1, after: AfterParam = None
) -> dict[str, Any]:
    size = backends.settings.page_size
    items, total = backends.queries.tasks_page(page, size, after=parse_cursor(after))
    return paged(Urls(request), "/tasks", {}, items, total, page, size)


@route(
    "GET",
    "/search",
    summary="Tasks whose id contains a whole word, newest first, a page at a time",
    **reads(TaskPage),
)
def search(
    request: Request, backends: BackendsDep, query: str = "", page: PageParam = 1, after: AfterParam = None
) -> dict[str, Any]:
    words = task_words(query)
    if len(words) != 1:
        raise BadRequest("query must be one word of letters and digits, e.g. /search?query=billing")
    size = backends.settings.page_size
    (word,) = words
    items, total = backends.queries.tasks_page(page, size, word=word, after=parse_cursor(after))
    return paged(Urls(request), "/search", {"query": word}, items, total, page, size)


def paged(
    urls: "Urls", path: str, params: dict[str, str], items: list[dict[str, Any]], total: int, page: int, size: int
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


@route(
    "GET", "/tasks/{task_id}/jobs/{job_id}/executions/{execution_id}", summary="One execution", **reads(ExecutionAnswer)
)
def get_execution(
    task_id: str, job_id: str, execution_id: str, request: Request, backends: BackendsDep
) -> dict[str, Any]:
    jid = parse_uuid(job_id, "jobId")
    eid = parse_uuid(execution_id, "executionId")
    urls = Urls(request)
    return {
        "task": {"id": task_id, "url": urls.task(task_id)},
        "job": {"id": str(jid), "url": urls.job(task_id, jid)},
        "execution": backends.queries.execution(task_id, jid, eid),
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
    @route(
        "GET",
        f"/tasks/{{task_id}}/jobs/{{job_id}}/executions/{{execution_id}}/{kind}",
        summary=f"An execution's {kind} as plain text",
        response_class=PlainTextResponse,
        responses=TEXT_ROUTE_ERRORS,
    )
    def execution_log(task_id: str, job_id: str, execution_id: str, backends: BackendsDep) -> PlainTextResponse:
        jid, eid = parse_uuid(job_id, "jobId"), parse_uuid(execution_id, "executionId")
        return PlainTextResponse(log_text(backends.queries.execution(task_id, jid, eid), kind))

    @route(
        "GET",
        f"/tasks/{{task_id}}/jobs/{{job_id}}/{kind}",
        summary=f"The {kind} of a job's last execution as plain text",
        response_class=PlainTextResponse,
        responses=TEXT_ROUTE_ERRORS,
    )
    def job_log(task_id: str, job_id: str, backends: BackendsDep) -> PlainTextResponse:
        jid = parse_uuid(job_id, "jobId")
        return PlainTextResponse(log_text(backends.queries.last_execution(task_id, jid), kind))

    execution_log.__name__ = f"execution_{kind}"
    job_log.__name__ = f"job_{kind}"


for _kind in ("stdout", "stderr", "logs"):
    _add_log_routes(_kind)


class HostBody(BaseModel):
    host: str = Field(min_length=1, max_length=300, description="the host as its runner reports it, e.g. h1:2375")


def _blacklist(request_body: HostBody, backends: Backends, blacklisted: bool) -> BlacklistAnswer:
    host = request_body.host.strip()
    if not host or not host.isprintable() or any(c.isspace() for c in host):  # lone surrogates are unprintable
        raise BadRequest("host must be a host name as its runner reports it, like 'docker1:2375'")
    accept(backends, HostBlacklisted(host=host, blacklisted=blacklisted), topic=backends.topics.control)
    return BlacklistAnswer(host=host, blacklisted=blacklisted)


@route(
    "POST",
    "/docker-executor/blacklist",
    summary="Take a Docker host out of rotation: no new executions (running ones finish)",
    **reads(BlacklistAnswer),
)
def blacklist_host(body: HostBody, backends: BackendsDep) -> BlacklistAnswer:
    return _blacklist(body, backends, True)


@route(
    "DELETE",
    "/docker-executor/blacklist",
    summary="Put a blacklisted Docker host back into rotation",
    **reads(BlacklistAnswer),
)
def unblacklist_host(body: HostBody, backends: BackendsDep) -> BlacklistAnswer:
    return _blacklist(body, backends, False)
