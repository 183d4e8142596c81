"""The whole stack for end-to-end tests: the five services as real processes, as `make run` starts them,
on this session's isolated topics and keyspace, with the API on a port of its own."""

from collections.abc import Iterator

import httpx
import pytest

from services.devstack import SERVICES, DevStack
from shared.process.settings import RunnerSettings


@pytest.fixture(scope="session")
def stack(backends: RunnerSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    stack = DevStack(
        backends.topic_prefix,
        backends.keyspace,
        tmp_path_factory.mktemp("services"),
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
