import threading

import pytest

from shared.infra.kafka.consumer import retry_until_done


def test_retries_until_the_action_succeeds() -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("blip")

    assert retry_until_done(flaky, threading.Event(), {}) is True
    assert len(calls) == 3


def test_a_stop_request_ends_the_retries_unsuccessfully() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def always_failing() -> None:
        calls.append(1)
        if len(calls) == 2:
            stop.set()
        raise ConnectionError("down")

    assert retry_until_done(always_failing, stop, {}) is False
    assert len(calls) == 2


def test_errors_to_give_up_on_are_raised_at_once() -> None:
    calls: list[int] = []

    def interrupted() -> None:
        calls.append(1)
        raise LookupError("stop here")

    with pytest.raises(LookupError):
        retry_until_done(interrupted, threading.Event(), {}, give_up_on=(LookupError,))
    assert calls == [1]
