from datetime import UTC, datetime, timedelta

import pytest

from shared.contract.events import RetryBackoff
from shared.domain.schedule import ScheduleError, backoff_delay, check_cron, next_cron_fire, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("5m", 300), ("2h30m50s", 9050), ("1h", 3600), ("1h5s", 3605), ("90s", 90), ("0s", 0)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "m", "1d", "5s1m", "-1s", "1.5s", "1 s", "abc"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_duration(text)


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryBackoff(min_ms=1000, factor=2, max_ms=5000)
    assert [backoff_delay(n, policy).total_seconds() for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert backoff_delay(3, RetryBackoff(min_ms=100, factor=1, max_ms=1000)) == timedelta(milliseconds=100)


def test_cron_next_fire_in_utc() -> None:
    after = datetime(2026, 1, 1, 10, 7, 30, tzinfo=UTC)
    assert next_cron_fire("*/5 * * * *", "UTC", after) == datetime(2026, 1, 1, 10, 10, tzinfo=UTC)
    assert next_cron_fire("* * * * *", "UTC", datetime(2026, 1, 1, 10, 7, tzinfo=UTC)) == datetime(
        2026, 1, 1, 10, 8, tzinfo=UTC
    )


def test_cron_next_fire_in_a_time_zone() -> None:
    # 09:00 in Sao Paulo (UTC-3, no DST since 2019) is 12:00 UTC.
    after = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    assert next_cron_fire("0 9 * * *", "America/Sao_Paulo", after) == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_cron_across_daylight_saving_changes() -> None:
    # Europe/Berlin: 09:00 local is 08:00 UTC in winter and 07:00 UTC in summer.
    winter = next_cron_fire("0 9 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    summer = next_cron_fire("0 9 * * *", "Europe/Berlin", winter)
    assert winter == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # DST began that night
    assert summer == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    before = next_cron_fire("0 9 * * *", "Europe/Berlin", datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    assert before == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)


def test_a_fire_inside_the_skipped_hour_still_happens_once() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29; the job still runs that day, once.
    fires = []
    at = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    for _ in range(3):
        at = next_cron_fire("30 2 * * *", "Europe/Berlin", at)
        fires.append(at)
    assert len({f.date() for f in fires}) == 3
    assert fires == sorted(fires)


@pytest.mark.parametrize("expr", ["* * * *", "* * * * * *", "61 * * * *", "nope", ""])
def test_bad_cron(expr: str) -> None:
    with pytest.raises(ScheduleError):
        check_cron(expr)


def test_bad_time_zone() -> None:
    with pytest.raises(ScheduleError, match="IANA"):
        check_cron("* * * * *", "Mars/Olympus")


def test_backoff_never_overflows_whatever_the_attempt_or_factor() -> None:
    steepest = RetryBackoff(min_ms=1, factor=100, max_ms=1)
    assert backoff_delay(10**9, steepest) == timedelta(milliseconds=1)
    capped = RetryBackoff(min_ms=1, factor=100, max_ms=86_400_000)
    assert [backoff_delay(n, capped) for n in (155, 1000, 10**9)] == [timedelta(days=1)] * 3


def test_a_cron_that_never_fires_is_refused_and_has_no_next_fire() -> None:
    with pytest.raises(ScheduleError, match="never fires"):
        check_cron("0 0 31 2 *")
    with pytest.raises(ScheduleError, match="has no next fire time"):
        next_cron_fire("0 0 30 2 *", "UTC", datetime(2026, 1, 1, tzinfo=UTC))
    check_cron("0 0 29 2 *")  # leap days do come
