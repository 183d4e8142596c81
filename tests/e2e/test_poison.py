"""Poison: no request, output or message can stop or wedge fastlane.

Each test sends one kind of odd input through the real stack (HTTP, or straight onto a topic as an older
client or another producer could), then checks that the odd job ends in a final state with an `error` that
says why (or is refused at the door with a 400), and that a plain job submitted afterwards still runs to
`done` within 30 s: one client's odd job never stops another's work.
"""

import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from services.devstack import DevStack
from shared.contract.events import ExecutionDue, ExecutionFinished, JobDefinition, JobRequested, RunnerHeartbeat, encode
from shared.contract.topics import Topics
from shared.process.settings import Settings
from tests.conftest import TEST_IMAGE
from tests.e2e.lifecycle import FINAL, post_job, wait_executions, wait_status
from tests.helpers import eventually, parked_headers


def plain_job_still_runs(client: httpx.Client) -> None:
    """The check after every poison: another client's ordinary job is done within 30 s."""
    job = post_job(client, "echo still here", task=f"plain-{uuid.uuid4().hex[:8]}")
    execution = wait_status(client, job["executionUrl"], FINAL, timeout=30)
    assert (execution["status"], execution["log"]) == ("done", "still here\n")


def raw_post(client: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": "application/json"})


def publish(settings: Settings, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "partitioner": "murmur2_random"})
    producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0


def parked(settings: Settings, marker: bytes, timeout: float = 30) -> dict[str, bytes]:
    """The headers of the dead-letter message whose value contains `marker` (waits for it)."""
    return parked_headers(settings.kafka_bootstrap, Topics.from_settings(settings).dead_letter, marker, timeout)


def job_url(stack: DevStack, task: str, job_id: uuid.UUID) -> str:
    """The job's URL once the recorder has its row (a job sent past the API has no early projection)."""
    url = f"{stack.url}/tasks/{task}/jobs/{job_id}"
    eventually(lambda: httpx.get(url).status_code == 200, timeout=30, what=f"{url} to be recorded")
    return url


def request_directly(backends: Settings, task: str, **definition: Any) -> JobRequested:
    """A JobRequested put on the jobs topic without the API's checks (an older API, another producer)."""
    command = JobRequested(
        task_id=task, job_id=uuid.uuid4(), definition=JobDefinition(image=TEST_IMAGE, command="true", **definition)
    )
    publish(backends, Topics.from_settings(backends).jobs, command.key, encode(command))
    return command


# --- refused at the door ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"image": "fastlane-test", "command": "true", "cron": "0 0 31 2 *"}', "never fires"),
        (b'{"image": "fastlane-test", "command": "true", "envs": {"A": "\\ud800"}}', "envs.A: not valid Unicode"),
        (b'{"image": "fastlane-test", "command": "true", "metadata": {"x": ["\\udfff"]}}', "metadata.x[0]"),
        (b'{"image": "fastlane-test", "command": "true", "metadata": {"\\ud800": 1}}', "not valid Unicode"),
        (b'{"image": "fastlane-test", "command": "true", "metadata": {"x": NaN}}', "NaN"),
        (b'{"image": "fastlane-test", "command": "true", "metadata": {"x": 1e999}}', "finite"),
        (b'{"image": "fastlane-test", "command": "true", "metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}", "deep"),
        (b'{"image": "fastlane-test", "command": "true", "metadata": {"x": ' + b"9" * 5000 + b"}}", "digits"),
        (b'{"image": "fastlane-test", "command": "tr\\u0000ue"}', "NUL"),
        (b'{"image": "fastlane-test", "command": "true", "envs": {"A=B": "c"}}', "environment variable name"),
        (b'{"image": "fastlane-test", "command": "true", "startIn": "9999999h"}', "longer than"),
        (b'{"image": "fastlane-test", "command": "true", "startAt": 1e300}', "startAt"),
        (b'{"image": "fastlane-test", "command": "true", "notify": {"fails": ["a@b.co\\n"]}}', "e-mail"),
        (b'{"image": "fastlane-test", "command": "true", "retries": 1, "retryBackoff": {"minMs": 1e400}}', "finite"),
        (b'{"image": "fastlane-test", "command": "tr\xffue"}', "not valid JSON"),
    ],
    ids=[
        "cron-never-fires",
        "surrogate-env",
        "surrogate-metadata",
        "surrogate-key",
        "nan",
        "infinity",
        "deep-nesting",
        "huge-integer",
        "nul-in-command",
        "equals-in-env-name",
        "huge-start-in",
        "huge-start-at",
        "newline-after-email",
        "huge-backoff",
        "invalid-utf8",
    ],
)
def test_odd_bodies_answer_400_with_a_message_and_nothing_else_suffers(
    client: httpx.Client, body: bytes, says: str
) -> None:
    answer = raw_post(client, f"/tasks/odd-{uuid.uuid4().hex[:8]}", body)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["error"]
    plain_job_still_runs(client)


