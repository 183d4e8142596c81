"""What the benches share: a private topic prefix and keyspace, the fastlane services started on them, and
the keyspace dropped afterwards, so a bench neither sees nor leaves `make run` data."""

import contextlib
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.devstack import SERVICES, DevStack
from services.migrate import prepare_backends
from shared.infra.cassandra import connect
from shared.process.settings import Settings


@contextlib.contextmanager
def private_backends() -> Iterator[Settings]:
    """Settings with a fresh topic prefix and keyspace, both created; the keyspace is dropped on exit."""
    run_id = uuid.uuid4().hex[:8]
    settings = Settings(topic_prefix=f"bench.{run_id}.", keyspace=f"bench_{run_id}")
    prepare_backends(settings)
    try:
        yield settings
    finally:
        cluster, session = connect(settings)
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=120)
        cluster.shutdown()


@contextlib.contextmanager
def private_stack(settings: Settings, services: tuple[str, ...] = SERVICES, **devstack: Any) -> Iterator[DevStack]:
    """The services on `settings`' prefix and keyspace, up and answering; stopped on exit."""
    with (
        tempfile.TemporaryDirectory() as logs,
        DevStack(settings.topic_prefix, settings.keyspace, Path(logs), services=services, **devstack) as stack,
    ):
        yield stack
