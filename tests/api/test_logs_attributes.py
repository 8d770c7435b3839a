"""Attribute keys and values for the filter pickers: ``GET /api/projects/<id>/logs/attributes/`` and
``.../values/``, answered from the 10-minute attribute rollups (or from the logs under a ``filterGroup``).

One module-wide data set, inserted straight into the store with the app's clock frozen at ``NOW`` (an hour
boundary), all within the hour starting at ``A0 = NOW - 2h``; the default range (the last hour) is empty
until a test sends a log over OTLP. A second project stores look-alike keys in the same hour.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests._log_tables import log_row
from tests.api._otlp import encode
from tests.api._support import World, assert_error, iso_z, store_world
from tests.conftest import Env

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
MINUTE = dt.timedelta(minutes=1)
A0 = NOW - dt.timedelta(hours=2)
WINDOW = {"date_from": iso_z(A0), "date_to": iso_z(A0 + dt.timedelta(hours=1))}
WEB = {"host.name": "web-1"}
API = {"deployment.environment": "prod"}


def rows(n: int, minute: int, service: str, attributes: dict[str, str], **kw: Any) -> list[dict[str, Any]]:
    resource = WEB if service == "web" else API if service == "api" else {}
    return [
        log_row(A0 + minute * MINUTE + i * dt.timedelta(milliseconds=1), body="attr", service=service,
                attributes=attributes, resource=resource, **kw)
        for i in range(n)
    ]  # fmt: skip


# keys named like "user", each on its own logs, for search ranking
RANKING = {"user": 3, "user.id": 5, "end_user": 8, "user_agent": 2, "username": 20, "superuser": 1, "User.Email": 4}
ROUTES = [
    *rows(3, 2, "web", {"http.route": "/cart", "http.method": "POST"}),
    *rows(2, 12, "api", {"http.route": "/cart", "http.method": "GET"}),
    *rows(2, 2, "web", {"http.route": "/checkout", "http.method": "POST"}),
    *rows(3, 2, "web", {"http.route": "/checkout", "http.method": "GET"}),
    *rows(1, 22, "api", {"http.route": "/Catalog", "http.method": "GET"}),
    *rows(7, 12, "api", {"http.route": "/login", "http.method": "POST"}),
]
# "production" is the most frequent value of env (3 + 3 in two 10-minute buckets), though "preprod"
# has the largest single rollup row (4)
ENV_FIRST = rows(3, 3, "web", {"env": "production", "region": "eu"})
ENV_LATER = rows(3, 13, "web", {"env": "production", "region": "eu"}) + rows(
    4, 3, "web", {"env": "preprod", "tier": "gold"}
)
OTHERS = [
    *rows(1, 4, "web", {"deploy.target": "prod-eu"}),
    *rows(2, 4, "web", {"product_id": "p1"}),
    *rows(1, 5, "web", {"payload": "z" * 300}),
    *rows(1, 5, "web", {"payload": "short"}),
    *rows(1, 45, "web", {"widened.key": "w"}),
]
HIGH = [log_row(A0 + 31 * MINUTE, body="bulk", service="bulk", attributes={"request.id": f"req-{i:04d}"})
        for i in range(1500)]  # fmt: skip
INTRUDER = [
    log_row(A0 + 2 * MINUTE, body="x", service="api", attributes={"secret.key": "s3cr3t", "http.route": "/intrusion"},
            resource={"secret.resource": "r"})
]  # fmt: skip

ALL_KEYS = [
    "request.id", "username", "http.method", "http.route", "env", "end_user", "region", "user.id", "User.Email",
    "tier", "user", "payload", "product_id", "user_agent", "deploy.target", "superuser", "widened.key",
]  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(module_env: Env) -> World:
    """The module's app, clock frozen at ``NOW``, with both projects' logs stored."""
    ranking = [row for key, n in RANKING.items() for row in rows(n, 1, "web", {key: "v"})]
    return store_world(module_env, NOW, [ranking, ROUTES, ENV_FIRST, ENV_LATER, OTHERS, HIGH], INTRUDER)


@pytest.fixture
def env(world: World) -> Env:
    return world.env


def params_of(params: dict[str, Any]) -> dict[str, str]:
    """Query parameters: dicts and lists JSON-encoded, as the frontend sends them."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}


