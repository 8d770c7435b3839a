"""PostHog's internal events for log alerts (logs spec §5.6), captured into the alert's own project.

Every notification the scheduler sends is also recorded as an event — ``$logs_alert_firing``,
``$logs_alert_resolved``, ``$logs_alert_errored`` or ``$logs_alert_auto_disabled`` — with PostHog's
properties, so an alert's notifications can be counted and charted with HogQL (``SELECT ... FROM events
WHERE event LIKE '$logs_alert_%'``). They go through the events writer like captured events (write-ahead
log, then the store), without person processing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from logpond.alerts.destinations import AlertNotice
from logpond.events.batch import decode_capture_batch, wal_payload
from logpond.ingest.wal import KIND_CAPTURE
from logpond.logs.dates import iso
from logpond.meta.records import LogsAlert

EVENT_NAMES = {
    "firing": "$logs_alert_firing",
    "resolved": "$logs_alert_resolved",
    "errored": "$logs_alert_errored",
    "broken": "$logs_alert_auto_disabled",
}


def internal_event(alert: LogsAlert, notice: AlertNotice) -> dict[str, Any]:
    """The capture form of ``notice``'s internal event."""
    filters = dict(alert.filters)
    properties: dict[str, Any] = {
        "alert_id": alert.id,
        "alert_name": alert.name,
        "team_id": alert.team_id,
        "threshold_count": alert.threshold_count,
        "threshold_operator": alert.threshold_operator,
        "window_minutes": alert.window_minutes,
        "filters": filters,
        "service_names": list(notice.service_names),
        "severity_levels": list(notice.severity_levels),
        "triggered_at": iso(notice.triggered_at),
        "$process_person_profile": False,
    }
    if notice.kind in ("firing", "resolved"):
        properties["result_count"] = notice.result_count
        properties["logs_url_params"] = {
            key: filters[key] for key in ("serviceNames", "severityLevels", "filterGroup") if key in filters
        }
    elif notice.kind == "errored":
        properties.update(consecutive_failures=notice.consecutive_failures, error_message=notice.error_message)
    else:
        properties.update(consecutive_failures=notice.consecutive_failures, last_error_message=notice.error_message)
    return {
        "event": EVENT_NAMES[notice.kind],
        "distinct_id": f"logs_alert_{alert.id}",
        "uuid": notice.event_id,
        "timestamp": iso(notice.triggered_at),
        "properties": properties,
    }


def capture(writer: Any, team_id: int, events: Sequence[dict[str, Any]], *, max_decompressed_bytes: int) -> None:
    """Hand ``events`` of project ``team_id`` to the events writer (``DurableWriter``), as one capture batch."""
    if not events:
        return
    body = orjson.dumps({"batch": list(events)})
    received_ns = time.time_ns()
    _token, batch = decode_capture_batch(body, {}, "application/json", None, received_ns, max_decompressed_bytes)
    batch.team_id = team_id
    writer.submit(KIND_CAPTURE, team_id, received_ns, wal_payload(body, {}, "application/json", None), batch)
