"""Engine behaviour: SQLite settings, thread safety, URL handling."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from logpond.meta import MetaDB
from logpond.meta.engine import normalize_url
from tests.meta._support import OpenMeta


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    """Every SQLite connection uses WAL, synchronous=NORMAL, foreign keys and a busy timeout."""
    with MetaDB(f"sqlite:///{tmp_path / 'nested' / 'meta.sqlite3'}") as db, db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() > 0


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"])
def test_in_memory_sqlite_is_refused(url: str) -> None:
    """An in-memory database would differ per connection, so it is refused with a clear error."""
    with pytest.raises(ValueError, match="SQLite file"):
        MetaDB(url)


def test_unsupported_backend_is_refused() -> None:
    """Only SQLite and PostgreSQL are supported metadata databases."""
    with pytest.raises(ValueError, match="unsupported"):
        MetaDB("mysql://user@localhost/db")


def test_bare_postgresql_urls_use_psycopg() -> None:
    """postgresql:// and postgres:// URLs select the psycopg 3 driver logpond ships with."""
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_concurrent_writers_from_threads_and_instances_all_succeed(meta: MetaDB, open_meta: OpenMeta) -> None:
    """Many threads on two instances creating organisations and keys at once all succeed, none lost."""
    created = meta.bootstrap()
    assert created is not None
    other = open_meta()

    def work(n: int) -> str:
        db = meta if n % 2 else other
        db.create_organization("Busy")
        plain, _ = db.create_personal_api_key(created.user.id, f"k{n}", ["*"])
        assert db.authenticate_personal_api_key(plain) is not None
        return plain

    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(work, range(24)))

    slugs = sorted(o.slug for o in meta.list_organizations() if o.name == "Busy")
    assert len(slugs) == 24 == len(set(slugs))
    assert len(meta.list_personal_api_keys(created.user.id)) == 24 == len(set(keys))
