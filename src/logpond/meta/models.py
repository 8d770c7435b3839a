"""SQLAlchemy tables of the metadata database (SQLite or PostgreSQL).

These ORM classes stay inside ``logpond.meta``; the rest of the code base sees ``records``. The schema is
created and changed only by the Alembic migrations in ``migrations/``; a test checks that the migrations
and these models agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both engines.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so UTC is stored without an offset in
    SQLAlchemy's fixed-width text format, which also keeps ``<`` comparisons in SQL correct.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Deterministic constraint names: SQLite's batch migrations and PostgreSQL's ALTERs both need to name them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UUID_LENGTH = 36
NAME_LENGTH = 200


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class OrganizationRow(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    slug: Mapped[str] = mapped_column(String(48), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ProjectRow(Base):
    __tablename__ = "projects"
    # AUTOINCREMENT: SQLite must never hand a deleted project's id to a new one, because the id is the
    # team_id of everything in the column store and the new project would inherit the old one's logs.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(UUID_LENGTH), unique=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    api_token: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(UUID_LENGTH), unique=True)
    distinct_id: Mapped[str] = mapped_column(String(200), unique=True)
    # Stored lowercased so uniqueness and login are case-insensitive on both engines.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    first_name: Mapped[str] = mapped_column(String(150), server_default="")
    last_name: Mapped[str] = mapped_column(String(150), server_default="")
    # Null for a user who cannot log in with a password.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_staff: Mapped[bool] = mapped_column(Boolean, server_default=false())
    date_joined: Mapped[datetime]


class OrganizationMembershipRow(Base):
    __tablename__ = "organization_memberships"
    __table_args__ = (UniqueConstraint("organization_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    level: Mapped[int] = mapped_column(SmallInteger)
    joined_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PersonalAPIKeyRow(Base):
    __tablename__ = "personal_api_keys"

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(40))
    # "sha256$<hex>" of the plain key: every API request looks a key up by this.
    secure_value: Mapped[str] = mapped_column(String(300), unique=True, index=True)
    mask_value: Mapped[str] = mapped_column(String(32))
    scopes: Mapped[list[str]] = mapped_column(JSON(none_as_null=True))
    scoped_teams: Mapped[list[int] | None] = mapped_column(JSON(none_as_null=True))
    scoped_organizations: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    last_rolled_at: Mapped[datetime | None]


class ExportedAssetRow(Base):
    """One file export (PostHog's ExportedAsset); the file itself lives under ``<data_dir>/exports/``."""

    __tablename__ = "exported_assets"
    # AUTOINCREMENT: the file is named by the id, so an id must never come back for a new export.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # a MIME type: "text/csv" or "application/x-ndjson"
    export_format: Mapped[str] = mapped_column(String(100))
    # what was exported: {"source": LogsQuery, "columns": [...], "filename": ..., "row_limit": ...}
    export_context: Mapped[dict[str, Any]] = mapped_column(JSON(none_as_null=True))
    # the file's name inside the exports directory; null until the file is complete
    content_location: Mapped[str | None] = mapped_column(String(1000))
    exception: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_after: Mapped[datetime | None] = mapped_column(index=True)


class LogsAlertRow(Base):
    """A log alert (PostHog's LogsAlertConfiguration): its rule, its runtime state and the scheduler's claim."""

    __tablename__ = "logs_alerts"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean)
    # {"severityLevels": [...], "serviceNames": [...], "filterGroup": {...}}
    filters: Mapped[dict[str, Any]] = mapped_column(JSON(none_as_null=True))
    threshold_count: Mapped[int] = mapped_column(Integer)
    threshold_operator: Mapped[str] = mapped_column(String(8))
    window_minutes: Mapped[int] = mapped_column(SmallInteger)
    check_interval_minutes: Mapped[int] = mapped_column(SmallInteger)
    evaluation_periods: Mapped[int] = mapped_column(SmallInteger)
    datapoints_to_alarm: Mapped[int] = mapped_column(SmallInteger)
    cooldown_minutes: Mapped[int] = mapped_column(Integer)
    snooze_until: Mapped[datetime | None]
    # {"blocked_windows": [{"start": "HH:MM", "end": "HH:MM"}]} in the project's time zone
    schedule_restriction: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    state: Mapped[str] = mapped_column(String(20))
    # the scheduler's due query reads (enabled, next_check_at)
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    last_notified_at: Mapped[datetime | None]
    last_checked_at: Mapped[datetime | None]
    first_enabled_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer)
    last_error_message: Mapped[str | None] = mapped_column(Text)
    # why the last notification could not be delivered; cleared when one goes out again
    last_delivery_error: Mapped[str | None] = mapped_column(Text)
    last_delivery_error_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Set while one scheduler checks the alert: no other claims it before claimed_until, and its result is
    # written only if the token still matches (an API update in between clears it, and wins).
    claim_token: Mapped[str | None] = mapped_column(String(UUID_LENGTH))
    claimed_until: Mapped[datetime | None]


class LogsAlertEventRow(Base):
    """One entry of an alert's history (PostHog's LogsAlertEvent)."""

    __tablename__ = "logs_alert_events"
    __table_args__ = (Index("ix_logs_alert_events_alert_id_created_at", "alert_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("logs_alerts.id", ondelete="CASCADE"))
    team_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(20))
    state_before: Mapped[str] = mapped_column(String(20))
    state_after: Mapped[str] = mapped_column(String(20))
    threshold_breached: Mapped[bool] = mapped_column(Boolean)
    result_count: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    query_duration_ms: Mapped[int | None] = mapped_column(Integer)


class LogsAlertDestinationRow(Base):
    """Where one kind of notification of an alert goes (PostHog keeps one HogFunction per kind)."""

    __tablename__ = "logs_alert_destinations"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("logs_alerts.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # firing | resolved | broken | errored
    destination_type: Mapped[str] = mapped_column(String(16))  # webhook | slack | teams
    # URLs, and the secrets delivery needs (the webhook signing secret, a Slack bot token): kept in the
    # clear because sending needs them, never returned by the API
    config: Mapped[dict[str, Any]] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime]
