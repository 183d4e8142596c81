"""Time arithmetic of scheduling, free of I/O: durations, retry backoff, cron fire times."""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from shared.events import RetryBackoff

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class ScheduleError(ValueError):
    """A duration, cron expression or time zone that cannot be used."""


def parse_duration(text: str) -> timedelta:
    """`2h30m50s`, `5m`, `1s` (each part optional, in that order, at least one)."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ScheduleError(f"{text!r} is not a duration like '2h30m50s', '5m' or '1s'")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"{name!r} is not an IANA time zone name like 'UTC' or 'America/Sao_Paulo'") from exc


def check_cron(expression: str, timezone: str = "UTC") -> None:
    """Five fields (minute hour day-of-month month day-of-week), as croniter understands them."""
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ScheduleError(f"{expression!r} is not a 5-field cron expression like '*/5 * * * *'")
    zone(timezone)


def next_cron_fire(expression: str, timezone: str, after: datetime) -> datetime:
    """The first fire strictly after `after`, evaluated in `timezone` (DST-aware), returned in UTC."""
    local_after = after.astimezone(zone(timezone))
    fire: datetime = croniter(expression, local_after).get_next(datetime)
    return fire.astimezone(UTC)


def backoff_delay(attempt: int, policy: RetryBackoff) -> timedelta:
    """Pause before retry number `attempt` (1 = the first retry): exponential, capped."""
    ms = min(policy.max_ms, policy.min_ms * policy.factor ** (attempt - 1))
    return timedelta(milliseconds=ms)
