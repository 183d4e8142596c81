"""The fault checker itself, on made-up observations (no stack): a checker that cannot see a double start, a
moving status, missing logs or a lost job would pass every round."""

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.contract.events import ExecutionFinished
from tests.faults.checker import ApiWatch, Checker, EngineWatch, EventWatch, JobSpec, WebhookReceiver

API = "http://fastlane.test"


class FakeApi:
    """Answers POST /tasks/{t}, GET jobUrl, GET executionUrl and GET /tasks/{t} from dicts a test fills."""

    def __init__(self) -> None:
        self.executions: dict[str, list[dict[str, Any]]] = {}  # job id -> executions, newest first
        self.logs: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.tasks: dict[str, list[str]] = {}
        self.refuse = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")
        if request.method == "POST":
            if self.refuse:
                return httpx.Response(503, json={"error": "kafka"})
            job_id = str(uuid.uuid4())
            self.tasks.setdefault(parts[1], []).append(job_id)
            self.executions[job_id] = []
            return httpx.Response(200, json={"jobId": job_id})
        if len(parts) == 2:
            jobs = self.tasks.get(parts[1])
            return httpx.Response(200 if jobs else 404, json={"jobs": [{"id": j} for j in jobs or []]})
        if len(parts) == 4:
            return httpx.Response(200, json={"job": {"executions": self.executions[parts[3]]}})
        eid = parts[5]
        status = next((e["status"] for es in self.executions.values() for e in es if e["executionId"] == eid), None)
        if status is None:
            return httpx.Response(404, json={"error": "no such execution"})
        execution = {"status": status, "log": self.logs.get(eid, ""), "error": self.errors.get(eid, "")}
        return httpx.Response(200, json={"execution": execution})


class World:
    def __init__(self) -> None:
        self.api = FakeApi()
        client = httpx.Client(transport=httpx.MockTransport(self.api.handle))
        self.engine = EngineWatch("unix:///nonexistent.sock")
        self.events = EventWatch("127.0.0.1:1", [])
        self.hooks = WebhookReceiver()
        self.watch = ApiWatch(client=client)
        self.checker = Checker(API, self.engine, self.events, self.hooks, self.watch, client=client)

    def job(self, retries: int = 0, webhook: bool = False) -> tuple[str, JobSpec]:
        body: dict[str, Any] = {"image": "i", "command": "echo m"} | ({"retries": retries} if retries else {})
        if webhook:
            body["webhooks"] = {"finishes": [{"url": "http://127.0.0.1:1/hook"}]}
        spec = JobSpec("test", f"t-{uuid.uuid4().hex[:6]}", f"m-{uuid.uuid4().hex[:6]}", body)
        assert self.checker.submit(spec)
        return self.checker.accepted[-1].job_id, spec

    def execution(
        self, job_id: str, status: str, spec: JobSpec, *, log: bool = True, starts: int = 1, error: str = ""
    ) -> str:
        eid = str(uuid.uuid1())
        self.api.executions[job_id].insert(0, {"executionId": eid, "status": status})
        self.api.logs[eid] = f"{spec.marker}\n" if log else ""
        self.api.errors[eid] = error
        for n in range(starts):
            self.engine.record(
                {
                    "id": f"c{n}",
                    "time": int(time.time()),
                    "timeNano": time.time_ns() + n,
                    "Actor": {"Attributes": {"name": f"fastlane-{eid}", "fastlane.job-id": job_id}},
                }
            )
        if status in ("done", "failed"):
            self.finished(job_id, eid, status, error)
        return eid

    def finished(self, job_id: str, eid: str, status: str, error: str = "") -> None:
        self.events.record(
            ExecutionFinished(
                task_id="t",
                job_id=uuid.UUID(job_id),
                execution_id=uuid.UUID(eid),
                status=status,  # type: ignore[arg-type]
                error=error or None,
            )
        )

    def hook(self, eid: str, status: str) -> None:
        self.hooks.deliveries[eid].append((str(uuid.uuid4()), "finishes", status))

    def poll(self) -> None:
        for job in self.checker.accepted:
            self.watch.poll(job)


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.hooks.server.server_close()


