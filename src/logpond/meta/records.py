"""The values the metadata layer hands out.

Callers get frozen dataclasses, never ORM instances, so nothing outside ``logpond.meta`` holds a session or
can lazy-load behind our back. Sequences are tuples so the records really are immutable. Every datetime is
timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any


class MembershipLevel(IntEnum):
    """A user's level in an organisation; the integers are PostHog's, clients read them as numbers."""

    MEMBER = 1
    ADMIN = 8
    OWNER = 15


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    name: str
    slug: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Project:
    """A PostHog "team": the unit of tenant isolation, its ``id`` is the ``team_id`` of every stored row."""

    id: int
    uuid: str
    organization_id: str
    name: str
    api_token: str
    timezone: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class User:
    # The password hash deliberately stays inside the package: nothing outside needs it.
    id: int
    uuid: str
    distinct_id: str
    email: str
    first_name: str
    last_name: str
    is_staff: bool
    date_joined: datetime


@dataclass(frozen=True, slots=True)
class Membership:
    """One organisation a user belongs to, with the user's level in it."""

    organization: Organization
    level: MembershipLevel


@dataclass(frozen=True, slots=True)
class PersonalAPIKey:
    """A personal API key as stored: its hash stays in the database and the plain key is never kept."""

    id: str
    user_id: int
    label: str
    mask_value: str
    scopes: tuple[str, ...]
    # None or empty: the key is not restricted to particular projects / organisations.
    scoped_teams: tuple[int, ...] | None
    scoped_organizations: tuple[str, ...] | None
    created_at: datetime
    last_used_at: datetime | None
    last_rolled_at: datetime | None

    def allows_project(self, project_id: int) -> bool:
        """Whether the key's project restriction lets it reach ``project_id``."""
        return not self.scoped_teams or project_id in self.scoped_teams

    def allows_organization(self, organization_id: str) -> bool:
        """Whether the key's organisation restriction lets it reach ``organization_id``."""
        return not self.scoped_organizations or organization_id in self.scoped_organizations


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What a fresh install created; ``password`` is the admin's plain password, shown once and not kept."""

    organization: Organization
    project: Project
    user: User
    password: str


@dataclass(frozen=True, slots=True)
class ExportedAsset:
    """A file export of one project (PostHog's ExportedAsset), without its content.

    ``content_location`` is the file's name inside the exports directory, set once the file is complete.
    ``export_context`` is a fresh copy of the stored JSON: changing it changes nothing stored.
    """

    id: int
    team_id: int
    created_by_id: int | None
    export_format: str
    export_context: Mapping[str, Any]
    content_location: str | None
    exception: str | None
    created_at: datetime
    expires_after: datetime | None

    @property
    def has_content(self) -> bool:
        return self.content_location is not None


@dataclass(frozen=True, slots=True)
class LogsAlert:
    """A log alert as stored: the rule (``filters``, thresholds, windows), its state and its schedule."""

    id: str
    team_id: int
    name: str
    enabled: bool
    filters: Mapping[str, Any]
    threshold_count: int
    threshold_operator: str
    window_minutes: int
    check_interval_minutes: int
    evaluation_periods: int
    datapoints_to_alarm: int
    cooldown_minutes: int
    snooze_until: datetime | None
    schedule_restriction: Mapping[str, Any] | None
    state: str
    next_check_at: datetime | None
    last_notified_at: datetime | None
    last_checked_at: datetime | None
    first_enabled_at: datetime | None
    consecutive_failures: int
    last_error_message: str | None
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime
    claim_token: str | None = None
    last_delivery_error: str | None = None
    last_delivery_error_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LogsAlertEvent:
    """One entry of an alert's history: a check that changed the state or failed, or a change by a user."""

    id: str
    alert_id: str
    created_at: datetime
    kind: str
    state_before: str
    state_after: str
    threshold_breached: bool
    result_count: int | None
    error_message: str | None
    query_duration_ms: int | None


@dataclass(frozen=True, slots=True)
class LogsAlertDestination:
    """Where one kind of an alert's notifications is sent; ``config`` holds secrets, keep it server-side."""

    id: str
    alert_id: str
    kind: str
    destination_type: str
    config: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AlertCheckResult:
    """What one check of a claimed alert changes: column values (``state``, ``next_check_at``, ...) and the
    history entry to add (the column values of a ``logs_alert_events`` row, without ids), if any."""

    alert_id: str
    claim_token: str
    values: Mapping[str, Any]
    event: Mapping[str, Any] | None = None
