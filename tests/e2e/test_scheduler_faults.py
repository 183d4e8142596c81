"""Durable timers under faults: a scheduler killed with -9 mid-firing, and two schedulers sharing the work.
Each timer must fire exactly once: one ExecutionDue on the topic and one execution on the job."""

import re
import signal
import time
import uuid
from collections import Counter
from typing import Any

import httpx

from services.devstack import DevStack
from shared.contract.events import ExecutionDue
from shared.contract.topics import Topics
from shared.process.settings import Settings
from tests.conftest import TEST_IMAGE
from tests.e2e.lifecycle import executions, wait_executions
from tests.helpers import eventually, read_events


def post_delayed(client: httpx.Client, task: str, start_at: float) -> dict[str, Any]:
    response = client.post(f"/tasks/{task}", json={"image": TEST_IMAGE, "command": "true", "startAt": start_at})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_each_fired_once(client: httpx.Client, settings: Settings, jobs: list[dict[str, Any]]) -> list[ExecutionDue]:
    for job in jobs:
        wait_executions(client, job["jobUrl"], 1, timeout=120)
    due = read_events(settings.kafka_bootstrap, Topics.from_settings(settings).due, 0, timeout=5)
    ids = {uuid.UUID(j["jobId"]) for j in jobs}
    per_job = Counter(e.job_id for e in due if isinstance(e, ExecutionDue) and e.job_id in ids)
    assert set(per_job) == ids, f"{len(ids - set(per_job))} timers never fired"
    assert set(per_job.values()) == {1}, f"fired more than once: {[k for k, v in per_job.items() if v > 1]}"
    for job in jobs:
        assert len(executions(client, job["jobUrl"])) == 1
    return [e for e in due if isinstance(e, ExecutionDue) and e.job_id in ids]


def test_a_scheduler_killed_mid_firing_fires_every_timer_exactly_once(
    client: httpx.Client, stack: DevStack, backends: Settings
) -> None:
    start = time.time()
    # 50 timers spread from 4 s to 9 s from now; the scheduler dies in the middle of them.
    jobs = [post_delayed(client, "fault-kill", start + 4 + i * 0.1) for i in range(50)]
    time.sleep(max(0.0, start + 6.5 - time.time()))
    stack.kill("scheduler")
    killed_at = time.time()
    time.sleep(2)
    stack.start("scheduler")
    fired = assert_each_fired_once(client, backends, jobs)
    before = [e for e in fired if e.occurred_at.timestamp() < killed_at]
    assert 0 < len(before) < 50, "the kill was meant to land while timers were firing"


def last_assignment(stack: DevStack, name: str) -> list[int]:
    lines = re.findall(r"partitions assigned partitions=\[([0-9, ]*)\]", stack.log_tail(name, 200_000))
    return [int(p) for p in lines[-1].split(",") if p.strip()] if lines else []


def test_two_schedulers_share_the_timers_and_fire_each_once(
    client: httpx.Client, stack: DevStack, backends: Settings
) -> None:
    stack.start("scheduler", name="scheduler-2")
    try:
        eventually(
            lambda: last_assignment(stack, "scheduler") and last_assignment(stack, "scheduler-2"),
            timeout=60,
            what="both schedulers to own partitions",
        )
        assert not set(last_assignment(stack, "scheduler")) & set(last_assignment(stack, "scheduler-2"))
        start = time.time()
        jobs = [post_delayed(client, f"fault-pair-{i % 7}", start + 3) for i in range(100)]
        assert_each_fired_once(client, backends, jobs)
    finally:
        stack.terminate("scheduler-2")


def test_a_paused_scheduler_whose_partitions_moved_cannot_fire_them_when_it_resumes(
    client: httpx.Client, stack: DevStack, backends: Settings
) -> None:
    """A zombie: scheduler-2 holds timers, is paused (SIGSTOP) past its 10 s session and transaction timeouts,
    its partitions move to the other scheduler, which fires the timers; scheduler-2 resumes with the same
    timers overdue in its memory. Its transactions carry its consumer-group generation, which is no longer the
    group's: they are refused and aborted, so each timer fires exactly once."""
    stack.start("scheduler", name="scheduler-2")
    try:
        eventually(
            lambda: last_assignment(stack, "scheduler") and last_assignment(stack, "scheduler-2"),
            timeout=60,
            what="both schedulers to own partitions",
        )
        start = time.time()
        jobs = [post_delayed(client, f"fault-zombie-{i % 7}", start + 15) for i in range(60)]
        time.sleep(3)  # both have taken their jobs' orders and hold the timers
        zombie = stack.procs["scheduler-2"]
        zombie.send_signal(signal.SIGSTOP)
        try:
            # The other scheduler takes the zombie's partitions after its session timeout and fires every timer.
            time.sleep(max(0.0, start + 25 - time.time()))
        finally:
            zombie.send_signal(signal.SIGCONT)
        fired = assert_each_fired_once(client, backends, jobs)
        time.sleep(10)  # what the resumed zombie might publish would show by now
        assert_each_fired_once(client, backends, jobs)
        owners = Counter(e.job_id for e in fired)
        assert len(owners) == len(jobs)
        print("--- zombie's log after it resumed ---\n" + stack.log_tail("scheduler-2", 4000))
    finally:
        stack.terminate("scheduler-2")
