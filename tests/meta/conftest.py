"""Fixtures for the metadata tests: every ``meta`` test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from logpond.meta import MetaDB
from tests._postgres import postgres_server, postgres_url  # noqa: F401  (fixtures, requested via meta_url)
from tests.meta._support import FAST_SCRYPT, FakeClock, OpenMeta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))


@pytest.fixture(params=["sqlite", "postgres"])
def meta_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty metadata database on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def open_meta(meta_url: str, clock: FakeClock) -> Iterator[OpenMeta]:
    """Open MetaDB instances on the test's database; all are closed at teardown."""
    opened: list[MetaDB] = []
    test_clock = clock

    def open_one(url: str | None = None, *, clock: FakeClock | None = None) -> MetaDB:
        db = MetaDB(url or meta_url, clock=clock or test_clock, scrypt=FAST_SCRYPT)
        opened.append(db)
        return db

    yield open_one
    for db in opened:
        db.close()


@pytest.fixture
def meta(open_meta: OpenMeta) -> MetaDB:
    """A migrated, empty MetaDB."""
    db = open_meta()
    db.migrate()
    return db
