"""Projects are tenants: keys, tokens and filters never reach across them.

Project A (the bootstrapped project 1) and project B share one app and one store. B's logs are built to be
found by a leaky query: their bodies contain A's search words, they carry a ``team_id`` attribute naming A,
and values shaped like SQL injections.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from tests.api._otlp import encode
from tests.api._support import assert_error
from tests.conftest import Env

pytestmark = pytest.mark.asyncio(loop_scope="module")

INJECTION = "x') OR 1=1 --"
LAST_DAY = {"date_from": "-1d"}


class Tenants:
    def __init__(self, env: Env, b: Any) -> None:
        self.env = env
        self.a = env.project
        self.b = b


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tenants(module_env: Env) -> Tenants:
    env = module_env
    b = env.services.meta.create_project("Tenant B")
    a_logs = encode([dict(body=f"alpha {i}", severity_number=9, attributes={"tenant": "A"})
                     for i in range(3)], {"service.name": "shop"})
    b_logs = encode(
        [dict(body=f"beta {i} alpha", severity_number=17,
              attributes={"tenant": "B", "team_id": str(env.project.id), "label": INJECTION})
         for i in range(4)],
        {"service.name": "shop", "region": "b-only"},
    )
    # A's token in the header wins over B's token in the query string
    both = encode([dict(body="bearer wins", severity_number=9, attributes={"tenant": "A"})],
                  {"service.name": "shop"})
    responses = [
        await env.send_otlp(a_logs, token=env.project.api_token),
        await env.client.post(f"/i/v1/logs?token={b.api_token}", content=b_logs,
                              headers={"Content-Type": "application/x-protobuf"}),
        await env.client.post(f"/i/v1/logs?token={b.api_token}", content=both,
                              headers={"Authorization": f"Bearer {env.project.api_token}",
                                       "Content-Type": "application/x-protobuf"}),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    env.flush()
    return Tenants(env, b)


async def rows(
    env: Env, project_id: int, query: dict[str, Any], *, prefix: str = "projects"
) -> list[dict[str, Any]]:
    response = await env.client.post(f"/api/{prefix}/{project_id}/logs/query/",
                                     json={"query": {"dateRange": LAST_DAY, **query}}, headers=env.auth())
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


async def count(env: Env, project_id: int, query: dict[str, Any]) -> int:
    response = await env.client.post(f"/api/projects/{project_id}/logs/count/",
                                     json={"query": {"dateRange": LAST_DAY, **query}}, headers=env.auth())
    assert response.status_code == 200, response.text
    return response.json()["count"]  # type: ignore[no-any-return]


def attr(key: str, operator: str, value: Any = None, type_: str = "log_attribute") -> dict[str, Any]:
    return {"type": "AND", "values": [{"type": "AND", "values": [
        {"key": key, "operator": operator, "value": value, "type": type_}]}]}


async def test_each_token_writes_only_into_its_own_project(tenants: Tenants) -> None:
    """Logs sent with A's token are visible only in A, B's only in B; a bearer token beats ?token=."""
    env = tenants.env
    a_rows = await rows(env, tenants.a.id, {})
    b_rows = await rows(env, tenants.b.id, {})
    assert sorted(r["body"] for r in a_rows) == ["alpha 0", "alpha 1", "alpha 2", "bearer wins"]
    assert sorted(r["body"] for r in b_rows) == [f"beta {i} alpha" for i in range(4)]


ISOLATION_SHAPES = [
    ({}, 4),
    ({"searchTerm": "beta"}, 0),
    ({"searchTerm": "alpha"}, 3),
    ({"searchTerm": "'; DROP TABLE logs; --"}, 0),
    ({"serviceNames": ["shop' OR 1=1 --"]}, 0),
    ({"severityLevels": ["error"]}, 0),
    ({"filterGroup": attr("tenant", "exact", "B")}, 0),
    ({"filterGroup": attr("label", "exact", INJECTION)}, 0),
    ({"filterGroup": attr("tenant", "exact", INJECTION)}, 0),
    ({"filterGroup": attr("tenant", "is_not", INJECTION)}, 4),
    ({"filterGroup": attr("tenant", "exact", "A' OR '1'='1")}, 0),
    ({"filterGroup": attr(INJECTION, "exact", "y")}, 0),
    ({"filterGroup": attr(INJECTION, "is_not_set")}, 4),
    ({"filterGroup": attr("tenant", "regex", ".*")}, 4),
    ({"filterGroup": attr("team_id", "exact", "1")}, 0),
    ({"filterGroup": attr("team_id", "is_set")}, 0),
    ({"filterGroup": attr("team_id", "is_not_set", type_="log_resource_attribute")}, 4),
    ({"filterGroup": attr("region", "exact", "b-only", type_="log_resource_attribute")}, 0),
    ({"filterGroup": attr("message", "icontains", "beta", type_="log")}, 0),
    ({"filterGroup": {"type": "OR", "values": [attr("tenant", "exact", "B"), attr("tenant", "exact", "A")]}},
     4),
]


@pytest.mark.parametrize(("query", "expected"), ISOLATION_SHAPES)
async def test_no_query_of_a_returns_a_row_of_b(
    tenants: Tenants, query: dict[str, Any], expected: int
) -> None:
    """Whatever the filters, a query on A returns only A's rows, and count/ agrees."""
    env = tenants.env
    for prefix in ("projects", "environments"):
        found = await rows(env, tenants.a.id, query, prefix=prefix)
        assert [r["attributes"]["tenant"] for r in found] == ["A"] * expected
    assert await count(env, tenants.a.id, query) == expected


