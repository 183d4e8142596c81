"""The projection as the API writes it right after publishing an order (read-your-writes): the same rows the
recorder writes from the same event (services/recorder/handlers.py), so both converge."""

from cassandra.cluster import Session

from services.recorder.handlers import project
from services.recorder.rows import ProjectionRows
from shared.contract.events import Command, Event
from shared.infra.writes import Writes, joined


class Projections:
    """`apply` is idempotent."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self._session = session
        self._rows = ProjectionRows(session, keyspace)

    def apply(self, event: Event | Command, writes: Writes | None = None) -> None:
        """Project `event`; its writes join `writes` when given (the caller sends them), else they are sent
        before this returns."""
        with joined(self._session, writes) as w:
            project(event, self._rows, w)