@pytest.mark.parametrize("task", ["abc%0A", "abc%0D", "abc%00", "%C3%A9t%C3%A9", "a" * 201])
def test_task_ids_are_matched_whole(client: httpx.Client, task: str) -> None:
    answer = client.post(f"/tasks/{task}", json={"image": TEST_IMAGE, "command": "true"})
    assert answer.status_code == 400 and "taskId must be" in answer.json()["error"]
    answer = client.put(f"/tasks/{task}/jobs/{uuid.uuid4()}", json={"image": TEST_IMAGE, "command": "true"})
    assert answer.status_code == 400 and "taskId must be" in answer.json()["error"]


@pytest.mark.parametrize("after", ["9" * 250 + ":t", "999999999999999:t", "\u00b2:t", "1:", ":t"])
def test_odd_paging_cursors_answer_400(client: httpx.Client, after: str) -> None:
    for path, params in (("/tasks", {}), ("/search", {"query": "x"})):
        answer = client.get(path, params={**params, "after": after})
        assert answer.status_code == 400 and "nextUrl" in answer.json()["error"], answer.text


@pytest.mark.parametrize("form", ["{%s}", "urn:uuid:%s", "%s%%0A", " %s"])
def test_job_ids_are_matched_whole_in_their_one_written_form(client: httpx.Client, form: str) -> None:
    job_id = form % uuid.uuid4()
    answer = client.put(f"/tasks/ids/jobs/{job_id}", json={"image": TEST_IMAGE, "command": "true"})
    assert answer.status_code == 400 and "jobId must be a UUID" in answer.json()["error"], answer.text
    assert client.get(f"/tasks/ids/jobs/{job_id}").status_code == 400


def test_a_blacklist_host_of_invalid_unicode_answers_400(client: httpx.Client) -> None:
    answer = raw_post(client, "/docker-executor/blacklist", b'{"host": "h\\ud800"}')
    assert answer.status_code == 400, answer.text


# --- accepted, odd at run time ------------------------------------------------------------------------------


def test_output_of_nul_bytes_is_kept_clipped_and_the_execution_ends(client: httpx.Client) -> None:
    # JSON escapes each NUL to six bytes: 200 KB of them used to make a message the broker refused, forever.
    job = post_job(client, "bash -c 'head -c 200000 /dev/zero; head -c 200000 /dev/zero >&2'")
    execution = wait_status(client, job["executionUrl"], FINAL, timeout=60)
    assert execution["status"] == "done", execution["error"][:300]
    for text in (execution["log"], execution["error"]):
        assert text.startswith("[fastlane: first ") and " bytes cut]\n" in text
        assert text.endswith("\x00" * 1000)
    plain_job_still_runs(client)


def test_megabytes_of_binary_output_end_done_with_their_end_kept(client: httpx.Client) -> None:
    command = "bash -c 'head -c 6000000 /dev/urandom; echo; echo THE-END; head -c 3000000 /dev/urandom >&2'"
    job = post_job(client, command)
    execution = wait_status(client, job["executionUrl"], FINAL, timeout=120)
    assert execution["status"] == "done", execution["error"][:300]
    assert execution["log"].endswith("THE-END\n")
    assert "bytes cut]" in execution["log"] and "bytes cut]" in execution["error"]
    plain_job_still_runs(client)


