"""The PostgreSQL test server helper itself: it must fail loudly, never skip, without PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

import tests._postgres as postgres_support
from tests._postgres import PostgresNotAvailable, PostgresServer, find_postgres_bindir


def test_missing_binaries_raise_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With no pg_config, no /usr/lib/postgresql and no initdb on PATH the helper says what to install."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres_support.glob, "glob", lambda pattern: [])

    with pytest.raises(PostgresNotAvailable, match="apt-get install -y postgresql"):
        find_postgres_bindir()


def test_schema_urls_are_isolated_from_each_other(postgres_server: PostgresServer) -> None:
    """Connections made from two create_schema URLs do not see each other's tables."""
    first = create_engine(postgres_server.create_schema("isolation_a"))
    second = create_engine(postgres_server.create_schema("isolation_b"))
    try:
        with first.begin() as connection:
            connection.execute(text("CREATE TABLE marker (id int)"))
            connection.execute(text("INSERT INTO marker VALUES (1)"))

        assert inspect(first).get_table_names() == ["marker"]
        assert inspect(second).get_table_names() == []
        with second.begin() as connection:
            connection.execute(text("CREATE TABLE marker (id int)"))
            assert connection.execute(text("SELECT count(*) FROM marker")).scalar() == 0
    finally:
        first.dispose()
        second.dispose()
        postgres_server.drop_schema("isolation_a")
        postgres_server.drop_schema("isolation_b")
