"""The event contract as data (docs/contract/): current with the code, complete, and true to what the services do."""

import inspect
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from services.runner.stops import listener_config
from shared.contract import events, schemas
from shared.contract.events import SCHEMA_VERSION, HostEvent, JobMessage
from shared.contract.topics import Topics, group_id, runner_group
from shared.domain.farms import Farm
from shared.infra.kafka.producer import dead_letter_record
from shared.process.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "contract"
FIXTURES = ROOT / "tests" / "fixtures" / "events" / f"v{SCHEMA_VERSION}"
REGENERATE = "the committed contract is stale: run `python -m shared.contract.schemas` and commit docs/contract/"


def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((CONTRACT / "asyncapi.json").read_text("utf-8"))
    return document


def message_types() -> set[str]:
    """Every message model in events.py: a model with a `type` constant (whether or not `Event` lists it)."""
    return {
        cls.__name__
        for _, cls in inspect.getmembers(events, inspect.isclass)
        if issubclass(cls, JobMessage | HostEvent) and "type" in cls.model_fields
    }


def test_the_committed_files_are_what_the_generator_writes_now() -> None:
    assert schemas.stale(CONTRACT, schemas.render()) == [], REGENERATE


def test_the_check_names_each_stale_file_and_fails_until_regenerated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "contract"
    shutil.copytree(CONTRACT, out)
    assert schemas.main(["--check", "--out", str(out)]) == 0
    (out / "schemas" / "ExecutionOutput.v1.json").write_text("{}\n")
    (out / "schemas" / "Gone.v1.json").write_text("{}\n")
    (out / "asyncapi.json").unlink()
    assert schemas.main(["--check", "--out", str(out)]) == 1
    said = capsys.readouterr().err
    for name in ("ExecutionOutput.v1.json", "Gone.v1.json", "asyncapi.json", "python -m shared.contract.schemas"):
        assert name in said
    assert schemas.main(["--out", str(out)]) == 0
    assert schemas.main(["--check", "--out", str(out)]) == 0
    assert not (out / "schemas" / "Gone.v1.json").exists()


def test_every_message_type_is_in_the_union_and_has_a_schema_and_a_fixture() -> None:
    types = message_types()
    assert {model.__name__ for model in schemas.MESSAGES} == types
    for name in types:
        assert (CONTRACT / "schemas" / f"{name}.v{SCHEMA_VERSION}.json").is_file(), (
            f"{name} has no schema: {REGENERATE}"
        )
        assert list(FIXTURES.glob(f"{name}.*json")), f"{name} has no fixture in {FIXTURES}: write one by hand"
    fixture_types = {path.name.split(".")[0] for path in FIXTURES.glob("*.json")}
    assert fixture_types <= types, f"fixtures of unknown types: {fixture_types - types}"


