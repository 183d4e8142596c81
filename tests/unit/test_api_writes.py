"""The API's write path without Kafka or Cassandra: the one builder of POST's and PUT's order, the write use
case (publish, then project; an Idempotency-Key's replay) over fakes of its ports, and the two routes over
HTTP with fake backends (TestClient), so that POST and PUT are seen taking the same checks."""

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from cassandra import InvalidRequest, OperationTimedOut, ReadTimeout
from cassandra import Unavailable as CassandraUnavailable
from cassandra.cluster import NoHostAvailable
from fastapi.testclient import TestClient

from services.api.accepting import Acceptor, JobOrderDraft
from services.api.app import create_app
from services.api.bootstrap import Backends
from services.api.errors import BadRequest, KeyReused, OutcomeUnknown, PayloadTooLarge, Unavailable
from services.api.idempotency import PUBLISHED, REFUSED, UNKNOWN
from services.api.job_orders import build_job_order
from services.api.orders import NotEnqueued
from services.api.orders import OutcomeUnknown as OrderOutcomeUnknown
from shared.contract.events import (
    JobRequested,
    JobStopRequested,
    JobUpdated,
    decode,
    encode,
)
from shared.contract.topics import Topics
from shared.domain.farms import Farm
from shared.process.logs import ContextFilter
from shared.process.settings import ApiSettings
from tests.fakes.api import FakeCluster, FakeKeys, FakeProjection, FakePublisher

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
BODY = b'{"image": "busybox", "command": "echo hi"}'
ONLY_BILLING = ApiSettings(farms=[Farm(match="billing-", hosts=["h1"], maxRunning=1)])


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def projection() -> FakeProjection:
    return FakeProjection()


@pytest.fixture
def keys() -> FakeKeys:
    return FakeKeys()


@pytest.fixture
def acceptor(publisher: FakePublisher, projection: FakeProjection, keys: FakeKeys) -> Acceptor:
    return Acceptor(publisher, projection, keys, Topics.from_settings(ApiSettings()))


def draft(kind: type[JobRequested] | type[JobUpdated] = JobRequested, body: bytes = BODY) -> JobOrderDraft[Any]:
    return build_job_order(kind, "billing-1", uuid.uuid4(), body, ApiSettings(), "198.51.100.7", NOW)


# --- the one builder ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [JobRequested, JobUpdated])
def test_both_orders_are_built_alike_and_encoded_as_published(kind: Any) -> None:
    job_id = uuid.uuid4()
    built = build_job_order(kind, "billing-1", job_id, BODY, ApiSettings(), "198.51.100.7", NOW)
    assert type(built.command) is kind
    assert (built.command.task_id, built.command.job_id, built.command.occurred_at) == ("billing-1", job_id, NOW)
    assert built.command.execution_id is not None  # no schedule: it runs now
    assert built.command.request_ip == "198.51.100.7"
    assert built.encoded == encode(built.command) and built.body == BODY
    assert decode(built.encoded) == built.command


def test_a_delayed_job_has_no_execution_yet() -> None:
    built = draft(body=b'{"image": "i", "command": "c", "startIn": "1h"}')
    assert built.command.execution_id is None


@pytest.mark.parametrize("kind", [JobRequested, JobUpdated])
def test_a_task_no_farm_takes_is_refused_by_post_and_put_alike(kind: Any) -> None:
    with pytest.raises(BadRequest, match="no farm takes task 'reports-1'"):
        build_job_order(kind, "reports-1", uuid.uuid4(), BODY, ONLY_BILLING, None, NOW)
    assert build_job_order(kind, "billing-1", uuid.uuid4(), BODY, ONLY_BILLING, None, NOW).command


@pytest.mark.parametrize("kind", [JobRequested, JobUpdated])
def test_a_malformed_task_id_is_refused_by_post_and_put_alike(kind: Any) -> None:
    with pytest.raises(BadRequest, match="taskId must be"):
        build_job_order(kind, "has space", uuid.uuid4(), BODY, ApiSettings(), None, NOW)


def test_an_order_over_half_the_message_limit_is_refused() -> None:
    settings = ApiSettings(max_message_bytes=256 * 1024)
    body = b'{"image": "i", "command": "c", "envs": {"E": "' + b"x" * 140_000 + b'"}}'
    with pytest.raises(PayloadTooLarge, match="at most 131072"):
        build_job_order(JobRequested, "billing-1", uuid.uuid4(), body, settings, None, NOW)


# --- the write use case ---------------------------------------------------------------------------------------


def test_an_order_is_published_on_the_jobs_topic_then_projected(
    acceptor: Acceptor, publisher: FakePublisher, projection: FakeProjection
) -> None:
    stop = JobStopRequested(task_id="billing-1", job_id=uuid.uuid4())
    acceptor.accept(stop)
    assert publisher.published == [(acceptor.topics.jobs, stop.key, encode(stop))]
    assert projection.applied == [stop]


