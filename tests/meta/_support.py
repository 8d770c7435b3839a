"""Helpers shared by the metadata tests (fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import inspect, text

from logpond.meta import MetaDB, ScryptParams

# Cheap scrypt settings so each test's bootstrap doesn't spend 0.2 s hashing; the stored hash carries its
# parameters, so verification runs exactly as in production (test_passwords covers the defaults).
FAST_SCRYPT = ScryptParams(n=2**10, r=8, p=1)


class FakeClock:
    """A clock tests can move; every reading also ticks a millisecond so creation order stays strict."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class OpenMeta(Protocol):
    """Opens another MetaDB on the test's database (default) or on ``url``, as another process would."""

    def __call__(self, url: str | None = None, *, clock: FakeClock | None = None) -> MetaDB: ...


def dump_all_tables(db: MetaDB) -> str:
    """Every value in every table of the database, as one string: for "is this stored anywhere?" checks."""
    chunks: list[str] = []
    with db.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                chunks.append(repr(tuple(row)))
    return "\n".join(chunks)
