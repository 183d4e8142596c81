"""A typed Python client of the fastlane HTTP API, sync (`Client`) and async (`AsyncClient`), on httpx, answering
the API's own response models (services/api/models.py): what the server answers is what the client parses.

    from shared.client import Client
    with Client("http://127.0.0.1:10000") as fastlane:
        job = fastlane.run("reports", "fastlane-test", "echo hello")
        for message in fastlane.follow(job.taskId, job.jobId, job.executionId):
            ...
        print(fastlane.execution(job.taskId, job.jobId, job.executionId).execution.status)

Each call is described once (`Call`: method, path, parameters, the model of the answer) and sent by either
client, so the two cannot drift apart. An answer other than 2xx raises `FastlaneError` with the API's own
message (`{"error": ...}`) and status; a server out of reach raises httpx's `TransportError`.
"""

import json
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

import httpx
from pydantic import BaseModel

from services.api.models import (
    Enqueued,
    ExecutionAnswer,
    ExecutionOrdered,
    Health,
    JobAnswer,
    JobStopped,
    Readiness,
    Status,
    TaskJobs,
    TaskPage,
    Updated,
)

M = TypeVar("M", bound=BaseModel)
LogKind = Literal["stdout", "stderr", "logs"]
DEFAULT_URL = "http://127.0.0.1:10000"


class FastlaneError(Exception):
    """The API answered with an error: `status` is its HTTP status, `message` its `error` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Call(Generic[M]):
    """One request and the model of its answer (None: the answer is text)."""

    method: str
    path: str
    model: type[M] | None
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None


def _quote(part: str) -> str:
    return urllib.parse.quote(str(part), safe="")


def job_spec(image: str, command: str, **options: Any) -> dict[str, Any]:
    """A job's JSON body: `image`, `command` and the API's own option names (envs, startIn, startAt, cron, retries,
    timeout, expiration, metadata, webhooks, notify...); options that are None are left out."""
    return {"image": image, "command": command, **{k: v for k, v in options.items() if v is not None}}


class Calls:
    """Every call of the API, as data."""

    @staticmethod
    def run(task_id: str, spec: dict[str, Any]) -> Call[Enqueued]:
        return Call("POST", f"/tasks/{_quote(task_id)}", Enqueued, body=spec)

    @staticmethod
    def put_job(task_id: str, job_id: str, spec: dict[str, Any]) -> Call[Updated]:
        return Call("PUT", f"/tasks/{_quote(task_id)}/jobs/{_quote(job_id)}", Updated, body=spec)

    @staticmethod
    def task(task_id: str) -> Call[TaskJobs]:
        return Call("GET", f"/tasks/{_quote(task_id)}", TaskJobs)

    @staticmethod
    def tasks(page: int = 1) -> Call[TaskPage]:
        return Call("GET", "/tasks", TaskPage, {"page": page})

    @staticmethod
    def search(query: str, page: int = 1) -> Call[TaskPage]:
        return Call("GET", "/search", TaskPage, {"query": query, "page": page})

    @staticmethod
    def job(task_id: str, job_id: str) -> Call[JobAnswer]:
        return Call("GET", f"/tasks/{_quote(task_id)}/jobs/{_quote(job_id)}", JobAnswer)

    @staticmethod
    def execution(task_id: str, job_id: str, execution_id: str) -> Call[ExecutionAnswer]:
        path = f"/tasks/{_quote(task_id)}/jobs/{_quote(job_id)}/executions/{_quote(execution_id)}"
        return Call("GET", path, ExecutionAnswer)

    @staticmethod
    def stop(task_id: str, job_id: str) -> Call[JobStopped]:
        return Call("POST", f"/tasks/{_quote(task_id)}/jobs/{_quote(job_id)}/stop", JobStopped)

    @staticmethod
    def retry(task_id: str, job_id: str) -> Call[ExecutionOrdered]:
        return Call("POST", f"/tasks/{_quote(task_id)}/jobs/{_quote(job_id)}/retry", ExecutionOrdered)

    @staticmethod
    def stop_execution(task_id: str, job_id: str, execution_id: str) -> Call[ExecutionOrdered]:
        path = f"/tasks/{_quote(task_id)}/jobs/{_quote(job_id)}/executions/{_quote(execution_id)}/stop"
        return Call("POST", path, ExecutionOrdered)

    @staticmethod
    def logs(task_id: str, job_id: str, execution_id: str | None, kind: LogKind) -> Call[BaseModel]:
        """A log as text: an execution's, or the job's last execution's when `execution_id` is None."""
        base = f"/tasks/{_quote(task_id)}/jobs/{_quote(job_id)}"
        return Call(
            "GET", f"{base}/executions/{_quote(execution_id)}/{kind}" if execution_id else f"{base}/{kind}", None
        )

    @staticmethod
    def status() -> Call[Status]:
        return Call("GET", "/status", Status)

    @staticmethod
    def health() -> Call[Health]:
        return Call("GET", "/healthcheck", Health)

    @staticmethod
    def ready() -> Call[Readiness]:
        return Call("GET", "/readyz", Readiness)


