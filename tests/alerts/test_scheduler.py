"""The alert scheduler as scenarios: logs at known times in a real chDB store, a clock the test moves five
minutes at a time, and notifications delivered to a real HTTP receiver on 127.0.0.1. What is checked is
what a user sees: the alert's state and schedule, its history, and the notifications that arrive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from logpond.alerts.destinations import KINDS, SECRET_FIELDS, parse_destination
from logpond.alerts.rules import plan_reset
from logpond.alerts.scheduler import delivery_settings
from logpond.meta.records import AlertCheckResult
from logpond.meta.secretbox import SecretBox
from logpond.store.chdb_store import ChDBStore
from tests.alerts._receiver import Receiver
from tests.alerts._scenario import MIN, SEC, START, Clock, World

INVALID_REGEX = {
    "filterGroup": {
        "type": "AND",
        "values": [
            {"type": "AND", "values": [{"key": "k", "value": "(", "operator": "regex", "type": "log_attribute"}]}
        ],
    }
}
OUR_REGEX_MESSAGE = "Invalid regular expression in a filter (RE2 syntax)."


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def world(tmp_path: Path, store: ChDBStore, rx: Receiver) -> Iterator[World]:
    with World(tmp_path, store, rx, Clock(START)) as w:
        w.meta.bootstrap()
        yield w


def every_5_minutes(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The grid slots from ``start`` up to and including ``end``."""
    count = int((end - start) / (5 * MIN))
    return [start + i * 5 * MIN for i in range(count + 1)]


# --- scheduling ---------------------------------------------------------------------------------------


def test_first_check_is_at_once_then_on_the_grid_and_missed_slots_are_skipped(world: World) -> None:
    """A new alert is checked at the first tick with windows ending now, then every 5 minutes on the grid;
    after three hours without ticks one tick checks the latest slot once, never replaying the missed ones."""
    now = START + 2 * MIN + 30 * SEC  # off the grid
    world.clock.set(now)
    alert = world.create_alert(threshold_count=1)
    # [now - 5 min, now) holds two of these four
    world.insert_logs(now - 5 * MIN - SEC, now - 5 * MIN, now - SEC, now)

    report = world.tick()
    assert (report.claimed, report.checked, report.transitions) == (1, 1, {alert.id: "firing"})
    row = world.get(alert)
    assert row.last_checked_at == now
    assert row.next_check_at == START + 5 * MIN
    assert [n.data["result_count"] for n in world.notices(alert)] == [2]

    before = world.get(alert)
    report = world.tick(START + 5 * MIN - SEC)
    assert (report.claimed, report.checked) == (0, 0)
    assert world.get(alert) == before

    report = world.tick(START + 5 * MIN)  # [12:00, 12:05) holds two: still firing, no repeat
    assert (report.claimed, report.transitions) == (1, {alert.id: "firing"})
    assert world.get(alert).next_check_at == START + 10 * MIN

    # three hours later, two minutes past a slot: the 15:05 slot counts [15:00, 15:05), which holds one
    # log (windows ending now would hold two, windows of a replayed 12:10 slot none)
    world.insert_logs(START + 3 * 60 * MIN + 4 * MIN + 59 * SEC, START + 3 * 60 * MIN + 5 * MIN)
    late = START + 3 * 60 * MIN + 7 * MIN
    report = world.tick(late)
    assert (report.claimed, report.checked, report.transitions) == (1, 1, {alert.id: "not_firing"})
    row = world.get(alert)
    assert row.last_checked_at == late
    assert row.next_check_at == START + 3 * 60 * MIN + 10 * MIN
    assert world.tick().claimed == 0
    assert world.states(alert) == [("not_firing", "firing"), ("firing", "not_firing")]
    assert [(n.type, n.data["result_count"]) for n in world.notices(alert)] == [
        ("logs_alert.firing", 2),
        ("logs_alert.resolved", 1),
    ]


