"""Logging set-up: readable lines in development, one JSON object per line in production; and the context of
what a line is about.

`bound(task_id=..., execution_id=..., request_id=..., trace_id=...)` puts ids into the current context
(contextvars: one request, one message's handling, one execution's thread); every log line written inside the
block carries them as fields, so one request or one execution can be followed through every service's logs
(`grep <execution id>` or `grep <trace id>`). The context's `traceparent` (W3C Trace Context, via the
OpenTelemetry API's propagator; nothing is exported) travels in Kafka headers: the API puts its request's on the
orders it publishes, each consumer binds the one of the message it handles, and producers put the current one on
what they publish (shared/infra/kafka/producer.py), so the trace id of a POST shows in the scheduler's, the
runner's, the recorder's and the notifier's lines about that job.
"""

import contextlib
import contextvars
import json
import logging
import secrets
import sys
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.process.settings import Settings

# Attributes every LogRecord has; anything else was passed with `extra=` and is printed as a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


_CONTEXT: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "fastlane_log_context", default=MappingProxyType({})
)
_PROPAGATOR = TraceContextTextMapPropagator()
TRACEPARENT = "traceparent"


@contextlib.contextmanager
def bound(**ids: object) -> Iterator[None]:
    """Add `ids` (None values left out) to every log line written in the block, in this context."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: str(v) for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def context() -> dict[str, str]:
    return dict(_CONTEXT.get())


def valid_traceparent(value: str | bytes | None) -> str | None:
    """`value` when it is a well-formed W3C traceparent (checked by the OpenTelemetry propagator), else None."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not value or len(value) > 128:
        return None
    from opentelemetry import trace

    try:
        found = trace.get_current_span(_PROPAGATOR.extract({TRACEPARENT: value})).get_span_context()
    except Exception:  # whatever a header holds, reading it never fails the message or the request
        return None
    if not found.is_valid:
        return None
    # Rebuilt, not echoed: a later version's extra fields (or anything appended) never travel on.
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{int(found.trace_flags):02x}"


def new_traceparent() -> str:
    """A new trace (a random trace id and span id, sampled), for a request that came without one."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_ids(traceparent: str | None) -> dict[str, str]:
    """The fields a trace adds to the context: the traceparent itself (for producers) and its trace id (for
    people)."""
    if traceparent is None:
        return {}
    return {TRACEPARENT: traceparent, "trace_id": traceparent.split("-")[1]}


def trace_headers() -> list[tuple[str, bytes]]:
    """The Kafka headers carrying the current context's trace (none outside one)."""
    traceparent = _CONTEXT.get().get(TRACEPARENT)
    return [(TRACEPARENT, traceparent.encode())] if traceparent else []


def traceparent_of(
    headers: Mapping[str, str | bytes | None] | list[tuple[str, str | bytes | None]] | None,
) -> str | None:
    """The valid traceparent among a Kafka message's headers, if any."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or []
    for name, value in pairs:
        if name == TRACEPARENT:
            return valid_traceparent(value)
    return None


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class ContextFilter(logging.Filter):
    """Adds the context's ids to each record (a field passed with `extra=` wins); the traceparent itself is left
    out of the line (its trace id is there)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get().items():
            if key != TRACEPARENT and not hasattr(record, key):
                setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    """`time level logger message key=value...`."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        return f"{line} {extra}" if extra else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stdout)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.getLogger("cassandra").setLevel(logging.WARNING)
