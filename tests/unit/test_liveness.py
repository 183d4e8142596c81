"""Judging farm peers lost from their liveness tokens, by the judge's own clock (services/runner/liveness.py)."""

import uuid

from services.runner.liveness import Liveness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch(live: Liveness, clock: Clock, tokens: dict[str, uuid.UUID], seconds: float, step: float = 5) -> list[str]:
    """Look every `step` seconds for `seconds`; returns what the last look found lost."""
    lost: list[str] = []
    end = clock.now + seconds
    while clock.now < end:
        clock.now += step
        lost = live.look(tokens)
    return lost


def test_a_peer_whose_token_stops_changing_is_lost_after_the_limit_and_not_before() -> None:
    clock, token = Clock(), uuid.uuid1()
    live = Liveness(lost_after=60, interval=5, clock=clock)
    assert watch(live, clock, {"h2": token}, 55) == []
    assert watch(live, clock, {"h2": token}, 10) == ["h2"]


def test_a_peer_whose_token_changes_is_never_lost() -> None:
    clock = Clock()
    live = Liveness(lost_after=60, interval=5, clock=clock)
    for _ in range(100):
        clock.now += 5
        assert live.look({"h2": uuid.uuid1()}) == []


def test_a_blind_spot_of_the_judge_starts_the_watch_over() -> None:
    """Cassandra unreachable for 75 s (the judge could not look or beat): when it answers again, every peer's
    token looks old, but none is lost until it stays unchanged for the limit from then on."""
    clock, token = Clock(), uuid.uuid1()
    live = Liveness(lost_after=60, interval=5, clock=clock)
    watch(live, clock, {"h2": token}, 30)
    for _ in range(15):
        clock.now += 5
        live.blind()
    assert live.look({"h2": token}) == []
    assert watch(live, clock, {"h2": token}, 55) == []
    assert watch(live, clock, {"h2": token}, 10) == ["h2"]


def test_a_judge_that_was_paused_itself_does_not_find_everyone_lost_when_it_wakes() -> None:
    clock, token = Clock(), uuid.uuid1()
    live = Liveness(lost_after=60, interval=5, clock=clock)
    watch(live, clock, {"h2": token}, 20)
    clock.now += 75  # SIGSTOP of the judge: no look for 75 s
    assert live.look({"h2": token}) == []
    assert watch(live, clock, {"h2": token}, 55) == []


def test_a_peer_that_never_beat_is_not_judged() -> None:
    clock = Clock()
    live = Liveness(lost_after=60, interval=5, clock=clock)
    assert watch(live, clock, {}, 200) == []
