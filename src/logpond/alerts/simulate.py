"""Replay an alert rule over the past (logs spec §5.7): what it would have counted, fired and resolved.

Logs are counted per check interval (5 minutes, aligned to the epoch) over the requested range, from the
rollup where the filters allow; each bucket's count is then the sum of the ``window / interval`` buckets
before it (the half-open window a check at that instant would count), and the state machine runs over
the buckets from ``not_firing``, with the counts of the M windows ending at that bucket and the ones
before it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from logpond.alerts.state import AlertConfig, AlertStatus, CheckSucceeded, Notification, State, step
from logpond.logs.aggregates import LogCounter
from logpond.logs.dates import DateParseError, iso, parse_date
from logpond.logs.filters import FilterError, LogsFilters, parse_filters

WINDOW_MINUTES = (5, 10, 15, 30, 60)
CHECK_INTERVAL_MINUTES = 5
MAX_BUCKETS = 15_000
MAX_LOOKBACK = dt.timedelta(days=30)


class SimulateError(ValueError):
    def __init__(self, detail: str, attr: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.attr = attr


@dataclass(frozen=True)
class SimulateRequest:
    filters: LogsFilters
    config: AlertConfig
    window_minutes: int
    interval_minutes: int
    date_from: dt.datetime


def _int(doc: dict[str, Any], name: str, default: int, low: int, high: int | None = None) -> int:
    value = doc.get(name, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int):
        raise SimulateError("Expected an integer.", name)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SimulateError(f"Must be {bound}.", name)
    return value


def parse_alert_filters(raw: Any, attr: str = "filters") -> LogsFilters:
    """An alert's ``filters`` (severityLevels, serviceNames, filterGroup), with no time range."""
    if not isinstance(raw, dict):
        raise SimulateError("Expected an object with severityLevels, serviceNames or filterGroup.", attr)
    unknown = set(raw) - {"severityLevels", "serviceNames", "filterGroup"}
    if unknown:
        raise SimulateError(f"Unknown alert filter {sorted(unknown)[0]!r}.", attr)
    try:
        filters = parse_filters(raw, now=dt.datetime.now(dt.UTC))
    except FilterError as exc:
        raise SimulateError(exc.detail, f"{attr}__{exc.attr}") from None
    filters.date_from = filters.date_to = None
    return filters


def parse_request(doc: Any, *, now: dt.datetime) -> SimulateRequest:
    if not isinstance(doc, dict):
        raise SimulateError("Expected a JSON object.", "body")
    if "filters" not in doc:
        raise SimulateError("This field is required.", "filters")
    filters = parse_alert_filters(doc["filters"])
    operator = doc.get("threshold_operator", "above") or "above"
    if operator not in ("above", "below"):
        raise SimulateError('Expected "above" or "below".', "threshold_operator")
    window = _int(doc, "window_minutes", 5, 1)
    if window not in WINDOW_MINUTES:
        raise SimulateError(f"Expected one of {', '.join(map(str, WINDOW_MINUTES))}.", "window_minutes")
    interval = _int(doc, "check_interval_minutes", CHECK_INTERVAL_MINUTES, CHECK_INTERVAL_MINUTES, window)
    if interval != CHECK_INTERVAL_MINUTES:
        raise SimulateError(f"Checks run every {CHECK_INTERVAL_MINUTES} minutes.", "check_interval_minutes")
    periods = _int(doc, "evaluation_periods", 1, 1, 10)
    needed = _int(doc, "datapoints_to_alarm", 1, 1, 10)
    if needed > periods:
        raise SimulateError("Must not be more than evaluation_periods.", "datapoints_to_alarm")
    raw_from = doc.get("date_from", "-7d") or "-7d"
    if not isinstance(raw_from, str):
        raise SimulateError("Expected a relative date such as -7d.", "date_from")
    try:
        date_from = parse_date(raw_from, now=now)
    except DateParseError as exc:
        raise SimulateError(str(exc), "date_from") from None
    if date_from < now - MAX_LOOKBACK or date_from >= now:
        raise SimulateError("Must be within the last 30 days.", "date_from")
    config = AlertConfig(
        threshold_count=_int(doc, "threshold_count", 100, 0),
        threshold_operator="below" if operator == "below" else "above",
        evaluation_periods=periods,
        datapoints_to_alarm=needed,
        cooldown_minutes=_int(doc, "cooldown_minutes", 0, 0),
    )
    return SimulateRequest(filters, config, window, interval, date_from)


