"""`make prune` against the real engine and ledger: ended containers nobody needs go, others stay."""

import time
import uuid

from cassandra.cluster import Session

from services.runner.docker_runtime import DockerRuntime
from services.runner.ledger import CassandraLedger
from services.runner.ports import LABEL, ContainerSpec
from services.runner.prune import prune
from shared.contract.events import ExecutionDue, new_execution_id
from shared.process.settings import RunnerSettings
from tests.conftest import TEST_IMAGE


def test_prune_removes_only_ended_containers_no_execution_needs(backends: RunnerSettings, cassandra: Session) -> None:
    runtime, ledger, host = (
        DockerRuntime(),
        CassandraLedger(cassandra, backends.keyspace),
        f"prune-{uuid.uuid4().hex[:6]}",
    )
    dues = [
        ExecutionDue(task_id="prune", job_id=uuid.uuid4(), execution_id=new_execution_id(), image=TEST_IMAGE, command=c)
        for c in ("true", "true", "sleep 30")
    ]
    leftover, held, running = (
        runtime.start(
            ContainerSpec(
                f"fastlane-{d.execution_id}", TEST_IMAGE, d.command.split(), labels={LABEL: str(d.execution_id)}
            )
        ).container_id
        for d in dues
    )
    try:
        ledger.claim(dues[1], host)
        for cid in (leftover, held):
            assert runtime.wait(cid, 30) == 0
        assert prune(runtime, ledger, host, min_age_s=3600) == []  # too recent: maybe its logs are being read
        time.sleep(1.5)
        removed = prune(runtime, ledger, host, min_age_s=1)
        assert leftover in removed
        assert held not in removed and running not in removed
        remaining = {cid for cid, _, _ in runtime.executions()}
        assert leftover not in remaining and {held, running} <= remaining
    finally:
        for cid in (leftover, held, running):
            runtime.remove(cid)
