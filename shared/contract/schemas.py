"""The event contract as data: a JSON Schema per message and an AsyncAPI 3.0 document, generated from the code.

`python -m shared.contract.schemas` writes them under docs/contract/; `--check` only compares and exits 1 naming
each stale file (a unit test does the same, so a model changed without regenerating fails CI).

The schemas are pydantic's *validation* schemas: they describe what `decode` accepts, which is what a producer
may send and what a subscriber must be ready to read. That includes messages from earlier producers of the same
version, which lack the fields added since (optional, with defaults). A *serialization* schema would describe
only what today's producers write; the unit tests check that this output fits the validation schema too.

Topic names, consumer groups, topic settings and message keys come from `topics.py` and the models; which
message travels on which topic, and who sends or receives it, is declared below (CHANNELS, OPERATIONS) because
the services route messages in code, and a unit test checks that every topic and message type appears here.
"""

import argparse
import dataclasses
import inspect
import json
import re
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from shared.contract import events
from shared.contract.events import SCHEMA_VERSION, HostEvent, JobMessage
from shared.contract.topics import Topics, group_id, runner_group
from shared.domain.farms import due_topic
from shared.process.settings import Settings

Message = type[JobMessage] | type[HostEvent]
Json = dict[str, Any]

OUT_DIR = Path(__file__).resolve().parents[2] / "docs" / "contract"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING = "0.5.0"
# The message types of the contract, in the order of the `Event` union.
MESSAGES: tuple[Message, ...] = typing.get_args(typing.get_args(events.Event)[0])
# Farm names as `shared/domain/farms.py` accepts them (the default farm keeps the topic and group without one).
FARM_NAME = "[a-z0-9][a-z0-9-]{0,39}"


def schema_id(name: str) -> str:
    return f"urn:fastlane:contract:v{SCHEMA_VERSION}:{name}"


def schema_file(name: str) -> str:
    return f"{name}.v{SCHEMA_VERSION}.json"


def message_schema(model: Message) -> Json:
    """The JSON Schema of one message type: pydantic's, with an id, and `type` required (the union that `decode`
    parses with picks the model by it, so a message without it is refused)."""
    generated = model.model_json_schema(mode="validation")
    if not generated.get("description"):
        raise ValueError(f"{model.__name__} needs a docstring: it is the description of its schema")
    type_field = generated["properties"]["type"]
    if type_field.get("const") != model.__name__:
        raise ValueError(f"{model.__name__}.type must be the constant {model.__name__!r}")
    required = [*generated.get("required", []), "type"]
    body = {k: v for k, v in generated.items() if k not in ("$defs", "required", "title", "description")}
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id(model.__name__),
        "title": model.__name__,
        "description": f"{generated['description']}\n\nfastlane event contract, version {SCHEMA_VERSION}: "
        "fields are only added within a version, and only as optional; ignore fields you do not know.",
        **body,
        "required": required,
        **({"$defs": generated["$defs"]} if "$defs" in generated else {}),
    }


def union_schema(schemas: dict[str, Json]) -> Json:
    """Any message of the contract, told apart by `type`: every message schema under `$defs`, with the models they
    share hoisted beside them (self-contained: no reference leaves the file)."""
    defs: Json = {}
    for name, schema in schemas.items():
        for shared_name, shared in schema.get("$defs", {}).items():
            if defs.setdefault(shared_name, shared) != shared:
                raise ValueError(f"two different models are both named {shared_name}")
        defs[name] = {k: v for k, v in schema.items() if k not in ("$schema", "$id", "$defs")}
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id("Event"),
        "title": "Event",
        "description": f"Any message of the fastlane event contract, version {SCHEMA_VERSION}; `type` says which.",
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in schemas],
        "discriminator": {"propertyName": "type", "mapping": {name: f"#/$defs/{name}" for name in schemas}},
        "$defs": dict(sorted(defs.items())),
    }


# --- AsyncAPI ---------------------------------------------------------------------------------------------------

