"""The embedded column store: ClickHouse's MergeTree on local disk through chDB.

chDB runs one embedded server per process, bound to one data path, and runs its queries one at a time
(it releases the GIL while it works). ``ChDBStore`` therefore shares one session per process and keeps
tenants of that process apart by database name as well as by ``team_id``.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from chdb import session as chdb_session

from logpond.store.base import QueryResult, StoreError
from logpond.store.migrations import MIGRATIONS
from logpond.store.schema import LOG_COLUMNS, ROW_TABLES

log = logging.getLogger(__name__)

_sessions: dict[str, Any] = {}
_sessions_lock = threading.Lock()
_session_lock = threading.Lock()  # a chDB session runs one statement at a time
_lanes: dict[str, queue.SimpleQueue[_Lane]] = {}  # path -> idle sessions for cancellable user queries
_controls: dict[str, _Lane] = {}  # path -> the session that sends KILL QUERY

# A cancellable query starts with this comment and its tag, so KILL QUERY can find it in system.processes
_TAG_PREFIX = "/* logpond-query:"
_TAG_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_ERROR_CODE_RE = re.compile(r"Code: (\d+)\.")
_ERROR_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]{2,})\)")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEDUP_TOKEN_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _session_for(path: Path) -> Any:
    """Return this process's chDB session for ``path``; chDB allows a single path per process."""
    key = str(path.resolve())
    with _sessions_lock:
        if key not in _sessions:
            if _sessions:
                other = next(iter(_sessions))
                raise StoreError(f"chDB is already open at {other} in this process; cannot also open {key}")
            path.mkdir(parents=True, exist_ok=True)
            _sessions[key] = chdb_session.Session(key)  # type: ignore[no-untyped-call]
        return _sessions[key]


class _Lane:
    """One more chDB session on the same data path, with its own lock.

    Sessions of one path share the embedded server (so they see the same tables and ``system.processes``)
    but each runs its own statement, so user queries on these lanes neither wait behind the writer's
    inserts nor hold them up, and one lane can KILL a query running on another.
    """

    def __init__(self, key: str) -> None:
        self.session = chdb_session.Session(key)  # type: ignore[no-untyped-call]
        self.lock = threading.Lock()


def _control_for(key: str) -> _Lane:
    with _sessions_lock:
        if key not in _controls:
            _controls[key] = _Lane(key)
        return _controls[key]


def _lanes_for(key: str, count: int) -> queue.SimpleQueue[_Lane]:
    with _sessions_lock:
        if key not in _lanes:
            lanes: queue.SimpleQueue[_Lane] = queue.SimpleQueue()
            for _ in range(max(1, count)):
                lanes.put(_Lane(key))
            _lanes[key] = lanes
        return _lanes[key]


def _dedup_setting(token: str | None) -> str:
    if not token:
        return ""
    if not _DEDUP_TOKEN_RE.fullmatch(token):
        raise ValueError(f"invalid dedup token {token!r}")
    return f", insert_deduplication_token = '{token}'"


def store_error_from(exc: Exception) -> StoreError:
    message = str(exc)
    number = _ERROR_CODE_RE.search(message)
    # the error's name closes the message; a name earlier on may quote the query ("(AS)")
    names = _ERROR_NAME_RE.findall(message)
    if number and names:
        return StoreError(message, code=names[-1], number=int(number.group(1)))
    return StoreError(message)


def _run(session: Any, lock: threading.Lock, sql: str, fmt: str) -> Any:
    with lock:
        try:
            return session.query(sql, fmt)
        except Exception as exc:
            # chDB 4.4 keeps the partial output of a statement that failed mid-stream (or was killed) and
            # prepends it to the next result; a throwaway statement clears it before anyone else runs
            try:
                session.query("SELECT 1", fmt)
            except Exception:
                log.exception("chDB did not recover after an error")
            raise store_error_from(exc) from exc


