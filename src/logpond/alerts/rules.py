"""An alert's rule as the API takes it (logs spec §5.1), and what creating, updating or resetting one does.

``parse_alert`` checks a create or update body field by field and names the field of the first error.
``plan_create`` / ``plan_update`` / ``plan_reset`` turn a checked change into the column values to store and
the history entries to record, applying PostHog's side effects in its order of priority: enabling >
disabling > snoozing or unsnoozing > a change of threshold, operator, filters or N/M.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from logpond.alerts.simulate import WINDOW_MINUTES, SimulateError, parse_alert_filters
from logpond.alerts.state import State
from logpond.logs.dates import DateParseError, parse_date
from logpond.logs.filters import LogsFilters
from logpond.meta.records import LogsAlert

CHECK_INTERVAL_MINUTES = 5
UNTITLED = "Untitled alert"
MAX_NAME_LENGTH = 255
MAX_PERIODS = 10
MAX_COOLDOWN_MINUTES = 365 * 24 * 60
MAX_BLOCKED_WINDOWS = 24
DEFAULTS: dict[str, Any] = {
    "name": UNTITLED,
    "enabled": True,
    "filters": {},
    "threshold_count": 100,
    "threshold_operator": "above",
    "window_minutes": 5,
    "evaluation_periods": 1,
    "datapoints_to_alarm": 1,
    "cooldown_minutes": 0,
    "snooze_until": None,
    "schedule_restriction": None,
}
# changes that make the alert start over from not_firing (unless snoozed) and record THRESHOLD_CHANGE
RULE_FIELDS = ("threshold_count", "threshold_operator", "filters", "evaluation_periods", "datapoints_to_alarm")
# changes after which the next check is due at once: the windows counted so far no longer apply
RESCHEDULE_FIELDS = ("threshold_count", "threshold_operator", "filters", "window_minutes")
_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class RuleError(ValueError):
    def __init__(self, detail: str, attr: str | None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.attr = attr


def _int(doc: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError("A valid integer is required.", name)
    if value < low:
        raise RuleError(f"Ensure this value is greater than or equal to {low}.", name)
    if value > high:
        raise RuleError(f"Ensure this value is less than or equal to {high}.", name)
    return value


def parse_alert(doc: Any, *, now: dt.datetime, partial: bool, current: LogsAlert | None = None) -> dict[str, Any]:
    """The writable fields present in ``doc``, checked. Unknown and read-only fields are ignored, as DRF
    does; absent fields take their defaults on create and stay as they are on an update (PUT or PATCH:
    every field has a default, so DRF requires none of them)."""
    if not isinstance(doc, dict):
        raise RuleError("Expected a JSON object.", None)
    out: dict[str, Any] = {} if partial or current is not None else dict(DEFAULTS)
    if "name" in doc:
        name = doc["name"]
        if name is not None and not isinstance(name, str):
            raise RuleError("Not a valid string.", "name")
        name = (name or "").strip()
        if "\x00" in name:
            raise RuleError("Null characters are not allowed.", "name")
        if len(name) > MAX_NAME_LENGTH:
            raise RuleError(f"Ensure this field has no more than {MAX_NAME_LENGTH} characters.", "name")
        out["name"] = name or UNTITLED
    if "enabled" in doc:
        if not isinstance(doc["enabled"], bool):
            raise RuleError("Must be a valid boolean.", "enabled")
        out["enabled"] = doc["enabled"]
    if "filters" in doc:
        out["filters"] = parse_filters_field(doc["filters"])
    if "threshold_count" in doc:
        out["threshold_count"] = _int(doc, "threshold_count", 0, 2**31 - 1)
    if "threshold_operator" in doc:
        if doc["threshold_operator"] not in ("above", "below"):
            raise RuleError(
                f'"{doc["threshold_operator"]}" is not a valid choice: above or below.', "threshold_operator"
            )
        out["threshold_operator"] = doc["threshold_operator"]
    if "window_minutes" in doc:
        window = _int(doc, "window_minutes", 1, 60)
        if window not in WINDOW_MINUTES:
            choices = ", ".join(map(str, WINDOW_MINUTES))
            raise RuleError(f"window_minutes must be one of {choices}.", "window_minutes")
        out["window_minutes"] = window
    for name in ("evaluation_periods", "datapoints_to_alarm"):
        if name in doc:
            out[name] = _int(doc, name, 1, MAX_PERIODS)
    if "cooldown_minutes" in doc:
        out["cooldown_minutes"] = _int(doc, "cooldown_minutes", 0, MAX_COOLDOWN_MINUTES)
    if "snooze_until" in doc:
        out["snooze_until"] = _snooze(doc["snooze_until"], now, current)
    if "schedule_restriction" in doc:
        out["schedule_restriction"] = _schedule_restriction(doc["schedule_restriction"])
    merged = {**_current_values(current), **out}
    if merged["datapoints_to_alarm"] > merged["evaluation_periods"]:
        raise RuleError("datapoints_to_alarm must not be greater than evaluation_periods.", "datapoints_to_alarm")
    if merged["enabled"] and not any(
        merged["filters"].get(key) for key in ("severityLevels", "serviceNames", "filterGroup")
    ):
        raise RuleError(
            "An enabled alert needs at least one filter: severityLevels, serviceNames or filterGroup. "
            "Save it disabled to keep it as a draft.",
            "filters",
        )
    return out


def _current_values(current: LogsAlert | None) -> dict[str, Any]:
    if current is None:
        return dict(DEFAULTS)
    return {name: getattr(current, name) for name in DEFAULTS}


def parse_filters_field(raw: Any) -> dict[str, Any]:
    """An alert's ``filters`` checked and normalised, as stored."""
    if raw is None:
        return {}
    try:
        parsed = parse_alert_filters(raw)
    except SimulateError as exc:
        raise RuleError(exc.detail, exc.attr) from None
    kept: dict[str, Any] = {}
    if parsed.severity_levels:
        kept["severityLevels"] = parsed.severity_levels
    if parsed.service_names:
        kept["serviceNames"] = parsed.service_names
    if _has_leaf(parsed.filter_group):
        kept["filterGroup"] = parsed.filter_group  # normalised: a flat leaf list becomes nested groups
    return kept


