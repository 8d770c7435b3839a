"""Exported-asset records: created without content, found only by their project, marked done, expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from logpond.meta import MetaDB, NotFoundError

CONTEXT = {"source": {"kind": "LogsQuery", "serviceNames": ["api"]}, "columns": ["body"], "filename": "logs-api"}
EXPIRES = datetime(2026, 3, 8, tzinfo=UTC)


@pytest.fixture
def project_ids(meta: MetaDB) -> tuple[int, int, int]:
    """Two projects and the admin user: (project 1, project 2, user id)."""
    boot = meta.bootstrap()
    assert boot is not None
    other = meta.create_project("Other")
    return boot.project.id, other.id, boot.user.id


def create(meta: MetaDB, team_id: int, user_id: int | None, expires: datetime | None = EXPIRES) -> int:
    asset = meta.create_exported_asset(
        team_id, export_format="text/csv", export_context=CONTEXT, created_by_id=user_id, expires_after=expires
    )
    return asset.id


def test_the_migration_creates_the_table(meta: MetaDB) -> None:
    """The exported_assets table exists after migrating."""
    assert "exported_assets" in inspect(meta.engine).get_table_names()


def test_a_new_asset_has_no_content_and_reads_back_unchanged(
    meta: MetaDB, project_ids: tuple[int, int, int]
) -> None:
    """A created asset reads back with every field as given, no content and no exception."""
    team, _, user = project_ids
    created = meta.create_exported_asset(
        team, export_format="application/x-ndjson", export_context=CONTEXT, created_by_id=user, expires_after=EXPIRES
    )
    found = meta.get_exported_asset(team, created.id)
    assert found == created
    assert (found.team_id, found.created_by_id, found.export_format) == (team, user, "application/x-ndjson")
    assert dict(found.export_context) == CONTEXT
    assert (found.has_content, found.content_location, found.exception) == (False, None, None)
    assert found.expires_after == EXPIRES
    assert found.created_at.tzinfo is not None


def test_another_projects_id_finds_nothing(meta: MetaDB, project_ids: tuple[int, int, int]) -> None:
    """An asset is invisible through another project, and out-of-range ids find nothing instead of failing."""
    team, other, user = project_ids
    asset_id = create(meta, team, user)
    assert meta.get_exported_asset(other, asset_id) is None
    assert meta.get_exported_asset(team, asset_id + 1) is None
    assert meta.get_exported_asset(team, 2**40) is None
    assert meta.get_exported_asset(team, 0) is None
    with pytest.raises(NotFoundError):
        meta.mark_exported_asset_done(other, asset_id, "1.csv")
    assert meta.delete_exported_asset(other, asset_id) is False
    assert meta.get_exported_asset(team, asset_id) is not None


def test_mark_done_gives_the_asset_content(meta: MetaDB, project_ids: tuple[int, int, int]) -> None:
    """Marking an asset done records where its file is, and it then has content."""
    team, _, user = project_ids
    asset_id = create(meta, team, user)
    done = meta.mark_exported_asset_done(team, asset_id, f"{asset_id}.csv")
    assert (done.has_content, done.content_location) == (True, f"{asset_id}.csv")
    assert meta.get_exported_asset(team, asset_id) == done


def test_ids_are_never_reused(meta: MetaDB, project_ids: tuple[int, int, int]) -> None:
    """A deleted asset's id is not handed to the next one (files are named by id)."""
    team, _, user = project_ids
    first = create(meta, team, user)
    second = create(meta, team, user)
    assert meta.delete_exported_asset(team, second) is True
    assert meta.get_exported_asset(team, second) is None
    assert create(meta, team, user) > second > first


def test_expired_assets_are_deleted_and_returned(meta: MetaDB, project_ids: tuple[int, int, int]) -> None:
    """The sweep removes assets of any project expiring at or before now, and keeps the rest."""
    team, other, user = project_ids
    old = create(meta, team, user, EXPIRES - timedelta(days=1))
    due = create(meta, other, None, EXPIRES)
    later = create(meta, team, user, EXPIRES + timedelta(seconds=1))
    forever = create(meta, team, user, None)

    expired = meta.delete_expired_exported_assets(EXPIRES)

    assert sorted(a.id for a in expired) == [old, due]
    assert meta.get_exported_asset(team, old) is None
    assert meta.get_exported_asset(other, due) is None
    assert meta.get_exported_asset(team, later) is not None
    assert meta.get_exported_asset(team, forever) is not None
    assert meta.delete_expired_exported_assets(EXPIRES) == []


def test_the_sweep_is_bounded(meta: MetaDB, project_ids: tuple[int, int, int]) -> None:
    """One sweep deletes at most ``limit`` assets, oldest ids first."""
    team, _, user = project_ids
    ids = [create(meta, team, user, EXPIRES - timedelta(days=1)) for _ in range(3)]
    assert [a.id for a in meta.delete_expired_exported_assets(EXPIRES, limit=2)] == ids[:2]
    assert [a.id for a in meta.delete_expired_exported_assets(EXPIRES, limit=2)] == ids[2:]


def test_an_unknown_project_is_refused(meta: MetaDB, project_ids: tuple[int, int, int]) -> None:
    """Creating an asset for a project that does not exist raises NotFoundError."""
    with pytest.raises(NotFoundError):
        create(meta, 999, None)


def test_the_record_does_not_share_its_context(meta: MetaDB, project_ids: tuple[int, int, int]) -> None:
    """Changing the caller's dict after creating, or a record's context, changes nothing stored."""
    team, _, user = project_ids
    context = {"source": {"serviceNames": ["api"]}}
    asset = meta.create_exported_asset(
        team, export_format="text/csv", export_context=context, created_by_id=user, expires_after=None
    )
    context["source"]["serviceNames"].append("worker")
    asset.export_context["source"]["serviceNames"].append("db")
    stored = meta.get_exported_asset(team, asset.id)
    assert stored is not None
    assert stored.export_context == {"source": {"serviceNames": ["api"]}}