def test_an_order_not_enqueued_is_a_503_and_is_not_projected(
    acceptor: Acceptor, publisher: FakePublisher, projection: FakeProjection
) -> None:
    publisher.fail_with = NotEnqueued("broker away")
    with pytest.raises(Unavailable, match="nothing was changed"):
        acceptor.accept(JobStopRequested(task_id="t", job_id=uuid.uuid4()))
    publisher.fail_with = OrderOutcomeUnknown("commit unanswered")
    with pytest.raises(OutcomeUnknown, match="same Idempotency-Key"):
        acceptor.accept(JobStopRequested(task_id="t", job_id=uuid.uuid4()))
    assert projection.applied == []


def test_a_failed_early_projection_does_not_fail_the_published_order(
    acceptor: Acceptor, publisher: FakePublisher, projection: FakeProjection
) -> None:
    projection.broken = True
    acceptor.accept(JobStopRequested(task_id="t", job_id=uuid.uuid4()))
    assert len(publisher.published) == 1


def test_without_a_key_every_order_is_published(acceptor: Acceptor, publisher: FakePublisher) -> None:
    order = draft()
    assert acceptor.accept_job(order, None, "") == (order.command, False)
    assert [value for _, _, value in publisher.published] == [order.encoded]


def test_the_same_key_and_request_replays_the_first_order_without_publishing_it_again(
    acceptor: Acceptor, publisher: FakePublisher, keys: FakeKeys
) -> None:
    first, second = draft(), draft()
    assert acceptor.accept_job(first, "k1", "print-a") == (first.command, False)
    assert keys.rows[("billing-1", "k1")]["state"] == PUBLISHED
    assert acceptor.accept_job(second, "k1", "print-a") == (first.command, True)
    assert len(publisher.published) == 1


def test_the_same_key_with_another_request_is_refused(acceptor: Acceptor, publisher: FakePublisher) -> None:
    acceptor.accept_job(draft(), "k1", "print-a")
    with pytest.raises(KeyReused, match="for a different request"):
        acceptor.accept_job(draft(), "k1", "print-b")
    with pytest.raises(KeyReused, match="for another request"):  # same print, other kind: cannot happen; be sure
        acceptor.accept_job(draft(JobUpdated), "k1", "print-a")
    assert len(publisher.published) == 1


@pytest.mark.parametrize(("failure", "state"), [(NotEnqueued("away"), REFUSED), (OrderOutcomeUnknown("?"), UNKNOWN)])
def test_a_key_whose_first_order_was_not_known_published_publishes_that_order_again(
    acceptor: Acceptor, publisher: FakePublisher, keys: FakeKeys, failure: Exception, state: str
) -> None:
    first = draft()
    publisher.fail_with = failure
    with pytest.raises((Unavailable, OutcomeUnknown)):
        acceptor.accept_job(first, "k1", "print-a")
    assert keys.rows[("billing-1", "k1")]["state"] == state
    publisher.fail_with = None
    assert acceptor.accept_job(draft(), "k1", "print-a") == (first.command, True)
    assert [value for _, _, value in publisher.published] == [first.encoded]
    assert keys.rows[("billing-1", "k1")]["state"] == PUBLISHED


def test_a_key_that_cannot_be_claimed_publishes_nothing(
    acceptor: Acceptor, publisher: FakePublisher, keys: FakeKeys
) -> None:
    keys.broken = True
    with pytest.raises(Unavailable, match="nothing was enqueued"):
        acceptor.accept_job(draft(), "k1", "print-a")
    assert publisher.published == []


# --- over HTTP, with fake backends ----------------------------------------------------------------------------


def fake_backends(
    publisher: FakePublisher, projection: FakeProjection, keys: FakeKeys, queries: Any = None
) -> Callable[[ApiSettings], Backends]:
    """The API's backends with fake writes and `queries` (none by default: a read raises AttributeError)."""

    def make(settings: ApiSettings) -> Backends:
        topics = Topics.from_settings(settings)
        return Backends(
            settings=settings,
            topics=topics,
            orders=publisher,
            queries=queries,
            writes=Acceptor(publisher, projection, keys, topics),
            cluster=cast(Any, FakeCluster()),
            session=cast(Any, None),
        )

    return make


@pytest.fixture
def client(publisher: FakePublisher, projection: FakeProjection, keys: FakeKeys) -> Iterator[TestClient]:
    make = fake_backends(publisher, projection, keys)  # the writes below read nothing
    with TestClient(create_app(ONLY_BILLING, make_backends=make), base_url="http://testserver") as c:
        yield c


