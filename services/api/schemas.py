"""Request validation for job definitions (the body of POST /tasks/{taskId})."""

import ipaddress
import json
import math
import re
import shlex
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from services.api.errors import BadRequest
from shared.contract.events import JobDefinition, MailEvent, Resources, RetryBackoff, Webhook, WebhookEvent
from shared.domain.addresses import literal_private, url_problem
from shared.domain.schedule import check_cron, parse_duration, zone

# Every pattern is matched against the WHOLE value (fullmatch): `$` alone would let a trailing newline through.
EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")
MAX_TARGETS = 10  # per event: webhooks, or e-mail addresses
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
HOSTNAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*")
ENV_NAME = re.compile(r"[^=\x00]{1,1000}")
# Upper bound of `startAt` and `expiration` (UNIX seconds): 9999-12-31, the last instant a date can hold.
LAST_INSTANT = 253_402_300_799


class RetryBackoffSpec(BaseModel):
    """`retryBackoff`: pause before retry n is min(maxMs, minMs * factor ** (n - 1))."""

    model_config = ConfigDict(extra="forbid")

    minMs: StrictInt = Field(ge=1, le=86_400_000)
    factor: StrictInt | StrictFloat = Field(ge=1, le=100)
    maxMs: StrictInt = Field(ge=1, le=86_400_000)

    @model_validator(mode="after")
    def _ordered(self) -> "RetryBackoffSpec":
        if self.maxMs < self.minMs:
            raise ValueError("maxMs must be at least minMs")
        return self


class ResourcesSpec(BaseModel):
    """`resources`: limits the Docker engine enforces on the container."""

    model_config = ConfigDict(extra="forbid")

    cpus: StrictInt | StrictFloat | None = Field(default=None, gt=0, le=1024)
    memoryMB: StrictInt | None = Field(default=None, ge=6, le=4_194_304)  # the engine refuses less than 6 MiB


class WebhookSpec(BaseModel):
    """One webhook: POSTed to `url` with `headers`; failed deliveries retried `retries` times."""

    model_config = ConfigDict(extra="forbid")

    url: StrictStr = Field(max_length=2000)
    headers: dict[StrictStr, StrictStr] = Field(default_factory=dict, max_length=50)
    retries: StrictInt | None = Field(default=None, ge=0, le=20)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        problem = url_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("headers")
    @classmethod
    def _header_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if "\r" in value or "\n" in value or "\x00" in value:
                raise ValueError(f"the value of header {name} must not contain line breaks or NUL characters")
        return v


