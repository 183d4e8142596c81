"""Write timestamps: how the recorder's and the API's writes of the same rows converge.

Every write uses the event's time as its Cassandra write timestamp, so the two writers converge, a replayed
event is a no-op, and a late-arriving older event never overwrites a newer one. An execution's row is the
exception: its writes are ordered by the execution's lifecycle first (`lifecycle_time`), since its events come
from different machines whose clocks may disagree (a runner whose clock is behind the API's must still move
`enqueued` to `done`), and the first final status written is the one that stays.
"""

import uuid
from datetime import UTC, datetime


def write_time(at: datetime) -> int:
    """Cassandra write timestamp (microseconds) for an event time."""
    return int(at.timestamp() * 1_000_000)


def first_write_wins(ts: int) -> int:
    """A write timestamp under which the EARLIEST event wins (for values set once, like created_at): Cassandra
    keeps the highest timestamp, and this one is higher the earlier the event."""
    return (1 << 62) - ts


# An execution's stages, in the order they happen; a write of a later stage always wins over an earlier one.
STAGES = {"enqueued": 1, "pulling": 2, "running": 3, "final": 4}
_STAGE_SPAN = 1 << 53  # microseconds: event times up to the year 2255 fit below it


def lifecycle_time(stage: str, at: datetime) -> int:
    """Write timestamp for an execution's row: ordered by stage, then by event time within a stage, except for
    final statuses, where the EARLIEST wins (a status once final never moves, e.g. `failed` then `done`)."""
    micros = min(max(write_time(at), 0), _STAGE_SPAN - 1)
    within = _STAGE_SPAN - 1 - micros if stage == "final" else micros
    return STAGES[stage] * _STAGE_SPAN + within


def execution_created_at(execution_id: uuid.UUID) -> datetime:
    """An execution's creation time is the time inside its v1 UUID: every writer derives the same value."""
    assert execution_id.version == 1, "execution ids are time-based UUIDs"
    return datetime.fromtimestamp((execution_id.time - 0x01B21DD213814000) / 10_000_000, UTC)
