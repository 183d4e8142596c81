"""The container runtime port and its Docker adapter."""

import contextlib
import shlex
from dataclasses import dataclass, field
from typing import Protocol

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container


class RuntimeFailure(Exception):
    """The engine could not run the container (missing image, bad command, engine error)."""


class Interrupted(Exception):
    """The runner is stopping while a container still runs; the container is left to a later runner."""


@dataclass(frozen=True)
class ContainerSpec:
    """What to run: image, argv (no shell added), environment and identifying labels."""

    name: str
    image: str
    argv: list[str]
    envs: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


class ContainerRuntime(Protocol):
    def start(self, spec: ContainerSpec) -> str: ...

    def wait(self, container_id: str, seconds: float) -> int | None:
        """The exit code once the container has ended, or None if it still runs after `seconds`."""

    def stop(self, container_id: str, grace_s: float) -> None:
        """SIGTERM, then SIGKILL after `grace_s`."""

    def logs(self, container_id: str) -> tuple[bytes, bytes]: ...
    def remove(self, container_id: str) -> None: ...


def split_command(command: str) -> list[str]:
    """Split a command the way a shell would into argv, without running a shell."""
    return shlex.split(command)


class DockerRuntime:
    """Runs containers on one Docker engine via the docker SDK."""

    def __init__(self, base_url: str = "") -> None:
        self._client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()

    def ping(self) -> bool:
        return bool(self._client.ping())

    def start(self, spec: ContainerSpec) -> str:
        """Create and start the container; idempotent: an existing container of that name is reused."""
        try:
            container = self._create(spec)
            if container.status == "created":
                container.start()
            return str(container.id)
        except APIError as exc:
            raise RuntimeFailure(_explain(exc)) from exc
        except DockerException as exc:
            raise RuntimeFailure(str(exc)) from exc

    def _create(self, spec: ContainerSpec) -> Container:
        """Create straight away (the common case costs one engine call); pull only when the image is missing,
        and fall back to the existing container when the name is taken (a redelivered execution)."""
        kwargs = {
            "command": spec.argv,
            "name": spec.name,
            "environment": spec.envs,
            "labels": spec.labels,
            "detach": True,
            "privileged": False,
        }
        try:
            return self._client.containers.create(spec.image, **kwargs)
        except ImageNotFound:
            self._client.images.pull(spec.image)
            return self._client.containers.create(spec.image, **kwargs)
        except APIError as exc:
            if exc.status_code == 409:  # name conflict: this execution's container already exists
                return self._client.containers.get(spec.name)
            raise

    def wait(self, container_id: str, seconds: float) -> int | None:
        try:
            result = self._client.api.wait(container_id, timeout=seconds)
            return int(result["StatusCode"])
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError):
            return None  # still running (or a blip of the engine): the caller checks its deadlines and waits again

    def stop(self, container_id: str, grace_s: float) -> None:
        with contextlib.suppress(NotFound):
            self._client.api.stop(container_id, timeout=int(grace_s))

    def logs(self, container_id: str) -> tuple[bytes, bytes]:
        api = self._client.api  # the low-level client: no extra inspect call per request
        return api.logs(container_id, stdout=True, stderr=False), api.logs(container_id, stdout=False, stderr=True)

    def remove(self, container_id: str) -> None:
        with contextlib.suppress(NotFound):
            self._client.api.remove_container(container_id, force=True)


def _explain(exc: APIError) -> str:
    return str(exc.explanation or exc)
