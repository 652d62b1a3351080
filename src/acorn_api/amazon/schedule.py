"""Sync schedules: an ISO 8601 duration (``PT1H``), a number of seconds (``3600``) or a cron expression."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from croniter import croniter

MIN_INTERVAL = timedelta(minutes=1)
MAX_INTERVAL = timedelta(days=31)
DEFAULT_SCHEDULE = "PT1H"

_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$")


def _interval(schedule: str) -> timedelta | None:
    if schedule.isdigit():
        return timedelta(seconds=int(schedule))
    found = _DURATION.match(schedule)
    if found is None or schedule in ("P", "PT") or schedule.endswith("T"):
        return None
    parts = {k: int(v) for k, v in found.groupdict().items() if v}
    return timedelta(
        days=parts.get("d", 0), hours=parts.get("h", 0), minutes=parts.get("m", 0), seconds=parts.get("s", 0)
    )


def check_schedule(schedule: str) -> str:
    """Return the schedule if it is valid, else raise ``ValueError`` saying why."""
    schedule = schedule.strip()
    interval = _interval(schedule)
    if interval is not None:
        if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
            raise ValueError("the interval must be between 1 minute and 31 days")
        return schedule
    if croniter.is_valid(schedule) and len(schedule.split()) == 5:
        return schedule
    raise ValueError("expected an ISO 8601 duration (PT1H), a number of seconds (3600) or a 5-field cron expression")


def next_run(schedule: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` at which the schedule is due (UTC)."""
    interval = _interval(schedule)
    if interval is not None:
        return after + interval
    following: datetime = croniter(schedule, after.astimezone(UTC)).get_next(datetime)
    return following.astimezone(UTC)
