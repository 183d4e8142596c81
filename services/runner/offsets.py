"""Which offset may be stored when messages of one partition finish out of order."""

from collections import OrderedDict

Partition = tuple[str, int]  # topic, partition
Position = tuple[str, int, int]  # topic, partition, offset of one message


class OffsetTracker:
    """Tracks in-flight offsets per partition; an offset is committable once it and all before it are done."""

    def __init__(self) -> None:
        self._inflight: dict[Partition, OrderedDict[int, bool]] = {}

    def started(self, partition: Partition, offset: int) -> None:
        self._inflight.setdefault(partition, OrderedDict())[offset] = False

    def finished(self, partition: Partition, offset: int) -> int | None:
        """Mark done; return the next offset to consume when the committable position moved, else None."""
        pending = self._inflight.get(partition)
        if pending is None or offset not in pending:
            return None  # partition was revoked meanwhile
        pending[offset] = True
        committable = None
        for first, done in list(pending.items()):
            if not done:
                break
            del pending[first]
            committable = first + 1
        return committable

    def forget(self, partitions: list[Partition]) -> None:
        """Partitions taken away by a rebalance: their offsets are no longer ours to store."""
        for p in partitions:
            self._inflight.pop(p, None)

    def inflight(self) -> int:
        return sum(len(p) for p in self._inflight.values())