def test_the_lease_hands_a_crashed_schedulers_alerts_to_another(world: World) -> None:
    """An alert claimed by a scheduler that never finishes is claimable by no one until the lease runs out;
    then the next tick checks it, and the crashed scheduler's late result is dropped."""
    alert = world.create_alert()
    lease = world.scheduler.lease
    [claimed] = world.meta.alerts.claim_due(START, lease=lease, limit=10)  # the scheduler that crashes
    assert claimed.id == alert.id and claimed.claim_token

    assert world.meta.alerts.claim_due(START, lease=lease, limit=10) == []
    assert world.tick().claimed == 0
    assert world.tick(START + lease - SEC).claimed == 0
    assert world.states(alert) == [] and world.rx.requests == []

    world.insert_logs(START + lease - MIN, count=10)
    report = world.tick(START + lease)
    assert (report.claimed, report.checked, report.transitions) == (1, 1, {alert.id: "firing"})
    stale = AlertCheckResult(alert.id, claimed.claim_token, {"state": "not_firing", "last_checked_at": START})
    assert world.meta.alerts.finish_checks([stale]) == []
    row = world.get(alert)
    assert (row.state, row.last_checked_at, row.next_check_at) == ("firing", START + lease, START + lease + 5 * MIN)
    assert world.notice_types(alert) == ["logs_alert.firing"]


def test_an_update_during_a_check_wins_over_its_result(world: World) -> None:
    """A change made through the API while a check runs voids the check's claim: its result is dropped, and
    the next tick checks the changed alert afresh."""
    alert = world.create_alert(threshold_count=5)
    world.insert_logs(START - MIN, count=10)
    [claimed] = world.meta.alerts.claim_due(START, lease=world.scheduler.lease, limit=10)
    world.update(alert, enabled=False)
    result = AlertCheckResult(
        alert.id,
        claimed.claim_token or "",
        {"state": "firing", "last_checked_at": START, "next_check_at": START + 5 * MIN},
        {"kind": "check", "state_before": "not_firing", "state_after": "firing", "threshold_breached": True},
    )
    assert world.meta.alerts.finish_checks([result]) == []
    row = world.get(alert)
    assert (row.enabled, row.state, row.last_checked_at) == (False, "not_firing", None)
    assert [e.kind for e in world.events(alert)] == ["disable"]
    assert world.tick().claimed == 0  # disabled: not due

    world.update(alert, enabled=True)
    [claimed] = world.meta.alerts.claim_due(START, lease=world.scheduler.lease, limit=10)
    world.update(alert, threshold_count=50)  # the claimed check would still count against 5
    assert world.meta.alerts.finish_checks([replace(result, claim_token=claimed.claim_token or "")]) == []
    assert world.get(alert).state == "not_firing"
    report = world.tick()
    assert report.transitions == {alert.id: "not_firing"}
    assert world.get(alert).threshold_count == 50
    assert world.rx.requests == []


# --- firing and resolving -----------------------------------------------------------------------------


def test_fires_once_while_breaching_and_resolves_when_the_logs_stop(world: World) -> None:
    """Errors of service api above the threshold fire the alert with one signed webhook; later breaching
    checks notify nothing more; when the errors stop the alert resolves; only state changes are recorded."""
    alert = world.create_alert(
        name="api errors", filters={"serviceNames": ["api"], "severityLevels": ["error"]}, threshold_count=5
    )
    world.insert_logs(START - 4 * MIN, count=10)  # [11:55, 12:00)
    world.insert_logs(START + 2 * MIN, count=8)  # [12:00, 12:05)
    # what the filters leave out: another service's errors, api's info logs
    world.insert_logs(START + 7 * MIN, count=20, service="web")
    world.insert_logs(START + 7 * MIN, count=20, severity="info")

    states = [world.tick(at).transitions[alert.id] for at in every_5_minutes(START, START + 15 * MIN)]
    assert states == ["firing", "firing", "not_firing", "not_firing"]

    firing, resolved = world.notices(alert)
    assert firing.type == "logs_alert.firing"
    assert firing.body["timestamp"] == "2026-11-20T12:00:00Z"
    assert firing.data == {
        "alert_id": alert.id,
        "alert_name": "api errors",
        "result_count": 10,
        "threshold_count": 5,
        "threshold_operator": "above",
        "window_minutes": 5,
        "service_names": ["api"],
        "severity_levels": ["error"],
        "logs_url": firing.data["logs_url"],
        "alert_url": firing.data["alert_url"],
    }
    assert firing.data["alert_url"].endswith(f"/project/1/logs/alerts/{alert.id}")
    assert (resolved.type, resolved.data["result_count"]) == ("logs_alert.resolved", 0)
    assert resolved.body["id"] != firing.body["id"]

    checks = world.events(alert, "check")
    assert [(e.state_before, e.state_after, e.result_count, e.threshold_breached) for e in checks] == [
        ("not_firing", "firing", 10, True),
        ("firing", "not_firing", 0, False),
    ]
    assert all(e.query_duration_ms is not None and e.query_duration_ms >= 0 for e in checks)
    # the checks that changed nothing are not stored at all, not merely hidden from the listing
    assert len(world.meta.alerts.events_since([alert.id], START - 60 * MIN)[alert.id]) == 2
    assert [e.created_at for e in checks] == [START, START + 10 * MIN]
    row = world.get(alert)
    assert (row.state, row.last_notified_at, row.consecutive_failures) == ("not_firing", START + 10 * MIN, 0)