def test_a_clean_job_passes(world: World) -> None:
    job, spec = world.job(retries=2, webhook=True)
    first = world.execution(job, "failed", spec)
    second = world.execution(job, "done", spec)
    world.hook(first, "failed")
    world.hook(second, "done")
    world.poll()
    verdict = world.checker.verdict()
    assert verdict.ok, list(verdict.lines())
    assert verdict.seen == (2, 2, 2)


def test_two_container_starts_of_one_execution_are_duplicated(world: World) -> None:
    job, spec = world.job()
    world.execution(job, "done", spec, starts=2)
    assert len(world.checker.verdict().duplicated) == 1


def test_more_executions_than_retries_allow_are_duplicated(world: World) -> None:
    job, spec = world.job(retries=0)
    world.execution(job, "done", spec)
    hidden = str(uuid.uuid1())  # a container the API never listed, labelled with the job
    attributes = {"name": f"fastlane-{hidden}", "fastlane.job-id": job}
    world.engine.record({"id": "x", "time": 1, "timeNano": 1, "Actor": {"Attributes": attributes}})
    assert any("2 executions" in d for d in world.checker.verdict().duplicated)


def test_two_final_statuses_are_wrong(world: World) -> None:
    job, spec = world.job()
    eid = world.execution(job, "done", spec)
    world.finished(job, eid, "failed")
    assert len(world.checker.verdict().wrong) == 1


def test_a_status_that_moves_after_its_end_is_wrong(world: World) -> None:
    job, spec = world.job()
    world.execution(job, "failed", spec)
    world.poll()
    world.api.executions[job][0]["status"] = "running"
    world.poll()
    world.api.executions[job][0]["status"] = "failed"
    assert any("moved after its end" in w for w in world.checker.verdict().wrong)


def test_a_started_execution_without_its_marker_in_the_log_is_wrong(world: World) -> None:
    job, spec = world.job()
    world.execution(job, "done", spec, log=False)
    assert any("lacks the marker" in w for w in world.checker.verdict().wrong)


def test_unfinished_jobs_short_retry_chains_and_missing_webhooks_are_lost(world: World) -> None:
    world.job()  # never gets an execution
    stuck, spec = world.job()
    world.execution(stuck, "enqueued", spec, starts=0)
    short, spec = world.job(retries=2)
    world.execution(short, "failed", spec)
    unheard, spec = world.job(webhook=True)
    world.execution(unheard, "done", spec)
    world.poll()
    lost = world.checker.verdict().lost
    assert len(lost) == 4, lost
    assert world.checker.wait_settled(0.5) is None


def test_a_refused_post_whose_job_exists_is_duplicated(world: World) -> None:
    world.api.refuse = True
    spec = JobSpec("test", "t-refused", "m", {"image": "i", "command": "echo m"})
    assert not world.checker.submit(spec)
    assert world.checker.verdict().ok  # refused and absent: fine
    world.api.tasks["t-refused"] = [str(uuid.uuid4())]  # ... but it was enqueued after all
    assert len(world.checker.verdict().duplicated) == 1


def test_an_execution_failed_for_its_lost_host_is_counted_apart_not_wrong(world: World) -> None:
    """Its host's runner was silent past the limit: a peer failed it; its log is unknown by design. Any other
    execution that ran without its log stays wrong."""
    job, spec = world.job()
    lost = "host h1 lost: its runner gave no sign of life for 60s"
    world.execution(job, "failed", spec, log=False, error=lost)
    verdict = world.checker.verdict()
    assert verdict.ok and len(verdict.taken) == 1, list(verdict.lines())
    other, spec2 = world.job()
    world.execution(other, "failed", spec2, log=False, error="the Docker engine of host h1 has not answered")
    assert any("lacks the marker" in w for w in world.checker.verdict().wrong)
