"""Reading job states back from the scheduler's compacted topics (state and archive), one partition at a time."""

import logging
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from pydantic import ValidationError

from services.scheduler.state import JobState
from services.scheduler.transactions import KAFKA_TIMEOUT_S

log = logging.getLogger("scheduler")

# A partition's states are read up to the end its writers had reached when the read began, transactions still
# open then included (a zombie's: waited until committed or aborted); a read longer than this is a failure.
LOAD_DEADLINE_S = 60.0


class StateSource(Protocol):
    """Where the job states of a partition are read from."""

    def read_states(self, topic: str, partition: int) -> tuple[dict[uuid.UUID, JobState], int]: ...
    def close(self) -> None: ...


class StateReader:
    """Reads with `reader` (read_committed, end-of-partition events on) up to where `probe` (read_uncommitted)
    finds the partition's end. One reader serves every read: a new consumer takes ~0.5 s to its first fetch.
    A read that fails replaces both (made by `consumers`): after a broker of a cluster died, a probe kept
    answering "unknown partition" for every partition it had not read yet, long after the broker was back, and the
    scheduler never owned a partition again (the cluster test's first run)."""

    def __init__(self, consumers: Callable[[], tuple[Consumer, Consumer]]) -> None:
        self.consumers = consumers
        self.probe, self.reader = consumers()

    def read_states(self, topic: str, partition: int) -> tuple[dict[uuid.UUID, JobState], int]:
        """`_read_states`, with new consumers after a failure (the caller tries again later)."""
        try:
            return self._read_states(topic, partition)
        except KafkaException:
            log.warning("state reader failed; its consumers are replaced", extra={"topic": topic})
            self.close()
            self.probe, self.reader = self.consumers()
            raise

    def _read_states(self, topic: str, partition: int) -> tuple[dict[uuid.UUID, JobState], int]:
        """The latest committed state per job on one partition of `topic`, and how many records were read.

        Read up to the end writers had reached when the read began, transactions open then included: a
        read_committed reader stops at the first open transaction (its end-of-partition comes early), so it
        waits until that transaction is committed or aborted. Otherwise an instance paused mid-transaction
        could commit it after this read, and its fired timers would fire again here."""
        tp = TopicPartition(topic, partition)
        _low, end = self.probe.get_watermark_offsets(tp, timeout=KAFKA_TIMEOUT_S)
        states: dict[uuid.UUID, JobState] = {}
        read = 0
        if end <= 0:
            return states, read
        reader = self.reader
        deadline = time.monotonic() + LOAD_DEADLINE_S
        try:
            reader.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
            while True:
                if time.monotonic() > deadline:
                    raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{topic}[{partition}] not read in time"))
                msg = reader.poll(1.0)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        if (msg.offset() or 0) >= end:
                            break
                        continue  # stopped before an open transaction: wait for its outcome
                    raise KafkaException(error)
                read += 1
                try:
                    job_id = uuid.UUID((msg.key() or b"").decode())
                    state = None if msg.value() is None else JobState.model_validate_json(msg.value() or b"")
                except (ValueError, ValidationError) as exc:  # not ours (or from a newer version): skipped
                    log.error("unreadable job state skipped", extra={"offset": msg.offset(), "error": str(exc)[:500]})
                    continue
                if state is None:
                    states.pop(job_id, None)
                else:
                    states[job_id] = state
        finally:
            reader.unassign()
        return states, read

    def close(self) -> None:
        for consumer in (self.probe, self.reader):
            try:
                consumer.close()
            except Exception as exc:  # stopping while Kafka is away: nothing left to save
                log.error("close failed", extra={"error": str(exc)})
