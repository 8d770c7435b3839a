"""The alert scheduler: every tick, claim the alerts that are due, check them, notify, record.

One tick (``AlertScheduler.tick``):

1. Claim the due alerts in the metadata database (``AlertsRepo.claim_due``): another server on the same
   database skips them until this one writes their results or its lease runs out.
2. Skip the alerts in a quiet-hours window (their next check moves on, nothing else changes).
3. Count each remaining alert's M windows, per project, in as few store queries as the alerts allow
   (``logpond.alerts.check``), through the project-isolated printer.
4. Run the state machine (``logpond.alerts.state.step``) and send the notifications it asks for to the
   alert's destinations of that kind. When a firing or resolved notification cannot be delivered, the
   alert's result is not written, so it stays due and the next tick checks and notifies again. (An
   undelivered errored or broken notice is not retried: the failure streak must go on counting.)
5. Write every result, with the CHECK history entries, in one transaction, and capture PostHog's internal
   events of the notifications (``$logs_alert_firing``, ...) into the project's events.

Checks follow a 5-minute grid per alert: a check counts the windows ending at its slot (``next_check_at``),
or at the latest slot already passed when the server was down, so missed slots are skipped and never
replayed in a burst. An alert never checked (or changed since) is checked at once, with windows ending at
the current minute, and then joins the grid.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from logpond.alerts.check import CHECK_INTERVAL, CheckRequest, check_counts
from logpond.alerts.destinations import AlertNotice, Deliverer, DeliveryError, DeliverySettings
from logpond.alerts.internal_events import capture, internal_event
from logpond.alerts.rules import alert_filters, in_blocked_window
from logpond.alerts.state import (
    AlertConfig,
    AlertStatus,
    CheckFailed,
    CheckOutcome,
    CheckSucceeded,
    Notification,
    State,
    Transition,
    step,
)
from logpond.meta.records import AlertCheckResult, LogsAlert, LogsAlertDestination
from logpond.meta.secretbox import SecretKeyError
from logpond.query.ast import Select
from logpond.store.base import QueryLimits, QueryResult

log = logging.getLogger(__name__)

NOTICE_KINDS = {
    Notification.FIRE: "firing",
    Notification.RESOLVE: "resolved",
    Notification.ERROR: "errored",
    Notification.BROKEN: "broken",
}
# notifications whose failed delivery undoes the check, so the next tick notifies again; the errored and
# broken notices are sent once, as the failure streak must keep counting towards broken
ROLLED_BACK = (Notification.FIRE, Notification.RESOLVE)
# an ingestion checkpoint this close behind a check's end is waited for (the end moves back to it); one
# further behind means ingestion is stuck, and the check counts what is there
CHECKPOINT_SLACK = dt.timedelta(minutes=5)
EVENT_CLEANUP_EVERY = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class TickReport:
    """What one tick did; the benchmark and the CLI print it."""

    claimed: int = 0
    checked: int = 0
    quiet: int = 0  # skipped: in a quiet-hours window
    notifications: int = 0
    failed_deliveries: int = 0
    written: int = 0
    store_queries: int = 0
    store_seconds: float = 0.0  # counting (check queries)
    delivery_seconds: float = 0.0
    seconds: float = 0.0
    transitions: dict[str, str] = field(default_factory=dict)  # alert id -> state after


def check_slot(next_check_at: dt.datetime | None, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(the end of the windows this check counts, the next check's slot)."""
    if next_check_at is None:
        # the current minute: windows on whole minutes can be counted from the rollup
        return _floor(now, MINUTE), _floor(now, CHECK_INTERVAL) + CHECK_INTERVAL
    missed = max(0, (now - next_check_at) // CHECK_INTERVAL)
    end = next_check_at + missed * CHECK_INTERVAL
    return end, end + CHECK_INTERVAL


def _floor(moment: dt.datetime, step: dt.timedelta) -> dt.datetime:
    return _EPOCH + ((moment - _EPOCH) // step) * step


class AlertScheduler:
    def __init__(
        self,
        services: Any,  # logpond.services.Services
        *,
        deliverer: Deliverer | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.services = services
        s = services.settings
        self.clock = clock or services.clock
        self.deliverer = deliverer or Deliverer(delivery_settings(s))
        self.lease = dt.timedelta(seconds=s.alerts_claim_lease_seconds)
        self.limits = QueryLimits(
            max_execution_time=s.alerts_check_max_execution_time,
            max_memory_usage=s.alerts_check_max_memory_bytes,
            max_result_rows=s.query_max_result_rows,
            compile_aggregates=False,  # every tick's windows are new constants: compiling would not pay off
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timezones: dict[int, zoneinfo.ZoneInfo] = {}
        self.last_report: TickReport | None = None
        self._last_cleanup: dt.datetime | None = None
        self.last_error: str | None = None

    # --- running in the server ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="logpond-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.deliverer.close()

    def _run(self) -> None:
        interval = self.services.settings.alerts_tick_seconds
        while not self._stop.wait(0 if self.last_report is None else interval):
            try:
                self.last_report = self.tick()
                self.last_error = None
            except Exception as exc:  # keep ticking: the next tick may well succeed
                log.exception("alert scheduler tick failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.last_report = self.last_report or TickReport()

    # --- one tick ----------------------------------------------------------------------------------------

    def tick(self) -> TickReport:
        started = time.perf_counter()
        now = self.clock()
        report = TickReport()
        self._timezones = {}  # read again each tick: a project's time zone can change
        repo = self.services.meta.alerts
        alerts: list[LogsAlert] = repo.claim_due(
            now, lease=self.lease, limit=self.services.settings.alerts_max_per_tick
        )
        report.claimed = len(alerts)
        results: list[AlertCheckResult] = []
        by_team: dict[int, list[tuple[LogsAlert, dt.datetime, dt.datetime]]] = defaultdict(list)
        for alert in alerts:
            end, next_slot = check_slot(alert.next_check_at, now)
            if in_blocked_window(alert.schedule_restriction, now.astimezone(self._timezone(alert.team_id))):
                report.quiet += 1
                results.append(AlertCheckResult(alert.id, alert.claim_token or "", {"next_check_at": next_slot}))
                continue
            by_team[alert.team_id].append((alert, self._clamp(end), next_slot))
        transitions: list[tuple[LogsAlert, Transition, CheckOutcome, dt.datetime, int]] = []
        for team_id, due in by_team.items():
            outcomes, millis = self._check(team_id, due, report)
            for alert, _end, next_slot in due:
                outcome = outcomes[alert.id]
                transitions.append(
                    (alert, step(_config(alert), _status(alert), outcome, now), outcome, next_slot, millis)
                )
        report.checked = len(transitions)
        notices = {
            alert.id: self._notice(alert, NOTICE_KINDS[t.notification], t, outcome, now)
            for alert, t, outcome, *_ in transitions
            if t.notification is not Notification.NONE
        }
        destinations = repo.destinations(list(notices)) if notices else {}
        sending = time.perf_counter()
        failures = self._deliver_all(notices, destinations, report)
        report.delivery_seconds = time.perf_counter() - sending
        for alert, transition, outcome, next_slot, millis in transitions:
            token = alert.claim_token or ""
            sent = alert.id in notices and any(d.kind == notices[alert.id].kind for d in destinations[alert.id])
            delivery = _delivery_values(alert, sent, failures, now)
            if alert.id in failures and transition.notification in ROLLED_BACK:
                # still due: the next tick checks and notifies again
                results.append(AlertCheckResult(alert.id, token, delivery))
                continue
            result = _result(alert, token, transition, outcome, now, next_slot, millis)
            results.append(replace(result, values={**result.values, **delivery}))
            report.transitions[alert.id] = transition.status.state.value
        written = repo.finish_checks(results) if results else []
        report.written = len(written)
        self._record_notices([(alert, notices[alert.id]) for alert, *_ in transitions if alert.id in notices], written)
        if self._last_cleanup is None or now - self._last_cleanup >= EVENT_CLEANUP_EVERY:
            retention = dt.timedelta(days=self.services.settings.alerts_event_retention_days)
            repo.delete_events_before(now - retention)
            self._last_cleanup = now
        report.seconds = time.perf_counter() - started
        return report

    def _timezone(self, team_id: int) -> zoneinfo.ZoneInfo:
        zone = self._timezones.get(team_id)
        if zone is None:
            project = self.services.meta.get_project(team_id)
            zone = zoneinfo.ZoneInfo(project.timezone if project is not None else "UTC")
            self._timezones[team_id] = zone
        return zone

    def _clamp(self, end: dt.datetime) -> dt.datetime:
        """Move ``end`` back to the ingestion checkpoint when logs acknowledged before it may not be
        queryable yet (and the checkpoint is not so far behind that ingestion looks stuck)."""
        checkpoint: dt.datetime = self.services.live_checkpoint()
        if checkpoint < end <= checkpoint + CHECKPOINT_SLACK:
            return _floor(checkpoint, MINUTE)  # whole minutes keep the rollup usable
        return end

    def _check(
        self, team_id: int, due: Sequence[tuple[LogsAlert, dt.datetime, dt.datetime]], report: TickReport
    ) -> tuple[dict[Any, CheckOutcome], int]:
        def execute(select: Select) -> QueryResult:
            report.store_queries += 1
            result: QueryResult = self.services.run_query(select, team_id=team_id, limits=self.limits)
            return result

        requests = [
            CheckRequest(
                key=alert.id,
                filters=alert_filters(alert),
                window_minutes=alert.window_minutes,
                periods=alert.evaluation_periods,
                end=end,
            )
            for alert, end, _next in due
        ]
        started = time.perf_counter()
        outcomes = check_counts(execute, requests, chunk_size=self.services.settings.alerts_check_alerts_per_query)
        elapsed = time.perf_counter() - started
        report.store_seconds += elapsed
        return outcomes, int(elapsed * 1000)

    def _record_notices(self, notified: Sequence[tuple[LogsAlert, AlertNotice]], written: Sequence[str]) -> None:
        """Capture the internal events of the notifications whose checks were written."""
        writer = self.services.events_writer
        kept = set(written)
        by_team: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for alert, notice in notified:
            if alert.id in kept:
                by_team[alert.team_id].append(internal_event(alert, notice))
        if writer is None:
            return
        for team_id, events in by_team.items():
            try:
                capture(writer, team_id, events, max_decompressed_bytes=self.services.settings.max_decompressed_bytes)
            except Exception:  # the notifications went out; their record is a convenience
                log.exception("alert events of project %s not recorded", team_id)

    def _deliver_all(
        self,
        notices: dict[str, AlertNotice],
        destinations: dict[str, list[LogsAlertDestination]],
        report: TickReport,
    ) -> dict[str, str]:
        """Send every notification, in parallel; ``{alert id: why one of its deliveries failed}``."""
        jobs = [
            (alert_id, destination, notice)
            for alert_id, notice in notices.items()
            for destination in destinations.get(alert_id, [])
            if destination.kind == notice.kind
        ]
        failures: dict[str, str] = {}
        if not jobs:
            return failures

        def send(job: tuple[str, LogsAlertDestination, AlertNotice]) -> tuple[str, str | None]:
            alert_id, destination, notice = job
            try:
                config = self.services.secret_box.open_fields(destination.config)
                self.deliverer.deliver(destination.destination_type, config, notice)
                return alert_id, None
            except (SecretKeyError, DeliveryError) as exc:
                log.warning("alert %s: %s notification not delivered: %s", alert_id, notice.kind, exc)
                return alert_id, f"{notice.kind} notification to {destination.destination_type}: {exc}"

        workers = max(1, min(len(jobs), self.services.settings.alerts_delivery_threads))
        with ThreadPoolExecutor(workers, thread_name_prefix="logpond-alert-delivery") as pool:
            for alert_id, problem in pool.map(send, jobs):
                if problem is not None:
                    failures.setdefault(alert_id, problem)
                report.notifications += problem is None
                report.failed_deliveries += problem is not None
        return failures

    def _notice(
        self, alert: LogsAlert, kind: str, transition: Transition, outcome: CheckOutcome, now: dt.datetime
    ) -> AlertNotice:
        base = (
            self.services.settings.public_url or f"http://{self.services.settings.host}:{self.services.settings.port}"
        )
        base = base.rstrip("/")
        error = outcome.message if isinstance(outcome, CheckFailed) else None
        return AlertNotice(
            kind=kind,
            event_id=str(uuid.uuid4()),
            triggered_at=now,
            alert_id=alert.id,
            alert_name=alert.name,
            team_id=alert.team_id,
            threshold_count=alert.threshold_count,
            threshold_operator=alert.threshold_operator,
            window_minutes=alert.window_minutes,
            result_count=outcome.counts[0] if isinstance(outcome, CheckSucceeded) and outcome.counts else None,
            service_names=tuple(alert.filters.get("serviceNames") or ()),
            severity_levels=tuple(alert.filters.get("severityLevels") or ()),
            consecutive_failures=transition.status.consecutive_failures,
            error_message=error,
            logs_url=f"{base}/project/{alert.team_id}/logs",
            alert_url=f"{base}/project/{alert.team_id}/logs/alerts/{alert.id}",
        )


def delivery_settings(settings: Any) -> DeliverySettings:
    return DeliverySettings(
        allow_http_loopback=settings.alerts_allow_http_loopback,
        timeout_seconds=settings.alerts_delivery_timeout_seconds,
        attempts=settings.alerts_delivery_attempts,
        backoff_seconds=settings.alerts_delivery_backoff_seconds,
        slack_api_url=settings.alerts_slack_api_url,
    )


def _delivery_values(
    alert: LogsAlert, delivered_to_some: bool, failures: dict[str, str], now: dt.datetime
) -> dict[str, Any]:
    """The alert's delivery columns after this tick: the failure, or cleared by a notification that went out."""
    if alert.id in failures:
        return {"last_delivery_error": failures[alert.id], "last_delivery_error_at": now}
    if delivered_to_some and alert.last_delivery_error is not None:
        return {"last_delivery_error": None, "last_delivery_error_at": None}
    return {}


def _config(alert: LogsAlert) -> AlertConfig:
    return AlertConfig(
        threshold_count=alert.threshold_count,
        threshold_operator="below" if alert.threshold_operator == "below" else "above",
        evaluation_periods=alert.evaluation_periods,
        datapoints_to_alarm=alert.datapoints_to_alarm,
        cooldown_minutes=alert.cooldown_minutes,
    )


def _status(alert: LogsAlert) -> AlertStatus:
    return AlertStatus(
        state=State(alert.state),
        consecutive_failures=alert.consecutive_failures,
        last_notified_at=alert.last_notified_at,
        snooze_until=alert.snooze_until,
    )


def _result(
    alert: LogsAlert,
    token: str,
    transition: Transition,
    outcome: CheckOutcome,
    now: dt.datetime,
    next_slot: dt.datetime,
    millis: int,
) -> AlertCheckResult:
    status = transition.status
    values: dict[str, Any] = {
        "state": status.state.value,
        "consecutive_failures": status.consecutive_failures,
        "last_notified_at": status.last_notified_at,
        "snooze_until": status.snooze_until,
        "last_checked_at": now,
        "next_check_at": next_slot,
    }
    if isinstance(outcome, CheckFailed) and outcome.transient:
        values = {"last_checked_at": now}  # nothing changes; the same slot is tried again at the next tick
    elif isinstance(outcome, CheckFailed):
        values["last_error_message"] = outcome.message
    event = None
    if transition.event:
        event = {
            "kind": "check",
            "state_before": alert.state,
            "state_after": status.state.value,
            "threshold_breached": transition.breached,
            "result_count": outcome.counts[0] if isinstance(outcome, CheckSucceeded) and outcome.counts else None,
            "error_message": outcome.message if isinstance(outcome, CheckFailed) else None,
            "query_duration_ms": millis,
        }
    return AlertCheckResult(alert.id, token, values, event)
