"""SQLAlchemy engines for the metadata database, tuned per backend.

SQLite is the default and has to cope with FastAPI's thread pool and with several processes (server, CLI)
on the same file, so it runs in WAL mode and write transactions take the write lock up front (``BEGIN
IMMEDIATE``): a deferred transaction that reads and then writes can fail with SQLITE_BUSY without ever
waiting, whereas an immediate one queues behind the current writer for up to ``busy_timeout``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

# Execution option marking a connection whose transaction will write.
WRITE_OPTION = "logpond_write"
WRITE_OPTIONS: dict[str, Any] = {WRITE_OPTION: True}
SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalize_url(url: str) -> URL:
    """Parse a database URL; bare ``postgresql://`` / ``postgres://`` mean psycopg 3, the driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_meta_engine(url: str) -> Engine:
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        # pre_ping: a server restart must not surface as errors on the first requests afterwards.
        return create_engine(parsed, pool_pre_ping=True)
    raise ValueError(f"unsupported metadata database {parsed.drivername!r}: use sqlite:/// or postgresql://")


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        # Each pooled connection would see its own empty database, and WAL needs a file.
        raise ValueError("the metadata database must be a SQLite file, not an in-memory database")
    if not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)

    engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure_connection(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (see _begin) instead of sqlite3's implicit, deferred BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across application crashes in WAL mode; only a power loss may drop the
            # last commits, which is acceptable for metadata and much cheaper than FULL.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        writes = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine
