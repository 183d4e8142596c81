"""A job through the HTTP API, Kafka, the scheduler, a real container, the recorder and back."""

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_IMAGE
from tests.e2e.lifecycle import FINAL, post_job, wait_status
from tests.helpers import eventually


def enqueue(client: httpx.Client, command: str, task: str | None = None, **extra: Any) -> dict[str, Any]:
    return post_job(client, command, task=task, **extra)


def finished_execution(client: httpx.Client, url: str, timeout: float = 60) -> dict[str, Any]:
    return wait_status(client, url, FINAL, timeout=timeout)


def test_a_successful_command_is_done_with_its_output(client: httpx.Client) -> None:
    job = enqueue(client, "echo 'it works'")
    execution = finished_execution(client, job["executionUrl"])
    assert execution["status"] == "done"
    assert execution["exitCode"] == 0
    assert execution["log"] == "it works\n"
    assert execution["error"] == ""
    assert execution["startedAt"] and execution["finishedAt"] and execution["createdAt"]
    assert execution["createdAt"] <= execution["startedAt"] <= execution["finishedAt"]
    assert (execution["image"], execution["command"]) == (TEST_IMAGE, "echo 'it works'")


def test_a_failing_command_is_failed_with_its_exit_code(client: httpx.Client) -> None:
    job = enqueue(client, """bash -c 'echo "it failed" && exit 123'""")
    execution = finished_execution(client, job["executionUrl"])
    assert (execution["status"], execution["exitCode"]) == ("failed", 123)
    assert execution["log"] == "it failed\n"


def test_an_unknown_command_fails_with_127_and_says_so(client: httpx.Client) -> None:
    job = enqueue(client, "bash -c 'qwe'")
    execution = finished_execution(client, job["executionUrl"])
    assert (execution["status"], execution["exitCode"]) == ("failed", 127)
    assert "command not found" in execution["error"]


def test_a_binary_missing_from_the_image_fails_with_the_engine_message(client: httpx.Client) -> None:
    job = enqueue(client, "no-such-binary --flag")
    execution = finished_execution(client, job["executionUrl"])
    assert execution["status"] == "failed"
    assert execution["exitCode"] is None
    assert "no-such-binary" in execution["error"]


def test_envs_reach_the_container(client: httpx.Client) -> None:
    job = enqueue(client, "bash -c 'echo $GREETING'", envs={"GREETING": "hello from envs"})
    assert finished_execution(client, job["executionUrl"])["log"] == "hello from envs\n"


def test_the_post_answers_every_id_and_url(client: httpx.Client) -> None:
    task = f"ids-{uuid.uuid4().hex[:8]}"
    job = enqueue(client, "true", task=task)
    assert set(job) == {"taskId", "jobId", "executionId", "queueJobId", "taskUrl", "jobUrl", "executionUrl"}
    assert job["taskId"] == task
    assert job["taskUrl"].endswith(f"/tasks/{task}")
    assert job["jobUrl"] == f"{job['taskUrl']}/jobs/{job['jobId']}"
    assert job["executionUrl"] == f"{job['jobUrl']}/executions/{job['executionId']}"
    uuid.UUID(job["jobId"]), uuid.UUID(job["executionId"]), uuid.UUID(job["queueJobId"])


def test_reads_right_after_the_post_already_answer(client: httpx.Client) -> None:
    job = enqueue(client, "sleep 2")
    for url in (job["taskUrl"], job["jobUrl"], job["executionUrl"]):
        assert client.get(url).status_code == 200, url
    execution = client.get(job["executionUrl"]).json()["execution"]
    assert execution["status"] == "enqueued"
    assert [j["id"] for j in client.get(job["taskUrl"]).json()["jobs"]] == [job["jobId"]]
    job_doc = client.get(job["jobUrl"]).json()["job"]
    assert job_doc["executionCount"] == 1
    assert job_doc["executions"][0]["executionId"] == job["executionId"]


def test_status_goes_enqueued_running_done(client: httpx.Client) -> None:
    job = enqueue(client, "sleep 3")
    seen: list[str] = []

    def observe() -> bool:
        status = client.get(job["executionUrl"]).json()["execution"]["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status in FINAL

    eventually(observe, timeout=60, interval=0.1, what="the execution to finish")
    assert seen == ["enqueued", "running", "done"]


def test_the_enqueuers_address_is_recorded(client: httpx.Client) -> None:
    task = f"ip-{uuid.uuid4().hex[:8]}"
    response = client.post(
        f"/tasks/{task}",
        json={"image": TEST_IMAGE, "command": "true"},
        headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.1"},
    )
    body = response.json()
    assert client.get(body["executionUrl"]).json()["execution"]["requestIPAddress"] == "203.0.113.9"
    assert client.get(body["jobUrl"]).json()["job"]["requestIPAddress"] == "203.0.113.9"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"command": "echo"}', "image: is required"),
        (b'{"image": "busybox"}', "command: is required"),
        (b'{"image": "busybox", "command": "echo", "envs": {"A": 1}}', "envs.A"),
        (b'{"image": "busybox", "command": "echo", "notify": {"fails": ["nobody"]}}', "not an e-mail address"),
        (b'{"image": "busybox", "command": "echo", "webhooks": {"fails": [{"url": "file:///x"}]}}', "http or https"),
        (b'{"image": "busybox", "command": "echo", "startIn": "5m", "cron": "* * * * *"}', "at most one of"),
        (b'{"image": "busybox", "command": "echo", "cron": "* * *"}', "5-field cron"),
        (b'{"image": "busybox", "command": "echo", "startIn": "soon"}', "not a duration"),
        (b'{"image": "busybox", "command": "echo", "retries": -1}', "retries"),
    ],
)
def test_bad_requests_answer_400_with_a_message(client: httpx.Client, body: bytes, fragment: str) -> None:
    response = client.post("/tasks/bad-requests", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_unknown_things_answer_404_and_bad_ids_400(client: httpx.Client) -> None:
    job = enqueue(client, "true")
    unknown = uuid.uuid4()
    assert client.get(f"/tasks/no-such-task-{unknown}").status_code == 404
    assert client.get(f"{job['taskUrl']}/jobs/{unknown}").status_code == 404
    assert client.get(f"{job['jobUrl']}/executions/{uuid.uuid1()}").status_code == 404
    response = client.get(f"{job['taskUrl']}/jobs/not-a-uuid")
    assert response.status_code == 400
    assert "jobId must be a UUID" in response.json()["error"]
    assert client.post("/tasks/has%20space", json={"image": "x", "command": "y"}).status_code == 400


def test_trailing_slashes_are_optional(client: httpx.Client) -> None:
    task = f"slash-{uuid.uuid4().hex[:8]}"
    response = client.post(f"/tasks/{task}/", json={"image": TEST_IMAGE, "command": "true"})
    assert response.status_code == 200
    assert client.get(f"/tasks/{task}/").status_code == 200
