"""When executions run and how a job's life ends: schedules, retries, expiration, timeout, stop, retry, update.
Everything through the HTTP API against the real stack."""

import time
import uuid

import httpx

from tests.conftest import TEST_IMAGE
from tests.e2e.conftest import CronRun
from tests.e2e.lifecycle import executions, post_job, stays, wait_executions, wait_status


def test_start_at_now_runs(client: httpx.Client) -> None:
    job = post_job(client, "echo at", startAt=int(time.time()))
    assert job["executionId"] is None and job["executionUrl"] is None
    assert client.get(job["jobUrl"]).json()["job"]["scheduled"] is True
    [summary] = wait_executions(client, job["jobUrl"], 1)
    assert "log" not in summary  # a job page lists executions without their logs
    execution = client.get(summary["url"]).json()["execution"]
    assert (execution["status"], execution["log"]) == ("done", "at\n")


def test_start_in_one_second_runs_after_it(client: httpx.Client) -> None:
    posted = time.time()
    job = post_job(client, "echo later", startIn="1s")
    assert executions(client, job["jobUrl"]) == []
    [execution] = wait_executions(client, job["jobUrl"], 1)
    assert execution["status"] == "done"
    started = client.get(execution["url"]).json()["execution"]["startedAt"]
    from datetime import datetime

    assert datetime.fromisoformat(started).timestamp() >= posted + 1


def test_update_moves_a_far_schedule_and_runs_the_new_command_once(client: httpx.Client) -> None:
    task, job_id = f"put-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    url = f"/tasks/{task}/jobs/{job_id}"
    far = client.put(url, json={"image": TEST_IMAGE, "command": "echo old", "startAt": int(time.time()) + 3600})
    assert far.status_code == 200, far.text
    assert set(far.json()) == {"taskId", "jobId", "queueJobId", "taskUrl", "jobUrl"}
    near = client.put(url, json={"image": TEST_IMAGE, "command": "echo new", "startAt": int(time.time()) + 2})
    assert near.status_code == 200
    [execution] = wait_executions(client, url, 1)
    assert (execution["command"], execution["status"]) == ("echo new", "done")
    assert client.get(execution["url"]).json()["execution"]["log"] == "new\n"
    stays(client, url, 1, 3)
    assert client.get(url).json()["job"]["command"] == "echo new"


def test_put_needs_a_uuid_job_id(client: httpx.Client) -> None:
    response = client.put("/tasks/put-bad/jobs/not-a-uuid", json={"image": TEST_IMAGE, "command": "true"})
    assert response.status_code == 400
    assert "UUID" in response.json()["error"]


def test_put_that_runs_now_answers_the_execution(client: httpx.Client) -> None:
    response = client.put(f"/tasks/put-now/jobs/{uuid.uuid4()}", json={"image": TEST_IMAGE, "command": "echo now"})
    body = response.json()
    assert body["executionId"] and body["executionUrl"]
    assert wait_status(client, body["executionUrl"], {"done"})["log"] == "now\n"


def test_failures_are_retried_until_the_limit(client: httpx.Client) -> None:
    job = post_job(client, "bash -c 'exit 3'", retries=2, retryBackoff={"minMs": 200, "factor": 2, "maxMs": 1000})
    found = wait_executions(client, job["jobUrl"], 3)
    assert [e["status"] for e in found] == ["failed"] * 3
    assert sorted(e["attempt"] for e in found) == [1, 2, 3]
    stays(client, job["jobUrl"], 3, 3)


def test_a_success_needs_no_retry(client: httpx.Client) -> None:
    job = post_job(client, "true", retries=3)
    wait_executions(client, job["jobUrl"], 1)
    stays(client, job["jobUrl"], 1, 3)


def test_a_timeout_stops_the_container(client: httpx.Client) -> None:
    job = post_job(client, "sleep 60", timeout=2)
    execution = wait_status(client, job["executionUrl"], {"timedout"}, timeout=30)
    assert "timed out after 2s" in execution["error"]


