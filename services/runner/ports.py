"""The runner's ports: what it needs of a container engine, of the ledger and of the broker.

Adapters: `docker_runtime.DockerRuntime` (engine), `ledger.CassandraLedger` (ledger),
`shared.infra.kafka.producer.EventProducer` (publisher). Their fakes are in tests/fakes/, held to the same
behaviour by the contract suites in tests/contract/.
"""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from shared.contract.events import ExecutionDue, ExecutionOutput, HostEvent, JobMessage

# --- the container engine ----------------------------------------------------------------------------------------

LABEL = "fastlane.execution-id"  # every container of an execution carries its id under this label


class RuntimeFailure(Exception):
    """The engine could not run the container because of the job (missing image, bad command): it fails."""


class EngineUnavailable(RuntimeFailure):
    """The engine itself did not answer: not the job's fault, so the execution goes to another host.

    `reached` is False when the request certainly never got to the engine (nothing accepted the connection), so
    the engine did nothing; True when it may have done it with the answer lost (a timeout, a cut connection):
    a container whose creation or start went unanswered may exist and run."""

    transient = True  # shared.infra.failures: retried while it lasts, never counted against the message

    def __init__(self, message: str, reached: bool = True) -> None:
        super().__init__(message)
        self.reached = reached


class Interrupted(Exception):
    """The runner is stopping while a container still runs; the container is left to a later runner."""

    transient = True


@dataclass(frozen=True)
class ContainerSpec:
    """What to run: image, argv (no shell added), environment and identifying labels."""

    name: str
    image: str
    argv: list[str]
    envs: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    extra_hosts: dict[str, str] = field(default_factory=dict)
    cpus: float | None = None
    memory_mb: int | None = None


@dataclass(frozen=True)
class Started:
    """A started container; `started_at` is the engine's start time when an existing container was found."""

    container_id: str
    started_at: datetime | None = None


class LogTail(bytes):
    """The end of a log; `cut` bytes came before it and were not kept."""

    cut: int

    def __new__(cls, data: bytes, cut: int = 0) -> "LogTail":
        tail = super().__new__(cls, data)
        tail.cut = cut
        return tail


def nothing() -> None:
    """The default `on_pull`."""


class ContainerRuntime(Protocol):
    def ping(self) -> bool:
        """True when the engine answers; raises EngineUnavailable when it does not."""

    def start(self, spec: ContainerSpec, on_pull: Callable[[], None] = nothing) -> Started:
        """Create and start the container (`on_pull` is called before an image is fetched); an existing
        container of that name is reused, started if it was only created. Raises RuntimeFailure when the job
        cannot run (missing image or binary: no container is left), EngineUnavailable when the engine does not
        answer."""

    def wait(self, container_id: str, seconds: float) -> int | None:
        """The exit code once the container has ended, or None if it still runs after `seconds`; raises
        EngineUnavailable when the engine does not answer."""

    def stop(self, container_id: str, grace_s: float) -> None:
        """SIGTERM, then SIGKILL after `grace_s` (a PID 1 without a SIGTERM handler then exits 137); a container
        that is gone is no error. Raises EngineUnavailable when the engine does not answer."""

    def logs(self, container_id: str) -> tuple[bytes, bytes]:
        """(stdout, stderr) of an ended container, as the engine kept them (NUL bytes kept; Docker's log driver
        replaces each byte that is not UTF-8 by U+FFFD); an adapter may keep only their ends (as a LogTail, which
        says how many bytes came before)."""

    def follow(self, container_id: str) -> Iterator[tuple[int, bytes]]:
        """The container's output from its start, as it is written: (1 for stdout or 2 for stderr, bytes) in the
        order the container wrote them; the iterator ends when the container has ended. Raises
        EngineUnavailable when the engine does not answer (or the stream breaks)."""

    def remove(self, container_id: str) -> None:
        """Remove the container, running or not; a container that is gone is no error."""

    def finished_at(self, container_id: str) -> datetime | None:
        """When the container ended (UTC); None while it runs or once it is removed."""

    def executions(self) -> Iterator[tuple[str, str, str]]:
        """(container id, execution id, state: `running`, `exited`, `created`...) of every container on the
        engine labelled with an execution id, whichever runner started it."""


# --- the ledger --------------------------------------------------------------------------------------------------

# Claim values (who owns an execution): `<host>` runs it; `done:<host>` reported its end; `lost:<host>` was taken
# from a lost host (a peer reported it failed); `handed-back:<host>` was given back to the farm.
LOST = "lost:"
DONE = "done:"
HANDED_BACK = "handed-back:"


class Ledger(Protocol):
    """Who runs each execution (claims with compare-and-set semantics), what each host holds, the hosts' liveness
    tokens, and what the API recorded for runners (blacklist, stop requests). See ledger.py for the why."""

    def claim(self, due: ExecutionDue, host: str) -> tuple[str, bool]:
        """Record `due` as held by `host`, then claim it: (owner, whether this call claimed it). A claim handed
        back is taken over; `due` is dropped from `host`'s record when another host owns it."""

    def owner(self, execution_id: uuid.UUID) -> str | None: ...

    def owners(self, execution_ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]: ...

    def done(self, execution_id: uuid.UUID, host: str) -> None:
        """Drop the execution from `host`'s record (its claim stays, against replays)."""

    def release(self, execution_id: uuid.UUID, host: str) -> bool:
        """Hand the claim back (`handed-back:<host>`); False when it is no longer `host`'s."""

    def finish(self, execution_id: uuid.UUID, host: str, report: str | None = None) -> bool:
        """Mark the end `done:<host>` keeping `report`; False when the claim was taken from `host`."""

    def reported(self, execution_id: uuid.UUID) -> tuple[str | None, str | None]:
        """(owner, the report kept by `finish`)."""

    def take_from_lost(self, execution_id: uuid.UUID, lost_host: str) -> bool:
        """Move a lost host's claim to `lost:<host>`; False when it marked the end or is not its."""

    def held(self, host: str) -> list[ExecutionDue]: ...

    def beat(self, host: str) -> None:
        """`host` is alive: its token changes."""

    def beats(self, hosts: list[str]) -> dict[str, uuid.UUID]: ...

    def blacklisted(self, host: str) -> bool: ...

    def stops_requested(self, execution_ids: list[uuid.UUID]) -> list[uuid.UUID]: ...


# --- the broker --------------------------------------------------------------------------------------------------


class Publisher(Protocol):
    def publish(self, topic: str, event: JobMessage | HostEvent) -> None:
        """Returns once the broker has the event; raises when it did not take it."""


class OutputSink(Protocol):
    """Where live output goes (the `output` topic): best effort, never blocking an execution."""

    def send(self, chunk: ExecutionOutput) -> bool:
        """Queue the chunk for the broker without waiting; False when it could not be queued (the queue is full)."""

    def flush(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the queued chunks to reach the broker."""
