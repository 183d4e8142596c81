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


def new_execution_id(at: datetime | None = None) -> uuid.UUID:
    """Execution ids are time-based (v1) UUIDs: Cassandra sorts a job's executions newest first by them."""
    if at is None:
        return uuid.uuid1()
    # uuid1 takes its clock from now; build one for a given instant (100 ns ticks since 1582-10-15).
    ticks = int(at.timestamp() * 10_000_000) + 0x01B21DD213814000
    rand = uuid.uuid4().int
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


class Message(BaseModel):
    """Fields every message carries."""

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


class JobDefinition(BaseModel):
    """What a client asked to run: the body of POST /tasks/{taskId}, validated."""

    model_config = ConfigDict(frozen=True)

    image: str
    command: str
    envs: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, object] = Field(default_factory=dict)


class JobRequested(Message):
    """Order from the API: a job was created; schedule its executions. `execution_id` is set when it runs now."""

    type: Literal["JobRequested"] = "JobRequested"
    execution_id: uuid.UUID | None = None
    definition: JobDefinition
    request_ip: str | None = None


class ExecutionDue(Message):
    """The scheduler decided an execution runs now; a runner picks it up."""

    type: Literal["ExecutionDue"] = "ExecutionDue"
    execution_id: uuid.UUID
    image: str
    command: str
    envs: dict[str, str] = Field(default_factory=dict)
    attempt: int = 1


class ExecutionStarted(Message):
    """A runner started the execution's container."""

    type: Literal["ExecutionStarted"] = "ExecutionStarted"
    execution_id: uuid.UUID
    host: str
    container_id: str


class ExecutionFinished(Message):
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


Event = Annotated[
    JobRequested | ExecutionDue | ExecutionStarted | ExecutionFinished,
    Field(discriminator="type"),
]
_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def encode(event: Message) -> bytes:
    return event.model_dump_json().encode()


def decode(raw: bytes) -> Event:
    """Parse a message from the wire; raises pydantic.ValidationError for anything not in the contract."""
    return _event_adapter.validate_json(raw)