def test_post_and_put_refuse_a_task_no_farm_takes_and_publish_nothing(
    client: TestClient, publisher: FakePublisher
) -> None:
    job = {"image": "i", "command": "c"}
    for response in (
        client.post("/tasks/reports-1", json=job),
        client.put(f"/tasks/reports-1/jobs/{uuid.uuid4()}", json=job),
    ):
        assert response.status_code == 400, response.text
        assert "no farm takes task 'reports-1'" in response.json()["error"]
    assert publisher.published == []


def test_post_and_put_publish_the_order_they_answer(client: TestClient, publisher: FakePublisher) -> None:
    job_id = uuid.uuid4()
    posted = client.post("/tasks/billing-1", json={"image": "i", "command": "c"})
    put = client.put(f"/tasks/billing-1/jobs/{job_id}/", json={"image": "i", "command": "c", "startIn": "1h"})
    assert posted.status_code == put.status_code == 200
    orders = [decode(value) for _, _, value in publisher.published]
    assert isinstance(orders[0], JobRequested) and isinstance(orders[1], JobUpdated)
    assert posted.json()["jobId"] == str(orders[0].job_id)
    assert posted.json()["executionId"] == str(orders[0].execution_id)
    assert put.json() == {
        "taskId": "billing-1",
        "jobId": str(job_id),
        "queueJobId": str(orders[1].event_id),
        "taskUrl": "http://testserver/tasks/billing-1",
        "jobUrl": f"http://testserver/tasks/billing-1/jobs/{job_id}",
    }  # delayed: no execution fields


def test_post_and_put_replay_a_key_sent_again(client: TestClient, publisher: FakePublisher) -> None:
    job, headers = {"image": "i", "command": "c"}, {"Idempotency-Key": "k-1"}
    first = client.post("/tasks/billing-1", json=job, headers=headers)
    again = client.post("/tasks/billing-1/", json=job, headers=headers)  # the slash is not part of the request
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert client.post("/tasks/billing-1", json=job, headers={"Idempotency-Key": "bad key"}).status_code == 400
    assert len(publisher.published) == 1


def test_an_unexpected_error_is_logged_and_answered_with_the_request_s_ids(
    publisher: FakePublisher, projection: FakeProjection, keys: FakeKeys, caplog: pytest.LogCaptureFixture
) -> None:
    make = fake_backends(publisher, projection, keys)  # no queries: a read fails unexpectedly in the route
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    caplog.handler.addFilter(ContextFilter())  # as the services' own handler has (shared/process/logs.py)
    app = create_app(ONLY_BILLING, make_backends=make)
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as c:
        answer = c.get(
            f"/tasks/billing-1/jobs/{uuid.uuid4()}", headers={"X-Request-ID": "req-500", "traceparent": traceparent}
        )
    assert answer.status_code == 500 and answer.json() == {"error": "internal error; it was logged"}
    assert (answer.headers["x-request-id"], answer.headers["traceparent"]) == ("req-500", traceparent)
    (record,) = [r for r in caplog.records if r.getMessage() == "unexpected error"]
    assert (getattr(record, "request_id", None), getattr(record, "trace_id", None)) == (
        "req-500",
        "4bf92f3577b34da6a3ce929d0e0e4736",
    )


class FailingQueries:
    """Every read raises `error`, as the Cassandra driver does when too few replicas answer."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, _name: str) -> Callable[..., Any]:
        def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise self.error

        return fail


@pytest.mark.parametrize(
    "error",
    [
        OperationTimedOut("Client request timeout"),
        NoHostAvailable("Unable to complete the operation against any hosts", {}),
        CassandraUnavailable("Cannot achieve consistency level LOCAL_QUORUM"),
        ReadTimeout("Operation timed out - received only 1 responses"),
    ],
)
def test_a_read_cassandra_does_not_answer_is_a_503_to_try_again(
    publisher: FakePublisher, projection: FakeProjection, keys: FakeKeys, error: Exception
) -> None:
    make = fake_backends(publisher, projection, keys, FailingQueries(error))
    with TestClient(create_app(ONLY_BILLING, make_backends=make), raise_server_exceptions=False) as c:
        answer = c.get(f"/tasks/billing-1/jobs/{uuid.uuid4()}")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json() == {"error": "the job store did not answer in time; try again"}


def test_a_query_cassandra_refuses_stays_an_internal_error(
    publisher: FakePublisher, projection: FakeProjection, keys: FakeKeys
) -> None:
    make = fake_backends(publisher, projection, keys, FailingQueries(InvalidRequest("table jobs does not exist")))
    with TestClient(create_app(ONLY_BILLING, make_backends=make), raise_server_exceptions=False) as c:
        assert c.get(f"/tasks/billing-1/jobs/{uuid.uuid4()}").status_code == 500