def test_a_below_alert_fires_when_logs_fall_under_the_threshold(world: World) -> None:
    """A ``below`` alert fires when a window holds fewer logs than the threshold (as many does not count),
    and resolves when they come back."""
    alert = world.create_alert(filters={"serviceNames": ["heartbeat"]}, threshold_count=3, threshold_operator="below")
    for window_start, count in [(START - 5 * MIN, 5), (START + 5 * MIN, 3), (START + 10 * MIN, 2)]:
        world.insert_logs(window_start + MIN, count=count, service="heartbeat", severity="info")
    world.insert_logs(START + 16 * MIN, count=5, service="heartbeat", severity="info")

    states = [world.tick(at).transitions[alert.id] for at in every_5_minutes(START, START + 20 * MIN)]
    # windows ending 12:00 .. 12:20 hold 5, 0, 3, 2, 5
    assert states == ["not_firing", "firing", "not_firing", "firing", "not_firing"]
    assert [(n.type, n.data["result_count"]) for n in world.notices(alert)] == [
        ("logs_alert.firing", 0),
        ("logs_alert.resolved", 3),
        ("logs_alert.firing", 2),
        ("logs_alert.resolved", 5),
    ]
    firing = world.notices(alert)[0]
    assert (firing.data["threshold_operator"], firing.data["threshold_count"]) == ("below", 3)


def test_n_of_m_fires_only_when_enough_recent_windows_breach(world: World) -> None:
    """With 2 of 3 windows needed, one breaching window does not fire, nor do two that are 15 minutes apart;
    a second breach within three checks does."""
    world.clock.set(START + 5 * MIN)
    alert = world.create_alert(threshold_count=2, evaluation_periods=3, datapoints_to_alarm=2)
    for window_start in (START, START + 15 * MIN, START + 25 * MIN):
        world.insert_logs(window_start + MIN, count=5)

    states = [world.tick(at).transitions[alert.id] for at in every_5_minutes(START + 5 * MIN, START + 30 * MIN)]
    # breaching windows: [12:00, 12:05), [12:15, 12:20), [12:25, 12:30)
    assert states == ["not_firing"] * 5 + ["firing"]
    assert [(n.type, n.data["result_count"]) for n in world.notices(alert)] == [("logs_alert.firing", 5)]
    [event] = world.events(alert, "check")
    assert (event.created_at, event.result_count) == (START + 30 * MIN, 5)


def test_cooldown_suppresses_notifications_but_not_state_changes(world: World) -> None:
    """Within cooldown_minutes of a notification the alert still resolves and fires again, silently, and
    last_notified_at stays; once the cooldown is over, notifications resume."""
    alert = world.create_alert(threshold_count=2, cooldown_minutes=30)
    for window_start in (START - 5 * MIN, START + 5 * MIN, START + 25 * MIN):
        world.insert_logs(window_start + MIN, count=5)

    states = []
    for at in every_5_minutes(START, START + 30 * MIN):
        states.append(world.tick(at).transitions[alert.id])
        if at == START + 10 * MIN:
            assert world.get(alert).last_notified_at == START
    assert states == ["firing", "not_firing", "firing", "not_firing", "not_firing", "not_firing", "firing"]
    assert world.states(alert) == [
        ("not_firing", "firing"),
        ("firing", "not_firing"),
        ("not_firing", "firing"),
        ("firing", "not_firing"),
        ("not_firing", "firing"),
    ]
    firings = world.notices(alert)
    assert [(n.type, n.body["timestamp"]) for n in firings] == [
        ("logs_alert.firing", "2026-11-20T12:00:00Z"),
        ("logs_alert.firing", "2026-11-20T12:30:00Z"),
    ]
    assert world.get(alert).last_notified_at == START + 30 * MIN