async def get(env: Env, route: str, *, project_id: int | None = None, **params: Any) -> httpx.Response:
    pid = project_id or env.project.id
    return await env.client.get(f"/api/projects/{pid}/logs/{route}/", params=params_of(params), headers=env.auth())


async def keys(env: Env, **params: Any) -> list[str]:
    body = await ok(env, "attributes", **{"dateRange": WINDOW, **params})
    assert all(r["matchedOn"] == "key" for r in body["results"])
    return [r["name"] for r in body["results"]]


async def values(env: Env, key: str, **params: Any) -> list[tuple[str, int]]:
    body = await ok(env, "values", key=key, **{"dateRange": WINDOW, **params})
    assert body["refreshing"] is False
    for r in body["results"]:
        assert r["id"] == r["name"]
    return [(r["name"], r["count"]) for r in body["results"]]


async def ok(env: Env, route: str, **params: Any) -> Any:
    response = await get(env, route, **params)
    assert response.status_code == 200, response.text
    return response.json()


# --- attributes --------------------------------------------------------------------------------------------------


async def test_keys_by_volume(env: Env) -> None:
    """Without a search, keys come most used first, ties by name; count is the number of keys."""
    body = await ok(env, "attributes", dateRange=WINDOW)
    assert body == {
        "results": [{"name": k, "propertyFilterType": "log_attribute", "matchedOn": "key"} for k in ALL_KEYS],
        "count": len(ALL_KEYS),
    }


@pytest.mark.parametrize(
    ("limit", "offset", "expected"),
    [("3", "2", ALL_KEYS[2:5]), ("1", None, ALL_KEYS[:1]), (None, "16", ALL_KEYS[16:]), ("1000", "17", [])],
)
async def test_keys_limit_offset(env: Env, limit: str | None, offset: str | None, expected: list[str]) -> None:
    """limit and offset page the ranked keys; count stays the total."""
    params = {k: v for k, v in (("limit", limit), ("offset", offset)) if v is not None}
    body = await ok(env, "attributes", dateRange=WINDOW, **params)
    assert ([r["name"] for r in body["results"]], body["count"]) == (expected, len(ALL_KEYS))


@pytest.mark.parametrize("search", ["user", "USER"])
async def test_key_search_ranking(env: Env, search: str) -> None:
    """Search ranks the exact key first, then keys where it is a whole word (by volume), then the rest."""
    assert await keys(env, search=search) == [
        "user", "end_user", "user.id", "User.Email", "user_agent", "username", "superuser",
    ]  # fmt: skip


async def test_key_search_substring(env: Env) -> None:
    """A search matches anywhere in the key, ignoring case."""
    assert await keys(env, search="HTTP.") == ["http.method", "http.route"]
    assert await keys(env, search="_") == ["end_user", "product_id", "user_agent"]
    assert await keys(env, search="nothing-like-it") == []


async def test_resource_keys(env: Env) -> None:
    """attribute_type=resource lists resource attribute keys, typed log_resource_attribute."""
    body = await ok(env, "attributes", dateRange=WINDOW, attribute_type="resource")
    assert [(r["name"], r["propertyFilterType"]) for r in body["results"]] == [
        ("service.name", "log_resource_attribute"),
        ("host.name", "log_resource_attribute"),
        ("deployment.environment", "log_resource_attribute"),
    ]


async def test_value_search(env: Env) -> None:
    """search_values=true with 4+ characters adds keys whose values contain the search (most frequent
    matching value shown), after the key matches and without repeating them."""
    body = await ok(env, "attributes", dateRange=WINDOW, search="prod", search_values="true")
    assert body["results"] == [
        {"name": "product_id", "propertyFilterType": "log_attribute", "matchedOn": "key"},
        {"name": "env", "propertyFilterType": "log_attribute", "matchedOn": "value", "matchedValue": "production"},
        {"name": "deploy.target", "propertyFilterType": "log_attribute", "matchedOn": "value",
         "matchedValue": "prod-eu"},
    ]  # fmt: skip
    assert body["count"] == 3


