"""Live output: one running container's output, followed from the engine and published in chunks
(ExecutionOutput on the `output` topic) as it is written.

Two threads per execution: a reader that only reads the engine's stream (so a slow broker never slows the
container's log), and a publisher that gathers what the reader queued into chunks of one stream each, in the
order written. Bounded on every side: a chunk holds at most `chunk_bytes`; at most `chunks_per_s` chunks a
second leave (faster output is gathered into fewer chunks); `rate_bytes_s` with a burst of `burst_bytes`
(a token bucket) caps the bytes; what waits for its turn is capped at a few chunks, the oldest skipped first.
Skipped bytes still count in the offsets, and the next chunk says how many there were, so a follower can say so.
Best effort throughout: the execution's log in ExecutionFinished remains the record.
"""

import codecs
import contextlib
import contextvars
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from services.runner.ports import ContainerRuntime, EngineUnavailable, OutputSink
from shared.contract.events import ExecutionOutput, OutputStream

log = logging.getLogger(__name__)

STREAMS: dict[int, OutputStream] = {1: "stdout", 2: "stderr"}
_END = object()


@dataclass(frozen=True)
class OutputLimits:
    chunk_bytes: int = 16 * 1024
    chunks_per_s: float = 20.0
    rate_bytes_s: int = 64 * 1024
    burst_bytes: int = 1024 * 1024
    reconnects: int = 5  # a broken stream is read again from the start (what was read already is passed over)

    @property
    def pending_bytes(self) -> int:
        """Most bytes waiting for their turn; beyond it the oldest are skipped."""
        return 4 * self.chunk_bytes


