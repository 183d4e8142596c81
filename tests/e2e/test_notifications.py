"""Notifications end to end: the notifier process of the e2e stack, restarted with a webhook secret, quick
retries and an SMTP server, delivers to real HTTP and SMTP peers on 127.0.0.1 in this test process."""

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.devstack import DevStack, free_port
from shared.contract.events import ExecutionFinished, new_execution_id
from shared.contract.topics import Topics
from shared.infra.kafka.producer import EventProducer
from shared.process.settings import Settings
from tests.e2e.lifecycle import post_job, wait_status
from tests.helpers import eventually, parked_headers

SECRET = "test-webhook-secret"
T = TypeVar("T")


def at_least(probe: Callable[[], list[T]], count: int) -> Callable[[], list[T] | None]:
    """A probe for `eventually`: what `probe` finds, once it finds `count` or more."""

    def enough() -> list[T] | None:
        found = probe()
        return found if len(found) >= count else None

    return enough


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    at: float  # time.time()

    @property
    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.raw)
        return doc


@dataclass
class Receiver:
    """An HTTP server that records every POST. Paths choose the answer: /ok/... 200; /flaky/... 500 twice, then
    200; /hang/... no answer for 30 s; /down/<key>/... 503 while <key> is in `down`."""

    received: list[Received] = field(default_factory=list)
    down: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.received.append(Received(self.path, dict(self.headers.items()), raw, time.time()))
                    seen = sum(1 for r in receiver.received if r.path == self.path)
                kind, _, rest = self.path.strip("/").partition("/")
                if kind == "hang":
                    time.sleep(30)
                code = {"flaky": 500 if seen <= 2 else 200, "down": 503 if rest.split("/")[0] in receiver.down else 200}
                self.send_response(code.get(kind, 200))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait(self, path: str, count: int, timeout: float = 60) -> list[Received]:
        return eventually(at_least(lambda: self.at(path), count), timeout, 0.1, path)


