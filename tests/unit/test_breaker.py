from services.runner.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_consecutive_failures_then_half_opens_and_closes_on_success() -> None:
    clock = Clock()
    breaker = Breaker(threshold=3, open_s=10, clock=clock)
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed" and breaker.allows_work()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allows_work()
    clock.now = 9.9
    assert breaker.state == "open"
    clock.now = 10.0
    assert breaker.state == "half-open" and breaker.allows_work()
    breaker.success()
    assert breaker.state == "closed"


def test_a_success_resets_the_count_and_a_half_open_failure_reopens_at_once() -> None:
    clock = Clock()
    breaker = Breaker(threshold=2, open_s=5, clock=clock)
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open"
    clock.now = 6
    assert breaker.state == "half-open"
    breaker.failure()  # one failure while half-open is enough
    assert breaker.state == "open"
    clock.now = 10.9
    assert breaker.state == "open"
    clock.now = 11
    assert breaker.state == "half-open"