# What each key field means, for the message key bindings (a new key field must be explained here).
KEY_MEANINGS = {
    "job_id": "The job id, as text: all messages of one job land in one partition and keep their order.",
    "execution_id": "The execution id, as text: one execution's chunks keep their order.",
    "host": "The Docker host's name (the runner's host label), as text.",
}
DEAD_LETTER_HEADERS = {
    "origin-topic": "The topic the message was read from.",
    "origin-partition": "Its partition (decimal text).",
    "origin-offset": "Its offset (decimal text).",
    "reason": "Why it was parked: the decoding error, or the handler's last error (at most 1,000 characters).",
    "truncated": "Only when the value was cut to fit: its full size and how much was kept.",
}


@dataclass(frozen=True)
class Channel:
    """A topic (a field of `Topics`) and what travels on it."""

    topic: str
    messages: tuple[str, ...]  # message ids (event types, or one of OTHER_MESSAGES)
    description: str


@dataclass(frozen=True)
class Operation:
    """One service sending to or receiving from a topic; `group` is a JSON Schema of its consumer group id."""

    service: str
    action: Literal["send", "receive"]
    topic: str
    description: str
    messages: tuple[str, ...] = ()  # a subset of the channel's; empty: all of them
    group: Json | None = None


CHANNELS = (
    Channel(
        "jobs",
        ("JobRequested", "JobUpdated", "JobStopRequested", "JobRetryRequested", "ExecutionStopRequested"),
        "Orders from the API. Written in Kafka transactions: read it with isolation.level=read_committed. Carries "
        "the jobs' envs (secrets): restrict who may read it.",
    ),
    Channel(
        "due",
        ("ExecutionDue",),
        "Executions that must run now, for the runners of the first farm (`default`). Written in transactions by "
        "the scheduler (read_committed). Carries envs: restrict who may read it.",
    ),
    Channel(
        "farm_due",
        ("ExecutionDue",),
        "Executions that must run now, for the runners of every other farm: one topic per farm. Carries envs.",
    ),
    Channel(
        "executions",
        ("ExecutionPulling", "ExecutionStarted", "ExecutionFinished"),
        "What happened to each execution: the public topic, for external subscribers too.",
    ),
    Channel(
        "output",
        ("ExecutionOutput",),
        "Running containers' output as it is written, best effort (the log in ExecutionFinished stays the record).",
    ),
    Channel("heartbeats", ("RunnerHeartbeat",), "Each runner's periodic report on its Docker host."),
    Channel(
        "control",
        ("StopExecution", "HostBlacklisted"),
        "Stop requests, which every runner reads (scheduler, in transactions: read_committed), and blacklist "
        "changes, which the recorder projects for the runners (api).",
    ),
    Channel(
        "scheduler_state",
        ("SchedulerState",),
        "Internal (not part of the contract): the scheduler's per-job state of jobs with pending work; compacted.",
    ),
    Channel(
        "scheduler_archive",
        ("SchedulerState",),
        "Internal (not part of the contract): the state of jobs without pending work, read only when an order for "
        "one arrives; compacted.",
    ),
    Channel(
        "dead_letter",
        ("DeadLetter",),
        "Messages a consumer could not parse, or whose handling kept failing by the message's own fault (outages "
        "of Kafka, Cassandra or an engine are waited out instead), parked unchanged for operators.",
    ),
)


def group(settings: Settings, service: str) -> Json:
    return {"type": "string", "const": group_id(settings, service)}


def group_pattern(prefix: str, suffix: str, description: str) -> Json:
    # Only the metacharacters are escaped: JSON Schema patterns are ECMA-262, where `\-` is an error in unicode mode.
    literal = re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", prefix)
    return {"type": "string", "pattern": f"^{literal}{suffix}$", "description": description}


