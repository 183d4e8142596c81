"""Following output (services/api/live/follow.py) over a fake of the Cassandra reads and the hub's own delivery
(its Kafka thread is not started here: tests/e2e/test_live_logs.py runs the whole path)."""

import asyncio
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from services.api.errors import NotFound
from services.api.live import follow as follow_module
from services.api.live.follow import Delivered, Follower, Message, more_to_come
from services.api.live.hub import OutputHub
from services.api.live.reads import Chunk, ExecutionState, JobState
from services.api.routers.live import encode_sse
from shared.contract.events import ExecutionFinished, ExecutionOutput, ExecutionStarted, new_execution_id
from shared.process.settings import Settings

TASK, JOB = "t", uuid.uuid4()
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def running(eid: uuid.UUID, attempt: int = 1) -> ExecutionState:
    return ExecutionState(eid, "running", None, None, "", "", None, attempt)


def ended(eid: uuid.UUID, size: int | None, status: str = "done", attempt: int = 1, stdout: str = "") -> ExecutionState:
    return ExecutionState(eid, status, 0 if status == "done" else 1, None, stdout, "", size, attempt)


class Reads:
    def __init__(self) -> None:
        self.executions: dict[uuid.UUID, ExecutionState] = {}
        self.chunks: dict[uuid.UUID, list[Chunk]] = {}
        self.job_state: JobState | None = JobState(False, None, 0)

    async def execution(self, task_id: str, job_id: uuid.UUID, eid: uuid.UUID) -> ExecutionState | None:
        return self.executions.get(eid)

    async def latest(self, task_id: str, job_id: uuid.UUID) -> ExecutionState | None:
        return self.executions[max(self.executions, key=lambda e: e.time)] if self.executions else None

    async def job(self, task_id: str, job_id: uuid.UUID) -> JobState | None:
        return self.job_state

    async def output(self, eid: uuid.UUID, start: int) -> list[Chunk]:
        return sorted((c for c in self.chunks.get(eid, []) if c.offset >= start), key=lambda c: c.offset)

    def store(self, eid: uuid.UUID, stream: str, text: str, offset: int, skipped: int = 0) -> Chunk:
        chunk = Chunk(stream, text, offset, len(text.encode()), skipped)
        self.chunks.setdefault(eid, []).append(chunk)
        return chunk


def output(eid: uuid.UUID, chunk: Chunk) -> ExecutionOutput:
    return ExecutionOutput(
        task_id=TASK,
        job_id=JOB,
        execution_id=eid,
        host="h1",
        stream=chunk.stream,  # type: ignore[arg-type]
        text=chunk.text,
        offset=chunk.offset,
        size=chunk.size,
        skipped=chunk.skipped,
    )


def finished(eid: uuid.UUID, size: int | None, status: str = "done") -> ExecutionFinished:
    return ExecutionFinished(task_id=TASK, job_id=JOB, execution_id=eid, status=status, output_bytes=size)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow_module, "POLL_S", 0.05)
    monkeypatch.setattr(follow_module, "END_PATIENCE_S", 0.3)


async def collect(messages: AsyncGenerator[Message, None], then: list[Any], hub: OutputHub) -> list[Message]:
    """Every message of `messages`; after the first one, `then` (lists of events for the hub, or callables)
    happen one by one, each once the follower waits."""
    seen = [await anext(messages)]

    async def drive() -> None:
        for step in then:
            await asyncio.sleep(0.02)
            if callable(step):
                step()
            else:
                hub._deliver(step)

    driver = asyncio.create_task(drive())
    async for message in messages:
        seen.append(message)
    await driver
    return seen


def texts(messages: list[Message]) -> str:
    return "".join(m["text"] for m in messages if m["type"] == "output")


def follower() -> tuple[Follower, Reads, OutputHub]:
    reads = Reads()
    hub = OutputHub(Settings())
    return Follower(hub, reads), reads, hub  # type: ignore[arg-type]


async def test_a_late_joiner_gets_what_it_missed_then_the_rest_live_then_the_end() -> None:
    f, reads, hub = follower()
    eid = new_execution_id()
    reads.executions[eid] = running(eid)
    reads.store(eid, "stdout", "1\n", 0)
    reads.store(eid, "stderr", "e\n", 2)
    live = reads.store(eid, "stdout", "2\n", 4)  # also stored: the hub and the table overlap
    third = Chunk("stdout", "3\n", 6, 2)
    messages = await collect(
        f.execution(TASK, JOB, eid), [[output(eid, live), output(eid, third), finished(eid, 8)]], hub
    )
    assert messages[0] == {
        "type": "execution",
        "taskId": TASK,
        "jobId": str(JOB),
        "executionId": str(eid),
        "status": "running",
    }
    assert [(m["stream"], m["text"], m["offset"]) for m in messages if m["type"] == "output"] == [
        ("stdout", "1\n", 0),
        ("stderr", "e\n", 2),
        ("stdout", "2\n", 4),
        ("stdout", "3\n", 6),
    ]
    assert messages[-1]["type"] == "end" and messages[-1]["status"] == "done"
    assert hub.followers == 0  # unsubscribed at the end


