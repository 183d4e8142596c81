"""What the write use case needs from the outside world, as protocols: the adapters are built in
services/api/bootstrap.py (Kafka, Cassandra); the unit tests hand it fakes."""

from typing import Protocol

from services.api.idempotency import Claimed
from shared.contract.events import Command, HostBlacklisted


class OrderPublishing(Protocol):
    """Hands an order to Kafka (services/api/orders.py): returns once it is committed, raises NotEnqueued
    when it is not and never will be, OutcomeUnknown when that cannot be told."""

    ack_timeout_s: float
    commit_patience_s: float

    def publish(self, topic: str, key: bytes | None, value: bytes) -> None: ...

    async def publish_async(self, topic: str, key: bytes | None, value: bytes) -> None: ...

    def close(self) -> None: ...


class EarlyProjection(Protocol):
    """Writes the rows the recorder will write for the same order, at once (read-your-writes)."""

    def apply(self, event: Command | HostBlacklisted) -> None: ...

    async def apply_async(self, event: Command | HostBlacklisted) -> None: ...


class IdempotencyKeyStore(Protocol):
    """The Idempotency-Key table (services/api/idempotency.py)."""

    def claim(self, task_id: str, key: str, print_: str, command: bytes) -> Claimed | None: ...

    def set_state(self, task_id: str, key: str, state: str) -> None: ...

    def state(self, task_id: str, key: str) -> str | None: ...