def operations(settings: Settings) -> tuple[Operation, ...]:
    farm_group = runner_group(settings, "FARM")
    return (
        Operation("api", "send", "jobs", "POST, PUT, stop and retry orders, each in a Kafka transaction."),
        Operation("scheduler", "receive", "jobs", "Schedules jobs.", group=group(settings, "scheduler")),
        Operation("recorder", "receive", "jobs", "Projects jobs for the API.", group=group(settings, "recorder")),
        Operation("scheduler", "send", "due", "Decides that an execution runs now (transactional)."),
        Operation("runner", "send", "due", "A runner whose engine failed before the container ran hands it back."),
        Operation(
            "runner",
            "receive",
            "due",
            "The default farm's runners share this group.",
            group={"type": "string", "const": runner_group(settings, "default")},
        ),
        Operation("recorder", "receive", "due", "Records executions as enqueued.", group=group(settings, "recorder")),
        Operation("scheduler", "send", "farm_due", "As on the first farm's topic."),
        Operation("runner", "send", "farm_due", "As on the first farm's topic."),
        Operation(
            "runner",
            "receive",
            "farm_due",
            "Each farm's runners share one group.",
            group=group_pattern(
                farm_group[: farm_group.index("FARM")], FARM_NAME, "The farm's runners: prefix runner.<farm>."
            ),
        ),
        Operation(
            "recorder", "receive", "farm_due", "As on the first farm's topic.", group=group(settings, "recorder")
        ),
        Operation(
            "runner", "send", "executions", "Pulling, started and finished, for each execution it runs or takes up."
        ),
        Operation(
            "scheduler",
            "send",
            "executions",
            "A `failed` ExecutionFinished (host null) for a job it cannot schedule (transactional).",
            messages=("ExecutionFinished",),
        ),
        Operation("scheduler", "receive", "executions", "Retries and next runs.", group=group(settings, "scheduler")),
        Operation("recorder", "receive", "executions", "Projects executions.", group=group(settings, "recorder")),
        Operation("notifier", "receive", "executions", "Webhooks and e-mails.", group=group(settings, "notifier")),
        Operation(
            "api",
            "receive",
            "executions",
            "Each API process follows the end of executions for its live followers, from the latest offset, "
            "committing nothing.",
            group=group_pattern(
                group_id(settings, "api.live."), "[0-9a-f-]{36}", "One group of its own per API process."
            ),
        ),
        Operation("runner", "send", "output", "The containers it runs, in bounded chunks."),
        Operation("recorder", "receive", "output", "Keeps the output.", group=group(settings, "recorder.output")),
        Operation(
            "api",
            "receive",
            "output",
            "Each API process serves its WebSocket and SSE followers from the latest offset, committing nothing.",
            group=group_pattern(
                group_id(settings, "api.live."), "[0-9a-f-]{36}", "One group of its own per API process."
            ),
        ),
        Operation("runner", "send", "heartbeats", "Every FASTLANE_HEARTBEAT_INTERVAL_S."),
        Operation(
            "recorder", "receive", "heartbeats", "Projects the farm's status.", group=group(settings, "recorder")
        ),
        Operation("scheduler", "send", "control", "Stop requests (transactional).", messages=("StopExecution",)),
        Operation("api", "send", "control", "Blacklist changes.", messages=("HostBlacklisted",)),
        Operation(
            "runner",
            "receive",
            "control",
            "Every runner reads every stop request (a group of its own each, from the latest offset); it skips "
            "the other messages.",
            messages=("StopExecution",),
            group=group_pattern(
                group_id(settings, "runner-control-"), "[0-9a-f]{12}", "One group of its own per runner process."
            ),
        ),
        Operation("recorder", "receive", "control", "Stops and the blacklist.", group=group(settings, "recorder")),
        Operation("scheduler", "send", "scheduler_state", "Each job's state, in the decision's transaction."),
        Operation(
            "scheduler",
            "receive",
            "scheduler_state",
            "Loads the states of its partitions when they are assigned.",
            group={"type": "string", "const": f"{group_id(settings, 'scheduler')}-loader"},
        ),
        Operation("scheduler", "send", "scheduler_archive", "The state of a job left without pending work."),
        Operation(
            "scheduler",
            "receive",
            "scheduler_archive",
            "Reads a job's archived state when an order for it arrives.",
            group={"type": "string", "const": f"{group_id(settings, 'scheduler')}-loader"},
        ),
        *(
            Operation(service, "send", "dead_letter", "Parks what it could not handle.")
            for service in ("scheduler", "runner", "recorder", "notifier")
        ),
    )


