"""The alert state machine: PostHog's logs policy case by case, then against a small reference model."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from logpond.alerts.state import (
    AlertConfig,
    AlertStatus,
    CheckFailed,
    CheckOutcome,
    CheckSucceeded,
    Notification,
    State,
    step,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
ABOVE_10 = AlertConfig(threshold_count=10)


def check(config: AlertConfig, status: AlertStatus, outcome: CheckOutcome, now: dt.datetime = NOW) -> tuple:
    t = step(config, status, outcome, now)
    return t.status.state, t.notification, t.event


def test_breach_fires_then_stays_firing_without_repeating() -> None:
    """not_firing + breach fires once; a further breach keeps firing and notifies nothing."""
    first = step(ABOVE_10, AlertStatus(), CheckSucceeded((11,)), NOW)
    assert (first.status.state, first.notification, first.event) == (State.FIRING, Notification.FIRE, True)
    assert first.status.last_notified_at == NOW and first.breached and first.alarm
    again = step(ABOVE_10, first.status, CheckSucceeded((50,)), NOW + dt.timedelta(minutes=5))
    assert (again.status.state, again.notification, again.event) == (State.FIRING, Notification.NONE, False)


def test_no_breach_resolves_firing_and_pending_resolve_at_once() -> None:
    """firing or pending_resolve without alarm resolve immediately; not_firing stays quiet."""
    for state in (State.FIRING, State.PENDING_RESOLVE):
        assert check(ABOVE_10, AlertStatus(state=state), CheckSucceeded((3,))) == (
            State.NOT_FIRING,
            Notification.RESOLVE,
            True,
        )
    assert check(ABOVE_10, AlertStatus(), CheckSucceeded((3,))) == (State.NOT_FIRING, Notification.NONE, False)


def test_threshold_is_strict_and_below_inverts_it() -> None:
    """above means count > T (T itself does not breach); below means count < T."""
    assert check(ABOVE_10, AlertStatus(), CheckSucceeded((10,)))[0] is State.NOT_FIRING
    below = AlertConfig(threshold_count=10, threshold_operator="below")
    assert check(below, AlertStatus(), CheckSucceeded((9,)))[0] is State.FIRING
    assert check(below, AlertStatus(), CheckSucceeded((10,)))[0] is State.NOT_FIRING


def test_n_of_m_counts_breaching_windows_newest_first() -> None:
    """2 of the last 3 windows must breach; windows beyond M are ignored."""
    config = AlertConfig(threshold_count=10, evaluation_periods=3, datapoints_to_alarm=2)
    assert check(config, AlertStatus(), CheckSucceeded((11, 0, 0, 99)))[0] is State.NOT_FIRING
    assert check(config, AlertStatus(), CheckSucceeded((0, 11, 12)))[0] is State.FIRING
    older_breach_only = step(config, AlertStatus(), CheckSucceeded((0, 11, 12)), NOW)
    assert older_breach_only.alarm and not older_breach_only.breached


def test_cooldown_suppresses_notifications_but_not_state() -> None:
    """Within the cooldown a resolve (or fire) moves the state silently and keeps last_notified_at."""
    config = AlertConfig(threshold_count=10, cooldown_minutes=30)
    fired = step(config, AlertStatus(), CheckSucceeded((11,)), NOW)
    resolved = step(config, fired.status, CheckSucceeded((0,)), NOW + dt.timedelta(minutes=10))
    assert (resolved.status.state, resolved.notification) == (State.NOT_FIRING, Notification.NONE)
    assert resolved.status.last_notified_at == NOW
    refired = step(config, resolved.status, CheckSucceeded((11,)), NOW + dt.timedelta(minutes=30))
    assert (refired.status.state, refired.notification) == (State.FIRING, Notification.FIRE)


def test_failures_notify_once_then_break_at_five() -> None:
    """The first failure of a streak notifies, the next three are silent, the fifth breaks the alert."""
    status = AlertStatus(state=State.FIRING)
    seen = []
    for _ in range(5):
        t = step(ABOVE_10, status, CheckFailed("boom"), NOW)
        status = t.status
        seen.append((t.status.state, t.notification, t.status.consecutive_failures))
    assert seen == [
        (State.FIRING, Notification.ERROR, 1),
        (State.FIRING, Notification.NONE, 2),
        (State.FIRING, Notification.NONE, 3),
        (State.FIRING, Notification.NONE, 4),
        (State.BROKEN, Notification.BROKEN, 5),
    ]
    assert check(ABOVE_10, status, CheckSucceeded((99,))) == (State.BROKEN, Notification.NONE, False)


def test_transient_failure_changes_nothing_and_success_clears_failures() -> None:
    """A transient failure is ignored; a success sets consecutive_failures back to 0."""
    status = AlertStatus(consecutive_failures=3)
    t = step(ABOVE_10, status, CheckFailed("busy", transient=True), NOW)
    assert (t.status, t.notification, t.event) == (status, Notification.NONE, False)
    assert step(ABOVE_10, status, CheckSucceeded((0,)), NOW).status.consecutive_failures == 0


def test_snooze_holds_until_it_expires() -> None:
    """A future snooze_until freezes the alert; once past, the check runs from not_firing."""
    snoozed = AlertStatus(state=State.SNOOZED, snooze_until=NOW + dt.timedelta(hours=1))
    assert check(ABOVE_10, snoozed, CheckSucceeded((99,))) == (State.SNOOZED, Notification.NONE, False)
    later = NOW + dt.timedelta(hours=2)
    t = step(ABOVE_10, snoozed, CheckSucceeded((99,)), later)
    assert (t.status.state, t.notification, t.status.snooze_until) == (State.FIRING, Notification.FIRE, None)


# --- against a reference model ----------------------------------------------------------------------


def reference(config: AlertConfig, status: AlertStatus, outcome: CheckOutcome, now: dt.datetime) -> tuple:
    """The policy written out as plainly as possible: (state, failures, notification)."""
    state, failures = status.state, status.consecutive_failures
    if state == "broken":
        return state, failures, "none"
    if state == "snoozed" and status.snooze_until and status.snooze_until > now:
        return state, failures, "none"
    if isinstance(outcome, CheckFailed):
        if outcome.transient:
            return state, failures, "none"
        if failures + 1 >= 5:
            return "broken", failures + 1, "broken"
        return state, failures + 1, "error" if failures == 0 else "none"
    if state in ("snoozed", "errored", "broken"):
        state = "not_firing"
    hits = 0
    for count in outcome.counts[: config.evaluation_periods]:
        over = count > config.threshold_count
        under = count < config.threshold_count
        hits += over if config.threshold_operator == "above" else under
    if hits >= config.datapoints_to_alarm:
        new, wanted = "firing", ("fire" if state == "not_firing" else "none")
    else:
        new, wanted = "not_firing", ("resolve" if state in ("firing", "pending_resolve") else "none")
    last = status.last_notified_at
    if last is not None and (now - last).total_seconds() < config.cooldown_minutes * 60:
        wanted = "none"
    return new, 0, wanted


configs = st.builds(
    lambda t, op, m, n, cooldown: AlertConfig(t, op, m, min(n, m), cooldown),
    st.integers(0, 20),
    st.sampled_from(["above", "below"]),
    st.integers(1, 10),
    st.integers(1, 10),
    st.sampled_from([0, 5, 30]),
)
outcomes = st.one_of(
    st.builds(CheckSucceeded, st.lists(st.integers(0, 40), min_size=1, max_size=10).map(tuple)),
    st.builds(CheckFailed, st.just("error"), st.booleans()),
)
snoozes = st.one_of(st.none(), st.integers(-60, 60).map(lambda m: NOW + dt.timedelta(minutes=m)))


@settings(max_examples=400, deadline=None)
@given(
    config=configs, checks=st.lists(st.tuples(outcomes, st.integers(0, 30)), min_size=1, max_size=40), snooze=snoozes
)
def test_matches_the_reference_model_over_sequences(
    config: AlertConfig, checks: list, snooze: dt.datetime | None
) -> None:
    """Over any sequence of checks, the machine agrees with the reference at every step."""
    status = AlertStatus(state=State.SNOOZED if snooze else State.NOT_FIRING, snooze_until=snooze)
    now = NOW
    for outcome, minutes in checks:
        now += dt.timedelta(minutes=minutes)
        expected = reference(config, status, outcome, now)
        t = step(config, status, outcome, now)
        assert (t.status.state, t.status.consecutive_failures, t.notification) == expected
        if t.notification in (Notification.FIRE, Notification.RESOLVE, Notification.ERROR, Notification.BROKEN):
            assert t.status.last_notified_at == now or t.notification in (Notification.ERROR, Notification.BROKEN)
        frozen = status.state is State.BROKEN or (
            status.state is State.SNOOZED and status.snooze_until is not None and status.snooze_until > now
        )
        counted_failure = isinstance(outcome, CheckFailed) and not outcome.transient
        assert t.event == (not frozen and (t.status.state != status.state or counted_failure))
        status = t.status
