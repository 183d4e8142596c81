"""What the benches share: a private topic prefix and keyspace, the fastlane services started on them, and
the keyspace dropped afterwards, so a bench neither sees nor leaves `make run` data."""

import contextlib
import os
import sys
import tempfile
import uuid
from collections import defaultdict
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
def stack_url(url: str | None, **devstack: Any) -> Iterator[str]:
    """The API address to bench: `url` (a running stack, such as `make run`'s, used as it is), else a private
    stack of the five services started for the bench on a fresh prefix and keyspace."""
    if url:
        yield url.rstrip("/")
        return
    with private_backends() as settings, private_stack(settings, **devstack) as stack:
        yield stack.url


def capacity(client: Any) -> int:
    """How many executions the stack's available hosts run at once (from /status)."""
    hosts = client.get("/status").json()["hosts"]
    return sum(h["capacity"] or 0 for h in hosts if h["available"])


@contextlib.contextmanager
def private_stack(settings: Settings, services: tuple[str, ...] = SERVICES, **devstack: Any) -> Iterator[DevStack]:
    """The services on `settings`' prefix and keyspace, up and answering; stopped on exit."""
    with (
        tempfile.TemporaryDirectory() as logs,
        DevStack(settings.topic_prefix, settings.keyspace, Path(logs), services=services, **devstack) as stack,
    ):
        yield stack


# Which process is which, by a word of its command line (Linux /proc); the first match names it.
PROCESSES = (
    ("kafka", b"kafka.Kafka"),
    ("cassandra", b"CassandraDaemon"),
    ("api", b"services.api"),
    ("scheduler", b"services.scheduler"),
    ("runner", b"services.runner"),
    ("recorder", b"services.recorder"),
    ("notifier", b"services.notifier"),
    ("wrk", b"wrk\x00"),
    ("docker engine", b"dockerd"),
    ("docker engine", b"containerd"),
)


def cpu_by_process() -> dict[str, float]:
    """CPU seconds used so far by each kind of process (summed over processes of a kind). A process that names
    no kind (a uvicorn worker of the API, started by multiprocessing) counts as its parent's kind."""
    procs: dict[int, tuple[int, bytes, float]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        procs[int(pid)] = (int(fields[1]), command, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))

    def kind(pid: int, depth: int = 0) -> str | None:
        parent, command, _ = procs[pid]
        for name, word in PROCESSES:
            if word in command:
                return name
        return kind(parent, depth + 1) if depth < 1 and parent in procs else None

    used: dict[str, float] = defaultdict(float)
    for pid, (_, _, seconds) in procs.items():
        name = kind(pid)
        if name is not None:
            used[name] += seconds
    return used


def machine_cpu() -> float:
    """CPU seconds the whole machine spent busy so far (all cores, from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