@pytest.mark.parametrize(("search", "flag"), [("pro", "true"), ("prod", "false"), ("prod", None)])
async def test_value_search_needs_flag_and_four_chars(env: Env, search: str, flag: str | None) -> None:
    """Shorter searches, or no search_values=true, match keys only."""
    extra = {"search_values": flag} if flag is not None else {}
    assert await keys(env, search=search, **extra) == ["product_id"]


async def test_resource_value_search(env: Env) -> None:
    """Value search on resource attributes finds resource keys only."""
    body = await ok(env, "attributes", dateRange=WINDOW, search="prod", search_values="true", attribute_type="resource")
    assert body["results"] == [
        {"name": "deployment.environment", "propertyFilterType": "log_resource_attribute", "matchedOn": "value",
         "matchedValue": "prod"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"serviceNames": ["web"]}, [("env", "production"), ("deploy.target", "prod-eu")]),
        ({"serviceNames": ["api"]}, []),
        ({"filterGroup": [{"type": "log_attribute", "key": "tier", "operator": "exact", "value": "gold"}]},
         [("env", "preprod")]),
    ],
)  # fmt: skip
async def test_value_search_read_from_the_logs(
    env: Env, extra: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    """With serviceNames or a filterGroup, value matches come from the matching logs themselves."""
    body = await ok(env, "attributes", dateRange=WINDOW, search="prod", search_values="true", **extra)
    assert [(r["name"], r["matchedValue"]) for r in body["results"] if r["matchedOn"] == "value"] == expected


async def test_keys_of_services(env: Env) -> None:
    """serviceNames keeps keys seen on those services."""
    assert await keys(env, serviceNames=["api"]) == ["http.method", "http.route"]
    assert await keys(env, serviceNames=["bulk", "nobody"]) == ["request.id"]


async def test_keys_under_filter_group(env: Env) -> None:
    """A filterGroup reads the logs: keys of the matching logs only, by their volume."""
    group = [{"type": "log_attribute", "key": "env", "operator": "is_set"}]
    assert await keys(env, filterGroup=group) == ["env", "region", "tier"]
    assert await keys(env, filterGroup=group, search="RE") == ["region"]
    resource = await ok(env, "attributes", dateRange=WINDOW, filterGroup=group, attribute_type="resource")
    assert [r["name"] for r in resource["results"]] == ["host.name", "service.name"]


async def test_range_widens_to_ten_minute_buckets(env: Env) -> None:
    """Counts are per 10 minutes: a range inside a bucket sees that whole bucket, and nothing outside it."""
    inside = {"date_from": iso_z(A0 + 47 * MINUTE), "date_to": iso_z(A0 + 48 * MINUTE)}
    assert await keys(env, dateRange=inside) == ["widened.key"]
    assert await values(env, "widened.key", dateRange=inside) == [("w", 1)]
    later = {"date_from": iso_z(A0 + 50 * MINUTE), "date_to": iso_z(A0 + 55 * MINUTE)}
    assert await keys(env, dateRange=later) == []
    assert await values(env, "widened.key", dateRange=later) == []


async def test_range_ending_on_a_bucket_boundary_stops_there(env: Env) -> None:
    """A range ending exactly where a 10-minute bucket starts does not see that bucket."""
    before = {"date_from": iso_z(A0 + 35 * MINUTE), "date_to": iso_z(A0 + 40 * MINUTE)}
    assert await keys(env, dateRange=before) == ["request.id"]  # minute 31, in the bucket that 35 starts in
    reaching = {"date_from": iso_z(A0 + 35 * MINUTE), "date_to": iso_z(A0 + 40 * MINUTE + dt.timedelta(seconds=1))}
    assert await keys(env, dateRange=reaching) == ["request.id", "widened.key"]


async def test_new_key_listed_after_ingestion(env: Env) -> None:
    """A key first sent over OTLP is listed, with its value, once the log is stored."""
    assert (await ok(env, "attributes", search="brand"))["results"] == []
    request = encode(
        [dict(body="new", attributes={"brand.new.key": "fresh"}, time_unix_nano=NOW - 3 * MINUTE)],
        {"service.name": "late", "brand.resource": "yes"},
    )
    sent = await env.send_otlp(request)
    assert sent.status_code == 200, sent.text
    env.flush()
    body = await ok(env, "attributes", search="brand")
    assert body == {
        "results": [{"name": "brand.new.key", "propertyFilterType": "log_attribute", "matchedOn": "key"}],
        "count": 1,
    }
    resource = await ok(env, "attributes", search="brand", attribute_type="resource")
    assert [r["name"] for r in resource["results"]] == ["brand.resource"]
    assert (await ok(env, "values", key="brand.new.key"))["results"] == [{"id": "fresh", "name": "fresh", "count": 1}]


# --- values ------------------------------------------------------------------------------------------------------


async def test_values_by_count_then_value(env: Env) -> None:
    """Values of a key, summed over buckets and services, most frequent first, ties by value."""
    assert await values(env, "http.route") == [("/login", 7), ("/cart", 5), ("/checkout", 5), ("/Catalog", 1)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"value": "CA"}, [("/cart", 5), ("/Catalog", 1)]),
        ({"value": "/"}, [("/login", 7), ("/cart", 5), ("/checkout", 5), ("/Catalog", 1)]),
        ({"value": "%"}, []),
        ({"serviceNames": ["api"]}, [("/login", 7), ("/cart", 2), ("/Catalog", 1)]),
        ({"serviceNames": ["api"], "value": "c"}, [("/cart", 2), ("/Catalog", 1)]),
        ({"limit": "2"}, [("/login", 7), ("/cart", 5)]),
        ({"limit": "2", "offset": "2"}, [("/checkout", 5), ("/Catalog", 1)]),
    ],
)
async def test_values_search_services_and_paging(
    env: Env, params: dict[str, Any], expected: list[tuple[str, int]]
) -> None:
    """value is a case-insensitive substring (% literal); serviceNames restricts; limit/offset page."""
    assert await values(env, "http.route", **params) == expected


