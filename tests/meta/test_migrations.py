"""Schema migrations: from empty, re-run, and in step with the models."""

from __future__ import annotations

from importlib.resources import files

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from logpond.meta import MetaDB
from logpond.meta.migrate import current_revision, head_revision
from logpond.meta.models import Base
from tests.meta._support import OpenMeta

TABLES = {"organizations", "projects", "users", "organization_memberships", "personal_api_keys"}


def test_migrate_creates_every_table_on_an_empty_database(open_meta: OpenMeta) -> None:
    """Migrating an empty database creates all metadata tables and records the head revision."""
    db = open_meta()
    assert current_revision(db.engine) is None

    db.migrate()

    assert set(inspect(db.engine).get_table_names()) >= TABLES
    assert current_revision(db.engine) == head_revision()


def test_migrate_again_is_a_no_op_that_keeps_data(meta: MetaDB, open_meta: OpenMeta) -> None:
    """Running the migrations again, from the same or a new instance, changes nothing and loses nothing."""
    created = meta.bootstrap()
    assert created is not None

    meta.migrate()
    restarted = open_meta()
    restarted.migrate()

    assert current_revision(restarted.engine) == head_revision()
    assert restarted.get_project(1) == created.project
    assert restarted.bootstrap() is None


def test_migrated_schema_matches_the_models(meta: MetaDB) -> None:
    """Autogenerate finds no difference between the migrated database and the ORM models."""
    with meta.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_migration_scripts_ship_inside_the_package() -> None:
    """The Alembic environment and revisions are package files, so an installed logpond can migrate."""
    migrations = files("logpond.meta.migrations")

    assert migrations.joinpath("env.py").is_file()
    assert any(entry.name.endswith("_initial.py") for entry in migrations.joinpath("versions").iterdir())
