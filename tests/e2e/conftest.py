"""The whole stack for end-to-end tests: the five services as real processes, as `make run` starts them,
on this session's isolated topics and keyspace, with the API on a port of its own."""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from services.devstack import SERVICES, DevStack
from shared.process.settings import RunnerSettings
from tests.e2e.lifecycle import executions, post_job, wait_executions

CRON_TEST = "test_cron_fires_every_minute_until_the_job_is_stopped"


@pytest.fixture(scope="session")
def stack(backends: RunnerSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    stack = DevStack(
        backends.topic_prefix,
        backends.keyspace,
        tmp_path_factory.mktemp("services"),
        migrated=True,  # by `backends`
        FASTLANE_RETRY_BACKOFF_MIN_MS="500",
        FASTLANE_STOP_GRACE_S="2",
    )
    with stack:
        yield stack
        killed = stack.stop()
        for name in SERVICES:
            print(f"--- {name} log tail ---\n{stack.log_tail(name, 2000)}")
        assert not killed, f"did not stop within 30 s of SIGTERM: {killed}"


@pytest.fixture
def client(stack: DevStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        yield c


@dataclass
class CronRun:
    """A `* * * * *` job and what a thread saw of it: its first two executions, the answer to the stop sent as soon
    as they were there, the count of executions right after it and when it was sent."""

    job: dict[str, Any]
    thread: threading.Thread = field(init=False)
    found: list[dict[str, Any]] = field(default_factory=list)
    stop_status: int = 0
    count_after_stop: int = -1
    stopped_at: float = 0.0
    error: BaseException | None = None

    def follow(self, url: str) -> None:
        try:
            with httpx.Client(base_url=url, timeout=10) as client:
                # Other tests overlap this wait: one that pauses the broker (tests/e2e/test_poison.py) can delay a
                # fire past the scheduler's 30 s grace, which skips it: room for a third minute boundary.
                self.found = wait_executions(client, self.job["jobUrl"], 2, timeout=270)
                self.stop_status = client.post(f"{self.job['jobUrl']}/stop").status_code
                self.stopped_at = time.time()
                self.count_after_stop = len(executions(client, self.job["jobUrl"]))
        except BaseException as exc:  # handed to the test, which raises it
            self.error = exc


@pytest.fixture(scope="session", autouse=True)
def cron_run(request: pytest.FixtureRequest) -> Iterator[CronRun | None]:
    """The cron test (tests/e2e/test_lifecycle.py) needs two minute boundaries, then the one after its stop: its
    job is posted when the first end-to-end test starts, and a thread waits for its two executions and stops it,
    while the other tests run; the test checks what the thread saw and that nothing ran past the next boundary.
    Nothing when the cron test is not among the tests to run."""
    if not any(item.name == CRON_TEST for item in request.session.items):
        yield None
        return
    stack: DevStack = request.getfixturevalue("stack")
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        run = CronRun(post_job(client, "echo tick", cron="* * * * *"))
    run.thread = threading.Thread(target=run.follow, args=(stack.url,), daemon=True)
    run.thread.start()
    yield run  # the test joins the thread; not joined here, so a session cut short does not wait for it
