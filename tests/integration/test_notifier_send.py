"""The notifier's sender against real sockets on 127.0.0.1: odd receivers cost a bounded amount."""

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from services.notifier.plan import plan
from services.notifier.send import HttpAndMailSender
from shared.contract.events import ExecutionFinished, JobDefinition, Webhook
from shared.domain.links import Links
from shared.process.settings import NotifierSettings


@pytest.fixture
def endless_receiver() -> Iterator[str]:
    """Answers 200 with a chunked body that never ends (until the client hangs up)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"x" * 65536
                while True:
                    conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{port}/hook"
    server.close()


def test_a_receiver_answering_with_an_endless_body_is_a_delivery_done_at_once(endless_receiver: str) -> None:
    definition = JobDefinition(image="i", command="c", webhooks={"finishes": [Webhook(url=endless_receiver)]})
    ended = ExecutionFinished(task_id="t", job_id=uuid.uuid4(), execution_id=uuid.uuid1(), status="done")
    [delivery] = plan(ended, definition, 0, Links("http://127.0.0.1:10000"), [], 0, 0)
    sender = HttpAndMailSender(NotifierSettings(webhook_timeout_s=5))
    began = time.monotonic()
    try:
        assert sender.send(delivery, datetime.now(UTC)) == 200
    finally:
        sender.close()
    assert time.monotonic() - began < 5  # the status line is enough; the body is never read
