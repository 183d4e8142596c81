"""The Docker adapter of the ContainerRuntime port (services/runner/ports.py): containers on one Docker engine,
through the docker SDK, with the engine's errors told apart (the job's fault: RuntimeFailure; no answer:
EngineUnavailable)."""

import contextlib
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Literal

import docker
import requests
import urllib3
from docker.errors import APIError, DockerException, ImageNotFound, NotFound, create_api_error_from_http_exception
from docker.utils import parse_repository_tag
from urllib3.exceptions import NewConnectionError

from services.runner.ports import LABEL, ContainerSpec, EngineUnavailable, LogTail, RuntimeFailure, Started, nothing
from shared.process.metrics import ENGINE_CALL, timed

TLS_API_VERSION = "1.41"
FOLLOW_READ_TIMEOUT_S = 600.0  # a followed output stream silent this long is read again from the start


_NOT_CONNECTED = (ConnectionRefusedError, FileNotFoundError, requests.exceptions.ConnectTimeout, NewConnectionError)


def never_reached(exc: BaseException) -> bool:
    """Whether `exc` (a requests/urllib3 error, however wrapped) says no connection to the engine was made."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        error = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, _NOT_CONNECTED):
            return True
        linked = [*error.args, error.__cause__, error.__context__, getattr(error, "reason", None)]
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return False


def unanswered(exc: Exception) -> EngineUnavailable:
    return EngineUnavailable(f"the Docker engine does not answer: {exc}", reached=not never_reached(exc))


@contextlib.contextmanager
def answering() -> Iterator[None]:
    """Around an engine call: not reaching the engine, or losing its answer midway, is EngineUnavailable."""
    try:
        yield
    except requests.exceptions.RequestException as exc:
        raise unanswered(exc) from exc


PullPolicy = Literal["IfNotPresent", "Always"]


def image_reference(image: str) -> tuple[str, str]:
    """(repository, tag or digest) of an image name; no tag means `latest` (pulling a bare repository would
    fetch every tag)."""
    repository, tag = parse_repository_tag(image)
    return repository, tag or "latest"


class DockerRuntime:
    """Runs containers on one Docker engine via the docker SDK."""

    def __init__(
        self,
        base_url: str = "",
        pull_policy: PullPolicy = "IfNotPresent",
        registry_auth: dict[str, dict[str, str]] | None = None,
        tls: docker.tls.TLSConfig | None = None,
        log_tail_bytes: int = 1024 * 1024,
    ) -> None:
        self._log_tail_bytes = log_tail_bytes  # the end of each stream kept in memory; the rest is counted
        if tls is not None:
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace the engine's CA (docker-py issue 2433):
            # the engine is reached with its own CA only. The client would talk to the engine before that can
            # be set, to negotiate the API version, so the version is fixed instead (every engine since 20.10).
            self._client = docker.DockerClient(base_url=base_url, tls=tls, version=TLS_API_VERSION)
            self._client.api.trust_env = False
        else:
            self._client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
        self._pull_policy = pull_policy
        self._registry_auth = registry_auth or {}

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise unanswered(exc) from exc

    def start(self, spec: ContainerSpec, on_pull: Callable[[], None] = nothing) -> Started:
        with timed(ENGINE_CALL.labels("start")):
            return self._start(spec, on_pull)

    def _start(self, spec: ContainerSpec, on_pull: Callable[[], None]) -> Started:
        try:
            if self._pull_policy == "Always":
                self._pull(spec.image, on_pull)
            container_id, state = self._create(spec, on_pull)
            if state is None or state.get("Status") == "created":
                self._start_or_remove(container_id)
                return Started(container_id)
            return Started(container_id, _engine_time(state.get("StartedAt")))
        except APIError as exc:
            raise RuntimeFailure(_explain(exc)) from exc
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise unanswered(exc) from exc

    def _start_or_remove(self, container_id: str) -> None:
        """Start a created container; one the engine refuses to start (missing binary, bad argv) is removed at
        once, so no `Created` container is left behind."""
        try:
            self._client.api.start(container_id)
        except APIError:
            with contextlib.suppress(DockerException, requests.exceptions.RequestException):
                self._client.api.remove_container(container_id, force=True)
            raise

    def _pull(self, image: str, on_pull: Callable[[], None]) -> None:
        on_pull()
        repository, tag = image_reference(image)
        registry = repository.split("/")[0] if "/" in repository else ""
        auth = self._registry_auth.get(registry)
        with timed(ENGINE_CALL.labels("pull")):
            self._client.images.pull(repository, tag=tag, auth_config=auth)

    def _create(self, spec: ContainerSpec, on_pull: Callable[[], None]) -> tuple[str, dict[str, Any] | None]:
        """Create straight away with the low-level client (one engine call in the common case: the high-level
        one inspects each new container too); pull only when the image is missing. When the name is taken (a
        redelivered execution), the existing container's id and state instead."""
        api = self._client.api
        host_config = api.create_host_config(
            privileged=False,
            extra_hosts=spec.extra_hosts or None,
            nano_cpus=int(spec.cpus * 1e9) if spec.cpus is not None else None,
            mem_limit=f"{spec.memory_mb}m" if spec.memory_mb is not None else None,
        )

        def create() -> str:
            created = api.create_container(
                spec.image,
                command=spec.argv,
                name=spec.name,
                environment=spec.envs,
                labels=spec.labels,
                detach=True,
                host_config=host_config,
            )
            return str(created["Id"])

        try:
            try:
                return create(), None
            except ImageNotFound:
                self._pull(spec.image, on_pull)
                return create(), None
        except APIError as exc:
            if exc.status_code == 409:  # name conflict: this execution's container already exists
                found = api.inspect_container(spec.name)
                return str(found["Id"]), found["State"]
            raise

    def wait(self, container_id: str, seconds: float) -> int | None:
        try:
            result = self._client.api.wait(container_id, timeout=seconds)
            return int(result["StatusCode"])
        except requests.exceptions.Timeout:
            return None  # still running: the caller checks its deadlines and waits again
        except requests.exceptions.ConnectionError as exc:
            if exc.args and isinstance(exc.args[0], urllib3.exceptions.ReadTimeoutError):
                return None  # the SDK's way of saying Timeout here
            raise unanswered(exc) from exc
        except requests.exceptions.RequestException as exc:  # e.g. the connection cut mid-answer
            raise unanswered(exc) from exc

    def stop(self, container_id: str, grace_s: float) -> None:
        with timed(ENGINE_CALL.labels("stop")), answering(), contextlib.suppress(NotFound):
            self._client.api.stop(container_id, timeout=int(grace_s))

    def logs(self, container_id: str) -> tuple[bytes, bytes]:
        """(stdout, stderr) of an ended container in ONE engine call: the SDK's `logs` makes two per stream (it
        inspects the container first, to learn whether it has a TTY; ours never do), so both streams are
        fetched together and told apart by their frame headers. Read as a stream: only the last
        `log_tail_bytes` of each are kept (LogTail says how much came before), so a job that prints gigabytes
        costs the runner no more memory than one that prints a page."""
        api = self._client.api
        url = f"{api.base_url}/v{api.api_version}/containers/{urllib.parse.quote(container_id)}/logs"
        with timed(ENGINE_CALL.labels("logs")), answering():
            response = api.get(url, params={"stdout": 1, "stderr": 1}, timeout=api.timeout, stream=True)
            try:
                response.raise_for_status()
            except requests.exceptions.HTTPError as exc:
                raise create_api_error_from_http_exception(exc) from exc
            frames = Demultiplexer(self._log_tail_bytes)
            for chunk in response.iter_content(64 * 1024):
                frames.feed(chunk)
        return frames.tails()

    def follow(self, container_id: str) -> Iterator[tuple[int, bytes]]:
        """The output stream with `follow=1`: the engine sends what was written so far, then each write as it
        happens, and ends the stream when the container ends. No read timeout shorter than a quiet job's
        silence: a read waits up to FOLLOW_READ_TIMEOUT_S, then the stream counts as broken."""
        api = self._client.api
        url = f"{api.base_url}/v{api.api_version}/containers/{urllib.parse.quote(container_id)}/logs"
        with answering():
            response = api.get(
                url,
                params={"stdout": 1, "stderr": 1, "follow": 1},
                timeout=(10, FOLLOW_READ_TIMEOUT_S),
                stream=True,
            )
            try:
                try:
                    response.raise_for_status()
                except requests.exceptions.HTTPError as exc:
                    raise create_api_error_from_http_exception(exc) from exc
                frames = FrameReader()
                for chunk in response.iter_content(None):
                    yield from frames.feed(chunk)
            finally:
                response.close()

    def remove(self, container_id: str) -> None:
        with timed(ENGINE_CALL.labels("remove")), answering(), contextlib.suppress(NotFound):
            self._client.api.remove_container(container_id, force=True)

    def finished_at(self, container_id: str) -> datetime | None:
        try:
            return _engine_time(self._client.api.inspect_container(container_id)["State"].get("FinishedAt"))
        except NotFound:
            return None

    def executions(self, all_states: bool = True) -> Iterator[tuple[str, str, str]]:
        """(container id, execution id, state) of every fastlane container on this engine."""
        for c in self._client.api.containers(all=all_states, filters={"label": LABEL}):
            yield c["Id"], c["Labels"][LABEL], c["State"]


