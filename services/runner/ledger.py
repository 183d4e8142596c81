"""The Cassandra adapter of the Ledger port (services/runner/ports.py): who runs each execution, and what each
host holds.

A runner claims an execution (lightweight transaction) before it starts its container and records the
ExecutionDue under its host; it acknowledges the Kafka message only then. So:
- a redelivered ExecutionDue reaching a runner of another host finds the claim and starts nothing;
- a runner restarted after a crash finds what its host held (and the containers, by name) and takes it up;
- a host that stopped sending heartbeats is declared lost by a runner of its farm, which moves the claim away
  from it (another transaction: only one runner does it) and fails its executions;
- a runner marks the claim finished (`done:<host>`, a transaction conditional on still owning it) before it
  publishes an execution's end: of a runner paused past the lost-host limit and a peer failing its
  executions, exactly one reports each end, and a runner restarted after a crash never starts an execution
  whose end it reported (or was about to) again;
- an execution handed back to the farm (its engine refused it) is marked `handed-back:<host>` before it is
  put back on the topic, so the next claim takes it over and a crash in between leaves it to the restart.

Claim values (the `host` column): see ports.py (`LOST`, `DONE`, `HANDED_BACK`).
"""

import logging
import uuid

from cassandra.cluster import Session
from pydantic import ValidationError

from services.runner.ports import DONE, HANDED_BACK, LOST
from shared.contract.events import ExecutionDue
from shared.infra.cassandra import Schema, serial

log = logging.getLogger(__name__)


SCHEMA = Schema(
    tables=(
        # Which host runs an execution: claimed with a lightweight transaction, so a redelivered ExecutionDue
        # never starts a second container on another host. Kept 30 days (longer than any redelivery).
        """CREATE TABLE IF NOT EXISTS {ks}.execution_claims (execution_id timeuuid PRIMARY KEY, host text)
    WITH default_time_to_live = 2592000""",
        # What each host holds and has not finished yet, with the ExecutionDue itself: what a restarted runner
        # takes up again, and what is failed when its host is lost.
        """CREATE TABLE IF NOT EXISTS {ks}.host_executions (
        host text, execution_id timeuuid, due text, PRIMARY KEY ((host), execution_id))""",
        # Each runner's own liveness token, rewritten every heartbeat interval straight from the runner (not through
        # Kafka and the recorder): a peer is judged lost only when its token stopped changing while the judge itself
        # kept reaching Cassandra (services/runner/liveness.py), whatever the clocks of either machine say.
        "CREATE TABLE IF NOT EXISTS {ks}.host_beats (host text PRIMARY KEY, beat timeuuid)",
    ),
    # The ExecutionFinished a runner reported with no container left to read it from again.
    added_columns=(("execution_claims", "report", "text"),),
)


