"""Remove leftover fastlane containers from this runner's Docker host: ended ones that no execution in the
host's ledger still needs (normally the runner removes each container once its logs are recorded; leftovers
come from crashes or from executions taken away from a lost host).

    .venv/bin/python -m services.runner.prune [--dry-run] [--min-age SECONDS]   (the runner's FASTLANE_* settings)
"""

import argparse
import logging
import uuid
from datetime import timedelta

from services.runner.bootstrap import docker_tls
from services.runner.docker_runtime import DockerRuntime
from services.runner.ledger import CassandraLedger
from services.runner.ports import ContainerRuntime, Ledger
from shared.contract.events import utcnow
from shared.infra.cassandra import connect
from shared.process.logs import setup_logging
from shared.process.settings import RunnerSettings

log = logging.getLogger("prune")


def prune(
    runtime: ContainerRuntime, ledger: Ledger, host: str, min_age_s: float = 60.0, dry_run: bool = False
) -> list[str]:
    """Remove the containers that ended over `min_age_s` ago (a runner reads the logs of its containers as
    they end) and whose execution this host does not hold; returns their ids."""
    held = {due.execution_id for due in ledger.held(host)}
    ended_before = utcnow() - timedelta(seconds=min_age_s)
    removed = []
    for container_id, execution_id, state in runtime.executions():
        if state in ("running", "created", "restarting", "paused") or uuid.UUID(execution_id) in held:
            continue
        finished = runtime.finished_at(container_id)
        if finished is None or finished > ended_before:
            continue
        if not dry_run:
            runtime.remove(container_id)
        removed.append(container_id)
        log.info("removed" if not dry_run else "would remove", extra={"container": container_id[:12]})
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--min-age", type=float, default=60.0, help="seconds since a container ended (default 60)")
    args = parser.parse_args()
    settings = RunnerSettings()
    setup_logging(settings)
    cluster, session = connect(settings)
    try:
        runtime = DockerRuntime(settings.docker_host, tls=docker_tls(settings))
        removed = prune(
            runtime, CassandraLedger(session, settings.keyspace), settings.host_label, args.min_age, args.dry_run
        )
        print(f"{'would remove' if args.dry_run else 'removed'} {len(removed)} container(s)")
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
