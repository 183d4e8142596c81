"""The API's write path against the real broker and Cassandra: a 503 means the order is not enqueued (never seen
by a reader, even when the broker appends it after the API gave up), and an Idempotency-Key makes a POST or PUT
safe to retry (same ids, one order on the topic)."""

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cassandra.cluster import Session
from confluent_kafka import Consumer, KafkaException, Producer
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.bootstrap import Backends, bootstrap
from services.api.orders import NotEnqueued, OrderPublisher
from shared.contract.events import ExecutionDue, new_execution_id
from shared.contract.topics import Topics
from shared.infra.kafka.producer import EventProducer
from shared.process.settings import ApiSettings


class AckLost:
    """A producer whose acknowledgements are lost: the broker appends the message, and flush() reports it not
    acknowledged, as when the broker's answer came too late (a pause) or not at all (a cut connection)."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer

    def flush(self, timeout: float) -> int:
        self._producer.flush(timeout)
        return 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


def losing_acks(publisher: OrderPublisher) -> OrderPublisher:
    make = publisher._new_producer
    publisher._new_producer = lambda timeout: AckLost(make(timeout))  # type: ignore[method-assign,return-value,assignment]
    return publisher


def values_seen(settings: ApiSettings, topic: str, isolation: str, seconds: float = 6.0) -> list[bytes]:
    """Every value on `topic` a reader with this isolation level sees within `seconds`."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
        }
    )
    consumer.subscribe([topic])
    seen: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                seen.append(msg.value() or b"")
    finally:
        consumer.close()
    return seen


def count_with(values: list[bytes], marker: str) -> int:
    return sum(marker.encode() in v for v in values)


def test_a_plain_producer_that_timed_out_may_still_deliver(backends: ApiSettings) -> None:
    """Why a plain producer cannot back a 503: the publish reports failure, and the message lands anyway."""
    topics = Topics.from_settings(backends)
    due = ExecutionDue(task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), image="i", command="c")
    producer = EventProducer(backends)
    with pytest.raises(KafkaException):
        producer.publish(topics.due, due, timeout=0)
    producer.close()
    assert count_with(values_seen(backends, topics.due, "read_committed"), str(due.job_id)) == 1


def test_an_order_whose_acknowledgement_is_lost_is_never_seen_by_a_reader(backends: ApiSettings) -> None:
    topic, marker = Topics.from_settings(backends).jobs, f"order-{uuid.uuid4()}"
    publisher = losing_acks(OrderPublisher(backends))
    try:
        with pytest.raises(NotEnqueued):
            publisher.publish(topic, marker.encode(), marker.encode())
    finally:
        publisher.close()
    # The broker did take it (the scenario is real) but only inside an aborted or never-committed transaction.
    assert count_with(values_seen(backends, topic, "read_uncommitted"), marker) == 1
    assert count_with(values_seen(backends, topic, "read_committed"), marker) == 0


def test_orders_of_concurrent_requests_are_all_committed(backends: ApiSettings) -> None:
    topic, run = Topics.from_settings(backends).jobs, uuid.uuid4().hex
    publisher = OrderPublisher(backends)
    errors: list[BaseException] = []

    def send(i: int) -> None:
        try:
            publisher.publish(topic, f"{run}-{i}".encode(), f"{run}-{i}".encode())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    publisher.close()
    assert not errors
    assert count_with(values_seen(backends, topic, "read_committed"), run) == 40


