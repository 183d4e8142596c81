"""Fakes of the API's ports (services/api/ports.py): the order publisher, the early projection and the
Idempotency-Key store; the key store is held to the Cassandra table's behaviour by
tests/contract/test_idempotency_contract.py. `fail_with` / `broken` make them fail as their backends would."""

import time
from typing import Any

from services.api.idempotency import Claimed
from shared.contract.events import Command, HostBlacklisted


class FakePublisher:
    """Takes orders, or refuses them the way OrderPublisher does (`fail_with`)."""

    ack_timeout_s = 0.0
    commit_patience_s = 0.0

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes | None, bytes]] = []
        self.fail_with: Exception | None = None
        self.closed = False

    def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.published.append((topic, key, value))

    async def publish_async(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.publish(topic, key, value)

    def close(self) -> None:
        self.closed = True


class FakeProjection:
    def __init__(self) -> None:
        self.applied: list[Command | HostBlacklisted] = []
        self.broken = False

    def apply(self, event: Command | HostBlacklisted) -> None:
        if self.broken:
            raise RuntimeError("cassandra is away")
        self.applied.append(event)

    async def apply_async(self, event: Command | HostBlacklisted) -> None:
        self.apply(event)


class FakeKeys:
    """The idempotency_keys table: a claim wins once per (task, key)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.broken = False

    def claim(self, task_id: str, key: str, print_: str, command: bytes) -> Claimed | None:
        if self.broken:
            raise RuntimeError("cassandra is away")
        row = self.rows.get((task_id, key))
        if row is None:
            self.rows[(task_id, key)] = {"fingerprint": print_, "command": command, "state": None, "at": time.time()}
            return None
        return Claimed(row["fingerprint"], row["command"], row["state"], age_s=time.time() - row["at"])

    def set_state(self, task_id: str, key: str, state: str) -> None:
        self.rows.setdefault((task_id, key), {"fingerprint": None, "command": None, "at": time.time()})["state"] = state

    def state(self, task_id: str, key: str) -> str | None:
        row = self.rows.get((task_id, key))
        return row["state"] if row else None


class FakeCluster:
    def shutdown(self) -> None:
        pass
