"""The recorder's one table of what each message writes, and the stand-in end of an unrecordable message."""

import json
import typing
import uuid
from types import SimpleNamespace

from services.recorder.handlers import HANDLERS, unrecordable_end
from services.recorder.reads import definition_from_row
from services.recorder.rows import schedule_column
from shared.contract.events import (
    Event,
    ExecutionFinished,
    ExecutionStarted,
    ExecutionStopRequested,
    JobDefinition,
    Webhook,
)


def test_every_message_type_of_the_contract_has_its_entry_but_the_stop_order_to_the_scheduler() -> None:
    [union, _discriminator] = typing.get_args(Event)
    assert set(typing.get_args(union)) - set(HANDLERS) == {ExecutionStopRequested}
    assert all(r.rows is not None or r.indexes is not None for r in HANDLERS.values())


def test_an_unrecordable_end_still_ends_the_execution_without_its_logs_and_with_the_reason() -> None:
    ended = ExecutionFinished(
        task_id="t",
        job_id=uuid.uuid4(),
        execution_id=uuid.uuid1(),
        status="done",
        exit_code=0,
        stdout="out",
        stderr="err",
        host="h1",
    )
    bare = unrecordable_end(ended, "too large")
    assert bare is not None
    assert (bare.status, bare.stdout, bare.stderr, bare.exit_code, bare.host) == ("done", "", "", None, None)
    assert bare.error is not None and "too large" in bare.error
    assert (bare.execution_id, bare.event_id) == (ended.execution_id, ended.event_id)


def test_any_other_unrecordable_message_writes_nothing() -> None:
    started = ExecutionStarted(task_id="t", job_id=uuid.uuid4(), execution_id=uuid.uuid1(), host="h", container_id="c")
    assert unrecordable_end(started, "why") is None


def test_a_definition_reads_back_from_the_columns_it_was_written_to() -> None:
    definition = JobDefinition(
        image="img",
        command="echo hi",
        envs={"A": "1"},
        metadata={"team": "a"},
        cron="0 * * * *",
        webhooks={"fails": [Webhook(url="http://h/x", retries=1)]},
    )
    row = SimpleNamespace(
        image=definition.image,
        command=definition.command,
        envs=definition.envs,
        metadata=json.dumps(definition.metadata),
        definition=schedule_column(definition),
    )
    assert definition_from_row(row) == definition
    assert definition_from_row(None) is None
    assert definition_from_row(SimpleNamespace(**{**vars(row), "definition": None})) is None
    assert definition_from_row(SimpleNamespace(**{**vars(row), "image": None})) is None
