"""Writes docs/configuration.md, the reference of every FASTLANE_* variable, from the code that reads them.

    python -m shared.process.settings_doc      (or `make docs`)

The services' variables come from the pydantic-settings classes of shared/process/settings.py (name, type,
constraints and default of each field, and its description: the docstring under it); which services read a
variable is found by looking for where each class is built under services/. The few variables read by the
deploy scripts and the Makefile are listed here with their meaning; their defaults are read from those files.
tests/unit/test_docs.py fails when the committed page differs from what this writes, so the page cannot drift
from the code.
"""

import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from types import UnionType
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from shared.process import settings as settings_module

ROOT = Path(__file__).resolve().parents[2]
PAGE = Path("docs") / "configuration.md"
PREFIX = "FASTLANE_"
# The five services in the order a job meets them; other readers (tools such as migrate) follow, by name.
FLOW = ("api", "scheduler", "runner", "recorder", "notifier")

# Variables read outside Python: (name, file holding its default, meaning).
SCRIPT_VARIABLES = (
    ("FASTLANE_KAFKA_HEAP", "deploy/scripts/kafka.sh", "Kafka's JVM heap."),
    ("FASTLANE_CASSANDRA_HEAP", "deploy/scripts/cassandra.sh", "Cassandra's JVM heap."),
    (
        "FASTLANE_CASSANDRA_JMX_PORT",
        "deploy/scripts/cassandra.sh",
        "Cassandra's local JMX port (loopback); a second node on the same machine needs another.",
    ),
    (
        "FASTLANE_BIND_ADDR",
        "deploy/scripts/common.sh",
        "The loopback address Kafka and Cassandra listen on: a second node set on 127.0.0.2/.3 runs beside the"
        " default one on the same ports (the fault suite's backends do).",
    ),
    (
        "FASTLANE_LOCAL_DIR",
        "deploy/scripts/common.sh",
        "Where the backends keep their data, logs, pidfiles and (by default) the jars.",
    ),
    (
        "FASTLANE_JARS_DIR",
        "deploy/scripts/common.sh",
        "Where the Kafka and Cassandra jars are (a second stack, e.g. the fault suite's, reuses the main checkout's).",
    ),
    (
        "FASTLANE_KAFKA_CONFIG",
        "deploy/scripts/kafka.sh",
        "Template of the broker's config (a cluster node's: deploy/cluster/kafka.properties.in).",
    ),
    ("FASTLANE_KAFKA_NODE_ID", "deploy/scripts/kafka.sh", "The broker's `node.id` (a cluster node's: 1-3)."),
    ("FASTLANE_KAFKA_VOTERS", "deploy/scripts/kafka.sh", "The KRaft controllers (`controller.quorum.voters`)."),
    ("FASTLANE_KAFKA_CLUSTER_ID", "deploy/scripts/kafka.sh", "The cluster id the broker's storage is formatted with."),
    (
        "FASTLANE_CASSANDRA_CONFIG",
        "deploy/scripts/cassandra.sh",
        "Template of the node's config (a cluster node's: deploy/cluster/cassandra.yaml.in).",
    ),
    ("FASTLANE_CASSANDRA_SEEDS", "deploy/scripts/cassandra.sh", "The seed nodes the node gossips with first."),
    (
        "FASTLANE_CASSANDRA_INITIAL_TOKEN",
        "deploy/scripts/cassandra.sh",
        "The node's one token on the ring (a cluster spaces its nodes' evenly).",
    ),
    *(
        (f"FASTLANE_ENGINE_{name}", "deploy/scripts/second-engine.sh", f"An extra Docker engine's {meaning}.")
        for name, meaning in (
            ("NAME", "name (socket, data and pidfile names; `docker2`, the cluster's `docker3`)"),
            ("BRIDGE", "bridge interface"),
            ("SUBNET", "bridge address and subnet"),
            ("TLS_PORT", "TLS port on 127.0.0.1"),
        )
    ),
    (
        "FASTLANE_SUPERVISOR_RUN_DIR",
        "Makefile",
        "`make run`: supervisord's pidfile and the control socket of supervisorctl (`make status`).",
    ),
    ("FASTLANE_SUPERVISOR_LOG_DIR", "Makefile", "`make run`: supervisord's own log (starts, exits, restarts)."),
    (
        "FASTLANE_SUPERVISE_BACKENDS",
        "Makefile",
        "`make run`: `true` starts Kafka and Cassandra too; `false` only the services (against backends already up).",
    ),
    *(
        (
            f"FASTLANE_{service.upper()}_METRICS_PORT",
            "Makefile",
            f"`make run`: the {service}'s `/metrics`, `/healthz` and `/readyz` port (its `FASTLANE_METRICS_PORT`).",
        )
        for service in ("recorder", "scheduler", "runner", "notifier")
    ),
    ("FASTLANE_IMAGE_TAG", "deploy/images/build.sh", "Tag of the images built and run by compose (default `latest`)."),
    (
        "FASTLANE_DEBIAN_MIRROR",
        "deploy/images/build.sh",
        "The Debian mirror the base image is bootstrapped from (default http://deb.debian.org/debian).",
    ),
    (
        "FASTLANE_DOCKER_GID",
        "deploy/compose.yaml",
        "Group of the host's Docker socket, given to the compose runner (the only container that mounts it).",
    ),
)