def test_a_committed_order_is_logged_with_where_it_is_on_its_topic(
    own_topics: ApiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    topic, marker = Topics.from_settings(own_topics).jobs, f"order-{uuid.uuid4()}"
    publisher = OrderPublisher(own_topics)
    try:
        with caplog.at_level("INFO", logger="services.api.orders"):
            publisher.publish(topic, marker.encode(), b"{}")
    finally:
        publisher.close()
    [line] = [r for r in caplog.records if r.getMessage() == "order enqueued"]
    logged = (line.__dict__["key"], line.__dict__["topic"], line.__dict__["partition"], line.__dict__["offset"])
    consumer = Consumer(
        {
            "bootstrap.servers": own_topics.kafka_bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    try:
        msg = None
        deadline = time.monotonic() + 30
        while msg is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            msg = msg if msg is not None and not msg.error() else None
    finally:
        consumer.close()
    assert msg is not None, "the order was not found on its topic"
    assert logged == (marker, topic, msg.partition(), msg.offset())


# --- over HTTP ----------------------------------------------------------------------------------------------


def app_client(settings: ApiSettings, lose_acks: bool = False) -> TestClient:
    def make(s: ApiSettings) -> Backends:
        return bootstrap(s, orders=losing_acks(OrderPublisher(s)) if lose_acks else None)

    return TestClient(create_app(settings, make_backends=make), base_url="http://testserver")


@pytest.fixture(scope="module")
def client(backends: ApiSettings) -> Iterator[TestClient]:
    with app_client(backends) as c:
        yield c


JOB = {"image": "img", "command": "true"}


def jobs_seen(settings: ApiSettings, job_id: str) -> int:
    return count_with(values_seen(settings, Topics.from_settings(settings).jobs, "read_committed", 4), job_id)


def test_a_503_leaves_no_job_and_a_retry_with_the_key_makes_exactly_one(
    client: TestClient, backends: ApiSettings
) -> None:
    task, key = f"idem-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    with app_client(backends, lose_acks=True) as failing:
        refused = failing.post(f"/tasks/{task}", json=JOB, headers={"Idempotency-Key": key})
        assert refused.status_code == 503 and "nothing was changed" in refused.json()["error"]
        plain = failing.post(f"/tasks/{task}", json=JOB)  # no key: the contract's 503, also not enqueued
        assert plain.status_code == 503
    assert client.get(f"/tasks/{task}").status_code == 404  # no job was ever made in it
    retried = client.post(f"/tasks/{task}", json=JOB, headers={"Idempotency-Key": key})
    assert retried.status_code == 200 and retried.headers["Idempotent-Replayed"] == "true"
    job_id = retried.json()["jobId"]
    assert client.get(retried.json()["jobUrl"]).status_code == 200
    assert [j["id"] for j in client.get(f"/tasks/{task}").json()["jobs"]] == [job_id]
    assert jobs_seen(backends, job_id) == 1


def test_the_same_key_answers_the_same_ids_and_publishes_once(client: TestClient, backends: ApiSettings) -> None:
    task, key = f"idem-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    first = client.post(f"/tasks/{task}", json=JOB, headers={"Idempotency-Key": key})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    again = client.post(f"/tasks/{task}/", json=JOB, headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = client.post(f"/tasks/{task}", json={**JOB, "command": "false"}, headers={"Idempotency-Key": key})
    assert other.status_code == 409 and "already used" in other.json()["error"]
    elsewhere = client.post(f"/tasks/{task}-b", json=JOB, headers={"Idempotency-Key": key})  # keys are per task
    assert elsewhere.status_code == 200 and elsewhere.json()["jobId"] != first.json()["jobId"]
    assert jobs_seen(backends, first.json()["jobId"]) == 1
    # Without a key, nothing changes: every POST is a new job.
    a, b = (client.post(f"/tasks/{task}", json=JOB).json()["jobId"] for _ in range(2))
    assert a != b


def test_concurrent_posts_with_one_key_make_one_job(client: TestClient, backends: ApiSettings) -> None:
    task, key = f"idem-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    answers: list[Any] = []

    def post() -> None:
        answers.append(client.post(f"/tasks/{task}", json=JOB, headers={"Idempotency-Key": key}))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.json()["jobId"] for a in answers}) == 1
    assert jobs_seen(backends, answers[0].json()["jobId"]) == 1


def test_a_key_claimed_by_a_request_that_died_before_publishing_is_published_by_the_retry(
    client: TestClient, backends: ApiSettings, cassandra: Session
) -> None:
    """The API killed between the claim and the publish: the retry publishes the claimed order itself."""
    task, key = f"idem-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    with app_client(backends, lose_acks=True) as failing:
        assert failing.post(f"/tasks/{task}", json=JOB, headers={"Idempotency-Key": key}).status_code == 503
    # What a kill -9 right after the claim leaves: the claim, no state, an hour old (its request long gone).
    cassandra.execute(
        f"UPDATE {backends.keyspace}.idempotency_keys SET state = null, created_at = %s"
        " WHERE task_id = %s AND key = %s",
        (time.time_ns() // 1_000_000 - 3_600_000, task, key),
    )
    retried = client.post(f"/tasks/{task}", json=JOB, headers={"Idempotency-Key": key})
    assert retried.status_code == 200
    assert jobs_seen(backends, retried.json()["jobId"]) == 1


def test_put_with_a_key_is_replayed_too(client: TestClient, backends: ApiSettings) -> None:
    task, job_id, key = f"idem-{uuid.uuid4().hex[:8]}", uuid.uuid4(), str(uuid.uuid4())
    first = client.put(f"/tasks/{task}/jobs/{job_id}", json=JOB, headers={"Idempotency-Key": key})
    again = client.put(f"/tasks/{task}/jobs/{job_id}", json=JOB, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200
    assert again.json()["executionId"] == first.json()["executionId"]  # a retried PUT does not run the job again
    other_job = client.put(f"/tasks/{task}/jobs/{uuid.uuid4()}", json=JOB, headers={"Idempotency-Key": key})
    assert other_job.status_code == 409


def test_a_malformed_key_answers_400(client: TestClient) -> None:
    for bad in ("", "x" * 201, "with space"):
        response = client.post("/tasks/idem-bad", json=JOB, headers={"Idempotency-Key": bad})
        assert response.status_code == 400 and "Idempotency-Key" in response.json()["error"], bad
