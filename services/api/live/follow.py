"""Following an execution's (or a job's) output: the messages a WebSocket or an SSE client is sent
(docs/live-logs.md).

A follower subscribes to the hub first, then reads the output so far from Cassandra, then goes on with what
the hub brings; it keeps each byte offset once, so the overlap between the two (and a restarted runner's
repeated chunks) is sent once. A hole (chunks the recorder had not written yet when they were read, or that a
slow follower's queue dropped) is read again from Cassandra. The end comes from the execution's final state:
the follower sends what is left up to the execution's `output_bytes`, then `end`.
"""

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from services.api.errors import NotFound
from services.api.live.hub import Followed, OutputHub, Subscription
from services.api.live.reads import PAGE, Chunk, ExecutionState, JobState, LiveReads
from shared.contract.events import ExecutionFinished, ExecutionOutput

POLL_S = 5.0  # a quiet follower checks the execution's state this often (an end the hub did not bring)
KEEPALIVE_S = 15.0
OVERLAP = 64 * 1024  # read this far back when filling a hole: a repeated chunk may have been cut elsewhere
END_PATIENCE_S = 5.0  # after the end, how long the rest of the output may take to reach Cassandra
KEEPALIVE: dict[str, Any] = {"type": "keep-alive"}  # not sent over WebSocket; a comment line over SSE
Message = dict[str, Any]


def execution_message(task_id: str, job_id: uuid.UUID, state: ExecutionState) -> Message:
    return {
        "type": "execution",
        "taskId": task_id,
        "jobId": str(job_id),
        "executionId": str(state.execution_id),
        "status": state.status,
    }


def end_message(state: ExecutionState) -> Message:
    return {
        "type": "end",
        "executionId": str(state.execution_id),
        "status": state.status,
        "exitCode": state.exit_code,
        "error": state.error,
    }


def state_after(state: ExecutionState, event: Followed) -> ExecutionState:
    if isinstance(event, ExecutionFinished):
        return ExecutionState(
            event.execution_id,
            event.status,
            event.exit_code,
            event.error,
            event.stdout,
            event.stderr,
            event.output_bytes,
            state.attempt,
        )
    status = "pulling" if event.type == "ExecutionPulling" else "running"
    return ExecutionState(state.execution_id, status, None, None, "", "", None, state.attempt)


class Delivered:
    """What one follower has sent of one execution's output: each byte offset once, in order."""

    def __init__(self, execution_id: uuid.UUID, start: int = 0, streams: frozenset[str] | None = None) -> None:
        self.execution_id = execution_id
        self.upto = start
        self.streams = streams

    def message(self, chunk: Chunk) -> Message | None:
        """The output message of `chunk`, or None when it was sent already (or is of a stream not followed)."""
        if chunk.end <= self.upto:
            return None
        text, offset = chunk.text, chunk.offset
        if offset < self.upto:  # partly sent: keep what follows
            text = text.encode("utf-8", "surrogatepass")[self.upto - offset :].decode("utf-8", "replace")
            offset = self.upto
        skipped = offset - self.upto
        self.upto = chunk.end
        if self.streams is not None and chunk.stream not in self.streams:
            return None
        return {
            "type": "output",
            "executionId": str(self.execution_id),
            "stream": chunk.stream,
            "text": text,
            "offset": offset,
            "skipped": skipped,
        }

    def follows_on(self, chunk: Chunk) -> bool:
        """Whether nothing is missing before `chunk` (bytes the runner skipped are not missing)."""
        return chunk.offset - chunk.skipped <= self.upto


def chunk_of(event: ExecutionOutput) -> Chunk:
    return Chunk(event.stream, event.text, event.offset, event.size, event.skipped)