def key_field(model: Message) -> str:
    """The field whose value is the model's Kafka key, found by asking the model's own `key`."""
    sentinels: dict[str, Any] = {name: f"<{name}>" for name in model.model_fields}
    probe = model.model_construct(**sentinels)
    name = probe.key.decode().strip("<>")
    if name not in model.model_fields:
        raise ValueError(f"{model.__name__}.key is not one of its fields")
    return name


def first_sentence(text: str) -> str:
    paragraph = " ".join(text.split("\n\n")[0].split())
    return re.split(r"(?<=\.) ", paragraph, maxsplit=1)[0]


def event_message(model: Message, payload_schema: Json) -> Json:
    docstring = inspect.getdoc(model) or ""
    field = key_field(model)
    key_schema = {k: v for k, v in payload_schema["properties"][field].items() if k not in ("title", "default")}
    return {
        "name": model.__name__,
        "title": model.__name__,
        "summary": first_sentence(docstring),
        "description": docstring,
        "contentType": "application/json",
        "payload": {"$ref": f"schemas/{schema_file(model.__name__)}"},
        "headers": TRACE_HEADERS,
        "bindings": {
            "kafka": {"key": {**key_schema, "description": KEY_MEANINGS[field]}, "bindingVersion": KAFKA_BINDING}
        },
    }


# Every event may carry the trace of the request it came from (shared/process/logs.py); none requires it.
TRACE_HEADERS: Json = {
    "type": "object",
    "properties": {
        "traceparent": {
            "type": "string",
            "description": "W3C Trace Context of the HTTP request this message descends from (the API's answer "
            "gave it as its `traceparent` header); its trace id is in every log line about the job. Optional.",
            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        }
    },
}


OTHER_MESSAGES: dict[str, Json] = {
    "SchedulerState": {
        "name": "SchedulerState",
        "title": "SchedulerState",
        "summary": "The scheduler's state of one job (internal: not part of the contract).",
        "contentType": "application/json",
        "payload": {"description": "Internal; may change in any release. A null value deletes the job's record."},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "format": "uuid", "description": KEY_MEANINGS["job_id"]},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    },
    "DeadLetter": {
        "name": "DeadLetter",
        "title": "DeadLetter",
        "summary": "A parked message: its key and value unchanged, where it came from and why in headers.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": {name: {"type": "string", "description": text} for name, text in DEAD_LETTER_HEADERS.items()},
            "required": [name for name in DEAD_LETTER_HEADERS if name != "truncated"],
        },
        "payload": {"description": "The original value, unchanged (not necessarily JSON); cut when `truncated`."},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The original key (at most its first 1,024 bytes)."},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    },
}


def topic_configuration(topics: Topics, address: str) -> Json:
    """A topic's settings as fastlane creates it, in the binding's types (numbers as integers, policies as lists)."""
    config: Json = {}
    for name, value in topics.config(address).items():
        config[name] = [value] if name == "cleanup.policy" else int(value)
    return config


def channel_address(settings: Settings, topics: Topics, channel: Channel) -> str:
    if channel.topic == "farm_due":
        return due_topic(settings.topic_prefix, "{farm}")
    address = getattr(topics, channel.topic)
    assert isinstance(address, str)
    return address


