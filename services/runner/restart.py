"""After a restart: taking up what this host held, and removing the containers nothing holds any more."""

import logging
import uuid
from collections.abc import Callable

from services.runner.handlers import container_name
from services.runner.ports import DONE, HANDED_BACK, LOST, ContainerRuntime, Ledger, Publisher
from services.runner.slots import Slots
from shared.contract.events import ExecutionDue, ExecutionFinished

log = logging.getLogger("runner")


def take_up_held(
    host: str,
    runtime: ContainerRuntime,
    ledger: Ledger,
    publisher: Publisher,
    topics: tuple[str, str],
    slots: Slots,
    run: Callable[[ExecutionDue], None],
) -> None:
    """Take up what this host held. Containers still running are followed, ended ones reported (exit code,
    logs), ones never created are started (each through `run`, on a worker thread); executions a farm peer
    declared lost while this runner was away are dropped (their containers removed). `topics`: (the farm's due
    topic, the executions topic). Safe to call again after a failure: what is held already is skipped."""
    due_topic, executions_topic = topics
    held = ledger.held(host)
    remove_orphans(host, runtime, ledger, {due.execution_id for due in held})
    for due in held:
        owner, report = ledger.reported(due.execution_id)
        if owner == HANDED_BACK + host:  # a crash came while handing it back: put it back again
            publisher.publish(due_topic, due)
            ledger.done(due.execution_id, host)
            continue
        if owner == DONE + host and (report is not None or not _container_left(runtime, due)):
            # Its end was reported, or about to be (a crash came between): report it again, from what was kept (a
            # report with its container gone), never by starting it again.
            log.info("reporting an ended execution again", extra={"execution_id": str(due.execution_id)})
            if report is not None:
                publisher.publish(executions_topic, ExecutionFinished.model_validate_json(report))
            runtime.remove(container_name(due))
            ledger.done(due.execution_id, host)
            continue
        if owner not in (host, DONE + host):
            log.warning("dropping an execution taken from this host", extra={"execution_id": str(due.execution_id)})
            runtime.remove(container_name(due))
            ledger.done(due.execution_id, host)
            continue
        if not slots.hold(due.execution_id):
            continue  # taken up already, by an earlier attempt of this step
        log.info("taking up an execution after a restart", extra={"execution_id": str(due.execution_id)})
        run(due)


def remove_orphans(host: str, runtime: ContainerRuntime, ledger: Ledger, held: set[uuid.UUID]) -> None:
    """Remove the containers of this host's executions that nothing holds any more: reported already (a crash
    came between the report and the removal) or taken away while this host was lost. Containers of other
    runners sharing the engine are left alone."""
    for container_id, execution_id, _state in runtime.executions():
        eid = uuid.UUID(execution_id)
        if eid in held:
            continue
        owner = ledger.owner(eid)
        if owner in (host, LOST + host, DONE + host, HANDED_BACK + host):
            log.info("removing an orphan container", extra={"execution_id": execution_id, "owner": owner})
            runtime.remove(container_id)


def _container_left(runtime: ContainerRuntime, due: ExecutionDue) -> bool:
    return any(eid == str(due.execution_id) for _, eid, _ in runtime.executions())
