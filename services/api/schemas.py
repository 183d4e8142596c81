"""Request validation for job definitions (the body of POST /tasks/{taskId})."""

import json
import re
import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from services.api.errors import BadRequest
from shared.events import JobDefinition

TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")

# Fields of the API contract whose behaviour is not built yet: refused loudly rather than silently ignored.
NOT_YET_SUPPORTED = (
    "startIn",
    "startAt",
    "cron",
    "retries",
    "expiration",
    "timeout",
    "notify",
    "webhooks",
    "additionalDNSEntries",
)


class JobSpec(BaseModel):
    """A job definition as clients send it."""

    model_config = ConfigDict(extra="ignore")

    image: StrictStr = Field(min_length=1, max_length=1000)
    command: StrictStr = Field(min_length=1, max_length=100_000)
    envs: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("image")
    @classmethod
    def _image_has_no_spaces(cls, v: str) -> str:
        if v != v.strip() or any(c.isspace() for c in v):
            raise ValueError("must be an image name without spaces, like 'busybox' or 'repo/name:tag'")
        return v

    @field_validator("command")
    @classmethod
    def _command_splits(cls, v: str) -> str:
        try:
            argv = shlex.split(v)
        except ValueError as exc:
            raise ValueError(f"cannot be split into arguments ({exc})") from exc
        if not argv:
            raise ValueError("must not be empty")
        return v

    def definition(self) -> JobDefinition:
        return JobDefinition(image=self.image, command=self.command, envs=self.envs, metadata=self.metadata)


def check_task_id(task_id: str) -> str:
    if not TASK_ID.match(task_id):
        raise BadRequest(
            "taskId must be 1-200 characters of letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
        )
    return task_id


def parse_job_spec(raw: bytes) -> JobSpec:
    """Parse and validate a request body; every problem becomes a BadRequest with a plain message."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    unsupported = [name for name in NOT_YET_SUPPORTED if name in body]
    if unsupported:
        raise BadRequest(f"not supported yet by this server: {', '.join(unsupported)}")
    try:
        return JobSpec.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(describe(exc)) from exc


def describe(exc: ValidationError) -> str:
    """`field: problem; field: problem` in words a client can act on."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        msg = "is required" if err["type"] == "missing" else err["msg"]
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)
