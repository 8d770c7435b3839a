"""Organisations (slugs) and projects (ids, tokens, filtering)."""

from __future__ import annotations

import pytest

from logpond.meta import MetaDB, NotFoundError
from tests.meta._support import OpenMeta


def test_slugs_are_derived_from_names_and_deduplicated(meta: MetaDB) -> None:
    """Names become lowercase dash-separated slugs; a taken slug gets -2, -3, … appended."""
    slugs = [
        meta.create_organization(name).slug for name in ("Acme Inc.", "ACME inc", "acme   INC!", "Other")
    ]

    assert slugs == ["acme-inc", "acme-inc-2", "acme-inc-3", "other"]


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("  Hello, World  ", "hello-world"),
        ("Café Crème", "cafe-creme"),
        ("R&D / 2026", "r-d-2026"),
        ("!!!", "organization"),
        ("x" * 80, "x" * 48),
    ],
)
def test_slug_shapes(meta: MetaDB, name: str, slug: str) -> None:
    """Slugs are ASCII letters and digits joined by single dashes, at most 48 characters."""
    assert meta.create_organization(name).slug == slug


def test_long_duplicate_slugs_stay_within_the_limit(meta: MetaDB) -> None:
    """A suffix on a maximum-length slug shortens the base instead of overflowing the column."""
    first = meta.create_organization("y" * 80)
    second = meta.create_organization("y" * 80)

    assert first.slug == "y" * 48
    assert second.slug == "y" * 46 + "-2"


def test_organizations_are_listed_and_fetched(meta: MetaDB) -> None:
    """Organisations come back by id and in creation order; unknown ids give None."""
    first = meta.create_organization("First")
    second = meta.create_organization("Second")

    assert meta.list_organizations() == [first, second]
    assert meta.get_organization(second.id) == second
    assert meta.get_organization("00000000-0000-0000-0000-000000000000") is None


@pytest.mark.parametrize("name", ["", "   ", "n" * 201])
def test_blank_or_huge_names_are_rejected(meta: MetaDB, name: str) -> None:
    """Organisation and project names must have 1 to 200 characters."""
    organization = meta.create_organization("Org")

    with pytest.raises(ValueError, match="name"):
        meta.create_organization(name)
    with pytest.raises(ValueError, match="name"):
        meta.create_project(name, organization.id)


def test_project_ids_start_at_one_and_count_up(meta: MetaDB) -> None:
    """Project ids are the integers 1, 2, 3… as PostHog team ids are."""
    organization = meta.create_organization("Org")

    ids = [meta.create_project(f"p{n}", organization.id).id for n in range(3)]

    assert ids == [1, 2, 3]


def test_project_without_organization_goes_to_the_first_one(meta: MetaDB) -> None:
    """create_project(name) files the project under the oldest organisation."""
    created = meta.bootstrap()
    assert created is not None
    meta.create_organization("Later")

    project = meta.create_project("Side project")

    assert project.organization_id == created.organization.id
    assert project.timezone == "UTC"


def test_project_needs_an_existing_organization(meta: MetaDB) -> None:
    """No organisation at all, or an unknown one, is a NotFoundError."""
    with pytest.raises(NotFoundError):
        meta.create_project("Orphan")
    with pytest.raises(NotFoundError):
        meta.create_project("Orphan", "00000000-0000-0000-0000-000000000000")


def test_project_time_zone_must_be_a_real_zone(meta: MetaDB) -> None:
    """An IANA zone name is kept; anything else is rejected."""
    organization = meta.create_organization("Org")

    assert meta.create_project("Paris", organization.id, timezone="Europe/Paris").timezone == "Europe/Paris"
    with pytest.raises(ValueError, match="time zone"):
        meta.create_project("Nowhere", organization.id, timezone="Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="time zone"):
        meta.create_project("Escape", organization.id, timezone="../../etc/passwd")


def test_project_lookup_by_token(meta: MetaDB) -> None:
    """Each project has its own token, which finds exactly that project; unknown tokens find nothing."""
    organization = meta.create_organization("Org")
    first = meta.create_project("First", organization.id)
    second = meta.create_project("Second", organization.id)

    assert first.api_token != second.api_token
    assert meta.get_project_by_token(first.api_token) == first
    assert meta.get_project_by_token(second.api_token) == second
    assert meta.get_project_by_token("phc_unknown") is None
    assert meta.get_project_by_token(first.api_token.upper()) is None
    assert meta.get_project_by_token("") is None


def test_get_project_by_id(meta: MetaDB) -> None:
    """get_project returns the project for a known id and None otherwise."""
    project = meta.create_project("Only", meta.create_organization("Org").id)

    assert meta.get_project(project.id) == project
    assert meta.get_project(project.id + 1) is None
    for impossible in (0, -1, 2**31, 2**70):  # as typed into a URL: no row, and no database error
        assert meta.get_project(impossible) is None


def test_list_projects_filters_by_organization(meta: MetaDB) -> None:
    """list_projects shows all projects, or only those of the given organisations (none for [])."""
    acme = meta.create_organization("Acme")
    globex = meta.create_organization("Globex")
    initech = meta.create_organization("Initech")
    a1 = meta.create_project("a1", acme.id)
    g1 = meta.create_project("g1", globex.id)
    a2 = meta.create_project("a2", acme.id)
    i1 = meta.create_project("i1", initech.id)

    assert meta.list_projects() == [a1, g1, a2, i1]
    assert meta.list_projects([acme.id]) == [a1, a2]
    assert meta.list_projects([globex.id, initech.id]) == [g1, i1]
    assert meta.list_projects(["00000000-0000-0000-0000-000000000000"]) == []
    assert meta.list_projects([]) == []


def test_two_instances_see_each_others_writes(meta: MetaDB, open_meta: OpenMeta) -> None:
    """Two MetaDB instances on the same database (two processes, say) read what the other wrote."""
    other = open_meta()

    organization = meta.create_organization("Shared")
    project = other.create_project("From the other side", organization.id)

    assert other.get_organization(organization.id) == organization
    assert meta.get_project_by_token(project.api_token) == project
    assert [p.id for p in meta.list_projects()] == [p.id for p in other.list_projects()] == [project.id]
