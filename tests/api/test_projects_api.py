"""Projects, organisations, the current user and the current key, with PostHog's fields and pagination.

The module's app has the bootstrapped organisation (owner) with five projects, and a second organisation
(admin) with one project: six projects visible to the admin's keys.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import pytest_asyncio

from logpond.meta.records import MembershipLevel
from tests.api._support import assert_error, parse_iso
from tests.conftest import Env

pytestmark = pytest.mark.asyncio(loop_scope="module")


class World:
    def __init__(
        self, env: Env, first_org: Any, second_org: Any, project_ids: list[int], second_ids: list[int]
    ) -> None:
        self.env = env
        self.first_org = first_org
        self.second_org = second_org
        self.project_ids = project_ids  # every visible project, by id
        self.second_ids = second_ids  # those of the second organisation


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(module_env: Env) -> World:
    meta = module_env.services.meta
    first = meta.list_organizations()[0]
    for i in range(4):
        meta.create_project(f"Extra {i}")
    second = meta.create_organization("Second Org")
    meta.add_membership(meta.get_admin_user().id, second.id, MembershipLevel.ADMIN)
    other = meta.create_project("Over there", second.id, timezone="Europe/Paris")
    ids = sorted(p.id for p in meta.list_projects())
    return World(module_env, first, second, ids, [other.id])


async def get(env: Env, url: str, key: str | None = None) -> httpx.Response:
    return await env.client.get(url, headers=env.auth(key))


def is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def is_timestamp(value: Any) -> bool:
    """DRF's encoding: ISO 8601 with microseconds and ``Z``."""
    return isinstance(value, str) and value.endswith("Z") and parse_iso(value) is not None


def optional(kind: type | tuple[type, ...]) -> Any:
    return lambda v: v is None or isinstance(v, kind)


def of(kind: type | tuple[type, ...]) -> Any:
    return lambda v: isinstance(v, kind) and not (kind is int and isinstance(v, bool))


PROJECT_ITEM = {
    "id": of(int),
    "uuid": is_uuid,
    "organization": is_uuid,
    "project_id": of(int),
    "api_token": lambda v: isinstance(v, str) and v.startswith("phc_") and len(v) > 20,
    "name": of(str),
    "completed_snippet_onboarding": of(bool),
    "has_completed_onboarding_for": optional(dict),
    "ingested_event": of(bool),
    "is_demo": of(bool),
    "timezone": of(str),
    "access_control": of(bool),
    "effective_membership_level": lambda v: v in (None, 1, 8, 15),
}
PROJECT_DETAIL = {
    **PROJECT_ITEM,
    "created_at": is_timestamp,
    "updated_at": is_timestamp,
    "group_types": of(list),
    "app_urls": of(list),
    "anonymize_ips": of(bool),
    "test_account_filters": of(list),
    "primary_dashboard": optional(int),
    "week_start_day": optional(int),
    "secret_api_token": optional(str),
    "modifiers": of(dict),
}
ORGANIZATION = {
    "id": is_uuid,
    "name": of(str),
    "slug": lambda v: isinstance(v, str) and v != "" and v == v.lower() and " " not in v,
    "created_at": is_timestamp,
    "updated_at": is_timestamp,
    "membership_level": lambda v: v in (1, 8, 15),
    "plugins_access_level": of(int),
    "teams": of(list),
    "projects": of(list),
    "available_product_features": of(list),
    "metadata": of(dict),
    "member_count": optional(int),
    "members_can_use_personal_api_keys": of(bool),
}
USER = {
    "id": of(int),
    "uuid": is_uuid,
    "distinct_id": lambda v: isinstance(v, str) and v != "",
    "first_name": of(str),
    "last_name": of(str),
    "email": lambda v: isinstance(v, str) and "@" in v,
    "is_email_verified": of(bool),
    "date_joined": is_timestamp,
    "team": of(dict),
    "organization": of(dict),
    "organizations": of(list),
}
KEY = {
    "id": lambda v: isinstance(v, str) and v != "",
    "label": of(str),
    "value": lambda v: v is None,
    "mask_value": of(str),
    "created_at": is_timestamp,
    "last_used_at": lambda v: v is None or is_timestamp(v),
    "user_id": of(int),
    "scopes": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
    "scoped_teams": lambda v: v is None or (isinstance(v, list) and all(isinstance(t, int) for t in v)),
    "scoped_organizations": lambda v: v is None or (isinstance(v, list) and all(is_uuid(o) for o in v)),
    "last_rolled_at": lambda v: v is None or is_timestamp(v),
}