# --- snoozes and quiet hours --------------------------------------------------------------------------


def test_a_snoozed_alert_is_not_checked_until_the_snooze_ends(world: World) -> None:
    """A snoozed alert is not even claimed before snooze_until; at the first tick after, it is checked, its
    snooze cleared, and its state follows the data."""
    alert = world.create_alert(snooze_until="2026-11-20T12:30:00Z")
    assert world.get(alert).state == "snoozed"
    world.insert_logs(START - MIN, START + 27 * MIN, count=10)

    for at in (START, START + 15 * MIN, START + 30 * MIN - SEC):
        assert world.tick(at).claimed == 0
    assert world.get(alert).last_checked_at is None

    report = world.tick(START + 30 * MIN)
    assert report.transitions == {alert.id: "firing"}
    row = world.get(alert)
    assert (row.state, row.snooze_until, row.next_check_at) == ("firing", None, START + 35 * MIN)
    assert world.states(alert) == [("snoozed", "firing")]
    assert [(n.type, n.data["result_count"]) for n in world.notices(alert)] == [("logs_alert.firing", 10)]


def test_quiet_hours_skip_checks_in_the_projects_time_zone(world: World) -> None:
    """In a blocked window (project time UTC) a tick skips the check: no history, no notification, the
    state kept and the next check moved on; the first slot after the window is checked."""
    alert = world.create_alert(schedule_restriction={"blocked_windows": [{"start": "11:30", "end": "12:30"}]})
    world.insert_logs(*[START - 5 * MIN + i * MIN for i in range(40)], count=10)  # breaching all along

    for at in every_5_minutes(START, START + 25 * MIN):
        report = world.tick(at)
        assert (report.claimed, report.quiet, report.checked, report.transitions) == (1, 1, 0, {})
        row = world.get(alert)
        assert (row.state, row.last_checked_at, row.next_check_at) == ("not_firing", None, at + 5 * MIN)
    assert world.events(alert) == [] and world.rx.requests == []

    report = world.tick(START + 30 * MIN)
    assert (report.quiet, report.transitions) == (0, {alert.id: "firing"})
    assert world.notice_types(alert) == ["logs_alert.firing"]


def test_quiet_hours_follow_the_project_time_zone(world: World) -> None:
    """A project in Asia/Tokyo blocks by Tokyo time: at 12:00 UTC (21:00 there) a 20:00-22:00 window is
    quiet and an 11:00-13:00 one is not; a window across midnight blocks at 23:30 Tokyo time."""
    tokyo = world.meta.create_project("Tokyo", timezone="Asia/Tokyo")

    def blocked(start: str, end: str) -> dict[str, list[dict[str, str]]]:
        return {"blocked_windows": [{"start": start, "end": end}]}

    evening = world.create_alert(tokyo.id, name="evening", schedule_restriction=blocked("20:00", "22:00"))
    utc_noon = world.create_alert(tokyo.id, name="utc noon", schedule_restriction=blocked("11:00", "13:00"))
    night = world.create_alert(tokyo.id, name="night", schedule_restriction=blocked("23:00", "01:00"))
    world.insert_logs(START - MIN, START + 2 * 60 * MIN + 29 * MIN, count=10, team_id=tokyo.id)

    report = world.tick(START)
    assert (report.claimed, report.quiet) == (3, 1)
    assert report.transitions == {utc_noon.id: "firing", night.id: "firing"}
    assert world.get(evening).next_check_at == START + 5 * MIN

    report = world.tick(START + 2 * 60 * MIN + 30 * MIN)  # 23:30 in Tokyo
    assert report.quiet == 1
    assert report.transitions == {evening.id: "firing", utc_noon.id: "firing"}
    assert world.states(night) == [("not_firing", "firing")]
    assert world.get(night).last_checked_at == START


# --- errors --------------------------------------------------------------------------------------------


