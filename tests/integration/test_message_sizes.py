"""Every message fits by construction: each producer's worst-case content goes through the real broker.

One limit (`max_message_bytes`) is set on every producer and topic. The API bounds a job's order to half of it
(the scheduler keeps the definition in its state and copies it into each ExecutionDue), and the runner clips
logs by their serialized size (JSON writes a NUL byte as six). Control characters are the worst case for both:
each takes six bytes once encoded.
"""

import json
import threading
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.schemas import parse_job_spec
from services.runner.docker_runtime import DockerRuntime
from services.runner.handlers import Limits, run_execution
from services.scheduler.bootstrap import serve as serve_scheduler
from shared.contract.events import ExecutionDue, ExecutionFinished, JobRequested, encode, new_execution_id, utcnow
from shared.contract.topics import Topics
from shared.infra.kafka.producer import EventProducer
from shared.process.settings import ApiSettings, RunnerSettings, Settings
from tests.conftest import TEST_IMAGE
from tests.helpers import eventually, read_to_end, start_thread

ESCAPED = "\x01"  # a control character: one byte raw, six in JSON (\u0001)


def largest_body(settings: Settings, slack: int) -> dict[str, Any]:
    """A body whose order encodes to `slack` bytes under the API's bound (half the message limit)."""
    room = settings.max_message_bytes // 2 - 2_000 - slack  # the order's other fields take under 2 KB
    envs = {f"E{i}": ESCAPED * (room // 6 // 8) for i in range(8)}
    return {"image": TEST_IMAGE, "command": "true", "envs": envs, "cron": "0 0 1 1 *"}


@pytest.fixture
def api(backends: ApiSettings) -> TestClient:
    settings = ApiSettings(**(backends.model_dump() | {"max_body_bytes": backends.max_message_bytes * 2}))
    return TestClient(create_app(settings), base_url="http://testserver")


def test_the_api_publishes_the_largest_order_it_accepts_and_refuses_a_larger_one(
    api: TestClient, backends: Settings
) -> None:
    with api:
        accepted = api.post("/tasks/sizes", json=largest_body(backends, slack=0))
        assert accepted.status_code == 200, accepted.text
        body = largest_body(backends, slack=0)
        body["envs"]["MORE"] = ESCAPED * 3000
        refused = api.post("/tasks/sizes", json=body)
        assert refused.status_code == 413 and "job definition too large" in refused.json()["error"]
    job_id = uuid.UUID(accepted.json()["jobId"])
    events = read_to_end(backends.kafka_bootstrap, Topics.from_settings(backends).jobs)  # published before the 200
    [order] = [e for e in events if isinstance(e, JobRequested) and e.job_id == job_id]
    assert len(encode(order)) > backends.max_message_bytes // 2 - 10_000


def test_the_scheduler_keeps_and_dues_the_largest_order(backends: Settings) -> None:
    topics = Topics.from_settings(backends)
    spec = largest_body(backends, slack=0)
    definition = parse_job_spec(json.dumps({**spec, "cron": None}).encode()).definition(utcnow(), 1800)
    order = JobRequested(task_id="sizes", job_id=uuid.uuid4(), execution_id=new_execution_id(), definition=definition)
    assert len(encode(order)) <= backends.max_message_bytes // 2
    EventProducer(backends).publish(topics.jobs, order)
    thread, stop = start_thread(serve_scheduler, backends)
    try:

        def due() -> ExecutionDue | None:
            events = read_to_end(backends.kafka_bootstrap, topics.due)
            found = [e for e in events if isinstance(e, ExecutionDue) and e.job_id == order.job_id]
            return found[0] if found else None

        found = eventually(due, timeout=60, what="the ExecutionDue of the largest order")
        assert found.envs == definition.envs
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def test_the_runner_reports_the_worst_output_through_the_broker(backends: RunnerSettings) -> None:
    """4 MB of NUL bytes on each stream: 48 MB once escaped, clipped to what fits, the end kept."""
    topics = Topics.from_settings(backends)
    producer = EventProducer(backends)
    limits = Limits(max_log_bytes=64 * 1024 * 1024, stop_grace_s=1, max_message_bytes=backends.max_message_bytes)
    runtime = DockerRuntime(backends.docker_host, log_tail_bytes=limits.log_budget)
    due = ExecutionDue(
        task_id="sizes",
        job_id=uuid.uuid4(),
        execution_id=new_execution_id(),
        image=TEST_IMAGE,
        command="bash -c 'head -c 4000000 /dev/zero; echo -n END; head -c 4000000 /dev/zero >&2; echo -n END >&2'",
    )
    run_execution(due, runtime, lambda e: producer.publish(topics.executions, e), "local", limits, threading.Event())
    events = read_to_end(backends.kafka_bootstrap, topics.executions)  # published before run_execution returned
    [ended] = [e for e in events if isinstance(e, ExecutionFinished) and e.execution_id == due.execution_id]
    assert ended.status == "done"
    assert len(encode(ended)) <= backends.max_message_bytes
    for text in (ended.stdout, ended.stderr):
        assert text.startswith("[fastlane: first ") and text.endswith("\x00" * 100 + "END")
        assert len(text) > limits.log_budget // 6 - 100  # as much as fits is kept
