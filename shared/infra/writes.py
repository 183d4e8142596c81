"""The writes one event causes, sent to Cassandra together instead of one request each.

The recorder turns one event into up to a dozen row writes and counter increments (projections, listings,
search words, counters). Sent one by one, each is a request that Cassandra and the driver pay for in full; on
a small machine that cost is most of the control plane's share of a job. Gathered here, the row writes go as
one UNLOGGED batch and the increments as one COUNTER batch.

Nothing is promised atomically (an unlogged batch is only fewer round trips): every write is idempotent under
its own write timestamp, so a batch applied in part is repaired by the replay of its event, as single writes
were. Batches stay small: a batch carrying more than about `MAX_BATCH_BYTES` of values (long logs, large
definitions) or `MAX_BATCH_STATEMENTS` statements is split, below Cassandra's batch size and partition-count
warnings (5 KiB and 10 partitions by default).
"""

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from cassandra.cluster import ResponseFuture, Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from shared.infra.cassandra import awaited

MAX_BATCH_BYTES = 4096
MAX_BATCH_STATEMENTS = 8

Write = tuple[PreparedStatement, Sequence[Any]]


def value_size(value: Any) -> int:
    """Roughly how many bytes a bound value takes (enough to keep batches under Cassandra's size warning)."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, Mapping):
        return sum(value_size(k) + value_size(v) for k, v in value.items())
    return 16


def chunks(writes: list[Write]) -> list[list[Write]]:
    """`writes` in consecutive groups of at most MAX_BATCH_STATEMENTS and about MAX_BATCH_BYTES each."""
    groups: list[list[Write]] = []
    size = 0
    for write in writes:
        weight = sum(value_size(v) for v in write[1])
        if not groups or len(groups[-1]) >= MAX_BATCH_STATEMENTS or size + weight > MAX_BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(write)
        size += weight
    return groups


class Writes:
    """Row writes and counter increments gathered until `send`; reads and lightweight transactions do not
    go through here (they are answered at once)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._rows: list[Write] = []
        self._counts: list[Write] = []

    def add(self, statement: PreparedStatement, values: Sequence[Any]) -> None:
        self._rows.append((statement, values))

    def count(self, statement: PreparedStatement, values: Sequence[Any]) -> None:
        """A counter increment (counters cannot share a batch with row writes)."""
        self._counts.append((statement, values))

    def send_counts(self) -> None:
        """Send the increments gathered so far (before reading a counter they change)."""
        self._wait([self._request(group, BatchType.COUNTER) for group in chunks(self._counts)])
        self._counts = []

    def send(self) -> None:
        """Send everything gathered; raises the first error after every request has been answered."""
        self._wait(self._requests())

    async def send_async(self) -> None:
        """`send`, awaited on the running event loop instead of blocking a thread."""
        answers = await asyncio.gather(*(awaited(r) for r in self._requests()), return_exceptions=True)
        errors = [a for a in answers if isinstance(a, BaseException)]
        if errors:
            raise errors[0]

    def _requests(self) -> list[ResponseFuture]:
        """Send everything gathered (counter batches, then row batches) and forget it."""
        requests = [self._request(group, BatchType.COUNTER) for group in chunks(self._counts)]
        requests += [self._request(group, BatchType.UNLOGGED) for group in chunks(self._rows)]
        self._counts, self._rows = [], []
        return requests

    def _request(self, group: list[Write], kind: BatchType) -> ResponseFuture:
        if len(group) == 1:
            statement, values = group[0]
            return self._session.execute_async(statement, values)
        batch = BatchStatement(batch_type=kind)
        for statement, values in group:
            batch.add(statement, values)
        return self._session.execute_async(batch)

    @staticmethod
    def _wait(requests: list[ResponseFuture]) -> None:
        errors = []
        for request in requests:
            try:
                request.result()
            except Exception as exc:  # every request is answered before the first failure is raised
                errors.append(exc)
        if errors:
            raise errors[0]


@contextlib.contextmanager
def joined(session: Session, writes: Writes | None) -> Iterator[Writes]:
    """What to add an event's writes to: the caller's `writes` (it sends them), else new ones sent at the end."""
    if writes is not None:
        yield writes
        return
    own = Writes(session)
    yield own
    own.send()
