"""Response models: the shapes the API answers with, as ../shared/docs/fastlane-api.md describes them.

Routes build plain dicts; FastAPI validates them against these models on the way out (so an answer can never
drift from what /openapi.json promises) and publishes them in /openapi.json.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    # Unknown keys are a bug in the route, not something to drop silently.
    model_config = ConfigDict(extra="forbid")


class ErrorBody(Model):
    error: str = Field(description="what is wrong, in words a client can act on")


class Ref(Model):
    id: str
    url: str


class Enqueued(Model):
    taskId: str
    jobId: str
    queueJobId: str = Field(description="id of the command event that carried the order")
    taskUrl: str
    jobUrl: str
    executionId: str | None = Field(description="null for delayed and periodic jobs: poll the job")
    executionUrl: str | None


class Updated(Model):
    """The answer to PUT; the execution fields are there only when the job runs now."""

    taskId: str
    jobId: str
    queueJobId: str
    taskUrl: str
    jobUrl: str
    executionId: str | None = None
    executionUrl: str | None = None


class JobStopped(Model):
    taskId: str
    jobId: str
    taskUrl: str
    jobUrl: str


class ExecutionOrdered(Model):
    """The answer to a retry or an execution stop: the execution concerned."""

    taskId: str
    jobId: str
    executionId: str
    taskUrl: str
    jobUrl: str
    executionUrl: str


class TaskJobs(Model):
    taskId: str
    jobs: list[Ref]


class ExecutionMetadata(Model):
    containerId: str | None
    dockerHost: str | None


class ExecutionSummary(Model):
    executionId: str
    status: str = Field(description="enqueued, pulling, running, done, failed, timedout, expired or stopped")
    createdAt: str | None
    startedAt: str | None
    finishedAt: str | None
    image: str | None
    command: str | None
    exitCode: int | None
    attempt: int | None
    requestIPAddress: str | None
    metadata: ExecutionMetadata


class Delivery(Model):
    deliveryId: str = Field(description="also sent to the receiver (X-Fastlane-Delivery), to de-duplicate")
    channel: str = Field(description="webhook or mail")
    event: str = Field(description="starts, succeeds, fails or finishes")
    target: str = Field(description="the webhook's URL, or the e-mail's recipients")
    state: str = Field(description="pending, retrying, delivered or failed")
    attempts: int | None
    statusCode: int | None = Field(description="the receiver's last HTTP status (webhooks)")
    lastError: str | None
    updatedAt: str | None


class Execution(ExecutionSummary):
    log: str = Field(description="the container's stdout")
    error: str = Field(description="the container's stderr, or why it could not run")
    deliveries: list[Delivery] = Field(default=[], description="its webhook and e-mail notifications")


class ExecutionItem(ExecutionSummary):
    """An execution on its job's page: no logs (they are on the execution's own page, at `url`)."""

    url: str


class RetryBackoff(Model):
    minMs: int
    factor: float
    maxMs: int


class Resources(Model):
    cpus: float | None
    memoryMB: int | None


class WebhookShown(Model):
    url: str
    headers: dict[str, str] = Field(description="header names; values shown as ***")
    retries: int | None = Field(description="null: the server's default")


class JobMetadata(Model):
    custom: dict[str, Any]


class Job(Model):
    taskId: str
    jobId: str
    createdAt: str | None
    lastModifiedAt: str | None
    image: str | None
    command: str | None
    metadata: JobMetadata
    scheduled: bool
    requestIPAddress: str | None
    envs: dict[str, str] = Field(description="values of blacklisted names shown as ***")
    startAt: float | None
    cron: str | None
    cronTimezone: str
    nextRunAt: str | None = Field(default=None, description="a cron job's next fire time (ISO 8601, UTC)")
    retries: int
    retryBackoff: RetryBackoff | None
    expiration: float | None
    timeout: int | None
    concurrencyPolicy: str
    catchUp: bool
    additionalDNSEntries: dict[str, str]
    resources: Resources | None
    webhooks: dict[str, list[WebhookShown]] = Field(description="by event: starts, succeeds, fails, finishes")
    notify: dict[str, list[str]] = Field(description="e-mail addresses by event: succeeds, fails, finishes")
    executions: list[ExecutionItem] = Field(description="newest first, one page")
    executionCount: int
    executionsPage: int
    executionsPerPage: int


class JobAnswer(Model):
    task: Ref
    job: Job


class ExecutionAnswer(Model):
    task: Ref
    job: Ref
    execution: Execution


class TaskItem(Model):
    taskId: str
    createdAt: str | None
    lastModifiedAt: str | None
    jobsCount: int
    url: str


class TaskPage(Model):
    items: list[TaskItem]
    total: int
    page: int
    pages: int
    perPage: int
    hasNext: bool
    hasPrev: bool
    nextUrl: str | None
    prevUrl: str | None


class BlacklistAnswer(Model):
    host: str
    blacklisted: bool


class Health(Model):
    errors: list[str]
    kafka: bool
    cassandra: bool


class Alive(Model):
    alive: bool


class Readiness(Model):
    ready: bool
    errors: list[str]


class Host(Model):
    host: str
    port: int | None
    farm: str | None
    available: bool
    blacklisted: bool
    circuit: str | None
    error: str | None
    running: int | None
    capacity: int | None
    lastSeenAt: str | None
    version: str | None


class RunningContainer(Model):
    taskId: str
    jobId: str
    executionId: str
    host: str | None
    containerId: str | None
    startedAt: str | None
    url: str


class Containers(Model):
    running: list[RunningContainer]


class ScheduledJob(Model):
    taskId: str
    jobId: str
    url: str


class Jobs(Model):
    count: int
    scheduled: list[ScheduledJob]


class Tasks(Model):
    count: int


class Queue(Model):
    length: int


class Status(Model):
    hosts: list[Host]
    containers: Containers
    jobs: Jobs
    tasks: Tasks
    queues: dict[str, Queue] = Field(description="consumer lag per topic")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the request is malformed; the message says how"},
    404: {"model": ErrorBody, "description": "no such task, job or execution"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "the body is larger than the configured limit"},
    409: {"model": ErrorBody, "description": "the Idempotency-Key was already used for a different request"},
    503: {"model": ErrorBody, "description": "the job queue is unavailable; nothing was changed"},
    504: {
        "model": ErrorBody,
        "description": "the job queue did not confirm whether it took the order (retry with the same Idempotency-Key)",
    },
}

# Routes answering text/plain still answer their errors as JSON: said explicitly, or FastAPI would document
# the error bodies under the route's own media type.
_ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
TEXT_ROUTE_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": spec["description"], "content": _ERROR_JSON} for status, spec in ERRORS.items()
}