async def test_the_end_waits_until_the_table_shows_the_final_state() -> None:
    """A client that reads the log once it has the `end` reads what the `end` said (the recorder lags the hub)."""
    f, reads, hub = follower()
    eid = new_execution_id()
    reads.executions[eid] = running(eid)
    chunk = reads.store(eid, "stdout", "1\n", 0)
    stored_at: list[float] = []

    def store_final() -> None:
        reads.executions[eid] = ended(eid, 2, stdout="1\n")
        stored_at.append(asyncio.get_running_loop().time())

    async def record_later() -> None:
        await asyncio.sleep(0.15)
        store_final()

    messages = f.execution(TASK, JOB, eid)
    seen = [await anext(messages)]
    hub._deliver([output(eid, chunk), finished(eid, 2)])
    recorder = asyncio.create_task(record_later())
    async for message in messages:
        seen.append(message)
    end_at = asyncio.get_running_loop().time()
    await recorder
    assert seen[-1]["type"] == "end" and seen[-1]["status"] == "done"
    assert stored_at and end_at >= stored_at[0]


async def test_an_end_the_table_never_shows_is_still_sent_after_the_patience() -> None:
    f, reads, hub = follower()
    eid = new_execution_id()
    reads.executions[eid] = running(eid)
    messages = await collect(f.execution(TASK, JOB, eid), [[finished(eid, 0)]], hub)
    assert messages[-1]["type"] == "end" and messages[-1]["status"] == "done"
    assert reads.executions[eid].status == "running"


async def test_joining_after_the_end_replays_everything() -> None:
    f, reads, _hub = follower()
    eid = new_execution_id()
    reads.executions[eid] = ended(eid, 4, "failed")
    reads.store(eid, "stdout", "ab", 0)
    reads.store(eid, "stdout", "cd", 2)
    messages = [m async for m in f.execution(TASK, JOB, eid)]
    assert texts(messages) == "abcd"
    assert messages[-1] == {"type": "end", "executionId": str(eid), "status": "failed", "exitCode": 1, "error": None}


async def test_an_execution_without_live_output_replays_its_final_log() -> None:
    f, reads, _ = follower()
    eid = new_execution_id()
    reads.executions[eid] = ExecutionState(eid, "done", 0, None, "out\n", "err\n", None, 1)
    messages = [m async for m in f.execution(TASK, JOB, eid)]
    assert [(m["stream"], m["text"]) for m in messages if m["type"] == "output"] == [
        ("stdout", "out\n"),
        ("stderr", "err\n"),
    ]


async def test_a_hole_is_filled_from_the_table_in_order() -> None:
    f, reads, hub = follower()
    eid = new_execution_id()
    reads.executions[eid] = running(eid)
    early = Chunk("stdout", "early\n", 0, 6)
    later = Chunk("stdout", "later\n", 6, 6)

    def recorder_catches_up() -> None:
        reads.chunks.setdefault(eid, []).append(early)

    steps = [[output(eid, later)], recorder_catches_up, [finished(eid, 12)]]
    messages = await collect(f.execution(TASK, JOB, eid), steps, hub)
    assert texts(messages) == "early\nlater\n"


async def test_a_repeated_chunk_cut_elsewhere_is_sent_once() -> None:
    f, reads, hub = follower()
    eid = new_execution_id()
    reads.executions[eid] = running(eid)
    first = Chunk("stdout", "0123456789", 0, 10)
    again = [Chunk("stdout", "012345", 0, 6), Chunk("stdout", "6789ABCDEF", 6, 10)]  # a restarted runner
    steps = [[output(eid, first)], [output(eid, c) for c in again], [finished(eid, 16)]]
    messages = await collect(f.execution(TASK, JOB, eid), steps, hub)
    assert texts(messages) == "0123456789ABCDEF"
    assert [m["offset"] for m in messages if m["type"] == "output"] == [0, 10]


async def test_bytes_the_runner_skipped_are_announced_not_waited_for() -> None:
    f, reads, hub = follower()
    eid = new_execution_id()
    reads.executions[eid] = running(eid)
    steps = [[output(eid, Chunk("stdout", "a", 0, 1)), output(eid, Chunk("stdout", "z", 1001, 1, skipped=1000))]]
    steps.append([finished(eid, 1002)])
    messages = await collect(f.execution(TASK, JOB, eid), steps, hub)
    outputs = [m for m in messages if m["type"] == "output"]
    assert [(m["text"], m["skipped"]) for m in outputs] == [("a", 0), ("z", 1000)]


async def test_a_follower_that_fell_behind_reads_what_it_lost_from_the_table() -> None:
    f, reads, hub = follower()
    eid = new_execution_id()
    reads.executions[eid] = running(eid)
    reads.store(eid, "stdout", "0000\n", 0)
    messages = f.execution(TASK, JOB, eid)
    seen = [await anext(messages), await anext(messages)]  # the execution, then the output so far
    chunks = [reads.store(eid, "stdout", f"{i:04d}\n", i * 5) for i in range(1, 200)]  # the recorder has them
    hub._deliver([output(eid, c) for c in chunks])  # far more than a follower's queue holds, then silence

    async def read_until_caught_up() -> None:
        while texts(seen) != "".join(f"{i:04d}\n" for i in range(200)):
            seen.append(await anext(messages))

    await asyncio.wait_for(read_until_caught_up(), 5)  # caught up before any end
    reads.executions[eid] = ended(eid, 1000)
    hub._deliver([finished(eid, 1000)])
    seen.extend([m async for m in messages])
    assert seen[-1]["type"] == "end"
    assert texts(seen) == "".join(f"{i:04d}\n" for i in range(200))


