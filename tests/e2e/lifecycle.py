"""Helpers for the scheduling and lifecycle end-to-end tests."""

import time
import uuid
from typing import Any

import httpx

from tests.conftest import TEST_IMAGE
from tests.helpers import eventually

FINAL = {"done", "failed", "timedout", "expired", "stopped"}


def post_job(client: httpx.Client, command: str, task: str | None = None, **extra: Any) -> dict[str, Any]:
    task = task or f"life-{uuid.uuid4().hex[:8]}"
    response = client.post(f"/tasks/{task}", json={"image": TEST_IMAGE, "command": command, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def executions(client: httpx.Client, job_url: str) -> list[dict[str, Any]]:
    response = client.get(job_url)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["job"]["executions"]
    return found


def wait_executions(
    client: httpx.Client, job_url: str, count: int, timeout: float = 60, final: bool = True
) -> list[dict[str, Any]]:
    """Wait until the job has `count` executions (all finished, with `final`); newest first."""

    def enough() -> list[dict[str, Any]] | None:
        found = executions(client, job_url)
        if len(found) >= count and (not final or all(e["status"] in FINAL for e in found)):
            return found
        return None

    return eventually(enough, timeout=timeout, interval=0.3, what=f"{count} executions of {job_url}")


def wait_status(client: httpx.Client, execution_url: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        execution: dict[str, Any] = client.get(execution_url).json()["execution"]
        return execution if execution["status"] in statuses else None

    return eventually(reached, timeout=timeout, interval=0.2, what=f"{execution_url} to reach {statuses}")


def stays(client: httpx.Client, job_url: str, count: int, seconds: float) -> None:
    """Assert the job keeps exactly `count` executions for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert len(executions(client, job_url)) == count
        time.sleep(0.5)