class TokenBucket:
    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self._rate, self._burst, self._clock = rate, burst, clock
        self._tokens, self._at = burst, clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def take(self, amount: float) -> bool:
        self._refill()
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` tokens are there (0 when they are)."""
        self._refill()
        return max(0.0, (amount - self._tokens) / self._rate)


@dataclass
class Segment:
    stream: int
    offset: int  # merged-output bytes before it
    data: bytearray


class Chunker:
    """The publisher's logic, without threads or a broker (unit-tested): frames in, chunks out."""

    def __init__(
        self,
        ids: dict[str, object],
        limits: OutputLimits,
        send: Callable[[ExecutionOutput], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ids = ids
        self._limits = limits
        self._send = send
        self._pace = TokenBucket(limits.chunks_per_s, max(1.0, limits.chunks_per_s / 4), clock)
        self._bytes = TokenBucket(limits.rate_bytes_s, limits.burst_bytes, clock)
        self._segments: deque[Segment] = deque()
        self._pending = 0
        self.position = 0  # merged-output bytes taken in (published, waiting or skipped)
        self._published_to = 0  # end of the last published chunk
        self._decoders = {kind: codecs.getincrementaldecoder("utf-8")(errors="replace") for kind in STREAMS}

    def take(self, stream: int, data: bytes) -> None:
        if not data:
            return
        size = self._limits.chunk_bytes
        at, view = self.position, memoryview(data)
        while view:  # into the last segment while it has room, then into new ones of at most a chunk each
            last = self._segments[-1] if self._segments else None
            if last is not None and last.stream == stream and len(last.data) < size:
                room = size - len(last.data)
                last.data += view[:room]
                at, view = at + len(view[:room]), view[room:]
            else:
                self._segments.append(Segment(stream, at, bytearray(view[:size])))
                at, view = at + len(view[:size]), view[size:]
        self.position += len(data)
        self._pending += len(data)
        while self._pending > self._limits.pending_bytes and len(self._segments) > 1:
            dropped = self._segments.popleft()  # the oldest waiting output gives way
            self._pending -= len(dropped.data)
            self._decoders[dropped.stream].reset()

    def due_in(self) -> float | None:
        """Seconds until the next chunk may leave; None when nothing waits."""
        return self._pace.wait_for(1) if self._segments else None

    def publish_due(self, final: bool = False) -> None:
        """Publish what waits, as far as the pace allows (all of it when `final`)."""
        while self._segments and (final or self._pace.take(1)):
            self._publish_one()

    def _publish_one(self) -> None:
        segment = self._segments[0]
        part = bytes(segment.data[: self._limits.chunk_bytes])
        if len(part) == len(segment.data):
            self._segments.popleft()
        else:
            del segment.data[: len(part)]
        offset = segment.offset
        segment.offset += len(part)
        self._pending -= len(part)
        decoder = self._decoders[segment.stream]
        if not self._bytes.take(len(part)):
            decoder.reset()  # skipped: the next chunk of this stream starts afresh
            return
        chunk = ExecutionOutput(
            **self._ids,  # type: ignore[arg-type]
            stream=STREAMS[segment.stream],
            text=decoder.decode(part),
            offset=offset,
            size=len(part),
            skipped=offset - self._published_to,
        )
        if self._send(chunk):
            self._published_to = offset + len(part)
        else:
            decoder.reset()


class OutputFollower:
    """Follows one container's output in two threads of its own (daemons: a stream the engine never ends is
    left behind, not waited for)."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        container_id: str,
        ids: dict[str, object],
        sink: OutputSink,
        limits: OutputLimits,
    ) -> None:
        self._runtime = runtime
        self._container_id = container_id
        self._sink = sink
        self._limits = limits
        self._frames: queue.Queue[object] = queue.Queue(maxsize=1024)
        self._stop = threading.Event()
        self._chunker = Chunker(ids, limits, sink.send)
        self._done = threading.Event()
        name = f"output-{str(ids.get('execution_id', uuid.uuid4()))[:8]}"
        # Both threads run in a copy of the starting thread's context: the execution's ids and trace.
        read, publish = contextvars.copy_context(), contextvars.copy_context()
        self._reader = threading.Thread(target=read.run, args=(self._read,), name=f"{name}-read", daemon=True)
        self._publisher = threading.Thread(
            target=publish.run, args=(self._publish,), name=f"{name}-publish", daemon=True
        )

    def start(self) -> "OutputFollower":
        self._reader.start()
        self._publisher.start()
        return self

    def finish(self, timeout: float = 5.0) -> int | None:
        """Once the container has ended: wait (up to `timeout`) for the rest of its output to be published;
        the output's size in bytes, or None when it could not be followed to its end."""
        if not self._done.wait(timeout):
            self._stop.set()
            return None
        with contextlib.suppress(Exception):
            self._sink.flush(min(timeout, 2.0))
        return self._chunker.position

    def abandon(self) -> None:
        self._stop.set()

    def _read(self) -> None:
        """Reads the engine's stream into the queue; a broken stream is read again from the start, passing over
        what was read already (the engine keeps the whole log)."""
        read = 0
        for _ in range(self._limits.reconnects + 1):
            seen = 0
            try:
                for stream, data in self._runtime.follow(self._container_id):
                    if self._stop.is_set():
                        return
                    if seen + len(data) <= read:
                        seen += len(data)
                        continue
                    fresh = data[max(0, read - seen) :]
                    seen += len(data)
                    read = seen
                    self._put((stream, fresh))
                self._put(_END)
                return
            except EngineUnavailable as exc:
                log.info("output stream broke; reading it again", extra={"error": str(exc)})
                if self._stop.wait(1.0):
                    return
            except Exception as exc:  # the output is best effort: never an execution's failure
                log.warning("could not follow the output", extra={"error": str(exc)})
                break
        self._put(None)  # given up: the output's end is unknown

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._frames.put(item, timeout=0.5)
                return

    def _publish(self) -> None:
        chunker = self._chunker
        try:
            while not self._stop.is_set():
                wait = chunker.due_in()
                try:
                    item = self._frames.get(timeout=0.5 if wait is None else max(wait, 0.001))
                except queue.Empty:
                    chunker.publish_due()
                    continue
                while True:  # take in everything queued, then publish as the pace allows
                    if item is _END or item is None:
                        chunker.publish_due(final=True)
                        if item is _END:
                            self._done.set()
                        return
                    frame: tuple[int, bytes] = item  # type: ignore[assignment]
                    chunker.take(*frame)
                    try:
                        item = self._frames.get_nowait()
                    except queue.Empty:
                        break
                chunker.publish_due()
        except Exception as exc:
            log.warning("could not publish the output", extra={"error": str(exc)})
