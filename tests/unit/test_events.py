import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.recorder.timestamps import execution_created_at, write_time
from shared.contract.events import (
    ExecutionDue,
    ExecutionFinished,
    JobDefinition,
    JobRequested,
    decode,
    encode,
    new_execution_id,
)


def test_events_round_trip_through_json() -> None:
    job_id = uuid.uuid4()
    original = JobRequested(
        task_id="t",
        job_id=job_id,
        execution_id=new_execution_id(),
        definition=JobDefinition(image="busybox", command="echo hi", envs={"A": "1"}, metadata={"k": [1]}),
        request_ip="10.0.0.1",
    )
    again = decode(encode(original))
    assert again == original
    assert isinstance(again, JobRequested)
    assert again.key == str(job_id).encode()


def test_every_event_carries_the_contract_fields() -> None:
    event = ExecutionFinished(task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), status="done")
    doc = event.model_dump(mode="json")
    for field in ("event_id", "type", "version", "occurred_at", "task_id", "job_id", "execution_id"):
        assert field in doc
    assert doc["type"] == "ExecutionFinished"
    assert doc["version"] == 1


def test_events_are_frozen() -> None:
    event = ExecutionDue(task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), image="i", command="c")
    with pytest.raises(ValidationError):
        event.image = "other"  # type: ignore[misc]


def test_decode_rejects_unknown_types_and_garbage() -> None:
    with pytest.raises(ValidationError):
        decode(b'{"type": "Nope", "task_id": "t", "job_id": "00000000-0000-0000-0000-000000000000"}')
    with pytest.raises(ValidationError):
        decode(b"not json")


def test_unknown_fields_from_a_newer_producer_are_ignored() -> None:
    event = ExecutionDue(task_id="t", job_id=uuid.uuid4(), execution_id=new_execution_id(), image="i", command="c")
    doc = event.model_dump(mode="json") | {"added_later": True}
    import json

    assert decode(json.dumps(doc).encode()) == event


def test_execution_ids_are_time_based_and_carry_their_creation_time() -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    eid = new_execution_id(at)
    assert eid.version == 1
    assert execution_created_at(eid) == at
    assert new_execution_id(at) != eid  # random node part: no collisions for one instant
    later = new_execution_id(datetime(2030, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert later.time > eid.time


def test_write_time_is_microseconds() -> None:
    assert write_time(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)) == 1_000_005
