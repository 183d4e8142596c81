"""Shared fixtures. Anything touching Kafka, Cassandra or Docker uses the real ones: `backends` makes sure they
run (starting them through the project's deploy scripts when they do not answer) instead of skipping."""

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient

from services.migrate import prepare_backends
from shared.contract.topics import Topics
from shared.infra.cassandra import connect
from shared.infra.kafka.admin import ensure_topics
from shared.process.settings import ApiSettings, RunnerSettings, SchedulerSettings, Settings

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


def drop_topics(settings: Settings) -> None:
    """Delete the topics of a prefix (best effort)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.delete_topics(Topics.from_settings(settings).all()).values():
        future.exception()


def drop_stack_data(settings: Settings) -> None:
    """Delete the topics and the keyspace of an isolated stack (best effort for the topics)."""
    drop_topics(settings)
    cluster, session = connect(settings)
    session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=60)
    cluster.shutdown()


@pytest.fixture
def own_topics(backends: AllSettings) -> Iterator[AllSettings]:
    """The session's settings with topics of this test's own, created empty and deleted after: the e2e stack
    (session-scoped, so still running) and other tests' services consume the session's topics, and would take
    this test's messages (its runner runs them, its scheduler schedules them) before the test's own service."""
    settings = backends.model_copy(update={"topic_prefix": f"{backends.topic_prefix}{uuid.uuid4().hex[:6]}."})
    ensure_topics(settings)
    yield settings
    drop_topics(settings)


@pytest.fixture(scope="session")
def cassandra(backends: AllSettings) -> Iterator[Session]:
    cluster, session = connect(backends)
    yield session
    cluster.shutdown()
