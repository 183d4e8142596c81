"""Property-based run of the whole API against its own /openapi.json (schemathesis): generated requests, valid
and invalid, must never yield a 5xx, and every answer must match the documented status codes, content types
and response models. The API is a real uvicorn server on the real Kafka and Cassandra; it publishes to topics
of its own that no scheduler consumes, so the thousand generated jobs are recorded but never run."""

import socket
import threading
from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
import uvicorn
from confluent_kafka.admin import AdminClient
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.schemas import BaseSchema

from services.api.app import create_app
from shared.lifecycle import prepare_backends
from shared.settings import ApiSettings
from shared.topics import Topics
from tests.helpers import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def api_url(backends: ApiSettings) -> Iterator[str]:
    settings = ApiSettings(**(backends.model_dump() | {"topic_prefix": f"{backends.topic_prefix}fuzz."}))
    prepare_backends(settings)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started, timeout=60, what="the API to start")
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(15)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.delete_topics(Topics.from_settings(settings).all()).values():
        future.exception()


@pytest.fixture(scope="module")
def api_schema(api_url: str) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json")


# One test per documented operation (the document does not need the backends, only the routes).
OPERATIONS = [
    (method.upper(), path)
    for path, operations in create_app(ApiSettings()).openapi()["paths"].items()
    for method in operations
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(
    api_schema: BaseSchema, method: str, path: str
) -> None:
    operation = api_schema[path][method]

    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(
        max_examples=60, deadline=None, suppress_health_check=list(hypothesis.HealthCheck), database=None
    )
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(
            checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
            timeout=10,
        )

    call()


def test_the_document_describes_every_route_with_models(api_url: str) -> None:
    import httpx

    document = httpx.get(f"{api_url}/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            ok = operation["responses"]["200"]["content"]
            media = "text/plain" if path.endswith(("/stdout", "/stderr", "/logs")) else "application/json"
            assert media in ok, (method, path)
            if media == "application/json":
                assert "$ref" in ok[media]["schema"], f"{method} {path} has no response model"
            assert "422" not in operation["responses"], f"{method} {path} announces 422; the API answers 400"
    post = document["paths"]["/tasks/{task_id}"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobSpec"}
    assert {"image", "command"} <= set(document["components"]["schemas"]["JobSpec"]["required"])
