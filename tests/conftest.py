"""Shared fixtures. Anything touching Kafka, Cassandra or Docker uses the real ones: `backends` makes sure they
run (starting them through the project's deploy scripts when they do not answer) instead of skipping."""

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient

from shared.cassandra import connect
from shared.lifecycle import prepare_backends
from shared.settings import ApiSettings, RunnerSettings, SchedulerSettings, Settings
from shared.topics import Topics

ROOT = Path(__file__).resolve().parents[1]
TEST_IMAGE = "fastlane-test:latest"


def _script(*args: str) -> None:
    subprocess.run([str(ROOT / "deploy" / "scripts" / args[0]), *args[1:]], check=True, timeout=600)


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


class AllSettings(RunnerSettings, SchedulerSettings, ApiSettings):
    """Every service's settings in one object, for tests that run several services in one process."""


@pytest.fixture(scope="session")
def settings(run_id: str) -> AllSettings:
    """Settings of an isolated stack for this test session: its own topics and keyspace on the shared broker
    and node, so tests never see `make run` data or a previous session's messages."""
    return AllSettings(
        topic_prefix=f"test.{run_id}.",
        keyspace=f"test_{run_id}",
        startup_timeout_s=240,
        max_running=4,
    )


@pytest.fixture(scope="session")
def backends(settings: AllSettings) -> Iterator[AllSettings]:
    """Real Kafka, Cassandra and Docker, with this session's topics and schema created."""
    _script("docker.sh")
    _script("test-image.sh", TEST_IMAGE)
    _script("kafka.sh", "start")
    _script("cassandra.sh", "start")
    prepare_backends(settings)
    yield settings
    drop_stack_data(settings)


def drop_stack_data(settings: Settings) -> None:
    """Delete the topics and the keyspace of an isolated stack (best effort for the topics)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.delete_topics(Topics.from_settings(settings).all()).values():
        future.exception()
    cluster, session = connect(settings)
    session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=60)
    cluster.shutdown()


@pytest.fixture(scope="session")
def cassandra(backends: AllSettings) -> Iterator[Session]:
    cluster, session = connect(backends)
    yield session
    cluster.shutdown()
