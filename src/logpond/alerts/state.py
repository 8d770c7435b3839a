"""The log alert state machine, as a pure function: (config, status, check outcome, now) -> transition.

PostHog's logs policy (logs spec §5.5), step by step:

1. A ``broken`` alert does not change until it is reset; a ``snoozed`` alert whose ``snooze_until`` is still
   ahead does not change either.
2. A failed check: a transient failure (the store was busy, a timeout) changes nothing and notifies no one.
   Any other failure counts; the fifth in a row makes the alert ``broken`` (notify ``broken``); before
   that the state is kept and only the first failure of a streak notifies (``error``).
3. A successful check: a snooze that has run out, ``errored`` and ``broken`` count as ``not_firing``. The
   check returns the counts of the last M windows (newest first); the alarm is on when at least N of them
   breach the threshold (``above``: count > T, ``below``: count < T). ``not_firing`` + alarm -> ``firing``
   (fire); ``firing`` or ``pending_resolve`` + alarm -> stays ``firing`` (no repeat); ``firing`` or
   ``pending_resolve`` without alarm -> ``not_firing`` (resolve). Within ``cooldown_minutes`` of the last
   notification, fire and resolve notifications are suppressed while the state still moves. A sent
   notification sets ``last_notified_at``; failures go back to 0.

The scheduler records a CHECK event only when the state changed or the check failed (``Transition.event``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

MAX_CONSECUTIVE_FAILURES = 5


class State(StrEnum):
    NOT_FIRING = "not_firing"
    FIRING = "firing"
    PENDING_RESOLVE = "pending_resolve"
    ERRORED = "errored"
    SNOOZED = "snoozed"
    BROKEN = "broken"


class Notification(StrEnum):
    NONE = "none"
    FIRE = "fire"
    RESOLVE = "resolve"
    ERROR = "error"
    BROKEN = "broken"


@dataclass(frozen=True)
class AlertConfig:
    threshold_count: int = 100
    threshold_operator: Literal["above", "below"] = "above"
    evaluation_periods: int = 1  # M: windows looked at
    datapoints_to_alarm: int = 1  # N: of those, how many must breach
    cooldown_minutes: int = 0

    def breached(self, count: int) -> bool:
        if self.threshold_operator == "above":
            return count > self.threshold_count
        return count < self.threshold_count


@dataclass(frozen=True)
class AlertStatus:
    state: State = State.NOT_FIRING
    consecutive_failures: int = 0
    last_notified_at: dt.datetime | None = None
    snooze_until: dt.datetime | None = None


@dataclass(frozen=True)
class CheckSucceeded:
    counts: tuple[int, ...]  # the last M windows' counts, newest first (missing windows are 0)


@dataclass(frozen=True)
class CheckFailed:
    message: str
    transient: bool = False


CheckOutcome = CheckSucceeded | CheckFailed


@dataclass(frozen=True)
class Transition:
    status: AlertStatus
    notification: Notification
    event: bool  # whether the scheduler records a CHECK event (state changed, or the check failed)
    breached: bool = False  # the newest window breached the threshold
    alarm: bool = False  # at least N of the last M windows breached


def step(config: AlertConfig, status: AlertStatus, outcome: CheckOutcome, now: dt.datetime) -> Transition:
    """The alert's next status after one check, what to notify, and whether to record it."""
    if status.state is State.BROKEN:
        return Transition(status, Notification.NONE, event=False)
    if status.state is State.SNOOZED and status.snooze_until is not None and status.snooze_until > now:
        return Transition(status, Notification.NONE, event=False)
    if isinstance(outcome, CheckFailed):
        return _failed(status, outcome)
    return _succeeded(config, status, outcome, now)


def _failed(status: AlertStatus, outcome: CheckFailed) -> Transition:
    if outcome.transient:
        return Transition(status, Notification.NONE, event=False)
    failures = status.consecutive_failures + 1
    if failures >= MAX_CONSECUTIVE_FAILURES:
        return Transition(replace(status, state=State.BROKEN, consecutive_failures=failures), Notification.BROKEN, True)
    notification = Notification.ERROR if failures == 1 else Notification.NONE
    return Transition(replace(status, consecutive_failures=failures), notification, event=True)


def _succeeded(config: AlertConfig, status: AlertStatus, outcome: CheckSucceeded, now: dt.datetime) -> Transition:
    effective = status.state
    if effective in (State.SNOOZED, State.ERRORED, State.BROKEN):
        effective = State.NOT_FIRING
    windows = [config.breached(c) for c in outcome.counts[: config.evaluation_periods]]
    alarm = sum(windows) >= config.datapoints_to_alarm
    if alarm:
        new_state, wanted = State.FIRING, Notification.FIRE if effective is State.NOT_FIRING else Notification.NONE
    elif effective in (State.FIRING, State.PENDING_RESOLVE):
        new_state, wanted = State.NOT_FIRING, Notification.RESOLVE
    else:
        new_state, wanted = State.NOT_FIRING, Notification.NONE
    cooling = status.last_notified_at is not None and now < status.last_notified_at + dt.timedelta(
        minutes=config.cooldown_minutes
    )
    notification = Notification.NONE if cooling else wanted
    new_status = AlertStatus(
        state=new_state,
        consecutive_failures=0,
        last_notified_at=now if notification is not Notification.NONE else status.last_notified_at,
        snooze_until=None if status.state is State.SNOOZED else status.snooze_until,
    )
    return Transition(
        new_status,
        notification,
        event=new_state is not status.state,
        breached=bool(windows and windows[0]),
        alarm=alarm,
    )