def _floor(moment: dt.datetime, step_: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return epoch + ((moment - epoch) // step_) * step_


def simulate(counter: LogCounter, request: SimulateRequest, *, now: dt.datetime) -> dict[str, Any]:
    """The response of ``simulate/``: one entry per check instant from ``date_from`` to now."""
    cadence = dt.timedelta(minutes=request.interval_minutes)
    span = request.window_minutes // request.interval_minutes  # buckets per window
    first = _floor(request.date_from, cadence) + cadence
    last = _floor(now, cadence)
    total = int((last - first) / cadence) + 1
    if total > MAX_BUCKETS:
        raise SimulateError(f"The range holds {total} checks; at most {MAX_BUCKETS}.", "date_from")
    config = request.config
    # raw counts per interval, far enough back for the oldest window of the first check's M windows
    history = span + config.evaluation_periods - 1
    start = first - history * cadence
    filters = LogsFilters(
        date_from=start,
        date_to=last,
        severity_levels=request.filters.severity_levels,
        service_names=request.filters.service_names,
        filter_group=request.filters.filter_group,
    )
    counted = counter.counts(filters, interval=int(cadence.total_seconds()))
    raw = [0] * (history + total)
    for (bucket, *_), (count, _bytes) in counted.items():
        if bucket is not None:
            index = int((bucket - start) / cadence)
            if 0 <= index < len(raw):
                raw[index] += count
    # a check at ``first + i * cadence`` counts the raw buckets [history + i - span, history + i)
    prefix = [0]
    for count in raw:
        prefix.append(prefix[-1] + count)

    def window_count(check: int) -> int:  # check index relative to ``first``; may be negative
        end = history + check
        return prefix[end] - prefix[max(0, end - span)]

    status = AlertStatus()
    buckets: list[dict[str, Any]] = []
    fires = resolves = 0
    for i in range(total):
        at = first + i * cadence
        counts = tuple(window_count(i - k) for k in range(config.evaluation_periods))
        t = step(config, status, CheckSucceeded(counts), at)
        fires += t.notification is Notification.FIRE
        resolves += t.notification is Notification.RESOLVE
        buckets.append(
            {
                "timestamp": iso(at),
                "count": counts[0],
                "threshold_breached": t.breached,
                "state": t.status.state.value,
                "notification": t.notification.value if t.notification is not Notification.NONE else "none",
                "reason": _reason(config, status, t.status.state, t.notification, counts, t.alarm),
            }
        )
        status = t.status
    return {
        "buckets": buckets,
        "fire_count": fires,
        "resolve_count": resolves,
        "total_buckets": total,
        "threshold_count": config.threshold_count,
        "threshold_operator": config.threshold_operator,
    }


def _reason(
    config: AlertConfig,
    before: AlertStatus,
    after: State,
    notification: Notification,
    counts: tuple[int, ...],
    alarm: bool,
) -> str:
    sign = ">" if config.threshold_operator == "above" else "<"
    breached = config.breached(counts[0])
    compare = (
        f"{counts[0]} {sign} {config.threshold_count}"
        if breached
        else f"{counts[0]} not {sign} {config.threshold_count}"
    )
    if config.evaluation_periods > 1:
        hits = sum(config.breached(c) for c in counts)
        compare += f", {hits} of the last {config.evaluation_periods} breached (need {config.datapoints_to_alarm})"
    if after is State.FIRING and before.state is not State.FIRING:
        return (
            f"{compare} — fired"
            if notification is Notification.FIRE
            else f"{compare} — fired (in cooldown, not notified)"
        )
    if after is State.FIRING:
        return f"{compare} — still firing"
    if before.state is State.FIRING:
        return (
            f"{compare} — resolved"
            if notification is Notification.RESOLVE
            else f"{compare} — resolved (in cooldown, not notified)"
        )
    if breached and not alarm:
        return f"{compare} — waiting"
    return compare