async def test_an_end_the_hub_never_brought_is_found_in_the_table() -> None:
    f, reads, hub = follower()
    eid = new_execution_id()
    reads.executions[eid] = running(eid)

    def ends_quietly() -> None:
        reads.store(eid, "stdout", "bye\n", 0)
        reads.executions[eid] = ended(eid, 4)

    messages = await collect(f.execution(TASK, JOB, eid), [ends_quietly], hub)
    assert texts(messages) == "bye\n"
    assert messages[-1]["status"] == "done"


async def test_only_the_stream_asked_for_is_sent() -> None:
    f, reads, _ = follower()
    eid = new_execution_id()
    reads.executions[eid] = ended(eid, 4)
    reads.store(eid, "stdout", "o\n", 0)
    reads.store(eid, "stderr", "e\n", 2)
    messages = [m async for m in f.execution(TASK, JOB, eid, streams=frozenset({"stderr"}))]
    assert texts(messages) == "e\n"


async def test_unknown_executions_and_jobs_are_not_found() -> None:
    f, reads, hub = follower()
    with pytest.raises(NotFound):
        await anext(f.execution(TASK, JOB, uuid.uuid4()))
    reads.job_state = None
    with pytest.raises(NotFound):
        await anext(f.job(TASK, JOB))
    assert hub.followers == 0


async def test_a_job_follower_moves_on_to_the_retry_and_closes_when_none_is_left() -> None:
    f, reads, hub = follower()
    reads.job_state = JobState(False, None, 1)
    first, retry = new_execution_id(), new_execution_id()
    reads.executions[first] = ended(first, None, "failed", attempt=1, stdout="try 1\n")

    def retry_starts() -> None:
        reads.executions[retry] = running(retry, attempt=2)
        hub._deliver([ExecutionStarted(task_id=TASK, job_id=JOB, execution_id=retry, host="h1", container_id="c")])

    def retry_ends() -> None:
        reads.store(retry, "stdout", "try 2\n", 0)
        reads.executions[retry] = ended(retry, 6, "failed", attempt=2)

    messages = await collect(f.job(TASK, JOB), [retry_starts, retry_ends], hub)
    assert next(m["executionId"] for m in messages if m["type"] == "execution") == str(first)
    assert texts(messages) == "try 1\ntry 2\n"
    assert [m["status"] for m in messages if m["type"] == "end"] == ["failed", "failed"]
    assert hub.followers == 0


def test_what_comes_after_an_execution() -> None:
    eid = uuid.uuid4()
    assert more_to_come(JobState(True, "* * * * *", 0), ended(eid, 0))
    assert not more_to_come(JobState(False, "* * * * *", 0), ended(eid, 0))  # a stopped cron
    assert more_to_come(JobState(False, None, 2), ended(eid, 0, "timedout", attempt=2))
    assert not more_to_come(JobState(False, None, 2), ended(eid, 0, "failed", attempt=3))
    assert not more_to_come(JobState(False, None, 2), ended(eid, 0, "stopped", attempt=1))


def test_sent_offsets_are_kept_once() -> None:
    d = Delivered(uuid.uuid4())
    assert d.message(Chunk("stdout", "héllo", 0, 6)) is not None
    assert d.message(Chunk("stdout", "héllo", 0, 6)) is None
    part = d.message(Chunk("stdout", "héllo, world", 0, 13))
    assert part is not None and part["text"] == ", world" and part["offset"] == 6


def test_an_sse_event_never_breaks_on_the_text() -> None:
    raw = encode_sse({"type": "output", "text": "a\r\nb\n\ndata: x\x00"})
    assert raw.count(b"\n\n") == 1 and raw.endswith(b"\n\n")
    assert raw.startswith(b"event: output\ndata: {")
    assert b"\r" not in raw
    assert encode_sse(follow_module.KEEPALIVE) == b": keep-alive\n\n"


async def test_a_job_follower_waits_for_the_retry_even_when_the_table_is_behind_the_hub() -> None:
    f, reads, hub = follower()
    reads.job_state = JobState(False, None, 1)
    first, retry = new_execution_id(), new_execution_id()
    reads.executions[first] = running(first)  # the recorder has not written the end yet

    def retry_runs_and_ends() -> None:
        reads.executions[first] = ended(first, 0, "failed")
        reads.executions[retry] = ended(retry, 0, "done", attempt=2)

    steps = [[finished(first, 0, "failed")], retry_runs_and_ends]
    messages = await collect(f.job(TASK, JOB), steps, hub)
    assert [m["status"] for m in messages if m["type"] == "end"] == ["failed", "done"]