async def test_b_fingerprint_selects_nothing_in_a(tenants: Tenants) -> None:
    """B's resource fingerprint used on A finds nothing."""
    env = tenants.env
    fingerprint = (await rows(env, tenants.b.id, {}))[0]["resource_fingerprint"]
    assert await rows(env, tenants.a.id, {"resourceFingerprint": fingerprint}) == []
    assert len(await rows(env, tenants.b.id, {"resourceFingerprint": fingerprint})) == 4


async def test_team_id_is_not_a_log_field(tenants: Tenants) -> None:
    """A `log` filter on team_id is refused, not used to pick another project."""
    env = tenants.env
    by_team = attr("team_id", "exact", tenants.b.id, "log")
    response = await env.query({"dateRange": LAST_DAY, "filterGroup": by_team})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error" and body["attr"].endswith("__key")
    assert "team_id" in body["detail"]


async def test_injection_leaves_the_data_intact(tenants: Tenants) -> None:
    """After all the injection-shaped queries, both projects still hold all their logs."""
    env = tenants.env
    await rows(env, tenants.a.id, {"searchTerm": "'); DROP TABLE logs; --",
                                   "filterGroup": attr("x", "exact", INJECTION)})
    assert (await count(env, tenants.a.id, {}), await count(env, tenants.b.id, {})) == (4, 4)


LOG_ROUTES = [
    ("POST", "logs/query/"),
    ("POST", "logs/count/"),
    ("GET", "logs/has_logs/"),
    ("GET", ""),
]


async def call(env: Env, method: str, url: str, key: str | None = None) -> Any:
    body = {"query": {"dateRange": LAST_DAY}} if method == "POST" else None
    return await env.client.request(method, url, json=body, headers=env.auth(key))


@pytest.mark.parametrize("prefix", ["projects", "environments"])
@pytest.mark.parametrize(("method", "route"), LOG_ROUTES)
async def test_key_scoped_to_a_is_denied_on_b(tenants: Tenants, prefix: str, method: str, route: str) -> None:
    """A key restricted to project A gets 403 naming the project on B, and 200 on A."""
    env = tenants.env
    key = env.new_key(["*"], scoped_teams=[tenants.a.id])
    denied = await call(env, method, f"/api/{prefix}/{tenants.b.id}/{route}", key)
    assert_error(denied, 403, type="authentication_error", code="permission_denied",
                 detail=f"API key does not have access to the requested project: ID {tenants.b.id}.")
    allowed = await call(env, method, f"/api/{prefix}/{tenants.a.id}/{route}", key)
    assert allowed.status_code == 200, allowed.text


BAD_PROJECT_IDS = ["99999", "999999999999", "0", "abc", "1abc", "-1", "1.0", "²", "１", "1" * 40, "%20"]


