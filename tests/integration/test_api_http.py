"""HTTP concerns of the API, in-process (FastAPI's TestClient) but against the real Kafka and Cassandra:
auth, CORS, gzip, body limits, redaction, logs, healthcheck."""

import base64
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cassandra.cluster import Session
from fastapi.testclient import TestClient

from services.api.app import create_app
from shared.process.settings import ApiSettings
from tests.helpers import TcpProxy


def api_client(backends: ApiSettings, **overrides: Any) -> TestClient:
    settings = ApiSettings(**(backends.model_dump() | overrides))
    return TestClient(create_app(settings), base_url="http://testserver")


@pytest.fixture(scope="module")
def client(backends: ApiSettings) -> Iterator[TestClient]:
    with api_client(backends, cors_origins=["https://ui.example"]) as c:
        yield c


def post(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(f"/tasks/http-{uuid.uuid4().hex[:6]}", json={"image": "img", "command": "true", **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_secrets_in_envs_are_redacted(client: TestClient) -> None:
    envs = {"DB_PASSWORD": "hunter2", "API_KEY": "k-123", "Client_Id": "cid-9", "MY_SECRET_X": "s3", "PLAIN": "ok"}
    job = post(client, envs=envs)
    response = client.get(job["jobUrl"])
    shown = response.json()["job"]["envs"]
    assert shown == {"DB_PASSWORD": "***", "API_KEY": "***", "Client_Id": "***", "MY_SECRET_X": "***", "PLAIN": "ok"}
    for secret in ("hunter2", "k-123", "cid-9", "s3"):
        for url in (job["jobUrl"], job["executionUrl"], job["taskUrl"]):
            assert secret not in client.get(url).text


def test_the_blacklist_is_configurable(backends: ApiSettings) -> None:
    with api_client(backends, env_blacklist=["token"]) as c:
        job = post(c, envs={"GH_TOKEN": "t", "DB_PASSWORD": "visible"})
        assert c.get(job["jobUrl"]).json()["job"]["envs"] == {"GH_TOKEN": "***", "DB_PASSWORD": "visible"}


def test_webhooks_to_private_addresses_can_be_refused(backends: ApiSettings) -> None:
    hooks = {"finishes": [{"url": "http://192.168.1.9/hook", "headers": {"Authorization": "Bearer x"}}]}
    with api_client(backends, webhooks_refuse_private=True) as c:
        response = c.post("/tasks/refused-hook", json={"image": "i", "command": "c", "webhooks": hooks})
        assert response.status_code == 400
        assert "'http://192.168.1.9/hook' is not a public address" in response.json()["error"]
    with api_client(backends) as c:  # allowed by default
        job = post(c, webhooks=hooks, notify={"fails": ["ops@example.com"]})
        shown = c.get(job["jobUrl"]).json()["job"]
        assert shown["webhooks"] == {
            "finishes": [{"url": "http://192.168.1.9/hook", "headers": {"Authorization": "***"}, "retries": None}]
        }
        assert shown["notify"] == {"fails": ["ops@example.com"]}
        assert "Bearer x" not in c.get(job["jobUrl"]).text


def test_metadata_is_kept_under_custom(client: TestClient) -> None:
    job = post(client, metadata={"team": "billing", "n": [1, 2]})
    assert client.get(job["jobUrl"]).json()["job"]["metadata"] == {"custom": {"team": "billing", "n": [1, 2]}}


def test_the_enqueuers_ip_prefers_x_real_ip(client: TestClient) -> None:
    response = client.post(
        "/tasks/ip-real",
        json={"image": "i", "command": "c"},
        headers={"X-Real-IP": "198.51.100.7", "X-Forwarded-For": "203.0.113.1"},
    )
    job = client.get(response.json()["jobUrl"]).json()["job"]
    assert job["requestIPAddress"] == "198.51.100.7"


def test_oversized_bodies_answer_413(client: TestClient, backends: ApiSettings) -> None:
    big = {"image": "i", "command": "c", "envs": {"X": "y" * 1_100_000}}
    response = client.post("/tasks/too-big", json=big)
    assert response.status_code == 413
    assert "too large" in response.json()["error"]


def test_cors_headers_for_configured_origins(client: TestClient) -> None:
    response = client.get("/tasks/none-such", headers={"Origin": "https://ui.example"})
    assert response.headers["access-control-allow-origin"] == "https://ui.example"
    preflight = client.options(
        "/tasks/x", headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 200
    assert "POST" in preflight.headers["access-control-allow-methods"]
    other = client.get("/tasks/none-such", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_gzip_when_accepted(client: TestClient) -> None:
    # Delayed an hour: no execution changes the job between the two reads compared below.
    job = post(client, envs={f"K{i}": "v" * 50 for i in range(40)}, startIn="1h")
    zipped = client.get(job["jobUrl"], headers={"Accept-Encoding": "gzip"})
    assert zipped.headers.get("content-encoding") == "gzip"
    plain = client.get(job["jobUrl"], headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert zipped.json() == plain.json()


def test_basic_auth_is_off_by_default(client: TestClient) -> None:
    assert client.get("/tasks/none-such").status_code == 404


def test_basic_auth_when_configured(backends: ApiSettings) -> None:
    with api_client(backends, basic_auth_username="ops", basic_auth_password="s3cret", basic_auth_realm="fl") as c:
        denied = c.get("/tasks/none-such")
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == 'Basic realm="fl"'
        wrong = base64.b64encode(b"ops:nope").decode()
        assert c.get("/tasks/none-such", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
        good = base64.b64encode(b"ops:s3cret").decode()
        assert c.get("/tasks/none-such", headers={"Authorization": f"Basic {good}"}).status_code == 404
        assert c.get("/healthcheck").status_code == 200  # probes stay open


def test_bearer_tokens_when_configured(backends: ApiSettings) -> None:
    with api_client(backends, bearer_tokens=["tok-a", "tok-b"]) as c:
        assert c.get("/tasks/none-such").status_code == 401
        assert c.get("/tasks/none-such", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/tasks/none-such", headers={"Authorization": "Bearer tok-b"}).status_code == 404


def test_healthcheck_when_all_answer(client: TestClient) -> None:
    response = client.get("/healthcheck")
    assert response.status_code == 200
    assert response.json() == {"errors": [], "kafka": True, "cassandra": True}


def test_healthcheck_with_cassandra_gone_answers_500_quickly(backends: ApiSettings) -> None:
    proxy = TcpProxy(backends.cassandra_port)
    with api_client(backends, cassandra_port=proxy.port, healthcheck_timeout_s=2) as c:
        assert c.get("/healthcheck").status_code == 200
        proxy.cut()
        start = time.monotonic()
        response = c.get("/healthcheck")
        elapsed = time.monotonic() - start
        assert response.status_code == 500
        body = response.json()
        assert body["cassandra"] is False and body["kafka"] is True
        assert body["errors"] and body["errors"][0].startswith("cassandra")
        assert elapsed < 5


def test_tasks_listed_before_the_copied_columns_existed_still_show_them(
    client: TestClient, backends: ApiSettings, cassandra: Session
) -> None:
    ks, task = backends.keyspace, f"legacy-{uuid.uuid4().hex[:6]}"
    created = datetime(2001, 1, 1, tzinfo=UTC)
    # Listed in the one partition of those versions (bucket 0), its gate row without a bucket.
    cassandra.execute(f"INSERT INTO {ks}.task_index (task_id, created_at) VALUES (%s, %s)", (task, created))
    cassandra.execute(
        f"INSERT INTO {ks}.tasks_by_creation (bucket, created_at, task_id) VALUES (0, %s, %s)", (created, task)
    )
    cassandra.execute(f"INSERT INTO {ks}.tasks (task_id, last_modified_at) VALUES (%s, %s)", (task, created))
    cassandra.execute(f"UPDATE {ks}.task_counters SET jobs = jobs + 2 WHERE task_id = %s", (task,))
    after = f"{int((created + timedelta(seconds=1)).timestamp() * 1000)}:{task}"
    item = client.get(f"/tasks?page=2&after={after}").json()["items"][0]
    assert item["taskId"] == task
    assert item["jobsCount"] == 2
    assert item["lastModifiedAt"] == created.isoformat()


def test_a_task_no_farm_takes_is_refused(backends: ApiSettings) -> None:
    farms = [{"match": "billing-", "hosts": ["h1"], "maxRunning": 1}]
    with api_client(backends, farms=farms) as c:
        refused = c.post("/tasks/reports-1", json={"image": "i", "command": "c"})
        assert refused.status_code == 400 and "no farm takes task 'reports-1'" in refused.json()["error"]
        assert c.post("/tasks/billing-1", json={"image": "i", "command": "c"}).status_code == 200
        # PUT takes the same checks as POST: it used to send such a job to the first farm.
        put = c.put(f"/tasks/reports-1/jobs/{uuid.uuid4()}", json={"image": "i", "command": "c"})
        assert put.status_code == 400 and "no farm takes task 'reports-1'" in put.json()["error"]
        assert c.put(f"/tasks/billing-1/jobs/{uuid.uuid4()}", json={"image": "i", "command": "c"}).status_code == 200


def test_a_definition_over_half_the_message_limit_answers_413(backends: ApiSettings) -> None:
    with api_client(backends, max_message_bytes=256 * 1024) as c:
        envs = {f"E{i}": "x" * 1000 for i in range(200)}  # a 200 KB body: under the body limit, over the half
        refused = c.post("/tasks/big", json={"image": "i", "command": "c", "envs": envs})
        assert refused.status_code == 413 and "job definition too large" in refused.json()["error"]
        assert c.post("/tasks/big", json={"image": "i", "command": "c", "envs": {"A": "b"}}).status_code == 200


def test_live_logs_ask_for_the_same_credentials(backends: ApiSettings) -> None:
    from starlette.websockets import WebSocketDisconnect

    unknown = f"/tasks/none/jobs/{uuid.uuid4()}/executions/{uuid.uuid1()}"
    with api_client(backends, bearer_tokens=["tok-a"]) as c:
        try:
            with c.websocket_connect(f"{unknown}/ws") as socket:
                socket.receive_text()
            raise AssertionError("the socket was not refused")
        except WebSocketDisconnect as refused:
            assert refused.code == 4401
        with c.websocket_connect(f"{unknown}/ws", headers={"Authorization": "Bearer tok-a"}) as socket:
            refusal = socket.receive_json()
            assert refusal["type"] == "error" and "not found" in refusal["message"]
        assert c.get(f"{unknown}/logs", params={"follow": "true"}).status_code == 401
        followed = c.get(f"{unknown}/logs", params={"follow": "true"}, headers={"Authorization": "Bearer tok-a"})
        assert followed.status_code == 404
        page = c.get("/ui/")
        assert page.status_code == 200  # the console's page is open: it holds no data
        assert "default-src 'self'" in page.headers["content-security-policy"]