def assert_fields(doc: dict[str, Any], spec: dict[str, Any]) -> None:
    missing = set(spec) - set(doc)
    assert not missing, f"missing fields {sorted(missing)} in {doc}"
    wrong = {name: doc[name] for name, check in spec.items() if not check(doc[name])}
    assert not wrong, f"fields with the wrong type or value: {wrong}"


async def test_project_list_fields_and_order(world: World) -> None:
    """/api/projects/ lists every visible project in id order, each with PostHog's list-item fields."""
    body = (await get(world.env, "/api/projects/")).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert (body["count"], body["next"], body["previous"]) == (6, None, None)
    assert [p["id"] for p in body["results"]] == world.project_ids
    for item in body["results"]:
        assert_fields(item, PROJECT_ITEM)
        assert item["project_id"] == item["id"]
    by_id = {p["id"]: p for p in body["results"]}
    other = by_id[world.second_ids[0]]
    assert (other["organization"], other["timezone"], other["effective_membership_level"]) == (
        world.second_org.id, "Europe/Paris", 8)
    assert by_id[world.env.project.id]["effective_membership_level"] == 15
    assert by_id[world.env.project.id]["api_token"] == world.env.project.api_token


async def test_project_list_pagination_follows_absolute_links(world: World) -> None:
    """limit/offset pages carry absolute next/previous URLs that walk the whole list exactly once."""
    env = world.env
    url: str | None = "/api/projects/?limit=2"
    seen: list[int] = []
    pages = []
    while url is not None:
        body = (await env.client.get(url, headers=env.auth())).json()
        assert body["count"] == 6
        pages.append(body)
        seen.extend(p["id"] for p in body["results"])
        url = body["next"]
        if url is not None:
            assert httpx.URL(url).is_absolute_url and url.startswith("http://testserver/api/projects")
    assert seen == world.project_ids
    assert [len(p["results"]) for p in pages] == [2, 2, 2]
    assert pages[0]["previous"] is None
    previous = pages[2]["previous"]
    assert httpx.URL(previous).is_absolute_url
    back = (await env.client.get(previous, headers=env.auth())).json()
    assert [p["id"] for p in back["results"]] == world.project_ids[2:4]


@pytest.mark.parametrize(("query", "expected"), [("limit=2&offset=3", slice(3, 5)), ("offset=5", slice(5, 6)),
                                                 ("offset=60", slice(6, 6)), ("limit=100", slice(0, 6))])
async def test_project_list_limit_offset(world: World, query: str, expected: slice) -> None:
    """limit and offset select that window of the id-ordered list; count is always the total."""
    body = (await get(world.env, f"/api/projects/?{query}")).json()
    assert body["count"] == 6
    assert [p["id"] for p in body["results"]] == world.project_ids[expected]


async def test_project_list_bad_limit_is_400(world: World) -> None:
    """A non-numeric limit is a 400, not a silent default."""
    response = await get(world.env, "/api/projects/?limit=lots")
    assert_error(response, 400, type="validation_error", code="invalid_input", attr="limit")


async def test_project_detail_and_current(world: World) -> None:
    """/api/projects/<id>/ and @current return the full project; @current is the first project."""
    env = world.env
    detail = (await get(env, f"/api/projects/{env.project.id}/")).json()
    assert_fields(detail, PROJECT_DETAIL)
    assert (detail["id"], detail["name"], detail["api_token"], detail["organization"]) == (
        env.project.id, env.project.name, env.project.api_token, world.first_org.id)
    assert detail["secret_api_token"] is None or not detail["secret_api_token"].startswith("phc_")
    current = (await get(env, "/api/projects/@current/")).json()
    assert current == detail
    environment = (await get(env, f"/api/environments/{env.project.id}/")).json()
    assert environment == detail


async def test_organizations(world: World) -> None:
    """/api/organizations/ is paginated; each organisation has slug, membership level, teams and projects."""
    env = world.env
    body = (await get(env, "/api/organizations/")).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    orgs = {o["id"]: o for o in body["results"]}
    assert set(orgs) == {world.first_org.id, world.second_org.id}
    for org in orgs.values():
        assert_fields(org, ORGANIZATION)
    first, second = orgs[world.first_org.id], orgs[world.second_org.id]
    assert (first["slug"], first["membership_level"]) == (world.first_org.slug, 15)
    assert (second["name"], second["slug"], second["membership_level"]) == ("Second Org", "second-org", 8)
    over_there = {"id": world.second_ids[0], "name": "Over there", "organization_id": second["id"]}
    assert second["projects"] == [over_there]
    assert [t["id"] for t in second["teams"]] == world.second_ids
    for team in first["teams"]:
        assert_fields(team, PROJECT_ITEM)
    assert [p["id"] for p in first["projects"]] == [i for i in world.project_ids if i not in world.second_ids]


