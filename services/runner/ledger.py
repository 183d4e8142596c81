"""The runners' ledger in Cassandra: who runs each execution, and what each host holds.

A runner claims an execution (lightweight transaction) before it starts its container and records the
ExecutionDue under its host; it acknowledges the Kafka message only then. So:
- a redelivered ExecutionDue reaching a runner of another host finds the claim and starts nothing;
- a runner restarted after a crash finds what its host held (and the containers, by name) and takes it up;
- a host that stopped sending heartbeats is declared lost by a runner of its farm, which moves the claim away
  from it (another transaction: only one runner does it) and fails its executions.
"""

import logging
import uuid
from datetime import datetime

from cassandra.cluster import Session
from pydantic import ValidationError

from shared.events import ExecutionDue

LOST = "lost:"
log = logging.getLogger(__name__)


class Ledger:
    def __init__(self, session: Session, keyspace: str) -> None:
        ks = keyspace
        self._session = session
        self._claim = session.prepare(
            f"INSERT INTO {ks}.execution_claims (execution_id, host) VALUES (?, ?) IF NOT EXISTS"
        )
        self._owner = session.prepare(f"SELECT host FROM {ks}.execution_claims WHERE execution_id = ?")
        self._release = session.prepare(f"DELETE FROM {ks}.execution_claims WHERE execution_id = ? IF host = ?")
        self._move = session.prepare(f"UPDATE {ks}.execution_claims SET host = ? WHERE execution_id = ? IF host = ?")
        self._hold = session.prepare(f"INSERT INTO {ks}.host_executions (host, execution_id, due) VALUES (?, ?, ?)")
        self._drop = session.prepare(f"DELETE FROM {ks}.host_executions WHERE host = ? AND execution_id = ?")
        self._held = session.prepare(f"SELECT due FROM {ks}.host_executions WHERE host = ?")
        self._last_seen = session.prepare(f"SELECT last_seen FROM {ks}.hosts WHERE host = ?")
        self._blacklisted = session.prepare(f"SELECT host FROM {ks}.blacklist WHERE host = ?")
        self._stop_requested = session.prepare(f"SELECT execution_id FROM {ks}.stop_requests WHERE execution_id = ?")

    def claim(self, due: ExecutionDue, host: str) -> tuple[str, bool]:
        """Record `due` as held by `host`, then claim it; returns (owner, whether this call claimed it).

        The record comes first so that a crash right after the claim still leaves it to the restarted
        runner; it is dropped again when another host owns the execution.
        """
        self._session.execute(self._hold, (host, due.execution_id, due.model_dump_json()))
        result = self._session.execute(self._claim, (due.execution_id, host)).one()
        owner = host if result.applied else str(result.host)
        if owner != host:
            self._session.execute(self._drop, (host, due.execution_id))
        return owner, bool(result.applied)

    def owner(self, execution_id: uuid.UUID) -> str | None:
        row = self._session.execute(self._owner, (execution_id,)).one()
        return str(row.host) if row else None

    def done(self, execution_id: uuid.UUID, host: str) -> None:
        """The execution's end is published: the host no longer holds it (the claim stays, against replays)."""
        self._session.execute(self._drop, (host, execution_id))

    def release(self, execution_id: uuid.UUID, host: str) -> None:
        """Give an execution up before it ran (its engine failed), so another host may claim it."""
        self._session.execute(self._release, (execution_id, host))
        self._session.execute(self._drop, (host, execution_id))

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
        """Move the claim of a lost host's execution away from it; True for the one runner that did."""
        applied = bool(self._session.execute(self._move, (LOST + lost_host, execution_id, lost_host)).one().applied)
        self._session.execute(self._drop, (lost_host, execution_id))
        return applied

    def last_seen(self, host: str) -> datetime | None:
        row = self._session.execute(self._last_seen, (host,)).one()
        return row.last_seen if row else None

    def blacklisted(self, host: str) -> bool:
        return self._session.execute(self._blacklisted, (host,)).one() is not None

    def stops_requested(self, execution_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Those of `execution_ids` someone asked to stop (all reads in flight at once)."""
        reads = [self._session.execute_async(self._stop_requested, (eid,)) for eid in execution_ids]
        return [eid for eid, read in zip(execution_ids, reads, strict=True) if read.result().one() is not None]
