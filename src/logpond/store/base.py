"""The column-store interface every engine implements.

Nothing here knows about HTTP or about tenants: callers hand in SQL that the query printer produced
(``logpond.query.printer``), which is where team isolation and read limits are added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa


@dataclass(frozen=True)
class QueryLimits:
    """Bounds applied to every read; printed as ClickHouse SETTINGS by the query printer."""

    max_execution_time: float = 60.0
    max_memory_usage: int = 4 * 1024**3
    max_result_rows: int = 100_000
    # ClickHouse compiles an aggregate expression seen three times to machine code, which takes seconds for
    # a select of hundreds of countIf columns; queries whose constants change every run gain nothing from it
    compile_aggregates: bool = True

    def as_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "max_execution_time": self.max_execution_time,
            "max_memory_usage": self.max_memory_usage,
            "max_result_rows": self.max_result_rows,
            "result_overflow_mode": "throw",
            "readonly": 2,
        }
        if not self.compile_aggregates:
            settings["compile_aggregate_expressions"] = 0
        return settings


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    elapsed: float = 0.0
    rows_read: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class StoreError(Exception):
    """A store query failed. ``code`` is the ClickHouse error name (e.g. ``TIMEOUT_EXCEEDED``)."""

    def __init__(self, message: str, *, code: str = "", number: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.number = number


class Store(Protocol):
    """A column store holding the ``logs`` table (and, later, events and persons)."""

    database: str

    def migrate(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied now."""

    def insert_logs(self, table: pa.Table, *, dedup_token: str | None = None) -> None:
        """Insert a batch shaped like ``LOG_ARROW_SCHEMA``; a repeated ``dedup_token`` is a no-op."""

    def insert_rows(self, table_name: str, table: pa.Table, *, dedup_token: str | None = None) -> None:
        """Insert events, persons or distinct-id rows (``store.schema.ROW_TABLES``); idempotent per token."""

    def reassign_events(self, team_id: int, moves: list[tuple[str, str]]) -> None:
        """Move stored events from merged-away persons to the persons they merged into (eventually)."""

    def execute(self, sql: str) -> QueryResult:
        """Run one read query produced by the printer and return typed rows."""

    def execute_cancellable(self, sql: str, tag: str) -> QueryResult:
        """Run a user's read query so that ``cancel(tag)`` can stop it; it does not wait behind writes."""

    def cancel(self, tag: str) -> bool:
        """Stop the running query tagged ``tag``; False when none is running."""

    def command(self, sql: str) -> None:
        """Run a statement with no result (DDL, maintenance). Never called with user input."""

    def close(self) -> None: ...
