"""Compatibility: version 1 messages, kept as fixtures, still decode, fit the committed JSON Schemas and round-trip.

The fixtures (tests/fixtures/events/v1/<Type>[.<case>].json) were written by hand from the models and
docs/events.md: optional fields left out, unknown fields added, non-ASCII text, the largest realistic numbers and
chunks. Never edit one to make a test pass: a failure here means subscribers' messages would stop parsing; such a
change needs a new contract version (docs/events.md, "Versioning"). The schemas are checked with `jsonschema`
(draft 2020-12, formats checked: `uuid`, and `date-time` by RFC 3339 below, which jsonschema leaves unchecked
without an extra package).
"""

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import ValidationError

from shared.contract.events import SCHEMA_VERSION, decode, encode

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "events" / f"v{SCHEMA_VERSION}").glob("*.json"))
SCHEMAS = ROOT / "docs" / "contract" / "schemas"
DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
FORMATS = FormatChecker()


@FORMATS.checks("date-time")
def is_date_time(value: object) -> bool:
    return not isinstance(value, str) or DATE_TIME.fullmatch(value) is not None


def committed_schema(name: str) -> dict[str, Any]:
    path = SCHEMAS / f"{name}.v{SCHEMA_VERSION}.json"
    schema: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return schema


def fits(value: Any, name: str) -> list[str]:
    """What in `value` breaks the committed schema `name` (empty: it fits)."""
    validator = Draft202012Validator(committed_schema(name), format_checker=FORMATS)
    return [f"{'.'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in validator.iter_errors(value)]


def load(fixture: Path) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(fixture.read_bytes())
    return raw


def type_of(fixture: Path) -> str:
    return fixture.name.split(".")[0]


# Fields the fixtures carry on purpose although no version 1 model has them (as a newer producer might send):
# decoders must ignore them. Every other field of a fixture is part of the contract and must come back unchanged.
NOT_IN_THE_CONTRACT = {"trace_id", "requested_by", "farm_hint", "duration_ms", "load_average", "reason", "chunk_seq"}
NOT_IN_THE_DEFINITION = {"priority"}  # inside JobRequested.definition

# --- the fixtures ---------------------------------------------------------------------------------------------------


def test_there_are_version_1_fixtures() -> None:
    assert len(FIXTURES) >= 13


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_a_version_1_message_still_decodes_into_its_type(fixture: Path) -> None:
    event = decode(fixture.read_bytes())
    assert event.type == type_of(fixture) == load(fixture)["type"], f"{fixture.name} decoded as {event.type}"
    assert type(event).__name__ == type_of(fixture)
    assert event.version == SCHEMA_VERSION


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_a_version_1_message_fits_the_committed_schema_of_its_type_and_the_union(fixture: Path) -> None:
    raw = load(fixture)
    assert fits(raw, type_of(fixture)) == []
    assert fits(raw, "Event") == []


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_a_version_1_message_round_trips_and_what_we_write_back_fits_the_schema(fixture: Path) -> None:
    raw = load(fixture)
    event = decode(fixture.read_bytes())
    written = encode(event)
    assert decode(written) == event
    again = json.loads(written)
    assert fits(again, type_of(fixture)) == []
    for name, value in raw.items():
        if name in NOT_IN_THE_CONTRACT:
            assert name not in type(event).model_fields, f"{name} is a field now: review the fixtures that carry it"
            assert name not in again, f"{name} is not in the contract, yet it was written back"
            continue
        assert name in again, f"{name} of version 1 was dropped or renamed: subscribers read it ({fixture.name})"
        if name == "definition":
            assert not NOT_IN_THE_DEFINITION & set(again[name]), "an unknown field of the definition was written back"
            value = {k: v for k, v in value.items() if k not in NOT_IN_THE_DEFINITION}
        assert same_value(again[name], value), f"{name}: {value!r:.80} came back as {again[name]!r:.80}"


def same_value(written: Any, original: Any) -> bool:
    """Equal, a time written in another (equivalent) form included; objects and lists compared item by item."""
    if isinstance(original, dict) and isinstance(written, dict):
        return all(k in written and same_value(written[k], v) for k, v in original.items())
    if isinstance(original, list) and isinstance(written, list):
        return len(original) == len(written) and all(map(same_value, written, original))
    if isinstance(original, str) and isinstance(written, str) and DATE_TIME.fullmatch(original):
        return datetime.fromisoformat(written) == datetime.fromisoformat(original)
    return bool(written == original)


def test_the_fixtures_hold_what_a_compatibility_test_needs() -> None:
    """Unknown fields, non-ASCII text, times in other forms and numbers past 32 bits each appear somewhere."""
    texts = [fixture.read_text("utf-8") for fixture in FIXTURES]
    unknown = [f.name for f in FIXTURES if set(load(f)) & NOT_IN_THE_CONTRACT]
    assert len(unknown) >= 5
    assert any(not text.isascii() for text in texts)
    assert any("+00:00" in text for text in texts)
    assert any(load(f).get("offset", 0) > 2**32 for f in FIXTURES)


# --- the schemas refuse what decode refuses ---------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_the_schema_and_decode_both_refuse_a_message_without_a_required_field(fixture: Path) -> None:
    raw, name = load(fixture), type_of(fixture)
    required = committed_schema(name)["required"]
    assert "type" in required
    for field in required:
        broken = {k: v for k, v in raw.items() if k != field}
        assert fits(broken, name), f"the schema of {name} takes a message without {field}"
        with pytest.raises(ValidationError):
            decode(json.dumps(broken).encode())


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_the_schema_and_decode_both_refuse_a_field_of_the_wrong_shape(fixture: Path) -> None:
    raw, name = load(fixture), type_of(fixture)
    known = committed_schema(name)["properties"]
    for field in set(raw) & set(known):
        broken = {**raw, field: [raw[field]]}
        assert fits(broken, name), f"the schema of {name} takes a list as {field}"
        with pytest.raises(ValidationError):
            decode(json.dumps(broken).encode())


def test_the_schemas_refuse_what_the_contract_refuses() -> None:
    base = load(ROOT / "tests" / "fixtures" / "events" / "v1" / "ExecutionOutput.stdout.json")
    assert fits(base, "ExecutionOutput") == []
    for change in (
        {"type": "ExecutionFinished"},
        {"offset": -1},
        {"stream": "stdin"},
        {"execution_id": "not-a-uuid"},
        {"occurred_at": "27/11/2026"},
        {"size": 1.5},
        {"host": None},
    ):
        assert fits({**base, **change}, "ExecutionOutput"), f"{change} was taken"
    assert fits({**base, "type": "Nope"}, "Event")
