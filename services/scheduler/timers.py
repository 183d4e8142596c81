"""When the jobs in memory fire next: a heap of (fire time, job, partition) entries.

Entries are never removed when a job's timers change: a job changed since its entry was pushed gets a new
one, and the old one is found stale when it comes due (the job's state says what is really due then). A
partition that is no longer ours leaves its entries behind the same way; the owner filters them out.
"""

import heapq
import uuid
from collections.abc import Container, Iterator

from services.scheduler.state import JobState

# The longest wait for a message when no timer comes due sooner.
IDLE_WAIT_S = 0.5


class TimerQueue:
    """The next fire time of each job tracked, possibly stale (see the module docstring)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str, int]] = []  # (fire time, job id, partition)

    def track(self, partition: int, state: JobState) -> None:
        """Remember when the job fires next; a stopped job, or one with no timer, fires never."""
        fire = state.next_fire()
        if fire is not None and not state.stopped:
            heapq.heappush(self._heap, (fire.timestamp(), str(state.job_id), partition))

    def wait_time(self, now_ts: float) -> float:
        """How long a poll may wait: until the next entry comes due, at most IDLE_WAIT_S."""
        if not self._heap:
            return IDLE_WAIT_S
        return max(0.0, min(IDLE_WAIT_S, self._heap[0][0] - now_ts))

    def due(self, now_ts: float, owned: Container[int]) -> Iterator[tuple[uuid.UUID, int]]:
        """(job id, partition) of every entry due at `now_ts`, each job once, skipping the partitions not
        `owned`. The entries are taken off the queue as they are yielded."""
        seen: set[str] = set()
        while self._heap and self._heap[0][0] <= now_ts:
            _, job, partition = heapq.heappop(self._heap)
            if job in seen or partition not in owned:
                continue  # duplicate heap entry, or a partition no longer ours
            seen.add(job)
            yield uuid.UUID(job), partition

    def clear(self) -> None:
        self._heap.clear()

    def __len__(self) -> int:
        return len(self._heap)
