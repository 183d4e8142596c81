"""Time arithmetic of scheduling, free of I/O: durations, retry backoff, cron fire times.

Everything here is computed again later by the scheduler from what the API accepted, so each function either
returns a usable value or raises ScheduleError with a sentence a client can act on: nothing overflows."""

import math
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from shared.contract.events import RetryBackoff

_DURATION = re.compile(r"(?:(\d{1,7})h)?(?:(\d{1,9})m)?(?:(\d{1,11})s)?")
# Longest `startIn` accepted; also keeps `now + duration` far from datetime's year 9999.
MAX_DURATION = timedelta(days=100 * 366)
# A cron must fire within this many years of being accepted (`0 0 31 2 *` never does; leap days do).
CRON_HORIZON_YEARS = 10


class ScheduleError(ValueError):
    """A duration, cron expression or time zone that cannot be used."""


def parse_duration(text: str) -> timedelta:
    """`2h30m50s`, `5m`, `1s` (each part optional, in that order, at least one), at most 100 years."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ScheduleError(f"{text!r} is not a duration like '2h30m50s', '5m' or '1s'")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    duration = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if duration > MAX_DURATION:
        raise ScheduleError(f"{text!r} is longer than {MAX_DURATION.days // 366} years")
    return duration


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ScheduleError(f"{name!r} is not an IANA time zone name like 'UTC' or 'America/Sao_Paulo'") from exc


def check_cron(expression: str, timezone: str = "UTC", now: datetime | None = None) -> None:
    """Five fields (minute hour day-of-month month day-of-week), as croniter understands them, that fire at
    least once in the coming CRON_HORIZON_YEARS."""
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ScheduleError(f"{expression!r} is not a 5-field cron expression like '*/5 * * * *'")
    zone(timezone)
    now = now or datetime.now(UTC)
    never = ScheduleError(f"cron `{expression}` never fires: no fire time in the next {CRON_HORIZON_YEARS} years")
    try:
        first = next_cron_fire(expression, timezone, now)
    except ScheduleError as exc:
        raise never from exc
    if first - now > timedelta(days=366 * CRON_HORIZON_YEARS):
        raise never


def next_cron_fire(expression: str, timezone: str, after: datetime) -> datetime:
    """The first fire strictly after `after`, evaluated in `timezone` (DST-aware), returned in UTC; raises
    ScheduleError when there is none (`0 0 31 2 *`) or it is beyond what a datetime can hold."""
    local_after = after.astimezone(zone(timezone))
    try:
        fire: datetime = croniter(expression, local_after).get_next(datetime)
        return fire.astimezone(UTC)
    except (ValueError, OverflowError, KeyError, TypeError) as exc:  # CroniterBadDateError is a ValueError
        raise ScheduleError(f"cron `{expression}` has no next fire time") from exc


def backoff_delay(attempt: int, policy: RetryBackoff) -> timedelta:
    """Pause before retry number `attempt` (1 = the first retry): min(max_ms, min_ms * factor ** (attempt - 1)),
    computed without ever raising an overflow (any attempt count, any factor >= 1)."""
    low, high = max(0, policy.min_ms), max(0, policy.max_ms)
    exponent = max(0, attempt - 1)
    ms: float
    if policy.factor <= 1 or exponent == 0 or low == 0:
        ms = min(high, low)
    elif low >= high or exponent * math.log(policy.factor) >= math.log(high / low):
        ms = high
    else:
        ms = min(high, low * policy.factor**exponent)
    return timedelta(milliseconds=ms)