def test_failing_checks_notify_once_then_break_the_alert_until_it_is_reset(world: World) -> None:
    """An alert whose filter has an invalid regular expression notifies "errored" on its first failure,
    nothing on failures two to four, and "auto_disabled" on the fifth, which makes it broken; a broken
    alert is never claimed again until a reset brings it back to not_firing for the next tick."""
    alert = world.create_alert(filters=INVALID_REGEX)
    # the store compiles the expression only when some logs are in range
    world.insert_logs(*[START - 5 * MIN + i * MIN for i in range(70)], attributes={"k": "v"})

    failures = []
    for at in every_5_minutes(START, START + 20 * MIN):
        report = world.tick(at)
        assert report.checked == 1
        row = world.get(alert)
        failures.append((row.consecutive_failures, row.state))
        assert row.last_error_message == OUR_REGEX_MESSAGE
    assert failures == [(1, "not_firing"), (2, "not_firing"), (3, "not_firing"), (4, "not_firing"), (5, "broken")]
    errored, disabled = world.notices(alert)
    assert errored.type == "logs_alert.errored"
    assert errored.data["error_message"] == OUR_REGEX_MESSAGE
    assert errored.data["consecutive_failures"] == 1
    assert disabled.type == "logs_alert.auto_disabled"
    assert disabled.data["last_error_message"] == OUR_REGEX_MESSAGE
    assert disabled.data["consecutive_failures"] == 5
    checks = world.events(alert, "check")
    assert [e.error_message for e in checks] == [OUR_REGEX_MESSAGE] * 5
    assert [e.state_after for e in checks] == ["not_firing"] * 4 + ["broken"]

    for at in every_5_minutes(START + 25 * MIN, START + 60 * MIN):
        assert world.tick(at).claimed == 0

    reset = world.meta.alerts.update(alert.team_id, alert.id, plan_reset)
    assert reset is not None
    assert (reset.state, reset.consecutive_failures, reset.next_check_at) == ("not_firing", 0, None)
    world.clock.advance(SEC)  # keeps the reset before the check in the history's order
    report = world.tick()
    assert report.claimed == 1
    row = world.get(alert)
    assert (row.state, row.consecutive_failures) == ("not_firing", 1)
    assert world.notice_types(alert) == ["logs_alert.errored", "logs_alert.auto_disabled", "logs_alert.errored"]
    assert [e.kind for e in world.events(alert)][-2:] == ["reset", "check"]


def test_a_failed_delivery_leaves_the_alert_due_and_the_next_tick_delivers(world: World) -> None:
    """When the webhook answers 500 to every attempt the check's result is not written, so the alert stays
    due for the same slot; the next tick fires and delivers, and the notification arrives once."""
    alert = world.create_alert(threshold_count=2)
    assert world.tick().transitions == {alert.id: "not_firing"}  # 12:00: no logs yet
    world.insert_logs(START + 10 * SEC, count=5)  # only in the window ending 12:05

    world.rx.respond_with(500, times=2)  # both attempts
    report = world.tick(START + 5 * MIN)
    assert (report.checked, report.notifications, report.failed_deliveries, report.transitions) == (1, 0, 1, {})
    row = world.get(alert)
    assert (row.state, row.next_check_at, row.last_checked_at, row.last_notified_at) == (
        "not_firing",
        START + 5 * MIN,
        START,
        None,
    )
    assert world.events(alert) == []
    # why is visible on the alert until a notification goes out again
    assert (row.last_delivery_error, row.last_delivery_error_at) == (
        "firing notification to webhook: webhook answered 500 after 2 attempts",
        START + 5 * MIN,
    )

    report = world.tick(START + 6 * MIN)  # the 12:05 slot again: windows ending now would hold nothing
    assert (report.claimed, report.notifications, report.transitions) == (1, 1, {alert.id: "firing"})
    assert world.tick().claimed == 0
    first, retry, delivered = world.notices(alert)
    assert first.body["id"] == retry.body["id"] != delivered.body["id"]
    assert (delivered.type, delivered.data["result_count"]) == ("logs_alert.firing", 5)
    row = world.get(alert)
    assert (row.state, row.last_notified_at, row.next_check_at) == ("firing", START + 6 * MIN, START + 10 * MIN)
    assert (row.last_delivery_error, row.last_delivery_error_at) == (None, None)
    assert world.states(alert) == [("not_firing", "firing")]


