"""Reads of the read model by other services, kept next to its writers so each table's shape is known in one
place (tables.py declares it, rows.py writes it, this reads it back). The API's own queries live with it
(services/api/queries.py)."""

import json
import uuid
from typing import Any

from cassandra.cluster import Session

from shared.contract.events import JobDefinition


def definition_from_row(row: Any) -> JobDefinition | None:
    """The definition in a `jobs` row (written by ProjectionRows.job_ordered); None while the row is not
    (completely) written. Raises ValueError (pydantic's ValidationError is one) when it cannot be read."""
    if row is None or not row.definition or not row.image:
        return None
    return JobDefinition.model_validate(
        {
            **json.loads(row.definition),
            "image": row.image,
            "command": row.command,
            "envs": dict(row.envs or {}),
            "metadata": json.loads(row.metadata or "{}"),
        }
    )


class JobDefinitions:
    """Jobs' definitions as the recorder (or the API's early write) recorded them: what the notifier delivers."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self._session = session
        self._definition = session.prepare(
            f"SELECT image, command, envs, metadata, definition FROM {keyspace}.jobs WHERE task_id = ? AND job_id = ?"
        )

    def definition(self, task_id: str, job_id: uuid.UUID) -> JobDefinition | None:
        """See definition_from_row."""
        return definition_from_row(self._session.execute(self._definition, (task_id, job_id)).one())
