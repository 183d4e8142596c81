"""The container runtime port and its Docker adapter."""

import contextlib
import shlex
import threading
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
    def wait(self, container_id: str, stop: threading.Event) -> int: ...
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
            container = self._existing(spec.name) or self._create(spec)
            if container.status == "created":
                container.start()
            return str(container.id)
        except APIError as exc:
            raise RuntimeFailure(_explain(exc)) from exc
        except DockerException as exc:
            raise RuntimeFailure(str(exc)) from exc

    def _existing(self, name: str) -> Container | None:
        try:
            return self._client.containers.get(name)
        except NotFound:
            return None

    def _create(self, spec: ContainerSpec) -> Container:
        try:
            self._client.images.get(spec.image)
        except ImageNotFound:
            self._client.images.pull(spec.image)
        return self._client.containers.create(
            spec.image,
            command=spec.argv,
            name=spec.name,
            environment=spec.envs,
            labels=spec.labels,
            detach=True,
            privileged=False,
        )

    def wait(self, container_id: str, stop: threading.Event) -> int:
        container = self._client.containers.get(container_id)
        while True:
            if stop.is_set():
                raise Interrupted(container_id)
            try:
                result = container.wait(timeout=1)
                return int(result["StatusCode"])
            except (requests.exceptions.Timeout, requests.exceptions.ConnectionError):
                continue  # a wait timeout (or a blip of the engine): check `stop`, then wait again

    def logs(self, container_id: str) -> tuple[bytes, bytes]:
        container = self._client.containers.get(container_id)
        return container.logs(stdout=True, stderr=False), container.logs(stdout=False, stderr=True)

    def remove(self, container_id: str) -> None:
        with contextlib.suppress(NotFound):
            self._client.containers.get(container_id).remove(force=True)


def _explain(exc: APIError) -> str:
    return str(exc.explanation or exc)
