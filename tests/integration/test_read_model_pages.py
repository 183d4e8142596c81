"""The task listing across hour buckets and a job's pages by execution number (docs/read-model.md), on real
Kafka and Cassandra: rows written by the recorder's own code (and, for the rows older versions left, as they
wrote them), read through the API in-process, on a keyspace of this module's own so the totals are exact."""

import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cassandra.cluster import ResponseFuture, Session
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.queries import Queries
from services.migrate import prepare_backends
from services.recorder.buckets import LEGACY_BUCKET, listing_bucket
from services.recorder.handlers import Recorder
from services.recorder.indexes import Indexes
from services.recorder.rows import ProjectionRows
from shared.contract.events import ExecutionDue, JobDefinition, JobRequested, new_execution_id
from shared.infra.cassandra import connect
from shared.process.settings import ApiSettings
from tests.conftest import AllSettings, drop_stack_data

PAGE = 4  # tasks per page
RUNS = 100  # executions per page


@pytest.fixture(scope="module")
def own(backends: AllSettings) -> Iterator[AllSettings]:
    run = uuid.uuid4().hex[:8]
    settings = backends.model_copy(
        update={"topic_prefix": f"{backends.topic_prefix}rm{run}.", "keyspace": f"rm_{run}", "page_size": PAGE}
    )
    prepare_backends(settings)
    yield settings
    drop_stack_data(settings)


@pytest.fixture(scope="module")
def session(own: AllSettings) -> Iterator[Session]:
    cluster, s = connect(own)
    yield s
    cluster.shutdown()


@pytest.fixture(scope="module")
def recorder(own: AllSettings, session: Session) -> Recorder:
    return Recorder(session, ProjectionRows(session, own.keyspace), Indexes(session, own.keyspace))


@pytest.fixture(scope="module")
def client(own: AllSettings) -> Iterator[TestClient]:
    settings = ApiSettings(**(own.model_dump() | {"executions_page_size": RUNS}))
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


def hour_start(hours_ago: int) -> datetime:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=hours_ago)


def new_task(recorder: Recorder, task: str, created: datetime) -> None:
    definition = JobDefinition(image="img", command="true")
    recorder.record(JobRequested(task_id=task, job_id=uuid.uuid4(), occurred_at=created, definition=definition))


def legacy_task(session: Session, ks: str, task: str, created: datetime) -> None:
    """A task as versions before hour buckets listed it: its gate row without a bucket, its row in bucket 0."""
    session.execute(f"INSERT INTO {ks}.task_index (task_id, created_at) VALUES (%s, %s)", (task, created))
    session.execute(
        f"INSERT INTO {ks}.tasks_by_creation (bucket, created_at, task_id, last_modified_at) VALUES (0, %s, %s, %s)",
        (created, task, created),
    )
    # The count copied in with the count as its write timestamp, as the recorder writes it.
    session.execute(
        f"UPDATE {ks}.tasks_by_creation USING TIMESTAMP 1 SET jobs_count = 1"
        " WHERE bucket = 0 AND created_at = %s AND task_id = %s",
        (created, task),
    )
    session.execute(f"UPDATE {ks}.task_counters SET jobs = jobs + 1 WHERE task_id = %s", (task,))
    session.execute(f"UPDATE {ks}.counters SET value = value + 1 WHERE name = 'tasks'")


def ids(page: dict[str, Any]) -> list[str]:
    return [item["taskId"] for item in page["items"]]


