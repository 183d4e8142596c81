"""What to deliver for an execution event, and the body and signature of a webhook: pure logic, no I/O (when to
try again: decisions.py)."""

import hashlib
import hmac
import json
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.contract.events import ExecutionFinished, ExecutionStarted, JobDefinition
from shared.domain.links import Links
from shared.domain.redaction import redact
from shared.process.logs import TRACEPARENT, context

Channel = Literal["webhook", "mail"]
# Namespace of delivery ids: one id per (execution, event, channel, target), whatever redelivers the event.
DELIVERIES = uuid.UUID("6f1e1b9e-3a52-4d0c-9a57-2f0b8f1d7c11")


class Delivery(BaseModel):
    """One message to one target (a webhook URL, or the addresses of one e-mail), with its retry state."""

    delivery_id: uuid.UUID
    partition: int
    channel: Channel
    event: str
    task_id: str
    job_id: uuid.UUID
    execution_id: uuid.UUID
    url: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    recipients: list[str] = Field(default_factory=list)
    retries: int
    attempts: int = 0
    next_at: datetime
    payload: dict[str, Any]
    trace: str | None = None  # traceparent of the event it notifies about: its attempts' log lines carry it

    @property
    def target(self) -> str:
        return self.url if self.channel == "webhook" else ", ".join(self.recipients)


def event_names(event: ExecutionStarted | ExecutionFinished) -> list[str]:
    """starts; succeeds (done); fails (failed or timedout); finishes (any end)."""
    if isinstance(event, ExecutionStarted):
        return ["starts"]
    if event.status == "done":
        return ["succeeds", "finishes"]
    if event.status in ("failed", "timedout"):
        return ["fails", "finishes"]
    return ["finishes"]


def payload(
    event: ExecutionStarted | ExecutionFinished,
    definition: JobDefinition,
    links: Links,
    env_blacklist: list[str],
) -> dict[str, Any]:
    """What every delivery about `event` tells (a webhook adds its `event` name and `delivery`)."""
    execution_url = links.execution(event.task_id, event.job_id, event.execution_id)
    started: datetime | None
    finished: datetime | None
    if isinstance(event, ExecutionStarted):
        status, exit_code, error = "running", None, None
        started, finished = event.occurred_at, None
    else:
        status, exit_code, error = event.status, event.exit_code, event.error
        started, finished = event.started_at, event.occurred_at
    return {
        "task": {"id": event.task_id, "url": links.task(event.task_id)},
        "job": {
            "id": str(event.job_id),
            "url": links.job(event.task_id, event.job_id),
            "image": definition.image,
            "command": definition.command,
            "envs": redact(definition.envs, env_blacklist),
            "metadata": {"custom": definition.metadata},
        },
        "execution": {
            "id": str(event.execution_id),
            "url": execution_url,
            "logsUrl": f"{execution_url}/logs",
            "status": status,
            "exitCode": exit_code,
            "error": error,
            "startedAt": started.isoformat() if started else None,
            "finishedAt": finished.isoformat() if finished else None,
            "host": event.host,
        },
    }


def plan(
    event: ExecutionStarted | ExecutionFinished,
    definition: JobDefinition,
    partition: int,
    links: Links,
    env_blacklist: list[str],
    default_retries: int,
    mail_retries: int,
) -> list[Delivery]:
    """Every delivery the job's `webhooks` and `notify` ask for on this event, due now."""
    body = payload(event, definition, links, env_blacklist)
    common: dict[str, Any] = {
        "partition": partition,
        "task_id": event.task_id,
        "job_id": event.job_id,
        "execution_id": event.execution_id,
        "next_at": event.occurred_at,
        "payload": body,
        "trace": context().get(TRACEPARENT),
    }
    found = []
    for name in event_names(event):
        for n, hook in enumerate(definition.webhooks.get(name, [])):  # type: ignore[call-overload]
            found.append(
                Delivery(
                    delivery_id=delivery_id(event.execution_id, name, "webhook", n),
                    channel="webhook",
                    event=name,
                    url=hook.url,
                    headers=hook.headers,
                    retries=default_retries if hook.retries is None else hook.retries,
                    **common,
                )
            )
        recipients = definition.notify.get(name, [])  # type: ignore[call-overload]
        if recipients:
            found.append(
                Delivery(
                    delivery_id=delivery_id(event.execution_id, name, "mail", 0),
                    channel="mail",
                    event=name,
                    recipients=list(recipients),
                    retries=mail_retries,
                    **common,
                )
            )
    return found


def delivery_id(execution_id: uuid.UUID, event: str, channel: Channel, index: int) -> uuid.UUID:
    return uuid.uuid5(DELIVERIES, f"{execution_id}:{event}:{channel}:{index}")


def webhook_body(delivery: Delivery, sent_at: datetime) -> bytes:
    """The JSON POSTed: the event's payload, with which event and which delivery (id, attempt, time)."""
    doc = {
        "event": delivery.event,
        "delivery": {
            "id": str(delivery.delivery_id),
            "attempt": delivery.attempts + 1,
            "timestamp": int(sent_at.timestamp()),
        },
        **delivery.payload,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`: the body carries the delivery id and time, so both are signed."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