def regex_patterns(filters: Mapping[str, Any]) -> list[str]:
    """The regular expressions in the leaves of ``filters``' filterGroup (``regex``, ``not_regex``): the store
    compiles them only when a log reaches them, so they are checked when the alert is saved."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        if "values" in node and "key" not in node:
            for child in node.get("values") or ():
                walk(child)
        elif node.get("operator") in ("regex", "not_regex"):
            values = node.get("value")
            for value in values if isinstance(values, list) else [values]:
                found.append(str(value))

    walk(filters.get("filterGroup"))
    return found


def _has_leaf(group: Any) -> bool:
    """Whether a (normalised) filter group holds at least one condition; ``[]`` normalises to empty groups."""
    if not isinstance(group, dict):
        return False
    if "values" not in group:
        return True  # a leaf
    return any(_has_leaf(value) for value in group.get("values") or ())


def _snooze(raw: Any, now: dt.datetime, current: LogsAlert | None) -> dt.datetime | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise RuleError("Datetime has wrong format. Use ISO 8601.", "snooze_until")
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        try:
            value = parse_date(raw, now=now)
        except DateParseError:
            raise RuleError("Datetime has wrong format. Use ISO 8601.", "snooze_until") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    unchanged = current is not None and current.snooze_until == value
    if value <= now and not unchanged:  # a PUT that sends back the stored value must still work
        raise RuleError("snooze_until must be in the future.", "snooze_until")
    return value


def _schedule_restriction(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    attr = "schedule_restriction"
    if not isinstance(raw, dict) or set(raw) - {"blocked_windows"}:
        raise RuleError('Expected {"blocked_windows": [{"start": "HH:MM", "end": "HH:MM"}]}.', attr)
    windows = raw.get("blocked_windows") or []
    if not isinstance(windows, list):
        raise RuleError("blocked_windows must be a list.", f"{attr}__blocked_windows")
    if len(windows) > MAX_BLOCKED_WINDOWS:
        raise RuleError(f"At most {MAX_BLOCKED_WINDOWS} blocked windows.", f"{attr}__blocked_windows")
    kept = []
    for i, window in enumerate(windows):
        where = f"{attr}__blocked_windows__{i}"
        if not isinstance(window, dict) or set(window) != {"start", "end"}:
            raise RuleError('Expected {"start": "HH:MM", "end": "HH:MM"}.', where)
        for edge in ("start", "end"):
            if not isinstance(window[edge], str) or not _HH_MM.match(window[edge]):
                raise RuleError("Expected a time of day as HH:MM (00:00 to 23:59).", f"{where}__{edge}")
        if window["start"] == window["end"]:
            raise RuleError("start and end must differ.", where)
        kept.append({"start": window["start"], "end": window["end"]})
    return {"blocked_windows": kept} if kept else None


def in_blocked_window(restriction: Mapping[str, Any] | None, local: dt.datetime) -> bool:
    """Whether ``local`` (a time in the project's time zone) falls in a quiet-hours window; a window whose
    end is before its start runs past midnight."""
    if not restriction:
        return False
    minute = local.hour * 60 + local.minute
    for window in restriction.get("blocked_windows") or ():
        start, end = (int(w[:2]) * 60 + int(w[3:]) for w in (window["start"], window["end"]))
        inside = start <= minute < end if start < end else (minute >= start or minute < end)
        if inside:
            return True
    return False


def alert_filters(alert: LogsAlert) -> LogsFilters:
    """The stored filters of ``alert`` as LogsFilters, without a time range."""
    return stored_filters(alert.filters)


def stored_filters(filters: Mapping[str, Any]) -> LogsFilters:
    """Stored (normalised) alert filters as LogsFilters, without a time range."""
    return LogsFilters(
        date_from=None,
        date_to=None,
        severity_levels=list(filters.get("severityLevels") or []),
        service_names=list(filters.get("serviceNames") or []),
        filter_group=filters.get("filterGroup") or None,
    )


def _event(kind: str, before: str, after: str) -> dict[str, Any]:
    return {"kind": kind, "state_before": before, "state_after": after, "threshold_breached": False}


def plan_create(values: Mapping[str, Any], *, now: dt.datetime) -> dict[str, Any]:
    """The column values of a new alert made of ``values`` (as ``parse_alert`` returned them)."""
    snoozed = values.get("snooze_until") is not None
    return {
        **values,
        "check_interval_minutes": CHECK_INTERVAL_MINUTES,
        "state": State.SNOOZED.value if snoozed else State.NOT_FIRING.value,
        "next_check_at": None,
        "last_notified_at": None,
        "last_checked_at": None,
        "first_enabled_at": now if values.get("enabled", True) else None,
        "consecutive_failures": 0,
        "last_error_message": None,
        "last_delivery_error": None,
        "last_delivery_error_at": None,
    }


def plan_update(
    current: LogsAlert, changes: Mapping[str, Any], *, now: dt.datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(column values, history entries) of applying ``changes`` to ``current``."""
    changed = {name: value for name, value in changes.items() if getattr(current, name) != value}
    values: dict[str, Any] = dict(changed)
    before = current.state
    event: str | None = None
    if "enabled" in changed and changed["enabled"]:
        event = "enable"
        values.update(state=State.NOT_FIRING.value, consecutive_failures=0, next_check_at=None)
        if current.first_enabled_at is None:
            values["first_enabled_at"] = now
    elif "enabled" in changed:
        event = "disable"
        values.update(state=State.NOT_FIRING.value)
    elif "snooze_until" in changed and changed["snooze_until"] is not None:
        event = "snooze"
        values.update(state=State.SNOOZED.value)
    elif "snooze_until" in changed:
        event = "unsnooze"
        values.update(state=State.NOT_FIRING.value, consecutive_failures=0)
    elif any(name in changed for name in RULE_FIELDS):
        event = "threshold_change"
        if before != State.SNOOZED.value:
            values.update(state=State.NOT_FIRING.value, consecutive_failures=0)
    if any(name in changed for name in RESCHEDULE_FIELDS):
        values["next_check_at"] = None
    events = [_event(event, before, values.get("state", before))] if event else []
    return values, events


def plan_reset(current: LogsAlert) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A broken alert back to ``not_firing`` with no failures, checked at the next tick."""
    if current.state != State.BROKEN.value:
        raise RuleError(f"Only a broken alert can be reset; this one is {current.state}.", "state")
    values = {"state": State.NOT_FIRING.value, "consecutive_failures": 0, "next_check_at": None}
    return values, [_event("reset", current.state, State.NOT_FIRING.value)]
