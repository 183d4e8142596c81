"""The event contract: every message fastlane puts on Kafka.

Other systems subscribe to these, so they are versioned: a field is only ever added (optional), never renamed
or removed within a version. Commands are orders (JobRequested is the API's order to schedule a job); events
are past tense. JSON on the wire, keyed by job id so that one job's messages stay in order.
"""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1

ExecutionStatus = Literal["enqueued", "pulling", "running", "done", "failed", "timedout", "expired", "stopped"]
FINAL_STATUSES: frozenset[str] = frozenset({"done", "failed", "timedout", "expired", "stopped"})


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_execution_id(at: datetime | None = None, seed: uuid.UUID | None = None) -> uuid.UUID:
    """Execution ids are time-based (v1) UUIDs: Cassandra sorts a job's executions newest first by them.

    With `seed`, the id is deterministic (its non-time bits come from the seed): deciding the same execution
    twice yields the same id.
    """
    if at is None and seed is None:
        return uuid.uuid1()
    at = at or utcnow()
    # uuid1 takes its clock from now; build one for a given instant (100 ns ticks since 1582-10-15).
    ticks = int(at.timestamp() * 10_000_000) + 0x01B21DD213814000
    rand = (seed or uuid.uuid4()).int
    return uuid.UUID(
        fields=(
            ticks & 0xFFFFFFFF,
            (ticks >> 32) & 0xFFFF,
            ((ticks >> 48) & 0x0FFF) | 0x1000,
            ((rand >> 56) & 0x3F) | 0x80,
            (rand >> 48) & 0xFF,
            rand & 0xFFFFFFFFFFFF,
        )
    )


class JobMessage(BaseModel):
    """Fields every message about a job carries (host events are `HostEvent`s)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    version: int = SCHEMA_VERSION
    occurred_at: datetime = Field(default_factory=utcnow)
    task_id: str
    job_id: uuid.UUID

    @property
    def key(self) -> bytes:
        """Kafka key: the job id, so one job's messages keep their order on every topic."""
        return str(self.job_id).encode()


ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]


class RetryBackoff(BaseModel):
    """Pause before retry n (n >= 1): min(max_ms, min_ms * factor ** (n - 1))."""

    model_config = ConfigDict(frozen=True)

    min_ms: int
    factor: float
    max_ms: int


class Resources(BaseModel):
    """Limits the engine enforces on the container: CPUs (fractions allowed) and memory in MiB."""

    model_config = ConfigDict(frozen=True)

    cpus: float | None = None
    memory_mb: int | None = None


WebhookEvent = Literal["starts", "succeeds", "fails", "finishes"]
MailEvent = Literal["succeeds", "fails", "finishes"]


class Webhook(BaseModel):
    """Where to POST an execution's news: `headers` are sent as given; `retries` None = the server's default."""

    model_config = ConfigDict(frozen=True)

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    retries: int | None = None


class JobDefinition(BaseModel):
    """What a client asked to run: the body of POST /tasks/{taskId}, validated.

    Times are absolute: the API turns `startIn` into `start_at` when it accepts the request.
    """

    model_config = ConfigDict(frozen=True)

    image: str
    command: str
    envs: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, object] = Field(default_factory=dict)
    start_at: datetime | None = None
    cron: str | None = None
    cron_timezone: str = "UTC"
    retries: int = 0
    retry_backoff: RetryBackoff | None = None
    expiration: datetime | None = None
    timeout_s: int | None = None
    concurrency_policy: ConcurrencyPolicy = "Allow"
    catch_up: bool = True
    extra_hosts: dict[str, str] = Field(default_factory=dict)  # hostname -> IP, in the container's hosts file
    resources: Resources | None = None
    webhooks: dict[WebhookEvent, list[Webhook]] = Field(default_factory=dict)
    notify: dict[MailEvent, list[str]] = Field(default_factory=dict)  # e-mail addresses

    @property
    def runs_now(self) -> bool:
        return self.start_at is None and self.cron is None


class JobOrder(JobMessage):
    """What both job orders carry (they differ in meaning only): the definition, and `execution_id` when the
    job runs now."""

    execution_id: uuid.UUID | None = None
    definition: JobDefinition
    request_ip: str | None = None


class JobRequested(JobOrder):
    """Order from the API (POST): a job was created; schedule its executions."""

    type: Literal["JobRequested"] = "JobRequested"


class JobUpdated(JobOrder):
    """Order from the API (PUT): create the job with this id or replace its definition and reschedule it."""

    type: Literal["JobUpdated"] = "JobUpdated"


class JobStopRequested(JobMessage):
    """Order: stop the job's running executions and cancel every future one (schedule, cron, retries)."""

    type: Literal["JobStopRequested"] = "JobStopRequested"


class JobRetryRequested(JobMessage):
    """Order: run the job again now, as a new execution (`execution_id`, chosen by the API)."""

    type: Literal["JobRetryRequested"] = "JobRetryRequested"
    execution_id: uuid.UUID
    request_ip: str | None = None