def test_each_schema_says_what_it_is_and_requires_its_type_constant() -> None:
    ids = set()
    for name in message_types():
        schema = json.loads((CONTRACT / "schemas" / f"{name}.v{SCHEMA_VERSION}.json").read_text("utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)
        assert schema["title"] == name
        assert schema["description"].strip()
        assert schema["properties"]["type"]["const"] == name
        assert "type" in schema["required"]
        ids.add(schema["$id"])
    assert len(ids) == len(message_types())
    union = json.loads((CONTRACT / "schemas" / f"Event.v{SCHEMA_VERSION}.json").read_text("utf-8"))
    Draft202012Validator.check_schema(union)
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in union["oneOf"]} == message_types()


def test_the_asyncapi_document_has_a_channel_for_every_topic() -> None:
    document = asyncapi()
    assert document["asyncapi"].startswith("3.")
    assert document["info"]["version"] == str(SCHEMA_VERSION)
    addresses = {channel["address"] for channel in document["channels"].values()}
    defaults = Topics.from_settings(Settings.model_construct())
    assert set(defaults.all()) <= addresses
    assert "fastlane." in document["info"]["description"] and "FASTLANE_TOPIC_PREFIX" in document["info"]["description"]
    # A stack with more farms: each farm's due topic is the parameterized channel.
    farms = [
        Farm(name="default", hosts=["a"], maxRunning=2),
        Farm(name="gpu-a100", match="^ml-", hosts=["b"], maxRunning=2),
    ]
    more = Topics.from_settings(Settings.model_construct(farms=farms))
    patterns = [re.compile(re.escape(a).replace(r"\{farm\}", "[a-z0-9-]+")) for a in addresses]
    for topic in more.all():
        assert any(p.fullmatch(topic) for p in patterns), f"{topic} has no channel"


def test_the_asyncapi_document_names_every_message_type_and_where_it_travels() -> None:
    document = asyncapi()
    messages = document["components"]["messages"]
    on_channels = {
        ref["$ref"].rsplit("/", 1)[1] for c in document["channels"].values() for ref in c["messages"].values()
    }
    sent = {
        ref["$ref"].rsplit("/", 1)[1]
        for o in document["operations"].values()
        if o["action"] == "send"
        for ref in o["messages"]
    }
    received = {
        ref["$ref"].rsplit("/", 1)[1]
        for o in document["operations"].values()
        if o["action"] == "receive"
        for ref in o["messages"]
    }
    for name in message_types():
        assert messages[name]["payload"] == {"$ref": f"schemas/{name}.v{SCHEMA_VERSION}.json"}
        assert name in on_channels and name in sent and name in received, f"{name}: no channel, sender or receiver"


def test_every_reference_in_the_asyncapi_document_resolves() -> None:
    document = asyncapi()

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    for ref in refs(document):
        if ref.startswith("#/"):
            target: Any = document
            for part in ref[2:].split("/"):
                target = target[part]
        else:
            assert (CONTRACT / ref).is_file(), ref


def key_of(document: dict[str, Any], name: str) -> dict[str, Any]:
    key: dict[str, Any] = document["components"]["messages"][name]["bindings"]["kafka"]["key"]
    return key


def test_message_keys_are_the_job_id_except_output_by_execution_and_host_messages_by_host() -> None:
    document = asyncapi()
    for name in message_types():
        key = key_of(document, name)
        if name == "ExecutionOutput":
            assert key["format"] == "uuid" and "execution id" in key["description"]
        elif name in ("RunnerHeartbeat", "HostBlacklisted"):
            assert key["type"] == "string" and "host" in key["description"]
        else:
            assert key["format"] == "uuid" and "job id" in key["description"], name
    for fixture in FIXTURES.glob("*.json"):
        event = events.decode(fixture.read_bytes())
        field = schemas.key_field(type(event))
        assert event.key == str(getattr(event, field)).encode()


def group_schema(document: dict[str, Any], operation: str) -> dict[str, Any]:
    group: dict[str, Any] = document["operations"][operation]["bindings"]["kafka"]["groupId"]
    return group


def takes(group: dict[str, Any], name: str) -> bool:
    return group.get("const") == name or bool(re.fullmatch(group.get("pattern", "^$").strip("^$"), name))


def test_the_consumer_groups_are_the_ones_the_services_join() -> None:
    document = asyncapi()
    settings = Settings.model_construct()
    expected = {
        "scheduler.receive.jobs": group_id(settings, "scheduler"),
        "scheduler.receive.executions": group_id(settings, "scheduler"),
        "recorder.receive.jobs": group_id(settings, "recorder"),
        "recorder.receive.output": group_id(settings, "recorder.output"),
        "notifier.receive.executions": group_id(settings, "notifier"),
        "runner.receive.due": runner_group(settings, "default"),
        "runner.receive.farm_due": runner_group(settings, "gpu-a100"),
        "runner.receive.control": str(listener_config(settings)["group.id"]),
        "api.receive.output": f"{settings.topic_prefix}api.live.1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    }
    for operation, name in expected.items():
        assert takes(group_schema(document, operation), name), f"{operation} does not name the group {name}"
    for operation in document["operations"].values():
        if operation["action"] == "receive":
            assert "groupId" in operation["bindings"]["kafka"]


class Parked:
    """The part of a confluent_kafka.Message that dead_letter_record reads."""

    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"a5f686cd-31bd-48a2-8ba9-d3a2c82cf5fd"

    def topic(self) -> str:
        return "fastlane.jobs"

    def partition(self) -> int:
        return 3

    def offset(self) -> int:
        return 42


def test_the_dead_letter_headers_are_the_ones_the_producer_writes() -> None:
    headers = asyncapi()["components"]["messages"]["DeadLetter"]["headers"]
    _, small = dead_letter_record(Parked(b"{}"), "not JSON", 256 * 1024)  # type: ignore[arg-type]
    _, cut = dead_letter_record(Parked(b"x" * 300 * 1024), "too big", 256 * 1024)  # type: ignore[arg-type]
    assert sorted(headers["required"]) == sorted(name for name, _ in small)
    assert sorted(headers["properties"]) == sorted(name for name, _ in cut)
