"""A new task shows in /tasks and /search as soon as its POST answers (no recorder runs in these tests: the API
lists it itself), exactly once however many orders create it at once, and the recorder, coming after, neither
lists it twice nor counts it twice. Real Kafka and Cassandra."""

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from cassandra.cluster import Session
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.recorder.handlers import record
from services.recorder.indexes import Indexes
from services.recorder.projections import Projections
from services.recorder.rows import ProjectionRows
from shared.contract.events import JobDefinition, JobRequested, new_execution_id, utcnow
from shared.infra.writes import Writes
from shared.process.settings import ApiSettings, Settings

JOB = {"image": "img", "command": "true", "startIn": "10h"}


@pytest.fixture
def client(own_topics: ApiSettings) -> Iterator[TestClient]:
    """The API on topics no recorder consumes (the e2e stack's recorder reads the session's)."""
    with TestClient(create_app(ApiSettings(**own_topics.model_dump())), base_url="http://testserver") as c:
        yield c


def word() -> str:
    """A word no other test's task holds (letters only, so it stays one search word)."""
    return "w" + "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])


def listed(client: TestClient, query: str) -> list[dict[str, object]]:
    response = client.get("/search", params={"query": query})
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


def count(session: Session, keyspace: str, name: str) -> int:
    row = session.execute(f"SELECT value FROM {keyspace}.counters WHERE name = %s", (name,)).one()
    return int(row.value) if row else 0


def test_a_new_task_is_listed_and_counted_as_soon_as_its_post_answers(
    client: TestClient, cassandra: Session, backends: Settings
) -> None:
    w = word()
    tasks_before = count(cassandra, backends.keyspace, "tasks")
    task = f"early-{w}-1"
    response = client.post(f"/tasks/{task}", json=JOB)
    assert response.status_code == 200, response.text
    found = listed(client, w)
    assert [i["taskId"] for i in found] == [task]
    assert found[0]["jobsCount"] == 0  # the jobs count is the recorder's (none runs here)
    page = client.get("/tasks").json()
    assert task in [i["taskId"] for i in page["items"]]
    assert count(cassandra, backends.keyspace, f"word:{w}") == 1
    assert count(cassandra, backends.keyspace, "tasks") >= tasks_before + 1
    # With an Idempotency-Key (the order is accepted by another path): listed at once too.
    keyed = f"early-{w}-2"
    response = client.post(f"/tasks/{keyed}", json=JOB, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 200, response.text
    assert sorted(str(i["taskId"]) for i in listed(client, w)) == [task, keyed]


def test_a_task_many_orders_create_at_once_is_listed_and_counted_once(
    client: TestClient, cassandra: Session, backends: Settings
) -> None:
    w = word()
    task = f"race-{w}"
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post(f"/tasks/{task}", json=JOB).status_code, range(16)))
    assert answers == [200] * 16
    assert [i["taskId"] for i in listed(client, w)] == [task]
    assert count(cassandra, backends.keyspace, f"word:{w}") == 1
    jobs = client.get(f"/tasks/{task}").json()["jobs"]
    assert len(jobs) == 16


def test_the_recorder_after_the_api_lists_and_counts_the_task_once(cassandra: Session, backends: Settings) -> None:
    ks = backends.keyspace
    w = word()
    indexes = Indexes(cassandra, ks)
    early = Projections(cassandra, ks, indexes)
    rows = ProjectionRows(cassandra, ks)
    orders = [
        JobRequested(
            task_id=f"after-{w}",
            job_id=uuid.uuid4(),
            occurred_at=at,
            execution_id=new_execution_id(at),
            definition=JobDefinition(image="img", command="true"),
        )
        for at in (utcnow(), utcnow())
    ]
    for order in orders:
        early.apply(order)  # the API's early projection, as a POST with an Idempotency-Key takes it
    for order in reversed(orders):  # the recorder, seeing the second order first
        writes = Writes(cassandra)
        record(order, rows, indexes, writes)
        writes.send()
    listing = list(cassandra.execute(f"SELECT created_at, jobs_count FROM {ks}.task_words WHERE word = %s", (w,)))
    assert len(listing) == 1
    assert int(listing[0].jobs_count) == 2
    assert count(cassandra, ks, f"word:{w}") == 1  # (the "tasks" counter is shared with the other tests)