@pytest.mark.parametrize("project_id", BAD_PROJECT_IDS)
@pytest.mark.parametrize("prefix", ["projects", "environments"])
@pytest.mark.parametrize(("method", "route"), LOG_ROUTES)
async def test_unknown_or_non_numeric_project_is_404(
    tenants: Tenants, prefix: str, method: str, route: str, project_id: str
) -> None:
    """An id that names no project answers 404 'Project not found.' on every project route."""
    response = await call(tenants.env, method, f"/api/{prefix}/{project_id}/{route}")
    assert_error(response, 404, type="invalid_request", code="not_found", detail="Project not found.")


@pytest.mark.parametrize(("method", "route"), LOG_ROUTES[:3])
@pytest.mark.parametrize("scopes", [["project:read"], ["query:read"], ["logs:read"]], ids=str)
async def test_missing_scope_is_403_naming_it(
    tenants: Tenants, method: str, route: str, scopes: list[str]
) -> None:
    """A key without a logs scope gets 403 naming logs:read; a logs:read-only key is denied project:read."""
    env = tenants.env
    key = env.new_key(scopes)
    response = await call(env, method, f"/api/projects/{tenants.a.id}/{route}", key)
    if scopes == ["logs:read"]:
        assert response.status_code == 200, response.text
        other = await call(env, "GET", f"/api/projects/{tenants.a.id}/", key)
        assert_error(other, 403, type="authentication_error", code="permission_denied",
                     detail="API key missing required scope 'project:read'")
    else:
        assert_error(response, 403, type="authentication_error", code="permission_denied",
                     detail="API key missing required scope 'logs:read'")


@pytest.mark.parametrize("scopes", [["logs:write"], ["*"], ["project:read", "logs:read"]], ids=str)
async def test_write_scope_and_wildcard_can_read(tenants: Tenants, scopes: list[str]) -> None:
    """logs:write implies logs:read and * allows everything: such keys query, count and check has_logs."""
    env = tenants.env
    key = env.new_key(scopes)
    for method, route in LOG_ROUTES[:3]:
        response = await call(env, method, f"/api/projects/{tenants.a.id}/{route}", key)
        assert response.status_code == 200, response.text
    found = (await env.query({"dateRange": LAST_DAY}, key=key)).json()["results"]
    assert len(found) == 4


async def test_project_token_cannot_read(tenants: Tenants) -> None:
    """A project's public ingestion token is not a credential for the private API."""
    env = tenants.env
    response = await env.query({"dateRange": LAST_DAY}, key=tenants.a.api_token)
    assert_error(response, 401, type="authentication_error", code="not_authenticated")


async def test_project_listing_shows_only_allowed_projects(tenants: Tenants) -> None:
    """/api/projects/ lists what the key may reach: both projects unrestricted, one when scoped."""
    env = tenants.env
    everything = (await env.client.get("/api/projects/", headers=env.auth())).json()
    assert [p["id"] for p in everything["results"]][:2] == [tenants.a.id, tenants.b.id]
    for project in (tenants.a, tenants.b):
        key = env.new_key(["project:read"], scoped_teams=[project.id])
        listed = (await env.client.get("/api/projects/", headers=env.auth(key))).json()
        assert (listed["count"], [p["id"] for p in listed["results"]]) == (1, [project.id])
        current = (await env.client.get("/api/projects/@current/", headers=env.auth(key))).json()
        assert current["id"] == project.id


async def test_scoped_organizations_filters_the_listing(tenants: Tenants) -> None:
    """A key restricted to another organisation sees none of this one's projects and is denied on them."""
    env = tenants.env
    meta = env.services.meta
    other = meta.create_organization("Elsewhere")
    admin = meta.get_admin_user()
    meta.add_membership(admin.id, other.id, 15)
    elsewhere = meta.create_project("Elsewhere project", other.id)
    key = env.new_key(["*"], scoped_teams=None)
    key_other, _ = meta.create_personal_api_key(admin.id, "other-org", ["*"], scoped_organizations=[other.id])
    listed = (await env.client.get("/api/projects/", headers=env.auth(key_other))).json()
    assert [p["id"] for p in listed["results"]] == [elsewhere.id]
    denied = await env.query({"dateRange": LAST_DAY}, key=key_other)
    detail = f"API key does not have access to the requested organization: ID {tenants.a.organization_id}."
    assert_error(denied, 403, type="authentication_error", code="permission_denied", detail=detail)
    everything = (await env.client.get("/api/projects/", headers=env.auth(key))).json()
    assert [p["id"] for p in everything["results"]] == [tenants.a.id, tenants.b.id, elsewhere.id]
