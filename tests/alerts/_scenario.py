"""Scheduler scenarios: logpond's collaborators built in-process around a real chDB store, a metadata database
and a clock the test moves, with notifications really delivered to a ``Receiver``.

    clock = Clock(START)
    with Receiver() as rx, World(tmp_path, store, rx, clock) as world:
        world.services.meta.bootstrap()
        alert = world.create_alert(filters={"serviceNames": ["api"]}, threshold_count=5)
        world.insert_logs(START - MIN, count=10, service="api")
        report = world.tick()
        [notice] = world.notices(alert)

Nothing sleeps and nothing runs in the background: a test calls ``tick()`` itself, so hours of checks take
as long as the queries they run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from logpond.alerts.destinations import KINDS, SECRET_FIELDS, SIGNATURE_HEADER, parse_destination, verify_signature
from logpond.alerts.rules import parse_alert, plan_create, plan_update
from logpond.alerts.scheduler import AlertScheduler, TickReport, delivery_settings
from logpond.app import build_services
from logpond.meta import MetaDB
from logpond.meta.records import LogsAlert, LogsAlertEvent
from logpond.store.chdb_store import ChDBStore
from tests._log_tables import log_row, log_table
from tests.alerts._receiver import ReceivedRequest, Receiver
from tests.conftest import make_settings
from tests.meta._support import FAST_SCRYPT

# on the 5-minute grid, in the past (the ingestion checkpoint is the real now, so checks are never clamped)
START = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
SEC = dt.timedelta(seconds=1)
HOOK_PATH = "/hook"


class Clock:
    """The time the scheduler and the metadata database see; it moves only when the test moves it."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, at: dt.datetime) -> None:
        self.now = at

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


@dataclass(frozen=True)
class Notice:
    """One webhook notification as the receiver got it (its signature already checked)."""

    type: str
    data: dict[str, Any]
    body: dict[str, Any]
    request: ReceivedRequest


class World:
    """One logpond's alerting parts (metadata, store, scheduler) around a shared clock and receiver."""

    def __init__(
        self,
        tmp_path: Path,
        store: ChDBStore,
        rx: Receiver,
        clock: Clock,
        *,
        meta_url: str | None = None,
        **overrides: Any,
    ) -> None:
        self.rx = rx
        self.clock = clock
        self.store = store
        values: dict[str, Any] = {
            "alerts_delivery_backoff_seconds": 0,
            "alerts_delivery_attempts": 2,
            "alerts_delivery_timeout_seconds": 5,
            "alerts_slack_api_url": rx.slack_api_url,
            **overrides,
        }
        self.settings = make_settings(tmp_path, **values)
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        # the metadata database reads the same clock, so history entries carry the scenario's times
        meta = MetaDB(meta_url or self.settings.effective_database_url, clock=clock, scrypt=FAST_SCRYPT)
        meta.migrate()
        self.services = build_services(self.settings, meta=meta, store=store, clock=clock)
        self.meta = meta
        self.scheduler = AlertScheduler(self.services)
        self.secrets: dict[str, str] = {}  # alert id -> its webhook's signing secret

    def __enter__(self) -> World:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.scheduler.stop()
        self.meta.close()

    # --- setting up ------------------------------------------------------------------------------------

    def create_alert(self, team_id: int = 1, *, webhook: bool = True, **body: Any) -> LogsAlert:
        """A new alert made of ``body`` as the API would take it (defaults: errors of service api, above 5),
        with a webhook destination for every notification kind unless ``webhook`` is false."""
        doc = {"name": "api errors", "filters": {"serviceNames": ["api"]}, "threshold_count": 5, **body}
        now = self.clock()
        values = plan_create(parse_alert(doc, now=now, partial=False), now=now)
        alert = self.meta.alerts.create(team_id, values, created_by_id=None, max_per_team=1000)
        if webhook:
            self.add_destination(alert, {"type": "webhook", "webhook_url": self.rx.url + HOOK_PATH})
        return alert

    def add_destination(self, alert: LogsAlert, body: Mapping[str, Any]) -> dict[str, Any]:
        """Add a destination (as the API's destinations endpoint checks it); returns its stored config."""
        kind, config = parse_destination(dict(body), delivery_settings(self.settings))
        sealed = self.services.secret_box.seal_fields(config, SECRET_FIELDS)  # stored as the API stores it
        added = self.meta.alerts.add_destinations(alert.team_id, alert.id, kind, sealed, KINDS)
        assert added is not None
        if kind == "webhook":
            self.secrets[alert.id] = config["signing_secret"]
        return config

    def update(self, alert: LogsAlert, **changes: Any) -> LogsAlert:
        """Apply a PATCH body to ``alert`` as the API does."""
        now = self.clock()

        def plan(current: LogsAlert) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            parsed = parse_alert(changes, now=now, partial=True, current=current)
            return plan_update(current, parsed, now=now)

        updated = self.meta.alerts.update(alert.team_id, alert.id, plan)
        assert updated is not None
        return updated

    def insert_logs(
        self,
        *at: dt.datetime,
        count: int = 1,
        team_id: int = 1,
        service: str = "api",
        severity: str = "error",
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        """``count`` logs at each of the instants ``at``."""
        rows = [
            log_row(ts, body="boom", severity=severity, service=service, attributes=attributes)
            for ts in at
            for _ in range(count)
        ]
        self.store.insert_logs(log_table(rows, team_id=team_id))

    # --- running and looking -----------------------------------------------------------------------------

    def tick(self, at: dt.datetime | None = None) -> TickReport:
        if at is not None:
            self.clock.set(at)
        return self.scheduler.tick()

    def get(self, alert: LogsAlert) -> LogsAlert:
        found = self.meta.alerts.get(alert.team_id, alert.id)
        assert found is not None
        return found

    def events(self, alert: LogsAlert, *kinds: str) -> list[LogsAlertEvent]:
        """The alert's history as the API lists it, oldest first."""
        _total, events = self.meta.alerts.list_events(alert.team_id, alert.id, kinds=kinds, limit=1000)
        return events[::-1]

    def states(self, alert: LogsAlert) -> list[tuple[str, str]]:
        """(state before, state after) of each recorded check, oldest first."""
        return [(e.state_before, e.state_after) for e in self.events(alert, "check")]

    def notices(self, alert: LogsAlert | None = None) -> list[Notice]:
        """The webhook notifications the receiver got (about ``alert``), oldest first; each one's signature
        must verify with the secret of the alert it is about."""
        found = []
        for request in self.rx.requests:
            if not request.path.startswith(HOOK_PATH):
                continue
            body = request.json
            assert isinstance(body, dict), request.body
            data = body["data"]
            secret = self.secrets[data["alert_id"]]
            assert verify_signature(secret, request.headers[SIGNATURE_HEADER.lower()], request.body)
            assert request.headers["x-logpond-event-id"] == body["id"]
            if alert is None or data["alert_id"] == alert.id:
                found.append(Notice(body["type"], data, body, request))
        return found

    def notice_types(self, alert: LogsAlert | None = None) -> list[str]:
        return [n.type for n in self.notices(alert)]
