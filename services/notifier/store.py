"""The delivery store's Cassandra adapter (services/notifier/ports.py: DeliveryStore) and its tables: pending
deliveries (what to take up after a restart) and their history (what the API shows on an execution)."""

from collections.abc import Iterable

from cassandra.cluster import Session

from services.notifier.plan import Delivery
from shared.contract.events import utcnow
from shared.infra.cassandra import Schema

SCHEMA = Schema(
    tables=(
        # Deliveries not finished yet, by the partition of the execution event that caused them: the notifier
        # holding that partition of `executions` owns them, and takes them up after a restart or a rebalance.
        """CREATE TABLE IF NOT EXISTS {ks}.pending_deliveries (
        partition int, delivery_id uuid, delivery text, PRIMARY KEY ((partition), delivery_id))""",
        # Every delivery of an execution, its attempts and outcome: shown on the execution in the API.
        """CREATE TABLE IF NOT EXISTS {ks}.deliveries (
        task_id text, job_id uuid, execution_id timeuuid, delivery_id uuid, channel text, event text,
        target text, state text, attempts int, status_code int, last_error text, updated_at timestamp,
        PRIMARY KEY ((task_id, job_id, execution_id), delivery_id))""",
    ),
    retained=("deliveries",),
)


class CassandraDeliveryStore:
    """The delivery store's Cassandra adapter (services/notifier/ports.py: DeliveryStore)."""

    def __init__(self, session: Session, keyspace: str) -> None:
        ks = keyspace
        self._session = session
        self._pend = session.prepare(
            f"INSERT INTO {ks}.pending_deliveries (partition, delivery_id, delivery) VALUES (?, ?, ?)"
        )
        self._unpend = session.prepare(f"DELETE FROM {ks}.pending_deliveries WHERE partition = ? AND delivery_id = ?")
        self._pending = session.prepare(f"SELECT delivery FROM {ks}.pending_deliveries WHERE partition = ?")
        self._pending_one = session.prepare(
            f"SELECT delivery FROM {ks}.pending_deliveries WHERE partition = ? AND delivery_id = ?"
        )
        self._record = session.prepare(
            f"INSERT INTO {ks}.deliveries (task_id, job_id, execution_id, delivery_id, channel, event, target, state,"
            " attempts, status_code, last_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._known = session.prepare(
            f"SELECT state FROM {ks}.deliveries WHERE task_id = ? AND job_id = ? AND execution_id = ?"
            " AND delivery_id = ?"
        )

    def state(self, d: Delivery) -> str | None:
        """The delivery's state when it was planned before (the event came again), else None."""
        row = self._session.execute(self._known, (d.task_id, d.job_id, d.execution_id, d.delivery_id)).one()
        return row.state if row is not None else None

    def pending_one(self, d: Delivery) -> Delivery | None:
        """The delivery as its pending row has it (with its attempts so far), if it is still pending."""
        row = self._session.execute(self._pending_one, (d.partition, d.delivery_id)).one()
        return Delivery.model_validate_json(row.delivery) if row is not None else None

    def plan(self, d: Delivery) -> None:
        """Pending first, history second: a crash in between plans it again (same id) rather than losing it."""
        self.keep(d)
        self.record(d, "pending", None, None)

    def keep(self, d: Delivery) -> None:
        self._session.execute(self._pend, (d.partition, d.delivery_id, d.model_dump_json()))

    def record(self, d: Delivery, state: str, status_code: int | None, error: str | None) -> None:
        self._session.execute(
            self._record,
            (
                d.task_id,
                d.job_id,
                d.execution_id,
                d.delivery_id,
                d.channel,
                d.event,
                d.target,
                state,
                d.attempts,
                status_code,
                error,
                utcnow(),
            ),
        )

    def finish(self, d: Delivery, state: str, status_code: int | None, error: str | None) -> None:
        """History first, then the pending row: a crash in between sends it once more (same delivery id)."""
        self.record(d, state, status_code, error)
        self._session.execute(self._unpend, (d.partition, d.delivery_id))

    def pending(self, partitions: Iterable[int]) -> list[Delivery]:
        found = []
        for p in partitions:
            found += [Delivery.model_validate_json(r.delivery) for r in self._session.execute(self._pending, (p,))]
        return found
