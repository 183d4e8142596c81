"""An in-memory container engine (the ContainerRuntime port), held to DockerRuntime's behaviour by
tests/contract/test_engine_contract.py.

It has no clock: `wait` answers at once. What a container does is its program, chosen by its argv (`programs`),
else `default`; an argv with neither is a binary missing from the image, and an image not in `images` (when
given) is missing from every registry. Like the engine: a container stopped while it runs is killed after its
grace (its PID 1 has no SIGTERM handler): exit code 137. Containers are found by id or by name. Logs come back
as the engine keeps them: NUL bytes kept, invalid UTF-8 replaced. Failure knobs for the runner's tests: `fail` (every
start fails with that reason), `answering` (False: the engine is unreachable), `on_wait` (hooks called at
each wait).
"""

import codecs
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from services.runner.ports import LABEL, ContainerSpec, EngineUnavailable, LogTail, RuntimeFailure, Started, nothing
from shared.contract.events import utcnow

FOREVER = -1
# The engine's log driver keeps lines as JSON strings: each byte that is not UTF-8 comes back as U+FFFD.
BYTE_BY_BYTE = "fastlane-fake-engine-replace"
codecs.register_error(BYTE_BY_BYTE, lambda exc: ("\ufffd" * (exc.end - exc.start), exc.end))
KILLED = 137  # 128 + SIGKILL


@dataclass(frozen=True)
class Program:
    """What a container does: answers `running_waits` waits with "still running" (FOREVER: until stopped),
    then exits with `exit_code`, having written `stdout` and `stderr`."""

    exit_code: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    running_waits: int = 0


@dataclass
class Container:
    id: str
    spec: ContainerSpec
    program: Program
    started_at: datetime
    waits_left: int
    exit_code: int | None = None
    finished_at: datetime | None = None

    @property
    def state(self) -> str:
        return "running" if self.exit_code is None else "exited"

    def end(self, exit_code: int) -> None:
        if self.exit_code is None:
            self.exit_code, self.finished_at = exit_code, utcnow()


@dataclass
class FakeEngine:
    programs: dict[tuple[str, ...], Program] = field(default_factory=dict)
    default: Program | None = None
    images: set[str] | None = None  # None: every image can be had
    log_tail_bytes: int | None = None  # like DockerRuntime: only the end of each stream is kept (a LogTail)
    fail: str | None = None
    answering: bool = True
    on_wait: list[Callable[[], None]] = field(default_factory=list)
    containers: dict[str, Container] = field(default_factory=dict)  # by id, until removed
    started: list[ContainerSpec] = field(default_factory=list)  # every spec a container was created for
    stopped: list[float] = field(default_factory=list)  # the grace of every stop of a running container
    removed: list[str] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    def with_program(
        cls, exit_code: int = 0, stdout: bytes = b"", stderr: bytes = b"", running_waits: int = 0
    ) -> "FakeEngine":
        """An engine on which every command is the same program."""
        return cls(default=Program(exit_code, stdout, stderr, running_waits))

    def ping(self) -> bool:
        self._answer()
        return True

    def start(self, spec: ContainerSpec, on_pull: Callable[[], None] = nothing) -> Started:
        self._answer()
        if self.fail is not None:
            raise RuntimeFailure(self.fail)
        found = self._named(spec.name)
        if found is not None:
            return Started(found.id, found.started_at)
        if self.images is not None and spec.image not in self.images:
            on_pull()
            raise RuntimeFailure(f"pull access denied for {spec.image}: repository does not exist")
        program = self.programs.get(tuple(spec.argv), self.default)
        if program is None:
            raise RuntimeFailure(f'exec: "{spec.argv[0]}": executable file not found in $PATH')
        container = Container(f"cid-{next(self._ids) + 1}", spec, program, utcnow(), program.running_waits)
        if program.running_waits == 0:
            container.end(program.exit_code)
        self.containers[container.id] = container
        self.started.append(spec)
        return Started(container.id)

    def wait(self, container_id: str, seconds: float) -> int | None:
        self._answer()
        for hook in self.on_wait:
            hook()
        container = self._find(container_id)
        assert container is not None, f"no container {container_id}"
        if container.exit_code is None:
            if container.waits_left == FOREVER:
                return None
            if container.waits_left > 0:
                container.waits_left -= 1
                return None
            container.end(container.program.exit_code)
        return container.exit_code

    def stop(self, container_id: str, grace_s: float) -> None:
        self._answer()
        container = self._find(container_id)
        if container is not None and container.exit_code is None:
            self.stopped.append(grace_s)
            container.end(KILLED)

    def logs(self, container_id: str) -> tuple[bytes, bytes]:
        self._answer()
        container = self._find(container_id)
        assert container is not None, f"no container {container_id}"
        program = container.program
        return self._tail(program.stdout), self._tail(program.stderr)

    def follow(self, container_id: str) -> Iterator[tuple[int, bytes]]:
        """The program's stdout then its stderr (a fake program writes them at once), then waits for its end
        (or its removal)."""
        self._answer()
        container = self._find(container_id)
        assert container is not None, f"no container {container_id}"
        program = container.program
        for kind, written in ((1, program.stdout), (2, program.stderr)):
            if written:
                yield kind, written.decode("utf-8", errors=BYTE_BY_BYTE).encode()
        while container.exit_code is None and container.id in self.containers:
            time.sleep(0.01)
            self._answer()

    def remove(self, container_id: str) -> None:
        self._answer()
        container = self._find(container_id)
        if container is not None:
            del self.containers[container.id]
            self.removed.append(container_id)

    def finished_at(self, container_id: str) -> datetime | None:
        self._answer()
        container = self._find(container_id)
        return container.finished_at if container is not None else None

    def executions(self) -> Iterator[tuple[str, str, str]]:
        self._answer()
        for container in list(self.containers.values()):
            if LABEL in container.spec.labels:
                yield container.id, container.spec.labels[LABEL], container.state

    def _named(self, name: str) -> Container | None:
        return next((c for c in self.containers.values() if c.spec.name == name), None)

    def _find(self, reference: str) -> Container | None:
        """A container by id or by name, as the engine finds them."""
        return self.containers.get(reference) or self._named(reference)

    def _tail(self, written: bytes) -> bytes:
        data = written.decode("utf-8", errors=BYTE_BY_BYTE).encode()
        if self.log_tail_bytes is None:
            return data
        kept = data[-self.log_tail_bytes :] if self.log_tail_bytes else b""
        return LogTail(kept, len(data) - len(kept))

    def _answer(self) -> None:
        if not self.answering:
            raise EngineUnavailable("the Docker engine does not answer: connection refused", reached=False)
