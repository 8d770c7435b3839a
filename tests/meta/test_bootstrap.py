"""First start: the default organisation, project 1 and the admin user."""

from __future__ import annotations

import re
from datetime import timedelta

from logpond.meta import MembershipLevel, MetaDB
from tests.meta._support import OpenMeta


def test_bootstrap_creates_the_defaults_once(meta: MetaDB) -> None:
    """The first bootstrap creates org, project 1 and an owner admin; the second does nothing."""
    created = meta.bootstrap()

    assert created is not None
    assert created.organization.name == "Default"
    assert created.organization.slug == "default"
    assert created.project.id == 1
    assert created.project.name == "Default project"
    assert created.project.organization_id == created.organization.id
    assert created.user.email == "admin@localhost"
    assert meta.user_membership_level(created.user.id, created.organization.id) is MembershipLevel.OWNER
    assert meta.get_admin_user() == created.user

    assert meta.bootstrap() is None
    assert len(meta.list_organizations()) == 1
    assert len(meta.list_projects()) == 1


def test_bootstrap_password_logs_the_admin_in(meta: MetaDB) -> None:
    """The password returned by bootstrap is the admin's; it is random and not stored in clear."""
    created = meta.bootstrap()
    assert created is not None

    assert len(created.password) >= 20
    assert meta.verify_password("admin@localhost", created.password) == created.user
    assert meta.verify_password("admin@localhost", created.password + "x") is None


def test_bootstrap_project_token_is_a_fresh_public_token(meta: MetaDB) -> None:
    """Project 1 gets a ``phc_`` token of 43 url-safe characters that finds it again."""
    created = meta.bootstrap()
    assert created is not None

    assert re.fullmatch(r"phc_[A-Za-z0-9_-]{43}", created.project.api_token)
    assert meta.get_project_by_token(created.project.api_token) == created.project


def test_bootstrap_on_another_instance_sees_the_existing_install(meta: MetaDB, open_meta: OpenMeta) -> None:
    """A second process starting on a bootstrapped database does not create a second admin."""
    assert meta.bootstrap() is not None

    assert open_meta().bootstrap() is None


def test_records_carry_utc_datetimes(open_meta: OpenMeta, meta_url: str) -> None:
    """Timestamps come back timezone-aware in UTC, even from a PostgreSQL session in another time zone."""
    if "options=" in meta_url:  # the PostgreSQL test URL: make the session's time zone Tokyo
        meta_url = meta_url.replace("options=", "options=-ctimezone%3DAsia/Tokyo%20")
    meta = open_meta(meta_url)
    meta.migrate()
    created = meta.bootstrap()
    assert created is not None
    project = meta.get_project(created.project.id)
    assert project is not None

    for moment in (project.created_at, project.updated_at, created.user.date_joined):
        assert moment.utcoffset() == timedelta(0)
    assert project.created_at == created.project.created_at
