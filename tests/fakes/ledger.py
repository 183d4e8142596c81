"""An in-memory ledger (the runner's Ledger port), held to CassandraLedger's behaviour by
tests/contract/test_ledger_contract.py.

Each claim operation is atomic under one lock, as each of Cassandra's lightweight transactions is. What the API
records for runners (the blacklist, stop requests) is set with `blacklist` and `request_stop`. Failure knob for
the runner's tests: `answering` (False: every call raises, like an unreachable Cassandra).
"""

import threading
import uuid
from dataclasses import dataclass, field

from services.runner.ports import DONE, HANDED_BACK, LOST
from shared.contract.events import ExecutionDue
from tests.fakes.outage import NotAnswering


@dataclass
class FakeLedger:
    answering: bool = True
    claims: dict[uuid.UUID, str] = field(default_factory=dict)  # execution id -> owner (a claim value)
    reports: dict[uuid.UUID, str | None] = field(default_factory=dict)
    records: dict[str, dict[uuid.UUID, ExecutionDue]] = field(default_factory=dict)  # host -> what it holds
    tokens: dict[str, uuid.UUID] = field(default_factory=dict)
    blacklisted_hosts: set[str] = field(default_factory=set)
    stop_requests: set[uuid.UUID] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- arranged by tests, as the API and recorder would ---

    def blacklist(self, host: str) -> None:
        self.blacklisted_hosts.add(host)

    def request_stop(self, execution_id: uuid.UUID) -> None:
        self.stop_requests.add(execution_id)

    # --- the port ---

    def claim(self, due: ExecutionDue, host: str) -> tuple[str, bool]:
        with self._answering():
            eid = due.execution_id
            self.records.setdefault(host, {})[eid] = due
            owner = self.claims.get(eid)
            if owner is None or owner.startswith(HANDED_BACK):  # free, or given back to the farm: taken over
                self.claims[eid] = host
                return host, True
            if owner != host:
                self.records[host].pop(eid, None)
            return owner, False

    def owner(self, execution_id: uuid.UUID) -> str | None:
        with self._answering():
            return self.claims.get(execution_id)

    def owners(self, execution_ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        with self._answering():
            return {eid: self.claims.get(eid) for eid in execution_ids}

    def done(self, execution_id: uuid.UUID, host: str) -> None:
        with self._answering():
            self.records.get(host, {}).pop(execution_id, None)

    def release(self, execution_id: uuid.UUID, host: str) -> bool:
        with self._answering():
            if self.claims.get(execution_id) == host:
                self.claims[execution_id] = HANDED_BACK + host
            return self.claims.get(execution_id) == HANDED_BACK + host

    def finish(self, execution_id: uuid.UUID, host: str, report: str | None = None) -> bool:
        with self._answering():
            owner = self.claims.get(execution_id)
            if owner not in (host, DONE + host):
                return owner is None  # no claim at all: nobody else's (and nothing is written, as in Cassandra)
            self.claims[execution_id], self.reports[execution_id] = DONE + host, report
            return True

    def reported(self, execution_id: uuid.UUID) -> tuple[str | None, str | None]:
        with self._answering():
            return self.claims.get(execution_id), self.reports.get(execution_id)

    def take_from_lost(self, execution_id: uuid.UUID, lost_host: str) -> bool:
        with self._answering():
            if self.claims.get(execution_id) == lost_host:
                self.claims[execution_id] = LOST + lost_host
            return self.claims.get(execution_id) == LOST + lost_host

    def held(self, host: str) -> list[ExecutionDue]:
        with self._answering():
            return sorted(self.records.get(host, {}).values(), key=lambda due: due.execution_id.time)

    def beat(self, host: str) -> None:
        with self._answering():
            self.tokens[host] = uuid.uuid1()

    def beats(self, hosts: list[str]) -> dict[str, uuid.UUID]:
        with self._answering():
            return {host: self.tokens[host] for host in hosts if host in self.tokens}

    def blacklisted(self, host: str) -> bool:
        with self._answering():
            return host in self.blacklisted_hosts

    def stops_requested(self, execution_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        with self._answering():
            return [eid for eid in execution_ids if eid in self.stop_requests]

    def _answering(self) -> threading.Lock:
        if not self.answering:
            raise NotAnswering("the ledger does not answer")
        return self._lock