def test_a_missing_binary_fails_and_leaves_no_container(client: httpx.Client) -> None:
    job = post_job(client, "no-such-binary-anywhere")
    execution = wait_status(client, job["executionUrl"], FINAL, timeout=60)
    assert execution["status"] == "failed" and "no-such-binary-anywhere" in execution["error"]

    def containers() -> list[str]:
        found = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=fastlane.execution-id={job['executionId']}"],
            capture_output=True,
            text=True,
            check=True,
        )
        return found.stdout.split()

    eventually(lambda: not containers() or None, timeout=15, what="the never-started container to be removed")
    plain_job_still_runs(client)


def test_retries_with_the_steepest_backoff_keep_going_until_stopped(client: httpx.Client) -> None:
    backoff = {"minMs": 1, "factor": 100, "maxMs": 1}
    job = post_job(client, "false", retries=1000, retryBackoff=backoff)
    wait_executions(client, job["jobUrl"], 8, timeout=60, final=False)
    assert client.post(f"{job['jobUrl']}/stop").status_code == 200
    found = wait_executions(client, job["jobUrl"], 8, timeout=60)
    assert {e["status"] for e in found} <= {"failed", "stopped"}
    plain_job_still_runs(client)


# --- straight onto the topics, past the API's checks ---------------------------------------------------------


def test_a_cron_without_fire_time_sent_past_the_api_fails_the_job_with_the_reason(
    client: httpx.Client, stack: DevStack, backends: Settings
) -> None:
    task = f"poison-{uuid.uuid4().hex[:8]}"
    command = request_directly(backends, task, cron="0 0 31 2 *")
    found = wait_executions(client, job_url(stack, task, command.job_id), 1, timeout=30)
    assert found[0]["status"] == "failed"
    execution = client.get(found[0]["url"]).json()["execution"]
    assert "cron `0 0 31 2 *` has no next fire time" in execution["error"]
    plain_job_still_runs(client)


def test_a_time_zone_that_does_not_exist_sent_past_the_api_fails_the_job(
    client: httpx.Client, stack: DevStack, backends: Settings
) -> None:
    task = f"poison-{uuid.uuid4().hex[:8]}"
    command = request_directly(backends, task, cron="* * * * *", cron_timezone="Mars/Olympus")
    found = wait_executions(client, job_url(stack, task, command.job_id), 1, timeout=30)
    execution = client.get(found[0]["url"]).json()["execution"]
    assert execution["status"] == "failed" and "Mars/Olympus" in execution["error"]
    plain_job_still_runs(client)


def test_a_start_time_without_time_zone_sent_past_the_api_fails_the_job(
    client: httpx.Client, stack: DevStack, backends: Settings
) -> None:
    # Naive and aware datetimes cannot be compared: the scheduler's timer raised TypeError at every turn.
    task = f"poison-{uuid.uuid4().hex[:8]}"
    naive = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1)
    command = request_directly(backends, task, start_at=naive)
    found = wait_executions(client, job_url(stack, task, command.job_id), 1, timeout=30)
    execution = client.get(found[0]["url"]).json()["execution"]
    assert execution["status"] == "failed" and "cannot schedule" in execution["error"]
    plain_job_still_runs(client)


def test_garbage_on_every_topic_is_parked_with_its_reason(client: httpx.Client, backends: Settings) -> None:
    topics = Topics.from_settings(backends)
    marker = f"garbage-{uuid.uuid4()}".encode()
    for topic in (topics.jobs, topics.due, topics.executions, topics.heartbeats, topics.control):
        publish(backends, topic, b"k", b"\x00\xff not json " + marker)
    assert b"not an event of the contract" in parked(backends, marker)["reason"]
    plain_job_still_runs(client)


def test_a_heartbeat_cassandra_refuses_is_parked_and_the_recorder_goes_on(
    client: httpx.Client, backends: Settings
) -> None:
    # A host name longer than a Cassandra partition key may be (64 KiB) fails on every attempt.
    beat = RunnerHeartbeat(host="h" * 70_000, capacity=1, running=0)
    publish(backends, Topics.from_settings(backends).heartbeats, b"odd-host", encode(beat))
    headers = parked(backends, b"h" * 1000, timeout=60)
    assert headers["origin-topic"] == Topics.from_settings(backends).heartbeats.encode()
    assert headers["reason"]
    plain_job_still_runs(client)


