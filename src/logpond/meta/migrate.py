"""Running the Alembic migrations from code: no alembic.ini, no working-directory assumptions."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from logpond.meta.engine import WRITE_OPTIONS

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Arbitrary constant naming the PostgreSQL advisory lock that serialises concurrent upgrades (two server
# processes starting at once must not both try to create the tables).
_MIGRATION_LOCK_KEY = 0x6C6F67706F6E64  # "logpond"


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic config for our migrations, run on ``connection`` or, failing that, on ``url``."""
    config = Config()
    # Config values go through ConfigParser interpolation, where '%' is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it is already there."""
    # WRITE_OPTIONS make SQLite take the write lock first, which serialises concurrent upgrades there.
    with engine.connect().execution_options(**WRITE_OPTIONS) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        command.upgrade(alembic_config(connection), "head")