FILTER_POST = [{"type": "log_attribute", "key": "http.method", "operator": "exact", "value": "POST"}]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [("/login", 7), ("/cart", 3), ("/checkout", 2)]),
        ({"value": "C"}, [("/cart", 3), ("/checkout", 2)]),
        ({"serviceNames": ["web"]}, [("/cart", 3), ("/checkout", 2)]),
        ({"limit": "1", "offset": "1"}, [("/cart", 3)]),
    ],
)
async def test_values_under_filter_group(env: Env, params: dict[str, Any], expected: list[tuple[str, int]]) -> None:
    """A filterGroup counts values over the matching logs themselves."""
    assert await values(env, "http.route", filterGroup=FILTER_POST, **params) == expected


async def test_values_of_high_cardinality_key(env: Env) -> None:
    """1500 distinct values: 100 by default, at most 1000, paged by offset, ties ordered by value."""
    assert await values(env, "request.id") == [(f"req-{i:04d}", 1) for i in range(100)]
    assert await values(env, "request.id", limit="1000") == [(f"req-{i:04d}", 1) for i in range(1000)]
    assert await values(env, "request.id", limit="1000", offset="1400") == [
        (f"req-{i:04d}", 1) for i in range(1400, 1500)
    ]


async def test_values_of_resource_key(env: Env) -> None:
    """attribute_type=resource reads resource attribute values."""
    assert await values(env, "service.name", attribute_type="resource") == [
        ("bulk", 1500), ("web", 67), ("api", 10),
    ]  # fmt: skip


async def test_long_values_are_not_listed(env: Env) -> None:
    """Values of 256 characters or more are left out of the picker, from the rollup or from the logs."""
    assert await values(env, "payload") == [("short", 1)]
    any_body = [{"type": "log", "key": "message", "operator": "icontains", "value": "attr"}]
    assert await values(env, "payload", filterGroup=any_body) == [("short", 1)]


