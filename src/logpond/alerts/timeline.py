"""``state_timeline``: an alert's states over the last 24 hours, read back from its history.

The history records every change of state (checks that change it, and every change made by a user), so
the state between two entries is the later of the two's ``state_before`` and the state after the last
entry is the alert's current one. ``enabled`` follows the enable and disable entries the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from logpond.logs.dates import iso
from logpond.meta.records import LogsAlert, LogsAlertEvent

SPAN = dt.timedelta(hours=24)


def state_timeline(alert: LogsAlert, events: Sequence[LogsAlertEvent], *, now: dt.datetime) -> list[dict[str, Any]]:
    """``[{start, end, state, enabled}]`` from ``now - 24h`` (or the alert's creation) to ``now``, oldest
    first; ``events`` are the alert's history entries of that span, oldest first."""
    start = max(now - SPAN, alert.created_at)
    if start >= now:
        return []
    # walk back from the present to learn the state and enabled flag at ``start``
    state, enabled = alert.state, alert.enabled
    for event in reversed(events):
        state = event.state_before
        if event.kind == "enable":
            enabled = False
        elif event.kind == "disable":
            enabled = True
    segments: list[dict[str, Any]] = []
    moment = start
    for event in events:
        at = min(max(event.created_at, start), now)
        _append(segments, moment, at, state, enabled)
        moment, state = at, event.state_after
        if event.kind in ("enable", "disable"):
            enabled = event.kind == "enable"
    _append(segments, moment, now, state, enabled)
    return [{**segment, "start": iso(segment["start"]), "end": iso(segment["end"])} for segment in segments]


def _append(segments: list[dict[str, Any]], start: dt.datetime, end: dt.datetime, state: str, enabled: bool) -> None:
    if end <= start:
        return
    last = segments[-1] if segments else None
    if last is not None and last["state"] == state and last["enabled"] == enabled and last["end"] == start:
        last["end"] = end
        return
    segments.append({"start": start, "end": end, "state": state, "enabled": enabled})
