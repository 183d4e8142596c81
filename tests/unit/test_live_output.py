"""The runner's live output chunking (services/runner/output.py): order, offsets, bounds, skipping."""

import threading
import time
import uuid

from services.runner.output import Chunker, OutputFollower, OutputLimits
from shared.contract.events import ExecutionOutput
from tests.fakes.engine import FakeEngine, Program

IDS: dict[str, object] = {"task_id": "t", "job_id": uuid.uuid4(), "execution_id": uuid.uuid4(), "host": "h1"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def chunker(limits: OutputLimits, accept: bool = True) -> tuple[Chunker, list[ExecutionOutput], Clock]:
    sent: list[ExecutionOutput] = []
    clock = Clock()

    def send(chunk: ExecutionOutput) -> bool:
        if accept:
            sent.append(chunk)
        return accept

    return Chunker(IDS, limits, send, clock), sent, clock


def rebuilt(sent: list[ExecutionOutput]) -> list[tuple[str, str]]:
    return [(c.stream, c.text) for c in sent]


def test_chunks_keep_the_order_written_and_tell_the_streams_apart() -> None:
    c, sent, _ = chunker(OutputLimits())
    c.take(1, b"one\n")
    c.take(2, b"oops\n")
    c.take(1, b"two\n")
    c.publish_due(final=True)
    assert rebuilt(sent) == [("stdout", "one\n"), ("stderr", "oops\n"), ("stdout", "two\n")]
    assert [(x.offset, x.size, x.skipped) for x in sent] == [(0, 4, 0), (4, 5, 0), (9, 4, 0)]
    assert all(x.key == str(IDS["execution_id"]).encode() for x in sent)
    assert c.position == 13


def test_writes_of_one_stream_are_gathered_up_to_the_chunk_size() -> None:
    c, sent, _ = chunker(OutputLimits(chunk_bytes=256, burst_bytes=10**6))
    for _ in range(100):
        c.take(1, b"x" * 10)
    c.publish_due(final=True)
    assert all(x.size <= 256 for x in sent)
    assert "".join(x.text for x in sent) == "x" * 1000
    assert [x.offset for x in sent] == list(range(0, 1000, 256))


def test_the_pace_gathers_fast_output_into_few_chunks() -> None:
    c, sent, clock = chunker(OutputLimits(chunks_per_s=10, burst_bytes=10**6))
    for i in range(50):
        c.take(1, f"line {i}\n".encode())
        c.publish_due()
        clock.now += 0.01  # 100 lines a second for half a second
    c.publish_due(final=True)
    assert len(sent) <= 10  # at most the bucket (2) and 10 a second, plus the final flush
    assert "".join(x.text for x in sent) == "".join(f"line {i}\n" for i in range(50))


def test_output_over_the_byte_rate_is_skipped_and_counted() -> None:
    c, sent, clock = chunker(OutputLimits(chunk_bytes=1024, rate_bytes_s=1024, burst_bytes=2048, chunks_per_s=1000))
    for _ in range(20):  # 20 KiB at once: the burst lets 2 KiB through
        c.take(1, b"a" * 1024)
        c.publish_due()
    clock.now += 1.0  # a second later: 1 KiB more may go
    c.take(2, b"b" * 1000)
    c.publish_due(final=True)
    published = sum(x.size for x in sent)
    assert published <= 2048 + 1024
    last = sent[-1]
    assert last.stream == "stderr" and last.text == "b" * 1000
    assert last.offset == 20 * 1024
    # Every byte is either published or counted as skipped before a published chunk.
    assert sum(x.skipped for x in sent) + published == 20 * 1024 + 1000


def test_what_waits_is_bounded_and_the_oldest_gives_way() -> None:
    limits = OutputLimits(chunk_bytes=100, chunks_per_s=1, burst_bytes=10**6)
    c, sent, _ = chunker(limits)
    c.publish_due()  # the pace's first token is spent on nothing
    for i in range(100):
        c.take(1 + i % 2, f"{i:03d}".encode() * 10)  # 30-byte writes, alternating streams: no gathering
    assert c._pending <= limits.pending_bytes + 30
    c.publish_due(final=True)
    assert sent[-1].text == "099" * 10  # the newest output is kept
    assert sent[-1].offset == 99 * 30
    assert sent[0].skipped > 0


def test_a_character_split_between_writes_is_decoded_whole() -> None:
    c, sent, _ = chunker(OutputLimits(chunk_bytes=1024))
    snowman = "☃".encode()
    c.take(1, b"a" + snowman[:1])
    c.publish_due(final=True)
    c.take(1, snowman[1:] + b"\n")
    c.publish_due(final=True)
    assert "".join(x.text for x in sent) == "a☃\n"
    assert [x.size for x in sent] == [2, 3]


def test_invalid_utf8_and_nul_bytes_come_out_as_text() -> None:
    c, sent, _ = chunker(OutputLimits())
    c.take(1, b"\x00bin\xff\xfe\n")
    c.publish_due(final=True)
    assert sent[0].text == "\x00bin\ufffd\ufffd\n"
    assert sent[0].size == 7
    ExecutionOutput.model_validate_json(sent[0].model_dump_json())  # the wire form takes it


def test_a_refused_chunk_counts_as_skipped_in_the_next() -> None:
    refused = [True]
    sent: list[ExecutionOutput] = []

    def send(chunk: ExecutionOutput) -> bool:
        if refused.pop() if refused else False:
            return False
        sent.append(chunk)
        return True

    c = Chunker(IDS, OutputLimits(), send, Clock())
    c.take(1, b"lost\n")
    c.publish_due(final=True)
    c.take(1, b"kept\n")
    c.publish_due(final=True)
    assert [(x.text, x.offset, x.skipped) for x in sent] == [("kept\n", 5, 5)]


class Sink:
    def __init__(self) -> None:
        self.chunks: list[ExecutionOutput] = []
        self.lock = threading.Lock()

    def send(self, chunk: ExecutionOutput) -> bool:
        with self.lock:
            self.chunks.append(chunk)
        return True

    def flush(self, timeout: float) -> None:
        pass


def test_the_follower_publishes_a_containers_output_and_says_its_size() -> None:
    engine = FakeEngine(default=Program(0, b"hello\n" * 3, b"bad\n", running_waits=3))
    from services.runner.ports import ContainerSpec

    started = engine.start(ContainerSpec(name="c", image="i", argv=["x"]))
    sink = Sink()
    follower = OutputFollower(engine, started.container_id, IDS, sink, OutputLimits()).start()
    while engine.wait(started.container_id, 0) is None:
        time.sleep(0.01)
    assert follower.finish(5) == 22
    assert rebuilt(sink.chunks) == [("stdout", "hello\n" * 3), ("stderr", "bad\n")]


def test_a_broken_stream_is_read_again_without_repeating_output() -> None:
    from services.runner.ports import EngineUnavailable

    class Flaky:
        calls = 0

        def follow(self, container_id: str):  # type: ignore[no-untyped-def]
            Flaky.calls += 1
            yield 1, b"first\n"
            if Flaky.calls == 1:
                raise EngineUnavailable("cut")
            yield 1, b"second\n"

    sink = Sink()
    follower = OutputFollower(Flaky(), "c", IDS, sink, OutputLimits()).start()  # type: ignore[arg-type]
    assert follower.finish(10) == 13
    assert "".join(c.text for c in sink.chunks) == "first\nsecond\n"


def test_chunks_with_impossible_offsets_are_outside_the_contract() -> None:
    import pytest
    from pydantic import ValidationError

    chunk = ExecutionOutput(**IDS, stream="stdout", text="x", offset=0, size=1)  # type: ignore[arg-type]
    for field in ("offset", "size", "skipped"):
        raw = chunk.model_dump(mode="json") | {field: -1}
        with pytest.raises(ValidationError):
            ExecutionOutput.model_validate(raw)