async def test_values_of_unknown_key(env: Env) -> None:
    assert await values(env, "no.such.key") == []


# --- bad parameters ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"key": ""}, {"value": "x"}])
async def test_values_without_key_is_400(env: Env, params: dict[str, str]) -> None:
    """key is required."""
    response = await get(env, "values", **params)
    assert_error(response, 400, type="validation_error", code="invalid_input", attr="key", detail="key is required")


BAD_PARAMS = [
    ({"dateRange": "{"}, "dateRange"),
    ({"dateRange": "[]"}, "dateRange"),
    ({"dateRange": '{"date_from": "whenever"}'}, "dateRange__date_from"),
    ({"serviceNames": "[api"}, "serviceNames"),
    ({"serviceNames": '"api"'}, "serviceNames"),
    ({"serviceNames": "[1]"}, "serviceNames"),
    ({"filterGroup": "{x"}, "filterGroup"),
    ({"filterGroup": '"text"'}, "filterGroup"),
    ({"filterGroup": '[{"type": "log_attribute"}]'}, "filterGroup__values__0__values__0__key"),
    ({"limit": "abc"}, "limit"),
    ({"limit": "0"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"limit": "1.5"}, "limit"),
    ({"offset": "-1"}, "offset"),
    ({"offset": "x"}, "offset"),
    ({"offset": "1000001"}, "offset"),
    ({"attribute_type": "metric"}, "attribute_type"),
]


@pytest.mark.parametrize("route", ["attributes", "values"])
@pytest.mark.parametrize(("params", "attr"), BAD_PARAMS, ids=[f"{next(iter(p))}={next(iter(p.values()))}"
                                                              for p, _ in BAD_PARAMS])  # fmt: skip
async def test_bad_parameters_are_400(env: Env, route: str, params: dict[str, str], attr: str) -> None:
    """Malformed JSON parameters and out-of-range paging are a 400 naming the parameter."""
    response = await env.client.get(
        f"/api/projects/{env.project.id}/logs/{route}/", params={"key": "http.route", **params}, headers=env.auth()
    )
    assert_error(response, 400, type="validation_error", code="invalid_input", attr=attr)


@pytest.mark.parametrize("route", ["attributes", "values"])
async def test_empty_parameters_mean_defaults(env: Env, route: str) -> None:
    """Empty strings are the same as absent parameters."""
    params = {"dateRange": "", "serviceNames": "", "filterGroup": "", "limit": "", "offset": "", "search": ""}
    response = await env.client.get(
        f"/api/projects/{env.project.id}/logs/{route}/", params={"key": "http.route", **params}, headers=env.auth()
    )
    assert response.status_code == 200, response.text


# --- projects ----------------------------------------------------------------------------------------------------


async def test_other_project_keys_and_values_stay_apart(world: World) -> None:
    """Neither project sees the other's keys or values, from the rollups or from the logs."""
    env, b = world.env, world.b.id
    assert "secret.key" not in await keys(env)
    assert await keys(env, search="secret", search_values="true") == []
    assert "/intrusion" not in [v for v, _ in await values(env, "http.route")]
    group = [{"type": "log_attribute", "key": "http.route", "operator": "is_set"}]
    assert await keys(env, filterGroup=group) == ["http.method", "http.route"]
    other = await ok(env, "attributes", dateRange=WINDOW, project_id=b)
    assert [r["name"] for r in other["results"]] == ["http.route", "secret.key"]
    other_values = await ok(env, "values", dateRange=WINDOW, key="http.route", project_id=b)
    assert other_values["results"] == [{"id": "/intrusion", "name": "/intrusion", "count": 1}]
    raw = await ok(env, "values", dateRange=WINDOW, key="http.route", filterGroup=group, project_id=b)
    assert raw["results"] == [{"id": "/intrusion", "name": "/intrusion", "count": 1}]
    resource = await ok(env, "attributes", dateRange=WINDOW, attribute_type="resource", project_id=b)
    assert [r["name"] for r in resource["results"]] == ["secret.resource", "service.name"]
