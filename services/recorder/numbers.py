"""Each job's executions numbered 1, 2, 3... in the order the recorder first sees them, so that page N of a job
(GET /tasks/{t}/jobs/{j}?page=N) is one range of numbers instead of N pages of rows read and thrown away.

The recorder numbers them rather than the scheduler: every execution passes the recorder's first-sighting gate
(services/recorder/indexes.py) whoever minted its id (the API for a job's first run and a retry asked for, the
scheduler for a cron's and a retry's), including those the scheduler never makes due; and the event contract
stays as it is. Executions are numbered in the order they are first seen, which is their creation order but for
two created within the recorders' lag of each other by different services (a cron run and a retry asked for):
those two may be swapped, never repeated or left out.

A number is claimed with a lightweight transaction on its slot (INSERT ... IF NOT EXISTS), so two recorders
numbering the same job at once (its orders and its due executions are on different topics) take different
numbers. The claim is then written on the execution's gate row (`execution_index.number`). A recorder that
finds the gate row marked `numbering` without a number either stopped between the two, or sees the execution
while another recorder, past the gate, is claiming its number: it waits for that number a moment
(CLAIM_PATIENCE_S), then looks for a claim among the job's newest slots before claiming one itself.

Executions recorded before numbering existed have no number (their gate rows are not marked): a job page reads
them as before, after the numbered ones (services/api/job_pages.py).
"""

import time
import uuid

from cassandra.cluster import Session

from shared.infra.writes import Writes

# How many of a job's newest numbers are searched for a claim cut short: a recorder restarted replays the
# execution's event soon after, before more than a few executions of the same job were numbered.
CLAIM_SEARCH = 20
# How long a gate row without a number is given to get one from the recorder that passed the gate (a claim takes
# a few milliseconds; a recorder that stopped comes back later than this).
CLAIM_PATIENCE_S = 2.0
CLAIM_POLL_S = 0.1


def next_number(newest: int | None) -> int:
    """The number to claim after the newest claimed one (none: the job's first)."""
    return 1 if newest is None else newest + 1


class ExecutionNumbers:
    """Claims executions' numbers and writes each on its gate row."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self._session = session
        ks = keyspace
        self._newest = session.prepare(
            f"SELECT number, execution_id FROM {ks}.execution_numbers WHERE task_id = ? AND job_id = ? LIMIT ?"
        )
        self._claim = session.prepare(
            f"INSERT INTO {ks}.execution_numbers (task_id, job_id, number, execution_id) VALUES (?, ?, ?, ?)"
            " IF NOT EXISTS"
        )
        self._claimed = session.prepare(
            f"UPDATE {ks}.execution_index SET number = ? WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )
        self._number_of = session.prepare(
            f"SELECT number FROM {ks}.execution_index WHERE task_id = ? AND job_id = ? AND execution_id = ?"
        )

    def number_pending(self, task_id: str, job_id: uuid.UUID, execution_id: uuid.UUID, w: Writes) -> int:
        """The number of an execution whose gate another recorder (or this one before it stopped) passed without
        writing a number: the one that recorder writes within CLAIM_PATIENCE_S, else `number`."""
        deadline = time.monotonic() + CLAIM_PATIENCE_S
        while time.monotonic() < deadline:
            time.sleep(CLAIM_POLL_S)
            row = self._session.execute(self._number_of, (task_id, job_id, execution_id)).one()
            if row is not None and row.number is not None:
                return int(row.number)
        return self.number(task_id, job_id, execution_id, w)

    def number(self, task_id: str, job_id: uuid.UUID, execution_id: uuid.UUID, w: Writes) -> int:
        """The execution's number, claimed now unless an earlier claim is found among the newest; the gate row
        learns it through `w`."""
        newest = list(self._session.execute(self._newest, (task_id, job_id, CLAIM_SEARCH)))
        found = next((row.number for row in newest if row.execution_id == execution_id), None)
        number = found if found is not None else self._claim_after(task_id, job_id, execution_id, newest)
        w.add(self._claimed, (number, task_id, job_id, execution_id))
        return number

    def _claim_after(self, task_id: str, job_id: uuid.UUID, execution_id: uuid.UUID, newest: list[object]) -> int:
        number = next_number(getattr(newest[0], "number", None) if newest else None)
        while True:
            result = self._session.execute(self._claim, (task_id, job_id, number, execution_id)).one()
            # Taken by another recorder meanwhile (or by this execution, when a claim's answer was lost).
            if result.applied or result.execution_id == execution_id:
                return number
            number += 1