def asyncapi(schemas: dict[str, Json]) -> Json:
    # Defaults only: FASTLANE_* variables of the machine that generates must not change the document.
    settings = Settings.model_construct()
    topics = Topics.from_settings(settings)
    prefix = settings.topic_prefix
    missing = {f.name for f in dataclasses.fields(Topics)} - {"settings"} - {c.topic for c in CHANNELS}
    if missing:
        raise ValueError(f"topics without a channel in shared/contract/schemas.py: {sorted(missing)}")
    channels: Json = {}
    for channel in CHANNELS:
        address = channel_address(settings, topics, channel)
        entry: Json = {
            "address": address,
            "title": address,
            "description": channel.description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in channel.messages},
        }
        if channel.topic == "farm_due":
            entry["parameters"] = {
                "farm": {"description": f"A farm's name (not `default`), as configured in FASTLANE_FARMS: {FARM_NAME}."}
            }
        entry["bindings"] = {
            "kafka": {
                "partitions": settings.topic_partitions,
                "topicConfiguration": topic_configuration(topics, address),
                "bindingVersion": KAFKA_BINDING,
            }
        }
        channels[channel.topic] = entry
    declared = {c.topic: c for c in CHANNELS}
    ops: Json = {}
    for op in operations(settings):
        names = op.messages or declared[op.topic].messages
        entry = {
            "action": op.action,
            "channel": {"$ref": f"#/channels/{op.topic}"},
            "title": f"{op.service} {op.action}s on {op.topic}",
            "description": op.description,
            "messages": [{"$ref": f"#/channels/{op.topic}/messages/{name}"} for name in names],
        }
        if op.group is not None:
            entry["bindings"] = {"kafka": {"groupId": op.group, "bindingVersion": KAFKA_BINDING}}
        ops[f"{op.service}.{op.action}.{op.topic}"] = entry
    messages = {model.__name__: event_message(model, schemas[model.__name__]) for model in MESSAGES}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "fastlane events",
            "version": str(SCHEMA_VERSION),
            "description": (
                "The messages fastlane puts on Kafka (prose and examples: docs/events.md). One JSON object per "
                "message value, UTF-8; times ISO 8601 in UTC. Keyed by job id, except output (by execution id) and "
                "heartbeats and HostBlacklisted (by host). Within a version fields are only added, as optional; "
                "ignore fields you do not know. At least once: dedupe on event_id. Kafka headers: an optional "
                "`traceparent` (W3C Trace Context) on any message, and those of the dead-letter topic.\n\n"
                f"Topic and consumer group names carry a configurable prefix (FASTLANE_TOPIC_PREFIX), shown here "
                f"with its default `{prefix}`. Generated by `python -m shared.contract.schemas`; do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": settings.kafka_bootstrap,
                "protocol": "kafka",
                "description": "The broker of `make run`; elsewhere FASTLANE_KAFKA_BOOTSTRAP.",
            }
        },
        "channels": channels,
        "operations": ops,
        "components": {"messages": {**messages, **OTHER_MESSAGES}},
    }


def render() -> dict[str, str]:
    """Every generated file (path under docs/contract/ -> text)."""
    schemas = {model.__name__: message_schema(model) for model in MESSAGES}
    files = {f"schemas/{schema_file(name)}": schema for name, schema in schemas.items()}
    files[f"schemas/{schema_file('Event')}"] = union_schema(schemas)
    files["asyncapi.json"] = asyncapi(schemas)
    return {path: json.dumps(data, indent=2, ensure_ascii=False) + "\n" for path, data in files.items()}


def stale(out: Path, files: dict[str, str]) -> list[str]:
    """Files under `out` that differ from `files`, are missing, or are schemas no longer generated."""
    wrong = [p for p, text in files.items() if not (out / p).is_file() or (out / p).read_text("utf-8") != text]
    extra = [f"schemas/{p.name}" for p in sorted((out / "schemas").glob("*.json")) if f"schemas/{p.name}" not in files]
    return wrong + extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.contract.schemas", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when a file is stale")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the files go (default: docs/contract)")
    args = parser.parse_args(argv)
    files = render()
    outdated = stale(args.out, files)
    if args.check:
        for path in outdated:
            print(f"stale: {args.out / path}", file=sys.stderr)
        if outdated:
            print("regenerate with: python -m shared.contract.schemas", file=sys.stderr)
        return 1 if outdated else 0
    for path in outdated:
        target = args.out / path
        if path in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(files[path], "utf-8")
            print(f"wrote {target}")
        else:
            target.unlink()
            print(f"removed {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
