"""Small helpers for tests that wait on real, asynchronous components."""

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError

from shared.contract.events import Event, decode

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = "") -> T:
    """Call `probe` until it returns something truthy; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}; last value: {last!r}")


def decoded(msg: Message) -> list[Event]:
    """The event a message holds, or none: other tests park garbage on some topics on purpose."""
    try:
        return [decode(msg.value() or b"")]
    except ValidationError:
        return []


def read_events(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Event]:
    """Read at least `count` events from the start of `topic` with a throw-away consumer group; with count 0,
    everything that arrives within `timeout`."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    try:
        while (count == 0 or len(events) < count) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            events += decoded(msg)
    finally:
        consumer.close()
    assert len(events) >= count, f"expected {count} events on {topic} within {timeout}s, got {events}"
    return events


def read_to_end(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Event]:
    """Every event on `topic` up to the end of each of its partitions as the reader reaches it: what was published
    before the call, without waiting a fixed time for more (for probes that look for something already sent;
    `read_events` with count 0 also waits for what comes during its `timeout`)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}", "enable.partition.eof": True}
    )
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        unread = set(partitions)
        while unread and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    unread.discard(msg.partition())
                continue
            events += decoded(msg)
    finally:
        consumer.close()
    assert not unread, f"partitions {sorted(unread)} of {topic} not read to their end within {timeout}s"
    return events


def parked_headers(bootstrap: str, dead_letter_topic: str, marker: bytes, timeout: float = 30) -> dict[str, bytes]:
    """The headers of the dead-letter message whose value contains `marker` (reads the topic from its start,
    without pausing between messages: it may hold many)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"dlq-{uuid.uuid4()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([dead_letter_topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and marker in (msg.value() or b""):
                return {k: v or b"" for k, v in (msg.headers() or [])}
    finally:
        consumer.close()
    raise AssertionError(f"{marker!r} was not parked on {dead_letter_topic} within {timeout}s")


def start_thread(target: Callable[..., None], *args: object) -> tuple[threading.Thread, threading.Event]:
    """Run a service's `serve(settings, stop)` in a thread; returns the thread and its stop event."""
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(*args, stop), daemon=True)
    thread.start()
    return thread, stop


class TcpProxy:
    """A loopback TCP forwarder to a real service, which a test can cut to play that service going away."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = int(self.server.getsockname()[1])
        self.conns: list[socket.socket] = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.open:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        """Drop every connection and stop listening: the service behind looks stopped."""
        self.open = False
        self.server.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
                c.close()
