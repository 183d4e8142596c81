"""The projection as the API writes it right after publishing an order (read-your-writes): the same rows the
recorder writes from the same event (services/recorder/handlers.py), so both converge."""

import asyncio

from cassandra.cluster import Session

from services.recorder.handlers import project
from services.recorder.indexes import Indexes
from services.recorder.rows import ProjectionRows
from shared.contract.events import Command, Event, JobOrder
from shared.infra.cassandra import awaited
from shared.infra.writes import Writes, joined


class Projections:
    """`apply` is idempotent. With `indexes` (the API's), a job order of a task not listed yet also lists it:
    the recorder's own task gate and listing writes (services/recorder/indexes.py), so that /tasks and /search
    show a new task at once. A task listed already is left to the recorder (one read costs each order)."""

    def __init__(self, session: Session, keyspace: str, indexes: Indexes | None = None) -> None:
        self._session = session
        self._rows = ProjectionRows(session, keyspace)
        self._indexes = indexes

    def apply(self, event: Event | Command, writes: Writes | None = None) -> None:
        """Project `event`; its writes join `writes` when given (the caller sends them), else they are sent
        before this returns."""
        with joined(self._session, writes) as w:
            project(event, self._rows, w)
            early = self._early(event)
            if early is None:
                return
            indexes, order = early
            if self._session.execute(indexes.task_listing, (order.task_id,)).one() is not None:
                return
            gate = self._session.execute(
                indexes.task_gate, indexes.task_gate_values(order.task_id, order.occurred_at)
            ).one()
            if gate.applied:
                indexes.task_listed(order.task_id, order.occurred_at, True, None, w)

    async def apply_async(self, event: Event | Command) -> None:
        """`apply` for a caller on an event loop (the API's POST): reads and writes are awaited, no thread waits
        for them; the task's listing is read while the rows are written."""
        w = Writes(self._session)
        project(event, self._rows, w)
        await asyncio.gather(w.send_async(), self._list_early(event))

    async def _list_early(self, event: Event | Command) -> None:
        early = self._early(event)
        if early is None:
            return
        indexes, order = early
        if await awaited(self._session.execute_async(indexes.task_listing, (order.task_id,))):
            return
        values = indexes.task_gate_values(order.task_id, order.occurred_at)
        gate = await awaited(self._session.execute_async(indexes.task_gate, values))
        if gate[0].applied:  # seen first here: listed and counted here (the recorder's gate then finds it)
            w = Writes(self._session)
            indexes.task_listed(order.task_id, order.occurred_at, True, None, w)
            await w.send_async()

    def _early(self, event: Event | Command) -> tuple[Indexes, JobOrder] | None:
        """The indexes and the order, when `event` is a job order and this projection lists tasks."""
        if self._indexes is None or not isinstance(event, JobOrder):
            return None
        return self._indexes, event
