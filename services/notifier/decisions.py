"""When to try a delivery again, what to do with one planned before, how long an event waits for its job's
row: pure decisions, no I/O (what to deliver at all: plan.py)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.notifier.plan import Delivery
from services.notifier.ports import Waiting
from shared.contract.events import RetryBackoff
from shared.domain.schedule import backoff_delay

FINAL = ("delivered", "failed")  # delivery states after which nothing more is attempted


@dataclass(frozen=True)
class Retry:
    """Try again: `delivery` carries the attempts so far and when the next one is due."""

    delivery: Delivery


@dataclass(frozen=True)
class GiveUp:
    """No more attempts: `delivery` carries the attempts made."""

    delivery: Delivery


def delivered(d: Delivery) -> Delivery:
    """The delivery after its successful attempt."""
    return d.model_copy(update={"attempts": d.attempts + 1})


def after_failure(d: Delivery, retryable: bool, now: datetime, backoff: RetryBackoff) -> Retry | GiveUp:
    """After a failed attempt: again after a growing pause while its retries last and trying again can help."""
    attempts = d.attempts + 1
    if retryable and attempts <= d.retries:
        return Retry(d.model_copy(update={"attempts": attempts, "next_at": now + backoff_delay(attempts, backoff)}))
    return GiveUp(d.model_copy(update={"attempts": attempts}))


def planned_before(state: str | None) -> Literal["plan", "take up", "done"]:
    """What to do with a delivery an event asks for, given its state when the event came before: plan it (new);
    take it up (planned, not finished: maybe by a notifier that lost the partition after reading its pending
    deliveries); or nothing (finished)."""
    if state is None:
        return "plan"
    return "done" if state in FINAL else "take up"


def park_reason(w: Waiting, now: datetime, patience_s: float) -> str | None:
    """Why a waiting event is parked once its job's row did not come within `patience_s`; None while it waits."""
    waited = (now - w.first_seen).total_seconds()
    if waited < patience_s:
        return None
    event = w.event
    return f"no row for job {event.job_id} in task {event.task_id!r} within {waited:.0f} s: no notification sent"