class CountingSession:
    """A real session that counts the rows each table's reads hand back (what a page costs)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.rows: Counter[str] = Counter()

    def prepare(self, query: str) -> Any:
        return self._session.prepare(query)

    def _counted(self, statement: Any, rows: list[Any]) -> "Rows":
        table = re.search(r"FROM \w+\.(\w+)", statement.prepared_statement.query_string)
        self.rows[table.group(1) if table else "?"] += len(rows)
        return Rows(rows)

    def execute(self, statement: Any, params: Any = None) -> "Rows":
        bound = statement.bind(params or ())
        return self._counted(bound, list(self._session.execute(bound)))

    def execute_async(self, statement: Any, params: Any = None) -> "Answer":
        bound = statement.bind(params or ())
        return Answer(self, bound, self._session.execute_async(bound))


class Rows(list[Any]):
    def one(self) -> Any:
        return self[0] if self else None


class Answer:
    def __init__(self, counting: CountingSession, bound: Any, future: ResponseFuture) -> None:
        self._counting, self._bound, self._future = counting, bound, future

    def result(self) -> Rows:
        return self._counting._counted(self._bound, list(self._future.result()))


def test_tasks_are_listed_newest_first_across_hours_and_after_the_legacy_ones(
    own: AllSettings, session: Session, recorder: Recorder, client: TestClient
) -> None:
    ks = own.keyspace
    # 9 new tasks in four hours (one of them holding 5), 4 listed by an older version, one of which gets a job now.
    spread = {7: 2, 5: 1, 3: 5, 0: 1}
    created: dict[str, datetime] = {}
    for hours_ago, n in spread.items():
        for i in range(n):
            task = f"new-{hours_ago}h-{i}"
            created[task] = hour_start(hours_ago) + timedelta(minutes=1 + i)
            new_task(recorder, task, created[task])
    legacy = {f"old-{i}": hour_start(30) + timedelta(minutes=i) for i in range(4)}
    for task, at in legacy.items():
        legacy_task(session, ks, task, at)
    new_task(recorder, "old-2", hour_start(0) + timedelta(minutes=5))  # a new job in a legacy task

    newest_first = sorted(created, key=lambda t: (created[t], t), reverse=True)
    expected = newest_first + sorted(legacy, key=lambda t: (legacy[t], t), reverse=True)
    # New tasks are in their hour's partition, counted there; the legacy task stayed in bucket 0 alone.
    for task, at in created.items():
        row = session.execute(
            f"SELECT task_id FROM {ks}.tasks_by_creation WHERE bucket = %s AND created_at = %s AND task_id = %s",
            (listing_bucket(at), at, task),
        ).one()
        assert row is not None, task
    counts = {r.bucket: r.tasks for r in session.execute(f"SELECT bucket, tasks FROM {ks}.task_buckets")}
    assert counts == {listing_bucket(hour_start(h)): n for h, n in spread.items()}
    old2 = list(
        session.execute(
            f"SELECT bucket, jobs_count FROM {ks}.tasks_by_creation WHERE task_id = 'old-2' ALLOW FILTERING"
        )
    )
    assert [(r.bucket, r.jobs_count) for r in old2] == [(LEGACY_BUCKET, 2)]

    by_number = [client.get("/tasks", params={"page": n}).json() for n in (1, 2, 3, 4)]
    assert [ids(p) for p in by_number] == [expected[0:4], expected[4:8], expected[8:12], expected[12:]]
    assert {(p["total"], p["pages"]) for p in by_number} == {(13, 4)}
    jobs = {item["taskId"]: item["jobsCount"] for p in by_number for item in p["items"]}
    assert jobs["old-2"] == 2 and jobs["old-0"] == 1 and jobs["new-3h-0"] == 1

    # Walking nextUrl while new tasks arrive: each task once, in order; the newcomers are before the walk.
    walked, page = ids(by_number[0]), by_number[0]
    arrived = 0
    while page["nextUrl"]:
        if arrived < 3:
            new_task(recorder, f"late-{arrived}", hour_start(0) + timedelta(minutes=30, seconds=-arrived))
            arrived += 1
        page = client.get(page["nextUrl"]).json()
        walked += ids(page)
    assert walked == expected
    assert ids(client.get("/tasks").json())[:1] == ["late-0"]


def test_a_deep_page_by_number_skips_whole_hours_by_their_counts(own: AllSettings, session: Session) -> None:
    counting = CountingSession(session)
    queries = Queries(counting, own.keyspace)  # type: ignore[arg-type]
    listed = [item["taskId"] for n in (1, 2, 3, 4, 5) for item in queries.tasks_page(n, PAGE)[0]]
    counting.rows.clear()
    deep, total = queries.tasks_page(4, PAGE)
    assert [item["taskId"] for item in deep] == listed[12:16] and total == len(listed)
    # Page 4 starts in the 5-task hour: about a page of its rows, not the 12 before it.
    assert counting.rows["tasks_by_creation"] <= 2 * PAGE, counting.rows


def test_deep_job_pages_read_one_page_of_numbered_executions(
    own: AllSettings, session: Session, recorder: Recorder, client: TestClient
) -> None:
    task, job = "runs", uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    first = new_execution_id(t0)
    definition = JobDefinition(image="img", command="true")
    recorder.record(JobRequested(task_id=task, job_id=job, occurred_at=t0, execution_id=first, definition=definition))
    runs = [first]
    for i in range(1, 250):
        at = t0 + timedelta(seconds=i)
        runs.append(new_execution_id(at))
        recorder.record(
            ExecutionDue(task_id=task, job_id=job, occurred_at=at, execution_id=runs[-1], image="img", command="true")
        )
    newest_first = [str(r) for r in reversed(runs)]
    pages = [client.get(f"/tasks/{task}/jobs/{job}", params={"page": n}).json()["job"] for n in (1, 2, 3, 4)]
    assert [[e["executionId"] for e in p["executions"]] for p in pages] == [
        newest_first[:100],
        newest_first[100:200],
        newest_first[200:],
        [],
    ]
    assert {p["executionCount"] for p in pages} == {250}

    counting = CountingSession(session)
    queries = Queries(counting, own.keyspace)  # type: ignore[arg-type]
    _, rows, _ = queries.job_page(task, job, 3, RUNS)
    assert [e["executionId"] for e in rows] == newest_first[200:]
    assert counting.rows["executions"] == 50 and counting.rows["execution_numbers"] == 52, counting.rows
    counting.rows.clear()
    queries.job_page(task, job, 2, RUNS)
    assert counting.rows["executions"] == 100, counting.rows

    # A recorder stopped between claiming a number and writing it on the gate row: the replay (by a recorder
    # that remembers nothing) finds its claim instead of numbering the execution twice.
    ks, replayed = own.keyspace, runs[245]
    number = (
        session.execute(
            f"SELECT number FROM {ks}.execution_index WHERE task_id = %s AND job_id = %s AND execution_id = %s",
            (task, job, replayed),
        )
        .one()
        .number
    )
    session.execute(
        f"DELETE number FROM {ks}.execution_index WHERE task_id = %s AND job_id = %s AND execution_id = %s",
        (task, job, replayed),
    )
    fresh = Recorder(session, ProjectionRows(session, ks), Indexes(session, ks))
    fresh.record(
        ExecutionDue(task_id=task, job_id=job, occurred_at=t0, execution_id=replayed, image="img", command="true")
    )
    slots = list(
        session.execute(
            f"SELECT number, execution_id FROM {ks}.execution_numbers WHERE task_id = %s AND job_id = %s", (task, job)
        )
    )
    assert len(slots) == 250 and [s.number for s in slots if s.execution_id == replayed] == [number]

    # Another recorder past the gate of a new execution, its claim under way: this one waits for its number.
    racing = new_execution_id()
    session.execute(
        f"INSERT INTO {ks}.execution_index (task_id, job_id, execution_id, numbering) VALUES (%s, %s, %s, true)",
        (task, job, racing),
    )
    claim = threading.Timer(
        0.5,
        session.execute,
        (
            f"UPDATE {ks}.execution_index SET number = 251 WHERE task_id = %s AND job_id = %s AND execution_id = %s",
            (task, job, racing),
        ),
    )
    claim.start()
    fresh.record(ExecutionDue(task_id=task, job_id=job, occurred_at=t0, execution_id=racing, image="i", command="c"))
    claim.join()
    assert (
        len(
            list(
                session.execute(
                    f"SELECT number FROM {ks}.execution_numbers WHERE task_id = %s AND job_id = %s", (task, job)
                )
            )
        )
        == 250
    )


def legacy_execution(session: Session, ks: str, task: str, job: uuid.UUID, execution: uuid.UUID, at: datetime) -> None:
    """An execution as versions before numbers recorded it: its row, its gate row unmarked, counted."""
    session.execute(
        f"INSERT INTO {ks}.executions (task_id, job_id, execution_id, status, created_at, image, command, attempt)"
        " VALUES (%s, %s, %s, 'done', %s, 'img', 'true', 1)",
        (task, job, execution, at),
    )
    session.execute(
        f"INSERT INTO {ks}.execution_index (task_id, job_id, execution_id) VALUES (%s, %s, %s)", (task, job, execution)
    )
    session.execute(
        f"UPDATE {ks}.job_counters SET executions = executions + 1 WHERE task_id = %s AND job_id = %s", (task, job)
    )


def test_a_job_with_executions_from_before_numbers_pages_them_after_the_numbered_ones(
    own: AllSettings, session: Session, recorder: Recorder, client: TestClient
) -> None:
    ks, task = own.keyspace, "older-runs"
    t0 = datetime.now(UTC) - timedelta(hours=2)
    definition = JobDefinition(image="img", command="true")
    only_legacy, mixed = uuid.uuid4(), uuid.uuid4()
    expected: dict[uuid.UUID, list[str]] = {}
    for job, legacy_runs, new_runs in ((only_legacy, 230, 0), (mixed, 220, 30)):
        recorder.record(JobRequested(task_id=task, job_id=job, occurred_at=t0, definition=definition))
        runs = []
        for i in range(legacy_runs):
            runs.append(new_execution_id(t0 + timedelta(seconds=i)))
            legacy_execution(session, ks, task, job, runs[-1], t0 + timedelta(seconds=i))
        for i in range(new_runs):
            at = t0 + timedelta(hours=1, seconds=i)
            runs.append(new_execution_id(at))
            recorder.record(
                ExecutionDue(task_id=task, job_id=job, occurred_at=at, execution_id=runs[-1], image="img", command="c")
            )
        expected[job] = [str(r) for r in reversed(runs)]
    numbered = session.execute(
        f"SELECT number FROM {ks}.execution_numbers WHERE task_id = %s AND job_id = %s", (task, mixed)
    )
    assert sorted(r.number for r in numbered) == list(range(1, 31))  # the legacy runs kept no number
    # An older execution's event replayed now (the recorder's offsets reset) does not number it either.
    old_run = uuid.UUID(expected[mixed][-1])
    recorder.record(
        ExecutionDue(task_id=task, job_id=mixed, occurred_at=t0, execution_id=old_run, image="i", command="c")
    )
    assert (
        len(
            list(
                session.execute(
                    f"SELECT number FROM {ks}.execution_numbers WHERE task_id = %s AND job_id = %s", (task, mixed)
                )
            )
        )
        == 30
    )
    for job in (only_legacy, mixed):
        pages = [client.get(f"/tasks/{task}/jobs/{job}", params={"page": n}).json()["job"] for n in (1, 2, 3)]
        walked = [e["executionId"] for p in pages for e in p["executions"]]
        assert walked == expected[job], job
        assert [len(p["executions"]) for p in pages] == [100, 100, len(expected[job]) - 200]
        assert {p["executionCount"] for p in pages} == {len(expected[job])}
