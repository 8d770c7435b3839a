"""Alembic environment for the metadata database.

``logpond.meta.migrate`` passes an open connection in ``config.attributes["connection"]``, already inside
a transaction (and, on PostgreSQL, holding the migration lock), so the upgrade runs with the same engine
settings as the application. Without one, the URL comes from the ``sqlalchemy.url`` option: that is how a
developer generates a new revision with ``logpond.meta.migrate.alembic_config(url=...)``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from logpond.meta.engine import create_meta_engine
from logpond.meta.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite can't ALTER most things; batch mode rebuilds the table instead. Note that SQLite cannot
        # switch foreign_keys off inside a transaction, so a table rebuild must not orphan referencing rows.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: use logpond.meta.migrate to run migrations")
    engine = create_meta_engine(url)
    try:
        with engine.connect() as fresh:
            _configure(fresh)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