async def test_organization_current_and_by_id(world: World) -> None:
    """@current is the first organisation; an organisation reads by its UUID; an unknown UUID is 404."""
    env = world.env
    current = (await get(env, "/api/organizations/@current/")).json()
    assert current["id"] == world.first_org.id
    second = (await get(env, f"/api/organizations/{world.second_org.id}/")).json()
    assert_fields(second, ORGANIZATION)
    assert second["id"] == world.second_org.id
    unknown = await get(env, f"/api/organizations/{uuid.uuid4()}/")
    assert_error(unknown, 404, type="invalid_request", code="not_found")


async def test_organization_projects(world: World) -> None:
    """/api/organizations/<uuid>/projects/ lists only that organisation's projects, paginated."""
    env = world.env
    second = (await get(env, f"/api/organizations/{world.second_org.id}/projects/")).json()
    assert (second["count"], [p["id"] for p in second["results"]]) == (1, world.second_ids)
    assert_fields(second["results"][0], PROJECT_ITEM)
    first = (await get(env, f"/api/organizations/{world.first_org.id}/projects/?limit=3")).json()
    assert first["count"] == 5
    assert [p["id"] for p in first["results"]] == world.project_ids[:3]
    assert first["next"] is not None and httpx.URL(first["next"]).is_absolute_url


async def test_current_user(world: World) -> None:
    """/api/users/@me/ describes the admin with their team, organisation and organisation slugs."""
    env = world.env
    me = (await get(env, "/api/users/@me/")).json()
    assert_fields(me, USER)
    assert me["email"] == "admin@localhost"
    assert_fields(me["team"], PROJECT_ITEM)
    assert me["team"]["id"] == env.project.id
    assert_fields(me["organization"], ORGANIZATION)
    assert me["organization"]["id"] == world.first_org.id
    assert sorted((o["id"], o["slug"], o["membership_level"]) for o in me["organizations"]) == sorted([
        (world.first_org.id, world.first_org.slug, 15), (world.second_org.id, "second-org", 8)])
    for org in me["organizations"]:
        assert set(org) >= {"id", "name", "slug", "logo_media_id", "membership_level",
                            "members_can_use_personal_api_keys"}


async def test_current_personal_api_key(world: World) -> None:
    """/api/personal_api_keys/@current describes the calling key without revealing it."""
    env = world.env
    key = env.new_key(["logs:read", "project:read"], scoped_teams=[env.project.id])
    doc = (await env.client.get("/api/personal_api_keys/@current", headers=env.auth(key))).json()
    assert_fields(doc, KEY)
    assert (doc["value"], doc["scopes"], doc["scoped_teams"], doc["scoped_organizations"]) == (
        None, ["logs:read", "project:read"], [env.project.id], None)
    assert doc["mask_value"] != key and key not in str(doc)
    assert doc["mask_value"].startswith("phx_") and doc["mask_value"].endswith(key[-4:])
    assert doc["user_id"] == env.services.meta.get_admin_user().id
    unrestricted = (await env.client.get("/api/personal_api_keys/@current", headers=env.auth())).json()
    assert (unrestricted["scopes"], unrestricted["scoped_teams"]) == (["*"], None)
    assert unrestricted["id"] != doc["id"]


@pytest.mark.parametrize(
    ("url", "scope"),
    [
        ("/api/projects/", "project:read"),
        ("/api/projects/@current/", "project:read"),
        ("/api/organizations/", "organization:read"),
        ("/api/organizations/@current/", "organization:read"),
        ("/api/users/@me/", "user:read"),
    ],
)
async def test_routes_need_their_scope(world: World, url: str, scope: str) -> None:
    """Each route answers 403 naming its scope to a key without it, and 200 to a key with it."""
    env = world.env
    without = env.new_key(["logs:read"])
    assert_error(await get(env, url, without), 403, type="authentication_error", code="permission_denied",
                 detail=f"API key missing required scope '{scope}'")
    with_scope = env.new_key([scope])
    assert (await get(env, url, with_scope)).status_code == 200
