"""`Idempotency-Key` for POST /tasks/{t} and PUT /tasks/{t}/jobs/{j}: the same key sent again in the same task,
with the same request, answers the same ids and makes no second job.

The key is claimed in Cassandra (a lightweight transaction, so of two concurrent requests exactly one wins)
together with the order it stands for, *before* that order is published. Whatever happens after the claim,
a retry with the key finds the order and publishes that same order (same job, execution and event ids) when
its first publishing is not known to have succeeded: the API killed between the claim and the publish, a 503,
a 504 or a lost answer. A duplicate of one order is harmless downstream (same execution id: the runners'
claim runs it once). Keys are kept 24 h (the table's TTL).
"""

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC

from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from services.api.errors import BadRequest
from shared.infra.cassandra import Schema

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 200
# States of a claimed key: published (the order is on its topic), refused (503: it is not), unknown (504, or
# the API died between the claim and the answer: null). A replay publishes again unless `published`.
PUBLISHED, REFUSED, UNKNOWN = "published", "refused", "unknown"


SCHEMA = Schema(
    tables=(
        # The order a key was first used for in a task (claimed with a lightweight transaction before it is
        # published), what its request looked like, and how its publishing went; kept a day.
        """CREATE TABLE IF NOT EXISTS {ks}.idempotency_keys (
        task_id text, key text, fingerprint text, command blob, state text, created_at timestamp,
        PRIMARY KEY ((task_id, key))) WITH default_time_to_live = 86400""",
    )
)


@dataclass
class Claimed:
    """The key's first use, found by a later request."""

    fingerprint: str
    command: bytes
    state: str | None
    age_s: float


def read_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 0 < len(value) <= MAX_KEY_LENGTH or not all("!" <= c <= "~" for c in value):
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters (a UUID is a good one)"
        )
    return value


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same: method, path and body, byte for byte."""
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


class IdempotencyKeys:
    def __init__(self, session: Session, keyspace: str) -> None:
        self._session = session
        self._claim = self._prepare(
            f"INSERT INTO {keyspace}.idempotency_keys (task_id, key, fingerprint, command, created_at)"
            " VALUES (?, ?, ?, ?, toTimestamp(now())) IF NOT EXISTS"
        )
        self._set_state = self._prepare(
            f"UPDATE {keyspace}.idempotency_keys SET state = ? WHERE task_id = ? AND key = ?"
        )
        self._state = self._prepare(f"SELECT state FROM {keyspace}.idempotency_keys WHERE task_id = ? AND key = ?")

    def _prepare(self, cql: str) -> PreparedStatement:
        statement = self._session.prepare(cql)
        statement.consistency_level = ConsistencyLevel.QUORUM
        return statement

    def claim(self, task_id: str, key: str, print_: str, command: bytes) -> Claimed | None:
        """None when this request claimed the key; otherwise the key's first use."""
        row = self._session.execute(self._claim, (task_id, key, print_, command)).one()
        if row.applied:
            return None
        age = time.time() - row.created_at.replace(tzinfo=UTC).timestamp() if row.created_at else 0.0
        return Claimed(row.fingerprint, row.command, row.state, age)

    def set_state(self, task_id: str, key: str, state: str) -> None:
        self._session.execute(self._set_state, (state, task_id, key))

    def state(self, task_id: str, key: str) -> str | None:
        row = self._session.execute(self._state, (task_id, key)).one()
        return row.state if row else None
