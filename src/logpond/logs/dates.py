"""PostHog's date strings: ISO 8601 or relative ``-<n><unit>[Start|End]``, all in UTC.

Units: ``s`` seconds, ``M`` minutes, ``h`` hours, ``d`` days, ``w`` weeks, ``m`` months, ``q`` quarters,
``y`` years. ``Start``/``End`` snap to the start or end of that unit (``-0dStart`` is midnight today).
``all`` as a lower bound means "no bound".
"""

from __future__ import annotations

import datetime as dt
import re

_RELATIVE = re.compile(r"^-?(\d{1,7})([sMhdwmqy])(Start|End)?$")


class DateParseError(ValueError):
    pass


def _add_months(value: dt.datetime, months: int) -> dt.datetime:
    month_index = value.month - 1 + months
    year = value.year + month_index // 12
    month = month_index % 12 + 1
    days_in_month = [
        31,
        29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][month - 1]
    return value.replace(year=year, month=month, day=min(value.day, days_in_month))


def _start_of(value: dt.datetime, unit: str) -> dt.datetime:
    if unit == "s":
        return value.replace(microsecond=0)
    if unit == "M":
        return value.replace(second=0, microsecond=0)
    if unit == "h":
        return value.replace(minute=0, second=0, microsecond=0)
    day = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "d":
        return day
    if unit == "w":
        return day - dt.timedelta(days=day.weekday())
    if unit == "m":
        return day.replace(day=1)
    if unit == "q":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def _shift(value: dt.datetime, n: int, unit: str) -> dt.datetime:
    if unit == "s":
        return value - dt.timedelta(seconds=n)
    if unit == "M":
        return value - dt.timedelta(minutes=n)
    if unit == "h":
        return value - dt.timedelta(hours=n)
    if unit == "d":
        return value - dt.timedelta(days=n)
    if unit == "w":
        return value - dt.timedelta(weeks=n)
    if unit == "m":
        return _add_months(value, -n)
    if unit == "q":
        return _add_months(value, -3 * n)
    return _add_months(value, -12 * n)


_NEXT = {
    "s": ("s", 1),
    "M": ("M", 1),
    "h": ("h", 1),
    "d": ("d", 1),
    "w": ("d", 7),
    "m": ("m", 1),
    "q": ("m", 3),
    "y": ("m", 12),
}


def parse_date(text: str, *, now: dt.datetime) -> dt.datetime:
    """A UTC datetime for an ISO or relative date string; raise ``DateParseError`` otherwise."""
    try:
        value = _parse(text.strip(), now)
    except DateParseError:
        raise
    except (OverflowError, ValueError):
        raise DateParseError(f"Date out of range: {text!r}.") from None
    if not MIN_DATE <= value <= MAX_DATE:
        raise DateParseError(f"Date out of range: {text!r} (supported: years 1900 to 2299).")
    return value


# what ClickHouse's DateTime64(6) can hold
MIN_DATE = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
MAX_DATE = dt.datetime(2299, 12, 31, tzinfo=dt.UTC)


def _parse(text: str, now: dt.datetime) -> dt.datetime:
    match = _RELATIVE.match(text)
    if match:
        n, unit, snap = int(match.group(1)), match.group(2), match.group(3)
        value = _shift(now, n, unit)
        if snap == "Start":
            value = _start_of(value, unit)
        elif snap == "End":
            start = _start_of(value, unit)
            step_unit, step = _NEXT[unit]
            value = _shift(start, -step, step_unit) - dt.timedelta(microseconds=1)
        return value
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise DateParseError(f"Invalid date: {text!r}. Use ISO 8601 or a relative date such as -1h or -7d.") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def iso(value: dt.datetime) -> str:
    """ISO 8601 with microseconds and ``Z``, as PostHog's JSON encoder writes datetimes."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ch_datetime_to_iso(text: str) -> str:
    """``2026-01-01 10:00:00.123456`` (ClickHouse, UTC) -> ``2026-01-01T10:00:00.123456Z``."""
    if "." not in text:
        text += ".000000"
    return text.replace(" ", "T", 1) + "Z"
