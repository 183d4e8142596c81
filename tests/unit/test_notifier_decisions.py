"""The notifier's pure decisions: when to try a delivery again, what to do with one planned before, how long
an event waits for its job's row."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notifier.decisions import GiveUp, Retry, after_failure, delivered, park_reason, planned_before
from services.notifier.plan import Delivery
from services.notifier.ports import Waiting
from shared.contract.events import ExecutionFinished, RetryBackoff
from tests.fakes.store import a_delivery

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
BACKOFF = RetryBackoff(min_ms=1000, factor=2.0, max_ms=3000)


def delivery(retries: int, attempts: int = 0) -> Delivery:
    return a_delivery(retries=retries, attempts=attempts, next_at=NOW)


def test_a_success_counts_its_attempt() -> None:
    assert delivered(delivery(3, attempts=2)).attempts == 3


@pytest.mark.parametrize(("attempts", "pause_s"), [(0, 1), (1, 2), (2, 3)])
def test_a_failure_is_retried_after_a_growing_pause_while_retries_last(attempts: int, pause_s: int) -> None:
    outcome = after_failure(delivery(3, attempts), True, NOW, BACKOFF)
    assert isinstance(outcome, Retry)
    assert outcome.delivery.attempts == attempts + 1
    assert outcome.delivery.next_at == NOW + timedelta(seconds=pause_s)


def test_the_failure_after_the_last_retry_gives_up() -> None:
    outcome = after_failure(delivery(3, attempts=3), True, NOW, BACKOFF)
    assert isinstance(outcome, GiveUp) and outcome.delivery.attempts == 4


def test_a_failure_trying_again_cannot_mend_gives_up_at_once() -> None:
    outcome = after_failure(delivery(5), False, NOW, BACKOFF)
    assert isinstance(outcome, GiveUp) and outcome.delivery.attempts == 1


def test_no_retries_means_one_attempt() -> None:
    assert isinstance(after_failure(delivery(0), True, NOW, BACKOFF), GiveUp)


@pytest.mark.parametrize(
    ("state", "todo"),
    [(None, "plan"), ("pending", "take up"), ("retrying", "take up"), ("delivered", "done"), ("failed", "done")],
)
def test_a_delivery_planned_before_is_taken_up_unless_it_is_finished(state: str | None, todo: str) -> None:
    assert planned_before(state) == todo


def test_a_waiting_event_is_parked_with_the_reason_once_patience_ends() -> None:
    event = ExecutionFinished(task_id="t1", job_id=uuid.uuid4(), execution_id=uuid.uuid1(), status="done")
    w = Waiting(3, event, 17, NOW)
    assert park_reason(w, NOW + timedelta(seconds=59), 60) is None
    why = park_reason(w, NOW + timedelta(seconds=61), 60)
    assert why == f"no row for job {event.job_id} in task 't1' within 61 s: no notification sent"