class FrameReader:
    """The frames of a non-TTY log stream read in chunks: yields (stream, payload bytes) as they arrive (a frame
    split across chunks comes out in pieces)."""

    def __init__(self) -> None:
        self._header = bytearray()
        self._kind = 0
        self._left = 0

    def feed(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        view = memoryview(chunk)
        while view:
            if self._left == 0:
                need = 8 - len(self._header)
                self._header += view[:need]
                view = view[need:]
                if len(self._header) < 8:
                    return
                self._kind, self._left = self._header[0], int.from_bytes(self._header[4:8], "big")
                self._header.clear()
                continue
            payload, view = view[: self._left], view[self._left :]
            self._left -= len(payload)
            if self._kind in (1, 2):
                yield self._kind, bytes(payload)


class Demultiplexer:
    """demultiplex() for a stream read in chunks, keeping the last `keep` bytes of each of stdout and stderr."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._streams = {1: bytearray(), 2: bytearray()}
        self._totals = {1: 0, 2: 0}
        self._frames = FrameReader()

    def feed(self, chunk: bytes) -> None:
        for kind, payload in self._frames.feed(chunk):
            kept = self._streams[kind]
            kept += payload
            self._totals[kind] += len(payload)
            if len(kept) > 2 * self._keep:  # trimmed now and then, not at every frame
                del kept[: len(kept) - self._keep]

    def tails(self) -> tuple["LogTail", "LogTail"]:
        out = []
        for kind in (1, 2):
            data = bytes(self._streams[kind][-self._keep :]) if self._keep else b""
            out.append(LogTail(data, self._totals[kind] - len(data)))
        return out[0], out[1]


def demultiplex(data: bytes) -> tuple[bytes, bytes]:
    """(stdout, stderr) of a non-TTY container's log stream: frames of an 8-byte header (stream 1 or 2, three
    zero bytes, the payload length as big-endian uint32) and the payload. A truncated last frame keeps what
    arrived."""
    streams = {1: bytearray(), 2: bytearray()}
    at = 0
    while at + 8 <= len(data):
        kind, size = data[at], int.from_bytes(data[at + 4 : at + 8], "big")
        if kind in streams:
            streams[kind] += data[at + 8 : at + 8 + size]
        at += 8 + size
    return bytes(streams[1]), bytes(streams[2])


def _engine_time(value: str | None) -> datetime | None:
    """The engine's RFC 3339 times have nanoseconds; Python reads microseconds."""
    if not value or value.startswith("0001-"):
        return None
    head, _, rest = value.partition(".")
    fraction = "".join(ch for ch in rest if ch.isdigit())[:6]
    return datetime.fromisoformat(f"{head}.{fraction or '0'}+00:00")


def _explain(exc: APIError) -> str:
    return str(exc.explanation or exc)