def test_an_execution_id_outside_the_contract_is_parked_or_run_never_wedging(
    client: httpx.Client, stack: DevStack, backends: Settings
) -> None:
    # Execution ids are time-based (v1) UUIDs; a random one cannot be placed in time by the recorder.
    task = f"poison-{uuid.uuid4().hex[:8]}"
    due = ExecutionDue(
        task_id=task, job_id=uuid.uuid4(), execution_id=uuid.uuid4(), image=TEST_IMAGE, command="echo odd id"
    )
    publish(backends, Topics.from_settings(backends).due, due.key, encode(due))
    parked(backends, str(due.execution_id).encode(), timeout=60)
    plain_job_still_runs(client)


def test_a_poison_message_does_not_hold_up_the_messages_behind_it(
    client: httpx.Client, stack: DevStack, backends: Settings
) -> None:
    """Ten odd schedules sent at once past the API, then a plain job: it still runs within 30 s, and each odd
    job has its failed execution."""
    task = f"poison-{uuid.uuid4().hex[:8]}"
    commands = [request_directly(backends, task, cron="0 0 30 2 *") for _ in range(10)]
    plain_job_still_runs(client)
    for command in commands:
        found = wait_executions(client, job_url(stack, task, command.job_id), 1, timeout=30)
        assert found[0]["status"] == "failed"


# --- a backing service that stops answering is waited out, not parked ------------------------------------------


def broker_pid() -> int:
    """The JVM of the tests' broker (the fault suite may run another, on 127.0.0.2, with its own config)."""
    found = subprocess.run(["pgrep", "-af", "kafka.Kafka "], capture_output=True, text=True, check=True)
    pids = [int(line.split()[0]) for line in found.stdout.splitlines() if "/faults/" not in line]
    assert len(pids) == 1, f"expected one Kafka broker JVM, found {found.stdout}"
    return pids[0]


def test_a_broker_pause_longer_than_every_kafka_timeout_is_waited_out(client: httpx.Client, stack: DevStack) -> None:
    """The broker is paused (SIGSTOP) for 15 s, past the 10 s session and transaction timeouts: the scheduler's
    transaction is fenced and its group membership lost. Every service waits, recovers, and runs jobs again;
    the API answers 503 (never 500) while the broker is away."""
    pid = broker_pid()
    subprocess.run(["kill", "-STOP", str(pid)], check=True)
    try:
        time.sleep(3)
        during = client.post(
            f"/tasks/paused-{uuid.uuid4().hex[:8]}", json={"image": TEST_IMAGE, "command": "true"}, timeout=30
        )
        assert during.status_code == 503 and "unavailable" in during.json()["error"], during.text
        time.sleep(12)
    finally:
        subprocess.run(["kill", "-CONT", str(pid)], check=True)
    job = post_job(client, "echo after the pause", task=f"plain-{uuid.uuid4().hex[:8]}")
    execution = wait_status(client, job["executionUrl"], FINAL, timeout=120)
    assert (execution["status"], execution["log"]) == ("done", "after the pause\n")
    dead = {name: proc.returncode for name, proc in stack.procs.items() if proc.poll() is not None}
    assert not dead, f"services exited during the pause: {dead}"
    plain_job_still_runs(client)


def test_an_execution_end_the_recorder_cannot_store_still_ends_the_execution_with_the_reason(
    client: httpx.Client, stack: DevStack, backends: Settings
) -> None:
    # An exit code beyond Cassandra's int (another runner version, another producer): the row write fails on
    # every attempt; the execution is recorded ended without what could not be stored, and why.
    task, job_id, execution_id = f"poison-{uuid.uuid4().hex[:8]}", uuid.uuid4(), uuid.uuid1()
    ended = ExecutionFinished(
        task_id=task, job_id=job_id, execution_id=execution_id, status="failed", exit_code=2**40, stdout="lost"
    )
    publish(backends, Topics.from_settings(backends).executions, ended.key, encode(ended))
    url = f"{stack.url}/tasks/{task}/jobs/{job_id}/executions/{execution_id}"
    execution = eventually(
        lambda: (r := httpx.get(url)).status_code == 200 and r.json()["execution"], timeout=30, what=url
    )
    assert execution["status"] == "failed" and execution["exitCode"] is None
    assert "could not record this execution's outcome" in execution["error"]
    assert parked(backends, str(execution_id).encode())["origin-topic"].endswith(b"executions")
    plain_job_still_runs(client)
