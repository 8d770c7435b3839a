"""PostHog's internal events of alert notifications: their shape, and that they land in the project's events."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from pathlib import Path

from logpond.alerts.destinations import AlertNotice
from logpond.alerts.internal_events import capture, internal_event
from logpond.alerts.rules import parse_alert, plan_create
from logpond.app import build_services, events_writer
from logpond.store.chdb_store import ChDBStore
from tests.conftest import make_settings

AT = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
RULE = {"name": "api errors", "filters": {"serviceNames": ["api"], "severityLevels": ["error"]}, "threshold_count": 9}


def notice(kind: str, alert_id: str, **fields: object) -> AlertNotice:
    base = AlertNotice(
        kind="firing",
        event_id=str(uuid.uuid4()),
        triggered_at=AT,
        alert_id=alert_id,
        alert_name="api errors",
        team_id=1,
        threshold_count=9,
        threshold_operator="above",
        window_minutes=5,
        result_count=12,
        service_names=("api",),
        severity_levels=("error",),
    )
    return replace(base, kind=kind, **fields)  # type: ignore[arg-type]


def test_each_kind_has_its_event_name_and_properties(tmp_path: Path, store: ChDBStore) -> None:
    """Firing and resolved events carry the count and the filters as URL parameters; errored and
    auto-disabled ones carry the failures and the error, under PostHog's property names."""
    services = build_services(make_settings(tmp_path), store=store)
    services.meta.bootstrap()
    alert = services.meta.alerts.create(
        1, plan_create(parse_alert(RULE, now=AT, partial=False), now=AT), created_by_id=None, max_per_team=20
    )
    firing = internal_event(alert, notice("firing", alert.id))
    assert (firing["event"], firing["distinct_id"], firing["timestamp"]) == (
        "$logs_alert_firing",
        f"logs_alert_{alert.id}",
        "2026-06-01T12:00:00.000000Z",
    )
    assert firing["properties"]["result_count"] == 12
    assert firing["properties"]["logs_url_params"] == {"serviceNames": ["api"], "severityLevels": ["error"]}
    assert firing["properties"]["$process_person_profile"] is False
    errored = internal_event(alert, notice("errored", alert.id, consecutive_failures=1, error_message="boom"))
    assert errored["event"] == "$logs_alert_errored"
    assert (errored["properties"]["consecutive_failures"], errored["properties"]["error_message"]) == (1, "boom")
    broken = internal_event(alert, notice("broken", alert.id, consecutive_failures=5, error_message="boom"))
    assert broken["event"] == "$logs_alert_auto_disabled"
    assert broken["properties"]["last_error_message"] == "boom"
    assert internal_event(alert, notice("resolved", alert.id))["event"] == "$logs_alert_resolved"
    services.meta.close()


def test_captured_events_are_stored_in_the_alerts_project_without_persons(tmp_path: Path, store: ChDBStore) -> None:
    """capture() writes through the events writer (WAL, then the store) into the given project only, and
    creates no person."""
    services = build_services(make_settings(tmp_path), store=store)
    services.meta.bootstrap()
    other = services.meta.create_project("Other")
    alert = services.meta.alerts.create(
        other.id, plan_create(parse_alert(RULE, now=AT, partial=False), now=AT), created_by_id=None, max_per_team=20
    )
    writer = events_writer(services)
    writer.start()
    try:
        events = [internal_event(alert, notice(kind, alert.id)) for kind in ("firing", "resolved")]
        capture(writer, other.id, events, max_decompressed_bytes=10_000_000)
        assert writer.flush(timeout=30)
    finally:
        writer.stop()
        services.meta.close()
    rows = store.execute(f"SELECT team_id, event, uuid FROM {store.database}.events ORDER BY event").rows
    assert [(int(r[0]), r[1], str(r[2])) for r in rows] == [
        (other.id, "$logs_alert_firing", events[0]["uuid"]),
        (other.id, "$logs_alert_resolved", events[1]["uuid"]),
    ]
    assert store.execute(f"SELECT count() FROM {store.database}.persons").rows[0][0] in (0, "0")