def _answer(call: Call[M], response: httpx.Response) -> Any:
    """The parsed answer of `call`, or FastlaneError. `/healthcheck` and `/readyz` answer their model with
    500 and 503 too: those are answers, not errors."""
    if response.is_success or (call.model in (Health, Readiness) and response.status_code in (500, 503)):
        return response.text if call.model is None else call.model.model_validate_json(response.content)
    try:
        message = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        message = response.text[:500] or response.reason_phrase
    raise FastlaneError(response.status_code, message)


def _follow_call(task_id: str, job_id: str, execution_id: str | None, kind: LogKind) -> Call[BaseModel]:
    call = Calls.logs(task_id, job_id, execution_id, kind)
    return Call("GET", call.path, None, {"follow": "true"})


class _Events:
    """Server-Sent Events read line by line: `feed` returns an event's JSON data once its blank line comes (None
    before that, and for a comment: a keep-alive)."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> dict[str, Any] | None:
        if line:
            if line.startswith("data:"):
                self._data.append(line[5:].lstrip(" "))
            return None
        data, self._data = "\n".join(self._data), []
        return json.loads(data) if data else None


class _Base:
    def __init__(self, url: str, username: str | None, password: str | None, token: str | None) -> None:
        self.url = url.rstrip("/")
        self._auth = httpx.BasicAuth(username, password or "") if username else None
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}


class Client(_Base):
    """The sync client; a context manager (or call `close`)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, username, password, token)
        self._http = httpx.Client(
            base_url=self.url, auth=self._auth, headers=self._headers, timeout=timeout, transport=transport
        )

    def send(self, call: Call[M]) -> Any:
        return _answer(call, self._http.request(call.method, call.path, params=call.params, json=call.body))

    def run(self, task_id: str, image: str, command: str, **options: Any) -> Enqueued:
        """Enqueue a job (POST /tasks/{task}); `options` are the API's field names (envs, startIn, cron...)."""
        answer: Enqueued = self.send(Calls.run(task_id, job_spec(image, command, **options)))
        return answer

    def put_job(self, task_id: str, job_id: str, image: str, command: str, **options: Any) -> Updated:
        answer: Updated = self.send(Calls.put_job(task_id, job_id, job_spec(image, command, **options)))
        return answer

    def task(self, task_id: str) -> TaskJobs:
        answer: TaskJobs = self.send(Calls.task(task_id))
        return answer

    def tasks(self, page: int = 1) -> TaskPage:
        answer: TaskPage = self.send(Calls.tasks(page))
        return answer

    def search(self, query: str, page: int = 1) -> TaskPage:
        answer: TaskPage = self.send(Calls.search(query, page))
        return answer

    def job(self, task_id: str, job_id: str) -> JobAnswer:
        answer: JobAnswer = self.send(Calls.job(task_id, job_id))
        return answer

    def execution(self, task_id: str, job_id: str, execution_id: str) -> ExecutionAnswer:
        answer: ExecutionAnswer = self.send(Calls.execution(task_id, job_id, execution_id))
        return answer

    def stop(self, task_id: str, job_id: str) -> JobStopped:
        answer: JobStopped = self.send(Calls.stop(task_id, job_id))
        return answer

    def retry(self, task_id: str, job_id: str) -> ExecutionOrdered:
        answer: ExecutionOrdered = self.send(Calls.retry(task_id, job_id))
        return answer

    def stop_execution(self, task_id: str, job_id: str, execution_id: str) -> ExecutionOrdered:
        answer: ExecutionOrdered = self.send(Calls.stop_execution(task_id, job_id, execution_id))
        return answer

    def logs(self, task_id: str, job_id: str, execution_id: str | None = None, kind: LogKind = "stdout") -> str:
        text: str = self.send(Calls.logs(task_id, job_id, execution_id, kind))
        return text

    def status(self) -> Status:
        answer: Status = self.send(Calls.status())
        return answer

    def health(self) -> Health:
        answer: Health = self.send(Calls.health())
        return answer

    def ready(self) -> Readiness:
        answer: Readiness = self.send(Calls.ready())
        return answer

    def follow(
        self, task_id: str, job_id: str, execution_id: str | None = None, kind: LogKind = "logs"
    ) -> Iterator[dict[str, Any]]:
        """The live output as the API's messages (docs/live-logs.md: `execution`, `output`, `end`...), from the
        start to the end of the execution (of the job's executions, without `execution_id`)."""
        call = _follow_call(task_id, job_id, execution_id, kind)
        with self._http.stream(call.method, call.path, params=call.params, timeout=httpx.Timeout(30, read=None)) as r:
            if not r.is_success:
                r.read()
                _answer(call, r)
            events = _Events()
            for line in r.iter_lines():
                message = events.feed(line)
                if message is not None:
                    yield message

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class AsyncClient(_Base):
    """The async client (the same calls, awaited); an async context manager (or await `aclose`)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, username, password, token)
        self._http = httpx.AsyncClient(
            base_url=self.url, auth=self._auth, headers=self._headers, timeout=timeout, transport=transport
        )

    async def send(self, call: Call[M]) -> Any:
        response = await self._http.request(call.method, call.path, params=call.params, json=call.body)
        return _answer(call, response)

    async def run(self, task_id: str, image: str, command: str, **options: Any) -> Enqueued:
        answer: Enqueued = await self.send(Calls.run(task_id, job_spec(image, command, **options)))
        return answer

    async def put_job(self, task_id: str, job_id: str, image: str, command: str, **options: Any) -> Updated:
        answer: Updated = await self.send(Calls.put_job(task_id, job_id, job_spec(image, command, **options)))
        return answer

    async def task(self, task_id: str) -> TaskJobs:
        answer: TaskJobs = await self.send(Calls.task(task_id))
        return answer

    async def tasks(self, page: int = 1) -> TaskPage:
        answer: TaskPage = await self.send(Calls.tasks(page))
        return answer

    async def search(self, query: str, page: int = 1) -> TaskPage:
        answer: TaskPage = await self.send(Calls.search(query, page))
        return answer

    async def job(self, task_id: str, job_id: str) -> JobAnswer:
        answer: JobAnswer = await self.send(Calls.job(task_id, job_id))
        return answer

    async def execution(self, task_id: str, job_id: str, execution_id: str) -> ExecutionAnswer:
        answer: ExecutionAnswer = await self.send(Calls.execution(task_id, job_id, execution_id))
        return answer

    async def stop(self, task_id: str, job_id: str) -> JobStopped:
        answer: JobStopped = await self.send(Calls.stop(task_id, job_id))
        return answer

    async def retry(self, task_id: str, job_id: str) -> ExecutionOrdered:
        answer: ExecutionOrdered = await self.send(Calls.retry(task_id, job_id))
        return answer

    async def stop_execution(self, task_id: str, job_id: str, execution_id: str) -> ExecutionOrdered:
        answer: ExecutionOrdered = await self.send(Calls.stop_execution(task_id, job_id, execution_id))
        return answer

    async def logs(self, task_id: str, job_id: str, execution_id: str | None = None, kind: LogKind = "stdout") -> str:
        text: str = await self.send(Calls.logs(task_id, job_id, execution_id, kind))
        return text

    async def status(self) -> Status:
        answer: Status = await self.send(Calls.status())
        return answer

    async def ready(self) -> Readiness:
        answer: Readiness = await self.send(Calls.ready())
        return answer

    async def follow(
        self, task_id: str, job_id: str, execution_id: str | None = None, kind: LogKind = "logs"
    ) -> AsyncIterator[dict[str, Any]]:
        """`Client.follow`, awaited."""
        call = _follow_call(task_id, job_id, execution_id, kind)
        timeout = httpx.Timeout(30, read=None)
        async with self._http.stream(call.method, call.path, params=call.params, timeout=timeout) as r:
            if not r.is_success:
                await r.aread()
                _answer(call, r)
            events = _Events()
            async for line in r.aiter_lines():
                message = events.feed(line)
                if message is not None:
                    yield message

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()
