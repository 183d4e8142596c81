"""The read side through HTTP: logs, listing and search (recorder-maintained tables), execution pages."""

import uuid

import httpx

from shared.contract.topics import Topics
from shared.process.settings import Settings
from tests.e2e.lifecycle import post_job, wait_executions, wait_status
from tests.helpers import eventually


def test_logs_as_plain_text_for_an_execution_and_for_the_job(client: httpx.Client) -> None:
    job = post_job(client, "bash -c 'echo out; echo err >&2'")
    wait_status(client, job["executionUrl"], {"done"})
    for base in (job["executionUrl"], job["jobUrl"]):
        stdout = client.get(f"{base}/stdout")
        assert stdout.status_code == 200 and stdout.headers["content-type"].startswith("text/plain")
        assert stdout.text == "out\n"
        assert client.get(f"{base}/stderr").text == "err\n"
        assert client.get(f"{base}/logs").text == "out\n-=-\nerr\n"


def test_logs_of_unknown_things_answer_404(client: httpx.Client) -> None:
    job = post_job(client, "true", startIn="1h")
    assert client.get(f"{job['jobUrl']}/logs").status_code == 404  # no execution yet
    assert client.get(f"/tasks/none/jobs/{uuid.uuid4()}/stdout").status_code == 404


def search(client: httpx.Client, word: str) -> list[str]:
    response = client.get("/search", params={"query": word})
    assert response.status_code == 200, response.text
    return [item["taskId"] for item in response.json()["items"]]


def test_search_matches_whole_words_of_task_ids(client: httpx.Client) -> None:
    u = uuid.uuid4().hex[:6]
    for task in (f"hello{u}-world{u}", f"hello{u}", f"other{u}"):
        post_job(client, "true", task=task)
    eventually(lambda: len(search(client, f"hello{u}")) == 2, timeout=30, what="the recorder to index the tasks")
    assert search(client, f"world{u}") == [f"hello{u}-world{u}"]
    assert search(client, f"hel{u}") == []
    assert search(client, f"hello{u}") == [f"hello{u}", f"hello{u}-world{u}"]  # newest first
    body = client.get("/search", params={"query": f"HELLO{u}"}).json()
    assert body["total"] == 2 and body["page"] == 1 and body["pages"] == 1
    assert body["hasNext"] is False and body["nextUrl"] is None
    assert client.get("/search").status_code == 400
    assert client.get("/search", params={"query": "two words"}).status_code == 400


def test_walking_the_task_list_visits_every_task_once(client: httpx.Client) -> None:
    u = uuid.uuid4().hex[:6]
    mine = [f"walk{u}-{i}" for i in range(12)]
    for task in mine:
        post_job(client, "true", task=task)
    eventually(
        lambda: client.get("/search", params={"query": f"walk{u}"}).json()["total"] == 12,
        timeout=30,
        what="the recorder to index the 12 tasks",
    )
    first = client.get("/tasks").json()
    assert first["perPage"] == 10 and first["page"] == 1 and first["hasPrev"] is False
    seen: list[str] = []
    page: dict = first  # type: ignore[type-arg]
    while True:
        seen += [item["taskId"] for item in page["items"]]
        for item in page["items"]:
            assert set(item) == {"taskId", "createdAt", "lastModifiedAt", "jobsCount", "url"}
        if not page["hasNext"]:
            break
        # New tasks arriving mid-walk must not shift the pages: nextUrl continues after the last one seen.
        post_job(client, "true", task=f"walk{u}-late-{len(seen)}")
        page = client.get(page["nextUrl"]).json()
    assert len(seen) == len(set(seen)), "a task was listed twice"
    assert set(mine) <= set(seen)
    assert len(seen) >= first["total"]
    created = [item["createdAt"] for item in first["items"]]
    assert created == sorted(created, reverse=True)
    assert client.get("/tasks", params={"page": 0}).status_code == 400
    assert client.get("/tasks", params={"page": "x"}).status_code == 400


def test_a_jobs_executions_come_in_pages_newest_first(client: httpx.Client) -> None:
    job = post_job(client, "bash -c 'exit 1'", retries=2, retryBackoff={"minMs": 100, "factor": 1, "maxMs": 100})
    wait_executions(client, job["jobUrl"], 3)
    first = client.get(job["jobUrl"]).json()["job"]
    assert first["executionCount"] == 3
    assert [e["attempt"] for e in first["executions"]] == [3, 2, 1]
    task = client.get(job["taskUrl"])
    assert task.status_code == 200
    eventually(
        lambda: [i for i in client.get("/tasks").json()["items"] if i["taskId"] == job["taskId"]],
        timeout=30,
        what="the task in the listing",
    )


def test_status_shows_hosts_running_containers_scheduled_jobs_counts_and_queues(
    client: httpx.Client, backends: Settings
) -> None:
    def status() -> dict:  # type: ignore[type-arg]
        response = client.get("/status")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    hosts = eventually(lambda: status()["hosts"], timeout=30, what="a runner heartbeat")
    [host] = [h for h in hosts if h["host"] == "local"]
    assert (host["available"], host["blacklisted"], host["circuit"], host["error"]) == (True, False, "closed", None)
    assert host["capacity"] == 4

    running = post_job(client, "sleep 4")
    wait_status(client, running["executionUrl"], {"running"})
    eventually(
        lambda: any(c["executionId"] == running["executionId"] for c in status()["containers"]["running"]),
        timeout=15,
        what="the running container in /status",
    )
    later = post_job(client, "true", startIn="1h")
    eventually(
        lambda: any(j["jobId"] == later["jobId"] for j in status()["jobs"]["scheduled"]),
        timeout=15,
        what="the scheduled job in /status",
    )
    client.post(f"{later['jobUrl']}/stop")
    wait_status(client, running["executionUrl"], {"done"})
    eventually(
        lambda: (
            not any(c["executionId"] == running["executionId"] for c in status()["containers"]["running"])
            and not any(j["jobId"] == later["jobId"] for j in status()["jobs"]["scheduled"])
        ),
        timeout=15,
        what="the finished container and the stopped job to leave /status",
    )
    body = status()
    assert body["tasks"]["count"] >= 2 and body["jobs"]["count"] >= 2
    topics = Topics.from_settings(backends)
    assert set(body["queues"]) == {topics.jobs, topics.due, topics.executions, topics.output}
    assert all(isinstance(q["length"], int) and q["length"] >= 0 for q in body["queues"].values())