def test_an_execution_due_after_its_expiration_expires(client: httpx.Client) -> None:
    job = post_job(client, "echo never", startIn="3s", expiration=int(time.time()) + 1)
    [execution] = wait_executions(client, job["jobUrl"], 1)
    assert execution["status"] == "expired"
    assert client.get(execution["url"]).json()["execution"]["log"] == ""


def test_stopping_a_running_execution(client: httpx.Client) -> None:
    job = post_job(client, "sleep 120")
    wait_status(client, job["executionUrl"], {"running"})
    response = client.post(f"{job['executionUrl']}/stop")
    assert response.status_code == 200
    assert response.json()["executionId"] == job["executionId"]
    wait_status(client, job["executionUrl"], {"stopped"}, timeout=30)
    # Stopping what already ended answers 200 and changes nothing.
    assert client.post(f"{job['executionUrl']}/stop").status_code == 200
    assert client.post(f"{job['jobUrl']}/stop").status_code == 200
    time.sleep(1)
    assert client.get(job["executionUrl"]).json()["execution"]["status"] == "stopped"


def test_stopping_a_job_before_it_fires_means_it_never_runs(client: httpx.Client) -> None:
    # The stop follows the POST at once; 10 s leaves the scheduler ample time to read both orders first.
    job = post_job(client, "echo never", startIn="10s")
    response = client.post(f"{job['jobUrl']}/stop")
    assert response.status_code == 200
    assert set(response.json()) == {"taskId", "jobId", "taskUrl", "jobUrl"}
    assert client.get(job["jobUrl"]).json()["job"]["scheduled"] is False
    stays(client, job["jobUrl"], 0, 14)  # 4 s past the time it was due, as before


def test_stopping_a_job_stops_its_running_execution_and_its_retries(client: httpx.Client) -> None:
    job = post_job(client, "sleep 120", retries=3)
    wait_status(client, job["executionUrl"], {"running"})
    assert client.post(f"{job['jobUrl']}/stop").status_code == 200
    wait_status(client, job["executionUrl"], {"stopped"}, timeout=30)
    stays(client, job["jobUrl"], 1, 3)


def test_retry_runs_the_job_again(client: httpx.Client) -> None:
    job = post_job(client, "echo again")
    wait_status(client, job["executionUrl"], {"done"})
    response = client.post(f"{job['jobUrl']}/retry")
    assert response.status_code == 200
    second = response.json()
    assert second["executionId"] != job["executionId"]
    assert client.get(second["executionUrl"]).status_code == 200  # read-your-writes
    assert wait_status(client, second["executionUrl"], {"done"})["log"] == "again\n"
    assert len(executions(client, job["jobUrl"])) == 2


def test_acting_on_unknown_jobs_answers_404(client: httpx.Client) -> None:
    unknown = f"/tasks/nobody/jobs/{uuid.uuid4()}"
    assert client.post(f"{unknown}/stop").status_code == 404
    assert client.post(f"{unknown}/retry").status_code == 404
    assert client.post(f"{unknown}/executions/{uuid.uuid1()}/stop").status_code == 404


def test_cron_fires_every_minute_until_the_job_is_stopped(client: httpx.Client, cron_run: CronRun | None) -> None:
    # Posted when the first end-to-end test started; a thread stopped it as soon as its two executions were there
    # (tests/e2e/conftest.py), so its minutes passed while the other tests ran.
    assert cron_run is not None
    cron_run.thread.join(300)
    assert not cron_run.thread.is_alive(), "the cron job's thread is still waiting"
    if cron_run.error is not None:
        raise cron_run.error
    job = cron_run.job
    assert job["executionId"] is None
    assert len(cron_run.found) >= 2 and all(e["status"] == "done" for e in cron_run.found)
    assert cron_run.stop_status == 200
    assert cron_run.count_after_stop == 2
    # Nothing more until 5 s past the minute boundary after the stop (what is still to wait of it, if anything;
    # executions are never removed, so a count of 2 after that boundary shows none came).
    after_next_minute = cron_run.stopped_at + 60 - cron_run.stopped_at % 60 + 5
    stays(client, job["jobUrl"], 2, after_next_minute - time.time())
    assert len(executions(client, job["jobUrl"])) == 2