class ExecutionStopRequested(JobMessage):
    """Order: stop this one execution; the job's schedule carries on."""

    type: Literal["ExecutionStopRequested"] = "ExecutionStopRequested"
    execution_id: uuid.UUID


class ExecutionDue(JobMessage):
    """The scheduler decided an execution runs now; a runner picks it up.

    `expiration`: a runner that would start it later ends it `expired` instead. `timeout_s`: the runner stops
    the container after that long and ends it `timedout`.
    """

    type: Literal["ExecutionDue"] = "ExecutionDue"
    execution_id: uuid.UUID
    image: str
    command: str
    envs: dict[str, str] = Field(default_factory=dict)
    attempt: int = 1
    expiration: datetime | None = None
    timeout_s: int | None = None
    extra_hosts: dict[str, str] = Field(default_factory=dict)
    resources: Resources | None = None


class StopExecution(JobMessage):
    """Broadcast to every runner: whichever holds this execution stops its container (ends `stopped`)."""

    type: Literal["StopExecution"] = "StopExecution"
    execution_id: uuid.UUID


class ExecutionPulling(JobMessage):
    """A runner is fetching the execution's image from its registry before starting it."""

    type: Literal["ExecutionPulling"] = "ExecutionPulling"
    execution_id: uuid.UUID
    host: str
    image: str


class ExecutionStarted(JobMessage):
    """A runner started the execution's container."""

    type: Literal["ExecutionStarted"] = "ExecutionStarted"
    execution_id: uuid.UUID
    host: str
    container_id: str


class ExecutionFinished(JobMessage):
    """The execution ended. `error` says why when it could not run at all (no exit code then)."""

    type: Literal["ExecutionFinished"] = "ExecutionFinished"
    execution_id: uuid.UUID
    status: ExecutionStatus
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    host: str | None = None
    started_at: datetime | None = None
    # Bytes of output (both streams) the container wrote, as counted by the runner's live output (ExecutionOutput
    # offsets end here); None when the runner did not follow the output (it never ran, or an older runner).
    output_bytes: int | None = None


OutputStream = Literal["stdout", "stderr"]


class ExecutionOutput(JobMessage):
    """Output of a running container, as it is written (topic `output`, keyed by EXECUTION id: one execution's
    chunks keep their order). `offset` is how many bytes of output (stdout and stderr together, in the order the
    container wrote them) came before this chunk, `size` how many bytes it holds (`text` is their UTF-8 decoding,
    invalid bytes replaced), `skipped` how many bytes just before it were not published (over the runner's rate
    limit, or the broker did not take them). A runner that takes up a container again after a restart publishes
    its output again from the start, at the same offsets: a follower keeps each offset once. Best effort: the
    execution's log in ExecutionFinished stays the record."""

    type: Literal["ExecutionOutput"] = "ExecutionOutput"
    execution_id: uuid.UUID
    host: str
    stream: OutputStream
    text: str
    offset: int = Field(ge=0)
    size: int = Field(ge=0)
    skipped: int = Field(default=0, ge=0)

    @property
    def key(self) -> bytes:
        return str(self.execution_id).encode()


class HostEvent(BaseModel):
    """Fields of the messages about a Docker host rather than a job: keyed by host, no job ids."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    version: int = SCHEMA_VERSION
    occurred_at: datetime = Field(default_factory=utcnow)
    host: str

    @property
    def key(self) -> bytes:
        return self.host.encode()


class RunnerHeartbeat(HostEvent):
    """A runner's periodic report on its Docker host (topic `heartbeats`, keyed by host)."""

    type: Literal["RunnerHeartbeat"] = "RunnerHeartbeat"
    capacity: int
    running: int
    circuit: Literal["closed", "open", "half-open"] = "closed"
    engine_ok: bool = True
    error: str | None = None
    runner_version: str = ""
    farm: str = ""


class HostBlacklisted(HostEvent):
    """An operator took a Docker host out of rotation (`blacklisted`) or put it back (topic `control`)."""

    type: Literal["HostBlacklisted"] = "HostBlacklisted"
    blacklisted: bool


Command = JobRequested | JobUpdated | JobStopRequested | JobRetryRequested | ExecutionStopRequested

Event = Annotated[
    JobRequested
    | JobUpdated
    | JobStopRequested
    | JobRetryRequested
    | ExecutionStopRequested
    | ExecutionDue
    | StopExecution
    | ExecutionPulling
    | ExecutionStarted
    | ExecutionFinished
    | ExecutionOutput
    | RunnerHeartbeat
    | HostBlacklisted,
    Field(discriminator="type"),
]
_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def encode(event: JobMessage | HostEvent) -> bytes:
    return event.model_dump_json().encode()


def decode(raw: bytes) -> Event:
    """Parse a message from the wire; raises pydantic.ValidationError for anything not in the contract."""
    return _event_adapter.validate_json(raw)
