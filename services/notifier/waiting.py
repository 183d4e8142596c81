"""Execution events whose job row is not in Cassandra yet, kept until it comes (the Cassandra adapter of the
waiting store, services/notifier/ports.py: WaitingStore; what to do with them: handlers.py, decisions.py).

The notifier learns a job's webhooks and e-mails from its row in `jobs`, written by the API right after the
order is published and by the recorder from the order itself. When the API's write failed and the recorder
lags (or is down), an execution event can arrive before the row: it is kept here, by the partition of the
event (its owner looks at it again, also after a restart or a rebalance), and planned as soon as the row
appears. After `patience` seconds without a row it is parked on the dead-letter topic with the reason (a job
this cluster never recorded, e.g. an event from another producer), so it is never dropped silently."""

import uuid
from datetime import UTC, datetime

from cassandra.cluster import Session

from services.notifier.ports import Waiting
from shared.contract.events import ExecutionFinished, ExecutionStarted, decode, encode
from shared.infra.cassandra import Schema

SCHEMA = Schema(
    tables=(
        # An execution event whose job definition is not in `jobs` yet (the API's early write failed and the
        # recorder lags): kept by the partition of the event, looked at again until the row comes or patience ends.
        """CREATE TABLE IF NOT EXISTS {ks}.notify_waiting (
        partition int, event_id uuid, event text, origin_offset bigint, first_seen timestamp,
        PRIMARY KEY ((partition), event_id))""",
    )
)


class CassandraWaitingEvents:
    """The waiting store's Cassandra adapter (services/notifier/ports.py: WaitingStore)."""

    def __init__(self, session: Session, keyspace: str) -> None:
        ks = keyspace
        self._session = session
        self._add = session.prepare(
            f"INSERT INTO {ks}.notify_waiting (partition, event_id, event, origin_offset, first_seen)"
            " VALUES (?, ?, ?, ?, ?) IF NOT EXISTS"
        )
        self._remove = session.prepare(f"DELETE FROM {ks}.notify_waiting WHERE partition = ? AND event_id = ?")
        self._list = session.prepare(
            f"SELECT event, origin_offset, first_seen FROM {ks}.notify_waiting WHERE partition = ?"
        )

    def add(self, partition: int, event: ExecutionStarted | ExecutionFinished, offset: int, now: datetime) -> None:
        """Keep the event (its first sighting's time is kept when it comes again)."""
        self._session.execute(self._add, (partition, event.event_id, encode(event).decode(), offset, now))

    def remove(self, partition: int, event_id: uuid.UUID) -> None:
        self._session.execute(self._remove, (partition, event_id))

    def of(self, partition: int) -> list[Waiting]:
        found = []
        for row in self._session.execute(self._list, (partition,)):
            event = decode(row.event.encode())
            assert isinstance(event, ExecutionStarted | ExecutionFinished)
            found.append(Waiting(partition, event, row.origin_offset or -1, row.first_seen.replace(tzinfo=UTC)))
        return found
