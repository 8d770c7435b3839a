"""Migration 4 re-creates the (still empty) events table sorted by hour; it runs once."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from logpond.store import chdb_store
from logpond.store.chdb_store import ChDBStore
from logpond.store.migrations import MIGRATIONS


def _sorting_key(store: ChDBStore) -> str:
    sql = f"SELECT sorting_key FROM system.tables WHERE database = '{store.database}' AND name = 'events'"
    return str(store.execute(sql).rows[0][0])


def test_events_table_moves_from_days_to_hours(chdb_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store at schema 3 has events sorted by day; migrating adds version 4 and the hour key, once."""
    store = ChDBStore(chdb_path, database=f"t_{uuid.uuid4().hex[:12]}")
    try:
        with monkeypatch.context() as patch:
            patch.setattr(chdb_store, "MIGRATIONS", MIGRATIONS[:3])
            assert store.migrate() == [1, 2, 3]
        assert _sorting_key(store).startswith("team_id, toDate(timestamp), event")
        assert store.migrate() == [4]
        assert _sorting_key(store).startswith("team_id, toStartOfHour(timestamp), event")
        assert store.migrate() == []
        assert store.applied_migrations() == [1, 2, 3, 4]
    finally:
        store.drop_database()
