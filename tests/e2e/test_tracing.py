"""One execution followed through every service's logs (shared/process/logs.py): the trace a client sends with
its POST (W3C traceparent) comes back in the answer, travels in the Kafka headers of the order and of the
execution's events, and its trace id is on the scheduler's, runner's, recorder's and notifier's lines about that
execution, with the execution's id. Real services, real Kafka."""

import re
import time
import uuid

import httpx
from confluent_kafka import Consumer, TopicPartition

from services.devstack import DevStack
from shared.contract.topics import Topics
from tests.conftest import TEST_IMAGE, AllSettings
from tests.e2e.lifecycle import wait_status
from tests.helpers import eventually


def test_a_post_s_trace_is_in_every_service_s_lines_about_its_execution(
    stack: DevStack, client: httpx.Client, backends: AllSettings
) -> None:
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    hooks = {"finishes": [{"url": f"{stack.url}/healthz"}]}  # answers 405 to a POST: logged, retried, given up
    posted = client.post(
        f"/tasks/trace-{uuid.uuid4().hex[:8]}",
        json={"image": TEST_IMAGE, "command": "echo traced", "webhooks": hooks},
        headers={"traceparent": traceparent, "X-Request-ID": "req-trace-1"},
    )
    assert posted.status_code == 200, posted.text
    assert (posted.headers["traceparent"], posted.headers["x-request-id"]) == (traceparent, "req-trace-1")
    job = posted.json()
    wait_status(client, job["executionUrl"], {"done"})
    execution_id = job["executionId"]

    def traced(name: str) -> list[str] | None:
        found = [
            line
            for line in stack.log_tail(name, 2_000_000).splitlines()
            if f"trace_id={trace_id}" in line and execution_id in line
        ]
        return found or None

    for name in ("scheduler", "runner", "recorder", "notifier"):
        eventually(lambda name=name: traced(name), 30, 0.5, f"{name} lines with the trace and the execution")

    # The execution's end on the public topic carries the trace in its headers.
    consumer = Consumer({"bootstrap.servers": backends.kafka_bootstrap, "group.id": f"trace-{uuid.uuid4()}"})
    topic = Topics.from_settings(backends).executions
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    headers_of_end: list[list[tuple[str, bytes]]] = []
    deadline = time.monotonic() + 60
    while not headers_of_end and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        value = b"" if msg is None or msg.error() else msg.value() or b""
        if msg is not None and execution_id.encode() in value and b'"ExecutionFinished"' in value:
            headers_of_end.append(list(msg.headers() or []))
    consumer.close()
    assert headers_of_end and ("traceparent", traceparent.encode()) in headers_of_end[0]


def test_a_request_without_a_trace_or_with_a_forged_one_gets_a_fresh_one(client: httpx.Client) -> None:
    plain = client.get("/healthz")
    garbage = client.get("/healthz", headers={"traceparent": "00-zz-zz-01", "X-Request-ID": "bad id " * 20 + "x"})
    for answer in (plain, garbage):
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", answer.headers["traceparent"])
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])
    assert plain.headers["traceparent"] != garbage.headers["traceparent"]