class JobSpec(BaseModel):
    """A job definition as clients send it."""

    model_config = ConfigDict(extra="ignore")

    image: StrictStr = Field(min_length=1, max_length=1000)
    command: StrictStr = Field(min_length=1, max_length=100_000)
    envs: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    startIn: StrictStr | None = None
    startAt: StrictInt | StrictFloat | None = Field(default=None, ge=0, le=LAST_INSTANT)
    cron: StrictStr | None = None
    cronTimezone: StrictStr = "UTC"
    retries: StrictInt = Field(default=0, ge=0, le=1000)
    retryBackoff: RetryBackoffSpec | None = None
    expiration: StrictInt | StrictFloat | None = Field(default=None, ge=0, le=LAST_INSTANT)
    timeout: StrictInt | StrictFloat | None = Field(default=None, gt=0)
    concurrencyPolicy: Literal["Allow", "Forbid", "Replace"] = "Allow"
    catchUp: StrictBool = True
    additionalDNSEntries: dict[StrictStr, StrictStr] = Field(default_factory=dict, max_length=100)
    resources: ResourcesSpec | None = None
    webhooks: dict[WebhookEvent, list[WebhookSpec]] = Field(default_factory=dict)
    notify: dict[MailEvent, list[StrictStr]] = Field(default_factory=dict)

    @field_validator("webhooks")
    @classmethod
    def _few_webhooks(cls, v: dict[str, list[WebhookSpec]]) -> dict[str, list[WebhookSpec]]:
        for event, hooks in v.items():
            if len(hooks) > MAX_TARGETS:
                raise ValueError(f"at most {MAX_TARGETS} webhooks per event ({event} has {len(hooks)})")
        return v

    @field_validator("notify")
    @classmethod
    def _addresses(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for event, addresses in v.items():
            if len(addresses) > MAX_TARGETS:
                raise ValueError(f"at most {MAX_TARGETS} addresses per event ({event} has {len(addresses)})")
            for address in addresses:
                if not EMAIL.fullmatch(address) or len(address) > 254:
                    raise ValueError(f"{address!r} is not an e-mail address")
        return v

    @field_validator("additionalDNSEntries")
    @classmethod
    def _hosts_and_ips(cls, v: dict[str, str]) -> dict[str, str]:
        for name, address in v.items():
            if not HOSTNAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a host name")
            try:
                ipaddress.ip_address(address)
            except ValueError as exc:
                raise ValueError(f"{address!r} (for {name}) is not an IP address") from exc
        return v

    @field_validator("startIn")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @model_validator(mode="after")
    def _one_schedule(self) -> "JobSpec":
        given = [name for name in ("startIn", "startAt", "cron") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"use at most one of startIn, startAt and cron (got {' and '.join(given)})")
        if self.cron is not None:
            check_cron(self.cron, self.cronTimezone)
        else:
            zone(self.cronTimezone)
        return self

    @field_validator("image")
    @classmethod
    def _image_has_no_spaces(cls, v: str) -> str:
        if not v.isprintable() or any(c.isspace() for c in v):
            raise ValueError("must be an image name without spaces, like 'busybox' or 'repo/name:tag'")
        return v

    @field_validator("envs")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an environment variable name (1-1000 characters, no '=' or NUL)")
            if "\x00" in value:
                raise ValueError(f"the value of {name} must not contain NUL characters (a process cannot receive them)")
        return v

    @field_validator("command")
    @classmethod
    def _command_splits(cls, v: str) -> str:
        if "\x00" in v:
            raise ValueError("must not contain NUL characters (a process cannot receive them)")
        try:
            argv = shlex.split(v)
        except ValueError as exc:
            raise ValueError(f"cannot be split into arguments ({exc})") from exc
        if not argv:
            raise ValueError("must not be empty")
        return v

    def definition(self, now: datetime, timeout_hard_limit_s: float) -> JobDefinition:
        """The definition with absolute times: `startIn` counts from `now`, the request's arrival."""
        start_at = None
        if self.startIn is not None:
            start_at = now + parse_duration(self.startIn)
        elif self.startAt is not None:
            start_at = datetime.fromtimestamp(self.startAt, UTC)
        backoff = self.retryBackoff
        return JobDefinition(
            image=self.image,
            command=self.command,
            envs=self.envs,
            metadata=self.metadata,
            start_at=start_at,
            cron=self.cron,
            cron_timezone=self.cronTimezone,
            retries=self.retries,
            retry_backoff=RetryBackoff(min_ms=backoff.minMs, factor=backoff.factor, max_ms=backoff.maxMs)
            if backoff
            else None,
            expiration=datetime.fromtimestamp(self.expiration, UTC) if self.expiration is not None else None,
            timeout_s=min(math.ceil(self.timeout), int(timeout_hard_limit_s)) if self.timeout is not None else None,
            concurrency_policy=self.concurrencyPolicy,
            catch_up=self.catchUp,
            extra_hosts=self.additionalDNSEntries,
            resources=Resources(cpus=self.resources.cpus, memory_mb=self.resources.memoryMB)
            if self.resources
            else None,
            webhooks={
                event: [Webhook(url=h.url, headers=h.headers, retries=h.retries) for h in hooks]
                for event, hooks in self.webhooks.items()
            },
            notify=dict(self.notify),
        )


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


MAX_DEPTH = 64  # nesting of arrays and objects in a body (metadata): every later encoder copes with it


class TooDeep(ValueError):
    """A body nested deeper than MAX_DEPTH."""


def invalid_text(value: object, where: str = "body", depth: int = 0) -> str | None:
    """Where `value` (parsed JSON) holds a string that is not valid Unicode (a lone surrogate such as "\\ud800",
    which no UTF-8 encoder can write), or a number that is not finite; None when there is none. Raises TooDeep
    past MAX_DEPTH levels of nesting."""
    if depth > MAX_DEPTH:
        raise TooDeep(where)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else where
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where != "body" else key
            found = invalid_text(key, f"{where} key") or invalid_text(item, inner, depth + 1)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = invalid_text(item, f"{where}[{i}]", depth + 1)
            if found:
                return found
    return None


def parse_job_spec(raw: bytes, refuse_private: bool = False) -> JobSpec:
    """Parse and validate a request body; every problem becomes a BadRequest with a plain message.
    With `refuse_private`, webhooks to non-public addresses (literal ones; names are checked at delivery) too."""
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, NaN, integers of more than 4300 digits
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("request body is not usable JSON: nested too deeply") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        bad = invalid_text(body)
    except TooDeep as exc:
        raise BadRequest(f"{exc}: nested more than {MAX_DEPTH} levels deep") from exc
    if bad:
        raise BadRequest(f"{bad}: not valid Unicode text or not a finite number (e.g. a lone surrogate like \\ud800)")
    try:
        spec = JobSpec.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(describe(exc)) from exc
    if refuse_private:
        for event, hooks in spec.webhooks.items():
            for hook in hooks:
                if literal_private(hook.url):
                    raise BadRequest(f"webhooks.{event}: {hook.url!r} is not a public address (refused by this server)")
    return spec


def describe(exc: ValidationError) -> str:
    """`field: problem; field: problem` in words a client can act on."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        msg = "is required" if err["type"] == "missing" else err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)