class CassandraLedger:
    def __init__(self, session: Session, keyspace: str) -> None:
        ks = keyspace
        self._session = session
        self._claim = session.prepare(
            f"INSERT INTO {ks}.execution_claims (execution_id, host) VALUES (?, ?) IF NOT EXISTS"
        )
        # Claims are decided by lightweight transactions: reading one back must see their outcome (serial read).
        self._owner = serial(session, session.prepare(f"SELECT host FROM {ks}.execution_claims WHERE execution_id = ?"))
        self._move = session.prepare(f"UPDATE {ks}.execution_claims SET host = ? WHERE execution_id = ? IF host = ?")
        self._finish = session.prepare(
            f"UPDATE {ks}.execution_claims SET host = ?, report = ? WHERE execution_id = ? IF host IN (?, ?)"
        )
        self._report = serial(
            session, session.prepare(f"SELECT host, report FROM {ks}.execution_claims WHERE execution_id = ?")
        )
        self._beat = session.prepare(f"UPDATE {ks}.host_beats SET beat = now() WHERE host = ?")
        self._beats = session.prepare(f"SELECT host, beat FROM {ks}.host_beats WHERE host IN ?")
        self._hold = session.prepare(f"INSERT INTO {ks}.host_executions (host, execution_id, due) VALUES (?, ?, ?)")
        self._drop = session.prepare(f"DELETE FROM {ks}.host_executions WHERE host = ? AND execution_id = ?")
        self._held = session.prepare(f"SELECT due FROM {ks}.host_executions WHERE host = ?")
        self._blacklisted = session.prepare(f"SELECT host FROM {ks}.blacklist WHERE host = ?")
        self._stop_requested = session.prepare(f"SELECT execution_id FROM {ks}.stop_requests WHERE execution_id = ?")

    def claim(self, due: ExecutionDue, host: str) -> tuple[str, bool]:
        """Record `due` as held by `host`, then claim it; returns (owner, whether this call claimed it).

        The record comes first so that a crash right after the claim still leaves it to the restarted
        runner; it is dropped again when another host owns the execution.
        """
        self._session.execute(self._hold, (host, due.execution_id, due.model_dump_json()))
        result = self._session.execute(self._claim, (due.execution_id, host)).one()
        applied, owner = bool(result.applied), host if result.applied else str(result.host)
        if owner.startswith(HANDED_BACK):  # given back to the farm by its host: the first claim takes it over
            applied = bool(self._session.execute(self._move, (host, due.execution_id, owner)).one().applied)
            owner = host if applied else self.owner(due.execution_id) or ""
        if owner != host:
            self._session.execute(self._drop, (host, due.execution_id))
        return owner, applied

    def owner(self, execution_id: uuid.UUID) -> str | None:
        row = self._session.execute(self._owner, (execution_id,)).one()
        return str(row.host) if row else None

    def done(self, execution_id: uuid.UUID, host: str) -> None:
        """The execution's end is published: the host no longer holds it (the claim stays, against replays)."""
        self._session.execute(self._drop, (host, execution_id))

    def release(self, execution_id: uuid.UUID, host: str) -> bool:
        """Give an execution up before it ran (its engine failed), so another host may claim it; the caller then
        puts it back on the farm's topic and drops it (`done`). False when the claim is no longer this host's."""
        applied = self._session.execute(self._move, (HANDED_BACK + host, execution_id, host)).one().applied
        return bool(applied) or self.owner(execution_id) == HANDED_BACK + host

    def finish(self, execution_id: uuid.UUID, host: str, report: str | None = None) -> bool:
        """Mark the execution's end as `host`'s to report, keeping `report` (the ExecutionFinished, when no
        container is left to read it from again) for a restart after a crash. True when `host` may publish the
        end (again, on a second call); False when the claim was taken away: a peer reported it failed."""
        result = self._session.execute(self._finish, (DONE + host, report, execution_id, host, DONE + host)).one()
        return bool(result.applied) or getattr(result, "host", None) is None  # no claim at all: nobody else's

    def reported(self, execution_id: uuid.UUID) -> tuple[str | None, str | None]:
        """(owner, the report kept by `finish`)."""
        row = self._session.execute(self._report, (execution_id,)).one()
        return (str(row.host), row.report) if row else (None, None)

    def owners(self, execution_ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        """The claim of each of `execution_ids` (all reads in flight at once)."""
        reads = [self._session.execute_async(self._owner, (eid,)) for eid in execution_ids]
        rows = {eid: read.result().one() for eid, read in zip(execution_ids, reads, strict=True)}
        return {eid: str(row.host) if row else None for eid, row in rows.items()}

    def beat(self, host: str) -> None:
        """`host` is alive: its token changes (a time-based UUID made by Cassandra)."""
        self._session.execute(self._beat, (host,))

    def beats(self, hosts: list[str]) -> dict[str, uuid.UUID]:
        """The current token of each of `hosts` that has one."""
        return {row.host: row.beat for row in self._session.execute(self._beats, (hosts,))}

    def held(self, host: str) -> list[ExecutionDue]:
        """What `host` holds; a record that no longer parses (written by another version) is skipped."""
        held = []
        for row in self._session.execute(self._held, (host,)):
            try:
                held.append(ExecutionDue.model_validate_json(row.due))
            except ValidationError as exc:
                log.error("unreadable held execution skipped", extra={"host": host, "error": str(exc)[:500]})
        return held

    def take_from_lost(self, execution_id: uuid.UUID, lost_host: str) -> bool:
        """Move the claim of a lost host's execution away from it. True when it is (now or already) taken from
        that host: the caller reports it failed, then drops it (`done`). False when the host had reported its
        end (`done:`) or it is not that host's: the caller leaves it."""
        result = self._session.execute(self._move, (LOST + lost_host, execution_id, lost_host)).one()
        return bool(result.applied) or getattr(result, "host", None) == LOST + lost_host

    def blacklisted(self, host: str) -> bool:
        return self._session.execute(self._blacklisted, (host,)).one() is not None

    def stops_requested(self, execution_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Those of `execution_ids` someone asked to stop (all reads in flight at once)."""
        reads = [self._session.execute_async(self._stop_requested, (eid,)) for eid in execution_ids]
        return [eid for eid, read in zip(execution_ids, reads, strict=True) if read.result().one() is not None]