def settings_classes() -> list[type[BaseSettings]]:
    """The settings classes in the order they are written, the common one first."""
    found = [v for v in vars(settings_module).values() if isinstance(v, type) and issubclass(v, BaseSettings)]
    return sorted((c for c in found if c is not BaseSettings), key=lambda c: len(c.__mro__))


def builders(root: Path, classes: Iterable[type[BaseSettings]]) -> dict[str, set[str]]:
    """Which services build each settings class: services/<name>/... or services/<name>.py."""
    names = "|".join(c.__name__ for c in classes)
    built = re.compile(rf"\b({names})\(")
    found: dict[str, set[str]] = {}
    for path in sorted((root / "services").rglob("*.py")):
        parts = path.relative_to(root / "services").parts
        service = parts[0] if len(parts) > 1 else path.stem
        for name in built.findall(path.read_text()):
            found.setdefault(name, set()).add(service)
    return found


def in_flow_order(services: set[str]) -> list[str]:
    return sorted(services, key=lambda s: (FLOW.index(s) if s in FLOW else len(FLOW), s))


def type_name(annotation: Any) -> str:
    """`int`, `list[str]`, `int | None`, `list[Farm]`: the annotation as written in the settings."""
    args = get_args(annotation)
    if isinstance(annotation, UnionType):
        return " | ".join(type_name(a) for a in args)
    if annotation is type(None):
        return "None"
    if not args:
        return str(annotation.__name__)
    return f"{get_origin(annotation).__name__}[{', '.join(type_name(a) for a in args)}]"


def type_of(field: FieldInfo) -> str:
    """The field's type and its limits, as a table cell."""
    if get_origin(field.annotation) is Literal:
        text = " or ".join(f"`{v}`" for v in get_args(field.annotation))
    else:
        text = f"`{type_name(field.annotation)}`"
    limits = []
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge):
            limits.append(f">= {_number(rule.ge)}")
        elif isinstance(rule, annotated_types.Gt):
            limits.append(f"> {_number(rule.gt)}")
        elif isinstance(rule, annotated_types.Le):
            limits.append(f"<= {_number(rule.le)}")
        elif getattr(rule, "pattern", None):
            limits.append(f"matching `{rule.pattern}`")
    return ", ".join([text, *limits])


def _number(value: Any) -> str:
    """A number as written in the environment, sizes in bytes with their KiB/MiB after them."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if isinstance(value, int) and value >= size and value % size == 0:
            return f"`{value}` ({value // size} {unit})"
    return f"`{value}`"


def default_of(field: FieldInfo) -> str:
    value = field.default
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        return f"`{value}`"
    as_json = TypeAdapter[Any](field.annotation or Any).dump_json(value, by_alias=True)
    return f"`{json.dumps(json.loads(as_json))}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def script_default(root: Path, name: str, source: str) -> str:
    text = (root / source).read_text()
    found = re.search(rf"\$\{{{name}:-([^}}]*)\}}", text) or re.search(rf"^export {name} \?= (.*)$", text, re.M)
    if not found and re.search(rf"\$\{{{name}:\?", text):
        return "(required)"
    if not found:
        raise LookupError(f"{source} has no default for {name}")
    return f"`{found.group(1).strip()}`"


def render(root: Path = ROOT) -> str:
    classes = settings_classes()
    built_by = builders(root, classes)
    lines = [
        "# Configuration",
        "",
        "<!-- Generated by `make docs` (python -m shared.process.settings_doc) from shared/process/settings.py;",
        "     edit the settings' docstrings, not this page: tests/unit/test_docs.py fails when they differ. -->",
        "",
        f"Every service reads its settings from environment variables prefixed `{PREFIX}`, validated at start-up",
        "(a wrong value stops the service with a message naming it). Lists and dicts are written as JSON.",
        "Defaults suit one machine running everything (`make run`). *Read by* names the processes that load a",
        "variable at start-up (an invalid value stops them), whether or not they act on it: every service loads",
        "the common `Settings`, and its own class adds what only it needs (`migrate` is `python -m services.migrate`).",
    ]
    for cls in classes:
        inherited = {n for base in cls.__bases__ if base in classes for n in base.model_fields}
        own = [n for n in cls.model_fields if n not in inherited]
        readers = set().union(*(built_by.get(c.__name__, set()) for c in classes if issubclass(c, cls)))
        lines += ["", f"## `{cls.__name__}`", "", _cell(cls.__doc__ or ""), ""]
        lines += ["| variable | type | default | read by | description |", "| --- | --- | --- | --- | --- |"]
        for name in own:
            field = cls.model_fields[name]
            cells = [f"`{PREFIX}{name.upper()}`", _cell(type_of(field)), default_of(field)]
            cells += [", ".join(in_flow_order(readers)), _cell(field.description or "")]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Read by the deploy scripts and the Makefile, not by the services", ""]
    lines += ["| variable | default | where | description |", "| --- | --- | --- | --- |"]
    for name, source, meaning in SCRIPT_VARIABLES:
        cells = [f"`{name}`", script_default(root, name, source), f"[{source}](../{source})", meaning]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    (ROOT / PAGE).write_text(render())
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
