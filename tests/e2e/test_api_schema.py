"""Property-based run of the whole API against its own /openapi.json (schemathesis), through the WHOLE stack:
generated requests, valid and invalid, must never yield a 5xx, and every answer must match the documented
status codes, content types and response models. The five services run as processes (as `make run` starts
them) on topics and a keyspace of their own, so the generated jobs are scheduled, run (or fail to pull their
made-up images), recorded and notified for real; afterwards every service is still up and a plain job is
done within 30 s."""

from collections.abc import Iterator

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.schemas import BaseSchema

from services.api.app import create_app
from services.devstack import DevStack
from shared.process.settings import ApiSettings, Settings
from tests.conftest import TEST_IMAGE, drop_stack_data
from tests.e2e.lifecycle import FINAL, wait_status


@pytest.fixture(scope="module")
def fuzzed_stack(backends: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    settings = Settings(
        **(
            backends.model_dump()
            | {"topic_prefix": f"{backends.topic_prefix}fuzz.", "keyspace": f"{backends.keyspace}_fuzz"}
        )
    )
    with DevStack(settings.topic_prefix, settings.keyspace, tmp_path_factory.mktemp("fuzzed")) as stack:
        yield stack
    drop_stack_data(settings)


@pytest.fixture(scope="module")
def api_url(fuzzed_stack: DevStack) -> str:
    return fuzzed_stack.url


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
    document = httpx.get(f"{api_url}/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            ok = operation["responses"]["200"]["content"]
            media = "text/plain" if path.endswith(("/stdout", "/stderr", "/logs", "/metrics")) else "application/json"
            assert media in ok, (method, path)
            if media == "application/json":
                assert "$ref" in ok[media]["schema"], f"{method} {path} has no response model"
            assert "422" not in operation["responses"], f"{method} {path} announces 422; the API answers 400"
    post = document["paths"]["/tasks/{task_id}"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobSpec"}
    assert {"image", "command"} <= set(document["components"]["schemas"]["JobSpec"]["required"])


def test_after_the_generated_requests_every_service_is_up_and_a_plain_job_is_done(fuzzed_stack: DevStack) -> None:
    with httpx.Client(base_url=fuzzed_stack.url, timeout=10) as client:
        answer = client.post("/tasks/after-fuzzing", json={"image": TEST_IMAGE, "command": "echo still here"})
        assert answer.status_code == 200, answer.text
        execution = wait_status(client, answer.json()["executionUrl"], FINAL, timeout=30)
    assert (execution["status"], execution["log"]) == ("done", "still here\n")
    dead = {name: proc.returncode for name, proc in fuzzed_stack.procs.items() if proc.poll() is not None}
    assert not dead, f"services exited during the run: {dead}"