class Follower:
    def __init__(self, hub: OutputHub, reads: LiveReads) -> None:
        self.hub = hub
        self.reads = reads

    async def _stored(self, delivered: Delivered, until: int | None = None) -> AsyncGenerator[Message, None]:
        """Output from Cassandra from where `delivered` is, page by page (up to `until` when given)."""
        cursor = max(0, delivered.upto - OVERLAP)
        while until is None or delivered.upto < until:
            rows = await self.reads.output(delivered.execution_id, cursor)
            for row in rows:
                message = delivered.message(row)
                if message is not None:
                    yield message
            if len(rows) < PAGE:
                return
            cursor = rows[-1].offset + 1

    async def _fill(self, delivered: Delivered, until: int, patience_s: float) -> AsyncGenerator[Message, None]:
        """Read from Cassandra until the output reaches `until` or `patience_s` passed (the recorder may lag)."""
        waited, pause = 0.0, 0.1
        while True:
            async for message in self._stored(delivered, until):
                yield message
            if delivered.upto >= until or waited >= patience_s:
                return
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 1.0)

    async def execution(
        self,
        task_id: str,
        job_id: uuid.UUID,
        execution_id: uuid.UUID,
        start: int = 0,
        streams: frozenset[str] | None = None,
    ) -> AsyncGenerator[Message, None]:
        """`execution`, the output from `start` (everything, for a late joiner), then live output, then `end`.
        Raises NotFound before the first message for an unknown execution."""
        subscription = self.hub.subscribe(execution_id=execution_id, job_id=job_id)
        try:
            state = await self.reads.execution(task_id, job_id, execution_id)
            if state is None:
                raise NotFound(f"execution {execution_id} not found in job {job_id} of task {task_id}")
            async for message in self._execution(task_id, job_id, state, subscription, start, streams):
                yield message
        finally:
            self.hub.unsubscribe(subscription)

    async def _execution(
        self,
        task_id: str,
        job_id: uuid.UUID,
        state: ExecutionState,
        subscription: Subscription,
        start: int,
        streams: frozenset[str] | None,
    ) -> AsyncGenerator[Message, None]:
        delivered = Delivered(state.execution_id, start, streams)
        heard = False  # whether the final state came from the hub (the recorder may not have stored it yet)
        yield execution_message(task_id, job_id, state)
        async for message in self._stored(delivered):
            yield message
        quiet = 0.0
        while not state.final:
            try:
                event = await asyncio.wait_for(subscription.queue.get(), POLL_S)
            except TimeoutError:
                quiet += POLL_S
                if quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield KEEPALIVE
                latest = await self.reads.execution(task_id, job_id, state.execution_id)
                if latest is not None and latest.status != state.status:
                    state, heard = latest, False
                    if not state.final:
                        yield execution_message(task_id, job_id, state)
                event = None
            if subscription.overflowed:  # messages were dropped for this follower: read them instead
                subscription.overflowed = False
                async for message in self._stored(delivered):
                    yield message
            if event is None:
                continue
            quiet = 0.0
            if isinstance(event, ExecutionOutput):
                chunk = chunk_of(event)
                if not delivered.follows_on(chunk):
                    async for message in self._fill(delivered, chunk.offset - chunk.skipped, 2.0):
                        yield message
                sent = delivered.message(chunk)
                if sent is not None:
                    yield sent
            elif event.execution_id == state.execution_id:
                state, heard = state_after(state, event), True
                if not state.final:
                    yield execution_message(task_id, job_id, state)
        async for message in self._rest(delivered, state):
            yield message
        if heard:
            await self._stored_final(task_id, job_id, state.execution_id)
        yield end_message(state)

    async def _stored_final(self, task_id: str, job_id: uuid.UUID, execution_id: uuid.UUID) -> None:
        """Wait (up to END_PATIENCE_S) until Cassandra shows the execution's final state, so that a client that
        reads its log or status once it has the `end` reads what the `end` said, not the state before it."""
        waited, pause = 0.0, 0.05
        while waited < END_PATIENCE_S:
            stored = await self.reads.execution(task_id, job_id, execution_id)
            if stored is not None and stored.final:
                return
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 0.5)

    async def _rest(self, delivered: Delivered, state: ExecutionState) -> AsyncGenerator[Message, None]:
        """The output after the end: up to `output_bytes` from Cassandra; for an execution whose output was not
        followed live (`output_bytes` unknown) and of which nothing was sent, its final log."""
        if state.output_bytes is not None:
            async for message in self._fill(delivered, state.output_bytes, END_PATIENCE_S):
                yield message
            return
        if delivered.upto > 0:
            return
        offset = 0
        for stream, text in (("stdout", state.stdout), ("stderr", state.stderr)):
            if text:
                size = len(text.encode("utf-8", "surrogatepass"))
                sent = delivered.message(Chunk(stream, text, offset, size))
                offset += size
                if sent is not None:
                    yield sent

    async def job(
        self, task_id: str, job_id: uuid.UUID, streams: frozenset[str] | None = None
    ) -> AsyncGenerator[Message, None]:
        """The job's latest execution, then each newer one, until the job has nothing more to run. Raises
        NotFound before the first message for an unknown job."""
        subscription = self.hub.subscribe(job_id=job_id)
        try:
            job = await self.reads.job(task_id, job_id)
            if job is None:
                raise NotFound(f"job {job_id} not found in task {task_id}")
            current = await self.reads.latest(task_id, job_id)
            while True:
                if current is None:
                    current = await self._next(task_id, job_id, None, subscription)
                status = current.status
                async for message in self.execution(task_id, job_id, current.execution_id, streams=streams):
                    if message["type"] == "end":
                        status = message["status"]
                    yield message
                # The end as followed: the table may not show it yet (the recorder can be behind the hub).
                current = dataclasses.replace(current, status=status)
                job = await self.reads.job(task_id, job_id) or job
                newer = await self.reads.latest(task_id, job_id)
                if newer is not None and newer.execution_id != current.execution_id:
                    current = newer
                    continue
                if not more_to_come(job, current):
                    return
                current = await self._next(task_id, job_id, current, subscription)
        finally:
            self.hub.unsubscribe(subscription)

    async def _next(
        self, task_id: str, job_id: uuid.UUID, after: ExecutionState | None, subscription: Subscription
    ) -> ExecutionState:
        """The job's next execution (one other than `after`) once it shows."""
        while True:
            try:
                event = await asyncio.wait_for(subscription.queue.get(), POLL_S)
                if after is None or event.execution_id != after.execution_id:
                    found = await self.reads.execution(task_id, job_id, event.execution_id)
                    if found is not None:
                        return found
            except TimeoutError:
                latest = await self.reads.latest(task_id, job_id)
                if latest is not None and (after is None or latest.execution_id != after.execution_id):
                    return latest


def more_to_come(job: JobState, last: ExecutionState) -> bool:
    """Whether the job will run again after `last` ended: a cron still scheduled, or a retry left."""
    if job.cron and job.scheduled:
        return True
    return last.status in ("failed", "timedout") and (last.attempt or 1) <= job.retries
