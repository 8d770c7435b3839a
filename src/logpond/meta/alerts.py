"""Log alerts in the metadata database: the rules, their history, their destinations, and the scheduler's
claims.

What a change *means* (which events an update records, how the state moves) is decided in
``logpond.alerts``; this module stores it atomically. Two things need care across processes:

- the per-project limit on alerts is checked and the row inserted in one serialised transaction;
- the scheduler claims due alerts with a lease and a token in one transaction (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, the database write lock on SQLite), so two servers on one database never check the same
  alert twice, and writes a check's result only while its token still stands.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, not_, or_, select, update

from logpond.meta.errors import ConflictError
from logpond.meta.models import LogsAlertDestinationRow, LogsAlertEventRow, LogsAlertRow, ProjectRow, UserRow
from logpond.meta.records import AlertCheckResult, LogsAlert, LogsAlertDestination, LogsAlertEvent

if TYPE_CHECKING:
    from logpond.meta.db import MetaDB

# The plan of an update: (column values to set, history entries to add), computed from the current alert.
UpdatePlan = Callable[[LogsAlert], tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]]

_ALERT_LOCK = 0x6C6F67706F6E6403
_WRITABLE = frozenset(c.name for c in LogsAlertRow.__table__.columns) - {"id", "team_id", "created_at", "claim_token"}


class AlertLimitError(ConflictError):
    """The project already has the most alerts it may have."""


class AlertsRepo:
    def __init__(self, db: MetaDB) -> None:
        self._db = db

    # --- the rules ---------------------------------------------------------------------------------------

    def create(
        self,
        team_id: int,
        values: Mapping[str, Any],
        *,
        created_by_id: int | None,
        max_per_team: int,
        events: Sequence[Mapping[str, Any]] = (),
    ) -> LogsAlert:
        """A new alert of project ``team_id``; AlertLimitError when it already has ``max_per_team``."""
        now = self._db._clock()
        with self._db._writing() as session:
            self._db._lock(session, _ALERT_LOCK)
            if session.get(ProjectRow, team_id) is None:
                raise ConflictError(f"project {team_id} does not exist")
            existing = session.scalar(select(func.count()).where(LogsAlertRow.team_id == team_id)) or 0
            if existing >= max_per_team:
                raise AlertLimitError(f"a project may have at most {max_per_team} alerts")
            row = LogsAlertRow(
                id=str(uuid.uuid4()),
                team_id=team_id,
                created_by_id=created_by_id,
                created_at=now,
                updated_at=now,
                **_checked(values),
            )
            session.add(row)
            session.flush()
            _add_events(session, row, events, now)
            return _alert(row)

    def get(self, team_id: int, alert_id: str) -> LogsAlert | None:
        """The alert ``alert_id`` of project ``team_id``; None when absent or another project's."""
        alert_id = _canonical(alert_id) or ""
        if not alert_id:
            return None
        with self._db._reading() as session:
            row = session.get(LogsAlertRow, alert_id)
            return None if row is None or row.team_id != team_id else _alert(row)

    def page(
        self, team_id: int, *, created_by_uuid: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[int, list[LogsAlert]]:
        """(total, one page) of the project's alerts, newest first; only those created by the user with
        ``created_by_uuid`` when given."""
        where = [LogsAlertRow.team_id == team_id]
        if created_by_uuid is not None:
            creator = select(UserRow.id).where(UserRow.uuid == created_by_uuid).scalar_subquery()
            where.append(LogsAlertRow.created_by_id == creator)
        with self._db._reading() as session:
            total = session.scalar(select(func.count()).where(*where)) or 0
            rows = session.scalars(
                select(LogsAlertRow)
                .where(*where)
                .order_by(LogsAlertRow.created_at.desc(), LogsAlertRow.id)
                .limit(limit)
                .offset(offset)
            )
            return total, [_alert(row) for row in rows]

    def list_all(self, team_id: int | None = None) -> list[LogsAlert]:
        """Every alert (of one project, or of all), oldest first: for operators' listings."""
        query = select(LogsAlertRow).order_by(LogsAlertRow.team_id, LogsAlertRow.created_at)
        if team_id is not None:
            query = query.where(LogsAlertRow.team_id == team_id)
        with self._db._reading() as session:
            return [_alert(row) for row in session.scalars(query)]

    def update(self, team_id: int, alert_id: str, plan: UpdatePlan) -> LogsAlert | None:
        """Apply ``plan`` to the current alert in one transaction; None when the alert is not the project's.

        An update also voids a scheduler's claim, so a check running meanwhile does not overwrite it."""
        alert_id = _canonical(alert_id) or ""
        if not alert_id:
            return None
        now = self._db._clock()
        with self._db._writing() as session:
            row = session.get(LogsAlertRow, alert_id, with_for_update=True)
            if row is None or row.team_id != team_id:
                return None
            values, events = plan(_alert(row))
            for name, value in _checked(values).items():
                setattr(row, name, value)
            row.updated_at = now
            row.claim_token = None
            row.claimed_until = None
            session.flush()
            _add_events(session, row, events, now)
            return _alert(row)

    def delete(self, team_id: int, alert_id: str) -> bool:
        """Delete the alert with its history and destinations; True if it existed."""
        alert_id = _canonical(alert_id) or ""
        if not alert_id:
            return False
        with self._db._writing() as session:
            found = session.scalar(
                select(LogsAlertRow.id).where(LogsAlertRow.id == alert_id, LogsAlertRow.team_id == team_id)
            )
            if found is None:
                return False
            # explicit, not only ON DELETE CASCADE: SQLite enforces it only with foreign keys on
            for table in (LogsAlertEventRow, LogsAlertDestinationRow):
                session.execute(delete(table).where(table.alert_id == alert_id))
            session.execute(delete(LogsAlertRow).where(LogsAlertRow.id == alert_id))
            return True

    # --- history -----------------------------------------------------------------------------------------

    def list_events(
        self, team_id: int, alert_id: str, *, kinds: Iterable[str] = (), limit: int = 100, offset: int = 0
    ) -> tuple[int, list[LogsAlertEvent]]:
        """(total, one page) of the alert's history, newest first; checks that neither failed nor changed
        the state are not shown."""
        where = [
            LogsAlertEventRow.alert_id == alert_id,
            LogsAlertEventRow.team_id == team_id,
            not_(
                and_(
                    LogsAlertEventRow.kind == "check",
                    LogsAlertEventRow.state_before == LogsAlertEventRow.state_after,
                    LogsAlertEventRow.error_message.is_(None),
                )
            ),
        ]
        wanted = list(kinds)
        if wanted:
            where.append(LogsAlertEventRow.kind.in_(wanted))
        with self._db._reading() as session:
            total = session.scalar(select(func.count()).where(*where)) or 0
            rows = session.scalars(
                select(LogsAlertEventRow)
                .where(*where)
                .order_by(LogsAlertEventRow.created_at.desc(), LogsAlertEventRow.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return total, [_event(row) for row in rows]

    def events_since(self, alert_ids: Sequence[str], since: datetime) -> dict[str, list[LogsAlertEvent]]:
        """The history of each alert from ``since`` on, oldest first (for ``state_timeline``)."""
        found: dict[str, list[LogsAlertEvent]] = {alert_id: [] for alert_id in alert_ids}
        if not alert_ids:
            return found
        with self._db._reading() as session:
            rows = session.scalars(
                select(LogsAlertEventRow)
                .where(LogsAlertEventRow.alert_id.in_(list(alert_ids)), LogsAlertEventRow.created_at >= since)
                .order_by(LogsAlertEventRow.created_at, LogsAlertEventRow.id)
            )
            for row in rows:
                found[row.alert_id].append(_event(row))
        return found

    def delete_events_before(self, cutoff: datetime, *, limit: int = 10_000) -> int:
        """Delete up to ``limit`` history entries, of any alert, older than ``cutoff``."""
        with self._db._writing() as session:
            ids = list(
                session.scalars(select(LogsAlertEventRow.id).where(LogsAlertEventRow.created_at < cutoff).limit(limit))
            )
            if ids:
                session.execute(delete(LogsAlertEventRow).where(LogsAlertEventRow.id.in_(ids)))
            return len(ids)

    # --- destinations ------------------------------------------------------------------------------------

    def add_destinations(
        self, team_id: int, alert_id: str, destination_type: str, config: Mapping[str, Any], kinds: Sequence[str]
    ) -> list[LogsAlertDestination] | None:
        """One destination per notification kind; None when the alert is not the project's."""
        now = self._db._clock()
        with self._db._writing() as session:
            alert_id = _canonical(alert_id) or ""
            alert = session.get(LogsAlertRow, alert_id) if alert_id else None
            if alert is None or alert.team_id != team_id:
                return None
            rows = [
                LogsAlertDestinationRow(
                    id=str(uuid.uuid4()),
                    alert_id=alert_id,
                    team_id=team_id,
                    kind=kind,
                    destination_type=destination_type,
                    config=copy.deepcopy(dict(config)),
                    created_at=now,
                )
                for kind in kinds
            ]
            session.add_all(rows)
            session.flush()
            return [_destination(row) for row in rows]

    def delete_destinations(self, team_id: int, alert_id: str, destination_ids: Sequence[str]) -> list[str]:
        """Delete the alert's destinations among ``destination_ids``; returns the ids that are not the
        alert's (and then deletes nothing)."""
        with self._db._writing() as session:
            owned = set(
                session.scalars(
                    select(LogsAlertDestinationRow.id).where(
                        LogsAlertDestinationRow.alert_id == alert_id,
                        LogsAlertDestinationRow.team_id == team_id,
                        LogsAlertDestinationRow.id.in_(list(destination_ids)),
                    )
                )
            )
            missing = [i for i in destination_ids if i not in owned]
            if not missing:
                session.execute(delete(LogsAlertDestinationRow).where(LogsAlertDestinationRow.id.in_(list(owned))))
            return missing

    def destinations(self, alert_ids: Sequence[str]) -> dict[str, list[LogsAlertDestination]]:
        """Each alert's destinations, oldest first."""
        found: dict[str, list[LogsAlertDestination]] = {alert_id: [] for alert_id in alert_ids}
        if not alert_ids:
            return found
        with self._db._reading() as session:
            rows = session.scalars(
                select(LogsAlertDestinationRow)
                .where(LogsAlertDestinationRow.alert_id.in_(list(alert_ids)))
                .order_by(LogsAlertDestinationRow.created_at, LogsAlertDestinationRow.id)
            )
            for row in rows:
                found[row.alert_id].append(_destination(row))
        return found

    # --- the scheduler -----------------------------------------------------------------------------------

    def claim_due(self, now: datetime, *, lease: timedelta, limit: int) -> list[LogsAlert]:
        """Claim up to ``limit`` alerts due at ``now`` (enabled, not broken, not snoozed into the future,
        ``next_check_at`` reached or unset, not claimed by another scheduler) until ``now + lease``; each
        returned alert carries its ``claim_token``."""
        due = (
            select(LogsAlertRow.id)
            .where(
                LogsAlertRow.enabled.is_(True),
                LogsAlertRow.state != "broken",
                or_(LogsAlertRow.next_check_at.is_(None), LogsAlertRow.next_check_at <= now),
                not_(and_(LogsAlertRow.state == "snoozed", LogsAlertRow.snooze_until > now)),
                or_(LogsAlertRow.claimed_until.is_(None), LogsAlertRow.claimed_until <= now),
            )
            .order_by(LogsAlertRow.next_check_at, LogsAlertRow.id)
            .limit(limit)
            # PostgreSQL: rows another scheduler is claiming right now are skipped, not waited for
            .with_for_update(skip_locked=True)
        )
        token = str(uuid.uuid4())
        with self._db._writing() as session:
            ids = list(session.scalars(due))
            if not ids:
                return []
            session.execute(
                update(LogsAlertRow)
                .where(LogsAlertRow.id.in_(ids))
                .values(claim_token=token, claimed_until=now + lease)
                .execution_options(synchronize_session=False)
            )
            rows = session.scalars(select(LogsAlertRow).where(LogsAlertRow.id.in_(ids)))
            return sorted((_alert(row) for row in rows), key=lambda a: ids.index(a.id))

    def finish_checks(self, results: Sequence[AlertCheckResult]) -> list[str]:
        """Write the results of checks and release their claims, in one transaction; a result whose claim
        was voided meanwhile (the alert was updated, or the lease ran out and another took it) is dropped.
        Returns the ids of the alerts written."""
        now = self._db._clock()
        written: list[str] = []
        with self._db._writing() as session:
            for result in results:
                values = {**_checked(result.values), "claim_token": None, "claimed_until": None}
                done = session.execute(
                    update(LogsAlertRow)
                    .where(LogsAlertRow.id == result.alert_id, LogsAlertRow.claim_token == result.claim_token)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if not done.rowcount:  # type: ignore[attr-defined]
                    continue
                written.append(result.alert_id)
                if result.event is not None:
                    team_id = session.scalar(select(LogsAlertRow.team_id).where(LogsAlertRow.id == result.alert_id))
                    session.add(
                        LogsAlertEventRow(
                            id=str(uuid.uuid4()),
                            alert_id=result.alert_id,
                            team_id=team_id,
                            created_at=now,
                            **_event_values(result.event),
                        )
                    )
        return written


def _canonical(value: str) -> str | None:
    """``value`` as a lower-case hyphenated uuid, or None when it is not a uuid."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return None


def _checked(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(values) - _WRITABLE
    if unknown:
        raise ValueError(f"not a writable alert column: {sorted(unknown)[0]}")
    return {name: copy.deepcopy(value) for name, value in values.items()}


_EVENT_FIELDS = ("kind", "state_before", "state_after", "threshold_breached", "result_count", "error_message")


def _event_values(event: Mapping[str, Any]) -> dict[str, Any]:
    values = {name: event.get(name) for name in _EVENT_FIELDS}
    values["threshold_breached"] = bool(values["threshold_breached"])
    values["query_duration_ms"] = event.get("query_duration_ms")
    return values


def _add_events(session: Any, row: LogsAlertRow, events: Sequence[Mapping[str, Any]], now: datetime) -> None:
    for i, event in enumerate(events):
        session.add(
            LogsAlertEventRow(
                id=str(uuid.uuid4()),
                alert_id=row.id,
                team_id=row.team_id,
                # strictly increasing, so several entries of one change keep their order
                created_at=now + timedelta(microseconds=i),
                **_event_values(event),
            )
        )


def _alert(row: LogsAlertRow) -> LogsAlert:
    return LogsAlert(
        id=row.id,
        team_id=row.team_id,
        name=row.name,
        enabled=row.enabled,
        filters=copy.deepcopy(row.filters),
        threshold_count=row.threshold_count,
        threshold_operator=row.threshold_operator,
        window_minutes=row.window_minutes,
        check_interval_minutes=row.check_interval_minutes,
        evaluation_periods=row.evaluation_periods,
        datapoints_to_alarm=row.datapoints_to_alarm,
        cooldown_minutes=row.cooldown_minutes,
        snooze_until=row.snooze_until,
        schedule_restriction=copy.deepcopy(row.schedule_restriction),
        state=row.state,
        next_check_at=row.next_check_at,
        last_notified_at=row.last_notified_at,
        last_checked_at=row.last_checked_at,
        first_enabled_at=row.first_enabled_at,
        consecutive_failures=row.consecutive_failures,
        last_error_message=row.last_error_message,
        created_by_id=row.created_by_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        claim_token=row.claim_token,
        last_delivery_error=row.last_delivery_error,
        last_delivery_error_at=row.last_delivery_error_at,
    )


def _event(row: LogsAlertEventRow) -> LogsAlertEvent:
    return LogsAlertEvent(
        id=row.id,
        alert_id=row.alert_id,
        created_at=row.created_at,
        kind=row.kind,
        state_before=row.state_before,
        state_after=row.state_after,
        threshold_breached=row.threshold_breached,
        result_count=row.result_count,
        error_message=row.error_message,
        query_duration_ms=row.query_duration_ms,
    )


def _destination(row: LogsAlertDestinationRow) -> LogsAlertDestination:
    return LogsAlertDestination(
        id=row.id,
        alert_id=row.alert_id,
        kind=row.kind,
        destination_type=row.destination_type,
        config=copy.deepcopy(row.config),
        created_at=row.created_at,
    )
