"""Alembic migrations of the metadata database; run by ``logpond.meta.migrate``, no alembic.ini needed."""
