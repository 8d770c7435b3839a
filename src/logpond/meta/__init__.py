"""The metadata layer: organisations, projects, users, personal API keys, exported assets and log alerts in SQLite or
PostgreSQL.

``MetaDB`` is the only entry point the rest of logpond needs; it hands out the frozen records below.
"""

from logpond.meta.alerts import AlertLimitError, AlertsRepo
from logpond.meta.db import Clock, MetaDB, utc_now
from logpond.meta.errors import ConflictError, NotFoundError
from logpond.meta.passwords import DEFAULT_SCRYPT, ScryptParams
from logpond.meta.records import (
    AlertCheckResult,
    Bootstrap,
    ExportedAsset,
    LogsAlert,
    LogsAlertDestination,
    LogsAlertEvent,
    Membership,
    MembershipLevel,
    Organization,
    PersonalAPIKey,
    Project,
    User,
)
from logpond.meta.scopes import InvalidScopeError, has_scope

__all__ = [
    "DEFAULT_SCRYPT",
    "AlertCheckResult",
    "AlertLimitError",
    "AlertsRepo",
    "Bootstrap",
    "Clock",
    "ConflictError",
    "ExportedAsset",
    "InvalidScopeError",
    "LogsAlert",
    "LogsAlertDestination",
    "LogsAlertEvent",
    "Membership",
    "MembershipLevel",
    "MetaDB",
    "NotFoundError",
    "Organization",
    "PersonalAPIKey",
    "Project",
    "ScryptParams",
    "User",
    "has_scope",
    "utc_now",
]
