"""The jobs of the partitions this instance owns, in memory, as last committed.

Only jobs with pending work (timers, running executions) stay on the state topic, which every assignment reads
whole. A job that has none is moved, in the transaction that made it idle, to a compacted archive topic: its
state is needed again only by an order for it (update, retry, stop), so the archive of a partition is read at
the first such order after an assignment, not on every rebalance.
"""

import logging
import time
import uuid
from collections.abc import Iterator

from services.scheduler.state import JobState
from services.scheduler.state_reader import StateSource
from services.scheduler.timers import TimerQueue

log = logging.getLogger("scheduler")

# Legacy states of finished jobs found on the state topic are moved to the archive this many per transaction.
RETIRE_PER_STEP = 500

# Job id -> (partition, new state or None for a deleted one, the state as written to the state topic).
Changed = dict[uuid.UUID, tuple[int, JobState | None, bytes | None]]


def is_idle(state: JobState) -> bool:
    """No timer and no running execution: nothing will happen to the job until an order for it arrives."""
    return not state.timers and not state.running


class JobStore:
    """Per owned partition: the jobs with pending work, the archived ones once read, and their timers."""

    def __init__(self, source: StateSource, state_topic: str, archive_topic: str) -> None:
        self.source = source
        self.state_topic = state_topic
        self.archive_topic = archive_topic
        self.jobs: dict[int, dict[uuid.UUID, JobState]] = {}  # partition -> job id -> state (pending work only)
        self.idle: dict[int, dict[uuid.UUID, JobState]] = {}  # partition -> archived states, once read
        self.retire: dict[uuid.UUID, int] = {}  # finished jobs found on the state topic -> partition
        self.timers = TimerQueue()

    def owns(self, partition: int) -> bool:
        return partition in self.jobs

    def load(self, partition: int) -> None:
        """Read the committed states of one partition from the state topic (jobs with pending work)."""
        states = self._read_logged(self.state_topic, partition, "state loaded")
        self.jobs[partition] = states
        for job_id, state in states.items():
            if is_idle(state):  # written by an older version: moved to the archive by the next transactions
                self.retire[job_id] = partition
            self.timers.track(partition, state)

    def drop(self, partition: int) -> None:
        """Forget a partition that is no longer ours (its timers are skipped when they come due)."""
        self.jobs.pop(partition, None)
        self.idle.pop(partition, None)

    def reload(self, partitions: set[int]) -> None:
        """Forget everything, then load `partitions` again from their last commit."""
        self.jobs.clear()
        self.idle.clear()
        self.retire.clear()
        self.timers.clear()
        for p in partitions:
            self.load(p)

    def _read_logged(self, topic: str, partition: int, what: str) -> dict[uuid.UUID, JobState]:
        """`read_states`, logging what it read and how long it took."""
        started = time.monotonic()
        states, read = self.source.read_states(topic, partition)
        elapsed = round(time.monotonic() - started, 3)
        log.info(what, extra={"partition": partition, "jobs": len(states), "records": read, "s": elapsed})
        return states

    def archived(self, partition: int) -> dict[uuid.UUID, JobState]:
        """The archived states of one partition, read at the first order that needs one after an assignment."""
        if partition not in self.idle:
            self.idle[partition] = self._read_logged(self.archive_topic, partition, "archive loaded")
        return self.idle[partition]

    def pending(self, partition: int, job_id: uuid.UUID) -> JobState | None:
        """The job's state if it has pending work (the archive is not read)."""
        return self.jobs.get(partition, {}).get(job_id)

    def to_retire(self) -> Iterator[tuple[uuid.UUID, int]]:
        """Up to RETIRE_PER_STEP of the finished jobs an older version left on the state topic, each forgotten as
        it is handed out: (job id, partition)."""
        for job_id, partition in list(self.retire.items())[:RETIRE_PER_STEP]:
            del self.retire[job_id]
            yield job_id, partition

    def committed(self, changed: Changed) -> None:
        """A transaction wrote `changed`: the states in memory follow (pending work kept, idle ones archived)."""
        for job_id, (partition, state, _value) in changed.items():
            jobs = self.jobs.get(partition)
            if jobs is None:
                continue
            if state is None or is_idle(state):
                jobs.pop(job_id, None)
                archived = self.idle.get(partition)
                if archived is not None and state is None:
                    archived.pop(job_id, None)
                elif archived is not None and state is not None:
                    archived[job_id] = state
            else:
                jobs[job_id] = state
                self.timers.track(partition, state)