class Mailbox:
    """aiosmtpd handler: keeps every message with its envelope recipients."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.mails.append((list(envelope.rcpt_tos), message_from_bytes(content, policy=policy.default)))  # type: ignore[arg-type]
        return "250 OK"

    def about(self, task: str) -> list[tuple[list[str], EmailMessage]]:
        return [(to, m) for to, m in self.mails if task in str(m["Subject"])]


@dataclass
class Peers:
    stack: DevStack
    client: httpx.Client
    receiver: Receiver
    url: str
    mailbox: Mailbox
    env: dict[str, str]

    def restart_notifier(self, kill: bool = False) -> None:
        if kill:
            self.stack.kill("notifier")
        else:
            self.stack.terminate("notifier")
        self.stack.start("notifier", **self.env)


@pytest.fixture(scope="module")
def peers(stack: DevStack) -> Iterator[Peers]:
    receiver = Receiver()
    url = receiver.start()
    mailbox = Mailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    env = {
        "FASTLANE_WEBHOOK_SECRET": SECRET,
        "FASTLANE_WEBHOOK_TIMEOUT_S": "2",
        "FASTLANE_NOTIFY_BACKOFF_MIN_MS": "700",
        "FASTLANE_NOTIFY_BACKOFF_FACTOR": "2",
        "FASTLANE_SMTP_HOST": "127.0.0.1",
        "FASTLANE_SMTP_PORT": str(smtp_port),
        "FASTLANE_PUBLIC_URL": stack.url,
        "FASTLANE_NOTIFY_JOB_WAIT_S": "10",
        "FASTLANE_NOTIFY_JOB_RECHECK_S": "0.5",
    }
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        found = Peers(stack, client, receiver, url, mailbox, env)
        found.restart_notifier()
        yield found
    stack.terminate("notifier")
    stack.start("notifier")
    smtp.stop()
    receiver.server.shutdown()


def hooks(base: str, path: str, events: tuple[str, ...], **extra: Any) -> dict[str, list[dict[str, Any]]]:
    return {event: [{"url": f"{base}{path}/{event}", **extra}] for event in events}


def deliveries(client: httpx.Client, execution_url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(execution_url).json()["execution"]["deliveries"]
    return found


ALL = ("starts", "succeeds", "fails", "finishes")


def test_a_success_fires_starts_succeeds_and_finishes_signed_with_the_given_headers(peers: Peers) -> None:
    tag = uuid.uuid4().hex[:8]
    job = post_job(
        peers.client,
        "echo hi",
        envs={"API_KEY": "s3cr3t-value", "COLOR": "blue"},
        metadata={"team": "billing"},
        webhooks=hooks(peers.url, f"/ok/{tag}", ALL, headers={"X-Token": "abc"}),
    )
    wait_status(peers.client, job["executionUrl"], {"done"})
    got = {event: peers.receiver.wait(f"/ok/{tag}/{event}", 1)[0] for event in ("starts", "succeeds", "finishes")}
    time.sleep(2)
    assert peers.receiver.at(f"/ok/{tag}/fails") == []
    for event, r in got.items():
        expected = "sha256=" + hmac.new(SECRET.encode(), r.raw, hashlib.sha256).hexdigest()
        assert r.headers["X-Fastlane-Signature"] == expected
        assert r.headers["X-Token"] == "abc"
        assert r.headers["X-Fastlane-Event"] == event == r.body["event"]
        assert r.headers["X-Fastlane-Delivery"] == r.body["delivery"]["id"]
        assert int(r.headers["X-Fastlane-Timestamp"]) == r.body["delivery"]["timestamp"]
        assert abs(r.body["delivery"]["timestamp"] - r.at) < 5
        assert b"s3cr3t-value" not in r.raw
        body = r.body
        assert body["task"]["id"] == job["taskId"] and body["job"]["id"] == job["jobId"]
        assert body["job"]["metadata"]["custom"] == {"team": "billing"}
        assert body["job"]["envs"] == {"API_KEY": "***", "COLOR": "blue"}
        assert body["execution"]["id"] == job["executionId"]
        assert body["execution"]["url"] == job["executionUrl"]
        assert peers.client.get(body["execution"]["logsUrl"]).text.startswith("hi\n")
    assert got["starts"].body["execution"]["status"] == "running"
    assert got["succeeds"].body["execution"]["status"] == "done" and got["succeeds"].body["execution"]["exitCode"] == 0
    assert got["finishes"].body["execution"]["finishedAt"] is not None
    assert len({r.body["delivery"]["id"] for r in got.values()}) == 3

    shown = eventually(at_least(lambda: deliveries(peers.client, job["executionUrl"]), 3), what="3 deliveries")
    assert {(d["event"], d["state"], d["statusCode"], d["attempts"]) for d in shown} == {
        ("starts", "delivered", 200, 1),
        ("succeeds", "delivered", 200, 1),
        ("finishes", "delivered", 200, 1),
    }
    page = peers.client.get(job["jobUrl"]).json()["job"]
    assert page["webhooks"]["starts"][0]["headers"] == {"X-Token": "***"}


def test_a_failure_fires_fails_and_finishes_and_so_does_a_timeout(peers: Peers) -> None:
    tag = uuid.uuid4().hex[:8]
    failing = post_job(peers.client, "sh -c 'exit 3'", webhooks=hooks(peers.url, f"/ok/{tag}/failed", ALL))
    slow = post_job(peers.client, "sleep 30", timeout=1, webhooks=hooks(peers.url, f"/ok/{tag}/slow", ("fails",)))
    fails = peers.receiver.wait(f"/ok/{tag}/failed/fails", 1)[0].body
    assert (fails["execution"]["status"], fails["execution"]["exitCode"]) == ("failed", 3)
    assert peers.receiver.wait(f"/ok/{tag}/failed/finishes", 1)[0].body["execution"]["status"] == "failed"
    assert peers.receiver.wait(f"/ok/{tag}/slow/fails", 1, timeout=60)[0].body["execution"]["status"] == "timedout"
    wait_status(peers.client, failing["executionUrl"], {"failed"})
    wait_status(peers.client, slow["executionUrl"], {"timedout"})
    time.sleep(2)
    assert peers.receiver.at(f"/ok/{tag}/failed/succeeds") == []
    assert len(peers.receiver.at(f"/ok/{tag}/failed/starts")) == 1


def test_a_receiver_failing_twice_gets_exactly_three_attempts_with_growing_gaps(peers: Peers) -> None:
    tag = uuid.uuid4().hex[:8]
    job = post_job(peers.client, "true", webhooks=hooks(peers.url, f"/flaky/{tag}", ("finishes",), retries=5))
    attempts = peers.receiver.wait(f"/flaky/{tag}/finishes", 3)
    time.sleep(4)  # a fourth attempt would come within 2.8 s of the third
    attempts = peers.receiver.at(f"/flaky/{tag}/finishes")
    assert len(attempts) == 3
    first, second = attempts[1].at - attempts[0].at, attempts[2].at - attempts[1].at
    assert 0.6 < first < second, (first, second)  # backoff 0.7 s, then 1.4 s
    assert [a.body["delivery"]["attempt"] for a in attempts] == [1, 2, 3]
    assert len({a.body["delivery"]["id"] for a in attempts}) == 1
    [shown] = deliveries(peers.client, job["executionUrl"])
    assert (shown["state"], shown["attempts"], shown["statusCode"], shown["lastError"]) == ("delivered", 3, 200, None)


def test_a_receiver_that_never_answers_delays_nothing_else(peers: Peers) -> None:
    tag = uuid.uuid4().hex[:8]
    stuck = [
        post_job(peers.client, "true", webhooks=hooks(peers.url, f"/hang/{tag}/{n}", ("starts", "finishes"), retries=3))
        for n in range(3)
    ]
    time.sleep(1)
    other = post_job(peers.client, "echo fine", webhooks=hooks(peers.url, f"/ok/{tag}", ("finishes",)))
    finished = wait_status(peers.client, other["executionUrl"], {"done"}, timeout=30)
    [received] = peers.receiver.wait(f"/ok/{tag}/finishes", 1, timeout=30)
    assert received.at - datetime.fromisoformat(finished["finishedAt"]).timestamp() < 5
    for job in stuck:  # their executions were not held up either
        assert wait_status(peers.client, job["executionUrl"], {"done"}, timeout=30)["status"] == "done"
    shown = eventually(
        lambda: [d for d in deliveries(peers.client, stuck[0]["executionUrl"]) if d["state"] == "retrying"],
        what="a retrying delivery",
    )
    assert "no answer within 2s" in shown[0]["lastError"]


def test_mails_go_to_the_addresses_of_each_event_with_text_html_and_a_link_to_the_logs(peers: Peers) -> None:
    job = post_job(
        peers.client,
        "echo mailed",
        task=f"mail-{uuid.uuid4().hex[:8]}",
        notify={
            "succeeds": ["ops@example.com", "dev@example.com"],
            "finishes": ["ops@example.com"],
            "fails": ["oncall@example.com"],
        },
    )
    wait_status(peers.client, job["executionUrl"], {"done"})
    eventually(at_least(lambda: peers.mailbox.about(job["taskId"]), 2), what="2 mails")
    time.sleep(2)
    mails = peers.mailbox.about(job["taskId"])
    assert sorted(sorted(to) for to, _ in mails) == [["dev@example.com", "ops@example.com"], ["ops@example.com"]]
    for _, mail in mails:
        assert f"{job['taskId']}: execution done" in str(mail["Subject"])
        text = mail.get_body(preferencelist=("plain",))
        html = mail.get_body(preferencelist=("html",))
        assert text is not None and html is not None
        assert f"{job['executionUrl']}/logs" in text.get_content()  # type: ignore[attr-defined]
        assert f'href="{job["executionUrl"]}/logs"' in html.get_content()  # type: ignore[attr-defined]
        assert "Exit code: 0" in text.get_content()  # type: ignore[attr-defined]
    shown = deliveries(peers.client, job["executionUrl"])
    assert {(d["channel"], d["event"], d["state"]) for d in shown} == {
        ("mail", "succeeds", "delivered"),
        ("mail", "finishes", "delivered"),
    }


def test_a_notifier_killed_mid_retry_completes_the_delivery_after_restart(peers: Peers) -> None:
    key = uuid.uuid4().hex[:8]
    peers.receiver.down.add(key)
    job = post_job(peers.client, "true", webhooks=hooks(peers.url, f"/down/{key}", ("finishes",), retries=10))
    peers.receiver.wait(f"/down/{key}/finishes", 2)  # failed twice; the next attempt is 2.8 s away
    peers.restart_notifier(kill=True)
    peers.receiver.down.discard(key)
    time.sleep(1)
    before = len(peers.receiver.at(f"/down/{key}/finishes"))
    shown = eventually(
        lambda: (d := deliveries(peers.client, job["executionUrl"])) and d[0]["state"] == "delivered" and d,
        timeout=60,
        what="the delivery to complete after the restart",
    )
    after = peers.receiver.at(f"/down/{key}/finishes")
    assert len(after) > before and len({a.body["delivery"]["id"] for a in after}) == 1
    # the attempt in flight when it was killed may go uncounted: at least one failure, then the success
    assert shown[0]["statusCode"] == 200 and shown[0]["attempts"] >= 2


def finished_without_its_job(settings: Settings, task: str, job_id: uuid.UUID) -> ExecutionFinished:
    """An ExecutionFinished published while its job has no row (the API's early write failed, the recorder lags)."""
    ended = ExecutionFinished(
        task_id=task, job_id=job_id, execution_id=new_execution_id(), status="done", exit_code=0, host="h"
    )
    producer = EventProducer(settings)
    producer.publish(Topics.from_settings(settings).executions, ended)
    producer.close()
    return ended


def test_an_event_that_comes_before_its_jobs_row_is_delivered_once_the_row_comes(
    peers: Peers, backends: Settings
) -> None:
    tag, job_id = uuid.uuid4().hex[:8], uuid.uuid4()
    task = f"late-{tag}"
    ended = finished_without_its_job(backends, task, job_id)
    time.sleep(4)
    assert peers.receiver.at(f"/ok/{tag}/finishes") == []
    # The job's row appears only now (a PUT with the job's id, delayed an hour: nothing of its own runs).
    put = peers.client.put(
        f"/tasks/{task}/jobs/{job_id}",
        json={"image": "i", "command": "true", "startIn": "1h", "webhooks": hooks(peers.url, f"/ok/{tag}", ALL)},
    )
    assert put.status_code == 200, put.text
    [got] = peers.receiver.wait(f"/ok/{tag}/finishes", 1, timeout=30)
    assert got.body["execution"]["id"] == str(ended.execution_id)
    [succeeded] = peers.receiver.wait(f"/ok/{tag}/succeeds", 1, timeout=10)
    assert succeeded.body["delivery"]["id"] != got.body["delivery"]["id"]
    time.sleep(2)
    assert len(peers.receiver.at(f"/ok/{tag}/finishes")) == 1


def test_an_event_whose_job_never_comes_is_parked_with_the_reason(peers: Peers, backends: Settings) -> None:
    ended = finished_without_its_job(backends, f"never-{uuid.uuid4().hex[:8]}", uuid.uuid4())
    headers = parked_headers(
        backends.kafka_bootstrap, Topics.from_settings(backends).dead_letter, str(ended.execution_id).encode(), 60
    )
    assert headers["reason"].startswith(f"no row for job {ended.job_id}".encode()), headers
    assert headers["origin-topic"].endswith(b"executions")