def test_an_undelivered_error_notice_does_not_stop_the_failure_streak(world: World) -> None:
    """When the errored notice cannot be delivered the failed check is still recorded (the streak must reach
    broken); it is not sent again."""
    alert = world.create_alert(filters=INVALID_REGEX)
    world.insert_logs(*[START - 5 * MIN + i * MIN for i in range(20)], attributes={"k": "v"})
    world.rx.respond_with(500, times=2)  # both attempts of the errored notice
    report = world.tick(START)
    assert (report.checked, report.failed_deliveries) == (1, 1)
    row = world.get(alert)
    assert (row.consecutive_failures, row.next_check_at) == (1, START + 5 * MIN)
    assert row.last_delivery_error == "errored notification to webhook: webhook answered 500 after 2 attempts"
    assert world.tick(START + 5 * MIN).notifications == 0  # failure two notifies nobody
    assert world.get(alert).consecutive_failures == 2


def test_a_destination_sealed_under_another_key_is_not_delivered(world: World) -> None:
    """Secrets stored by a server with another LOGPOND_SECRET_KEY cannot be opened: nothing is sent, and
    the firing check is not written, so the alert stays due."""
    alert = world.create_alert(threshold_count=2, webhook=False)
    _, config = parse_destination(
        {"type": "webhook", "webhook_url": world.rx.url + "/hook"}, delivery_settings(world.settings)
    )
    foreign = SecretBox("another server's key, 32+ characters").seal_fields(config, SECRET_FIELDS)
    world.meta.alerts.add_destinations(alert.team_id, alert.id, "webhook", foreign, KINDS)
    world.insert_logs(START - 2 * MIN, count=5)
    report = world.tick(START)
    assert (report.checked, report.notifications, report.failed_deliveries) == (1, 0, 1)
    assert world.rx.requests == []
    assert world.get(alert).state == "not_firing"


# --- projects and destinations ------------------------------------------------------------------------


def test_another_projects_logs_never_count(world: World) -> None:
    """Two projects' alerts with the same filters each count only their own project's logs."""
    other = world.meta.create_project("Other")
    world.insert_logs(START - MIN, count=10, team_id=other.id)
    mine = world.create_alert(1, name="mine", threshold_count=1, threshold_operator="below")
    theirs_below = world.create_alert(other.id, name="theirs below", threshold_count=1, threshold_operator="below")
    theirs_above = world.create_alert(other.id, name="theirs above", threshold_count=5)

    report = world.tick()
    assert report.transitions == {mine.id: "firing", theirs_below.id: "not_firing", theirs_above.id: "firing"}
    assert [e.result_count for e in world.events(mine, "check")] == [0]
    assert [e.result_count for e in world.events(theirs_above, "check")] == [10]
    assert sorted((n.data["alert_name"], n.data["result_count"]) for n in world.notices()) == [
        ("mine", 0),
        ("theirs above", 10),
    ]
    assert world.meta.alerts.get(1, theirs_above.id) is None


def test_slack_notifications_go_through_the_bot_token_api(world: World) -> None:
    """A Slack destination with a bot token gets chat.postMessage calls with its channel, the token, and
    Block Kit blocks saying what fired and what resolved."""
    alert = world.create_alert(name="checkout errors", webhook=False, threshold_count=5)
    token = "xoxb-1234-5678-abcdefgh"
    world.add_destination(alert, {"type": "slack", "slack_bot_token": token, "slack_channel_id": "C0123ABCD"})
    world.insert_logs(START - MIN, count=10)

    assert world.tick().transitions == {alert.id: "firing"}
    assert world.tick(START + 5 * MIN).transitions == {alert.id: "not_firing"}
    firing, resolved = world.rx.wait_for(2)
    for request in (firing, resolved):
        assert request.path == "/api/chat.postMessage"
        assert request.headers["authorization"] == f"Bearer {token}"
        assert request.json["channel"] == "C0123ABCD"
    blocks = firing.json["blocks"]
    assert blocks[0]["type"] == "header" and "checkout errors" in blocks[0]["text"]["text"]
    assert "firing" in blocks[0]["text"]["text"]
    assert "10" in blocks[1]["text"]["text"] and "above 5" in blocks[1]["text"]["text"]
    assert "resolved" in resolved.json["blocks"][0]["text"]["text"]
    assert len(world.rx.requests) == 2