class ChDBStore:
    """``Store`` on chDB. ``database`` names the ClickHouse database holding logpond's tables."""

    def __init__(
        self, path: Path, *, database: str = "logpond", retention_days: int = 30, query_sessions: int = 2
    ) -> None:
        if not _IDENTIFIER_RE.match(database):
            raise ValueError(f"invalid database name {database!r}")
        self.path = path
        self.database = database
        self.retention_days = retention_days
        self.query_sessions = query_sessions
        self._session = _session_for(path)
        self._lock = _session_lock
        self._key = str(path.resolve())

    def _query(self, sql: str, fmt: str = "CSV") -> Any:
        """Run one statement. chDB serialises statements anyway; our lock makes "fail, then drain" atomic."""
        return _run(self._session, self._lock, sql, fmt)

    # --- schema ----------------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        db = self.database
        self.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        self.command(
            f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
            "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
            "ENGINE = MergeTree ORDER BY version"
        )
        done = {row[0] for row in self.execute(f"SELECT version FROM {db}.schema_migrations").rows}
        applied = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            for statement in migration.statements:
                self.command(statement.format(db=db))
            self.command(
                f"INSERT INTO {db}.schema_migrations (version, name) VALUES ({migration.version}, '{migration.name}')"
            )
            applied.append(migration.version)
        return applied

    def applied_migrations(self) -> list[int]:
        rows = self.execute(f"SELECT version FROM {self.database}.schema_migrations ORDER BY version").rows
        return [row[0] for row in rows]

    # --- writes ----------------------------------------------------------------------------------
    def insert_logs(self, table: pa.Table, *, dedup_token: str | None = None) -> None:
        if table.num_rows == 0:
            return
        columns = ", ".join(LOG_COLUMNS)
        selected = ", ".join("toUUID(uuid)" if c == "uuid" else c for c in LOG_COLUMNS)
        # the rollups' materialized views run side by side, not one after the other
        settings = " SETTINGS parallel_view_processing = 1"
        settings += _dedup_setting(dedup_token)
        sql = (
            f"INSERT INTO {self.database}.logs ({columns}, original_expiry_timestamp){settings} "
            f"SELECT {selected}, toDateTime(observed_timestamp, 'UTC') + INTERVAL {int(self.retention_days)} DAY "
            "FROM Python(arrow_batch)"
        )
        self._insert_arrow(sql, table)

    def insert_rows(self, table_name: str, table: pa.Table, *, dedup_token: str | None = None) -> None:
        """Insert a batch shaped like ``ROW_TABLES[table_name]`` (events, persons, distinct ids)."""
        if table.num_rows == 0:
            return
        schema, uuid_columns = ROW_TABLES[table_name]
        table = table.select(schema.names)
        columns = ", ".join(schema.names)
        selected = ", ".join(f"toUUID({c})" if c in uuid_columns else c for c in schema.names)
        sql = (
            f"INSERT INTO {self.database}.{table_name} ({columns}) SETTINGS insert_deduplicate = 1"
            f"{_dedup_setting(dedup_token)} SELECT {selected} FROM Python(arrow_batch)"
        )
        self._insert_arrow(sql, table)

    def reassign_events(self, team_id: int, moves: list[tuple[str, str]]) -> None:
        """Point the stored events of merged-away persons at the persons they merged into.

        A background mutation: rows are rewritten part by part shortly after, and reads meanwhile see old
        or new ids, never a mix within one row. ``moves`` are (from, into) person ids.
        """
        if not moves:
            return
        for old, new in moves:
            if not (_UUID_RE.match(old) and _UUID_RE.match(new)):
                raise ValueError(f"invalid person ids {old!r} -> {new!r}")
        olds = ", ".join(f"toUUID('{old}')" for old, _ in moves)
        self.command(
            f"ALTER TABLE {self.database}.events UPDATE person_id = multiIf("
            + ", ".join(f"person_id = toUUID('{old}'), toUUID('{new}')" for old, new in moves)
            + f", person_id) WHERE team_id = {int(team_id)} AND person_id IN ({olds})"
        )

    def _insert_arrow(self, sql: str, arrow_batch: pa.Table) -> None:
        # chDB's Python() table function finds the table by this local variable's name
        self._query(sql)

    # --- reads -----------------------------------------------------------------------------------
    def execute(self, sql: str) -> QueryResult:
        return self._result(self._query(sql, "JSONCompact"))

    @staticmethod
    def _result(result: Any) -> QueryResult:
        raw = result.bytes()
        if not raw:
            return QueryResult(columns=[], types=[], rows=[])
        doc = orjson.loads(raw)
        meta = doc.get("meta", [])
        stats = doc.get("statistics", {})
        return QueryResult(
            columns=[m["name"] for m in meta],
            types=[m["type"] for m in meta],
            rows=doc.get("data", []),
            elapsed=float(stats.get("elapsed", 0.0)),
            rows_read=int(stats.get("rows_read", 0)),
        )

    def command(self, sql: str) -> None:
        self._query(sql)

    # --- cancellable user queries ------------------------------------------------------------------
    def execute_cancellable(self, sql: str, tag: str) -> QueryResult:
        """Run a read on a query lane, findable by ``tag`` so ``cancel(tag)`` can stop it."""
        if not _TAG_RE.match(tag):
            raise ValueError(f"invalid query tag {tag!r}")
        lanes = _lanes_for(self._key, self.query_sessions)
        lane = lanes.get()
        try:
            return self._result(_run(lane.session, lane.lock, f"{_TAG_PREFIX}{tag} */ {sql}", "JSONCompact"))
        finally:
            lanes.put(lane)

    def cancel(self, tag: str) -> bool:
        """Stop the running query tagged ``tag``; False when no such query is running."""
        if not _TAG_RE.match(tag):
            raise ValueError(f"invalid query tag {tag!r}")
        control = _control_for(self._key)
        raw = _run(
            control.session,
            control.lock,
            f"KILL QUERY WHERE startsWith(query, '{_TAG_PREFIX}{tag} */') ASYNC",
            "CSV",
        )
        return bool(raw.bytes().strip())

    def disk_usage(self) -> dict[str, int]:
        """Compressed and uncompressed bytes and rows of the active parts of ``logs``."""
        result = self.execute(
            "SELECT sum(data_compressed_bytes), sum(data_uncompressed_bytes), sum(rows), "
            "sum(bytes_on_disk), count() FROM system.parts "
            f"WHERE database = '{self.database}' AND table = 'logs' AND active"
        )
        compressed, uncompressed, rows, on_disk, parts = result.rows[0]
        return {
            "compressed_bytes": int(compressed or 0),
            "uncompressed_bytes": int(uncompressed or 0),
            "rows": int(rows or 0),
            "bytes_on_disk": int(on_disk or 0),
            "parts": int(parts or 0),
        }

    def drop_database(self) -> None:
        self.command(f"DROP DATABASE IF EXISTS {self.database}")

    def close(self) -> None:
        # the session is process-wide and outlives any one store object
        pass
