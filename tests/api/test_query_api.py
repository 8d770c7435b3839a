"""The HogQL query API end to end in-process: response shape, limits, errors, async, cancel, concurrency.

The first tests build their own app per test. The rest share module-wide apps: ``shared`` (default
settings, projects ``a``, ``b`` and a Europe/Berlin one), ``tight`` (a 0.5 s time limit, small row limits,
OFFSET allowed) and ``busy`` (one query per project, a 0.3 s queue). A slow query there is always
cancelled before its test ends, so it never holds one of the process's chDB query lanes for the next.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from logpond.hogql.jobs import RateLimiter
from logpond.store.chdb_store import ChDBStore
from tests._log_tables import log_row, log_table
from tests.api._support import UUID_RE, assert_error, store_world
from tests.conftest import Env, make_settings, running_env

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def hogql(text: str, **extra: Any) -> dict[str, Any]:
    return {"query": {"kind": "HogQLQuery", "query": text, **extra.pop("query_fields", {})}, **extra}


async def run(
    env: Env, text: str, project_id: int | None = None, key: str | None = None, **extra: Any
) -> httpx.Response:
    pid = project_id or env.project.id
    return await env.client.post(f"/api/projects/{pid}/query/", json=hogql(text, **extra), headers=env.auth(key))


@pytest.fixture
async def world(env: Env) -> Env:
    rows = RECENT  # the 30 recent logs the shared apps below also hold
    intruder = [
        log_row(NOW - dt.timedelta(minutes=i), body="secret timeout", severity="error", service="api") for i in range(5)
    ]
    store_world(env, NOW, [rows], intruder)
    return env


async def test_group_by_level(world: Env) -> None:
    """The issue's example query answers with PostHog's response fields and exact counts."""
    response = await run(world, "SELECT level, count() AS c FROM logs GROUP BY level ORDER BY c DESC")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] == [["info", 20], ["error", 10]]
    assert body["columns"] == ["level", "c"]
    assert body["types"] == [["level", "LowCardinality(String)"], ["c", "UInt64"]]
    assert body["hasMore"] is False and body["limit"] == 100 and body["offset"] == 0
    assert body["is_cached"] is False
    assert body["hogql"].startswith("SELECT level, count() AS c FROM logs")
    assert any(t["k"] == "./clickhouse_execute" for t in body["timings"])


async def test_default_limit_and_has_more(world: Env) -> None:
    """Without LIMIT, 100 rows at most come back; hasMore tells there were more."""
    world.services.settings.hogql_default_limit = 7
    response = await run(world, "SELECT message FROM logs")
    body = response.json()
    assert response.status_code == 200, response.text
    assert len(body["results"]) == 7 and body["hasMore"] is True and body["limit"] == 7


async def test_timestamps_are_iso(world: Env) -> None:
    """DateTime values come back as ISO 8601 with Z."""
    response = await run(world, "SELECT timestamp FROM logs ORDER BY timestamp DESC LIMIT 1")
    assert response.json()["results"] == [[NOW.isoformat().replace("+00:00", "Z")]]


async def test_syntax_error(world: Env) -> None:
    """A syntax error is a 400 hogql_syntax_error with line and column."""
    body = assert_error(
        await run(world, "SELECT level FROM logs WHERE (("), 400, type="validation_error", code="hogql_syntax_error"
    )
    assert "line 1" in body["detail"]


async def test_other_projects_rows_never_show(world: Env) -> None:
    """The intruder project's rows are invisible, whatever the query says about team_id."""
    response = await run(world, "SELECT count() FROM logs WHERE message LIKE '%secret%' OR team_id != 0")
    assert response.json()["results"] == [[30]]


async def test_offset_with_personal_key_is_refused(world: Env) -> None:
    """OFFSET with a personal API key is a 400 hogql_query_error pointing to keyset pagination."""
    body = assert_error(
        await run(world, "SELECT message FROM logs LIMIT 10 OFFSET 5"),
        400,
        type="validation_error",
        code="hogql_query_error",
    )
    assert "keyset" in body["detail"]


async def test_async_poll_and_cancel(world: Env) -> None:
    """refresh=async answers 202; polling returns the result; DELETE stops a slow query for real."""
    response = await run(world, "SELECT count() FROM logs", refresh="async")
    assert response.status_code == 202, response.text
    query_id = response.json()["query_status"]["id"]
    for _ in range(200):
        poll = await world.client.get(f"/api/projects/{world.project.id}/query/{query_id}/", headers=world.auth())
        if poll.status_code == 200:
            break
        await asyncio.sleep(0.02)
    assert poll.json()["query_status"]["results"]["results"] == [[30]]

    slow = (
        "SELECT count() FROM logs AS a, logs AS b, logs AS c, logs AS d, logs AS e, logs AS f "
        "WHERE sipHash64(a.message, b.message, c.message, d.message, e.message, f.message) % 7 = 1"
    )
    response = await run(world, slow, refresh="async", client_query_id="slow-1")
    assert response.status_code == 202
    await asyncio.sleep(0.5)
    cancel = await world.client.delete(f"/api/projects/{world.project.id}/query/slow-1/", headers=world.auth())
    assert cancel.status_code == 200, cancel.text
    for _ in range(200):
        poll = await world.client.get(f"/api/projects/{world.project.id}/query/slow-1/", headers=world.auth())
        if poll.status_code != 202:
            break
        await asyncio.sleep(0.02)
    assert poll.status_code == 400, poll.text
    assert poll.json()["query_status"]["error"] is True


# --- shared apps for the tests below ----------------------------------------------------------------

# 35 logs of project a: 30 in the last half hour before NOW (10 errors with "timeout" in the message, 15 with
# http.method GET), and 5 two hours older from a cron service without attributes.
RECENT = [
    log_row(
        NOW - dt.timedelta(minutes=i),
        body=f"request {i} timeout" if i % 3 == 0 else f"request {i} ok",
        severity="error" if i % 3 == 0 else "info",
        service="api" if i % 2 else "web",
        attributes={"http.method": "GET" if i % 2 else "POST", "n": str(i)},
    )
    for i in range(30)
]
OLD = [
    log_row(NOW - dt.timedelta(hours=2, minutes=i), body="old job done", severity="warn", service="cron")
    for i in range(5)
]
INTRUDER = [
    log_row(
        NOW - dt.timedelta(minutes=i),
        body="secret timeout",
        severity="error",
        service="api",
        attributes={"http.method": "GET"},
    )
    for i in range(5)
]
TOTAL = len(RECENT) + len(OLD)

# a 6-way cross join of the logs: billions of rows, never finishes within a test
SLOW = (
    "SELECT count() FROM logs AS a, logs AS b, logs AS c, logs AS d, logs AS e, logs AS f "
    "WHERE sipHash64(a.message, b.message, c.message, d.message, e.message, f.message) % 7 = 1"
)


@dataclass
class Shared:
    env: Env
    other: Any  # project b, with INTRUDER logs
    berlin: Any  # a project in Europe/Berlin with one log at NOW


@asynccontextmanager
async def app(chdb_path: Path, tmp_path_factory: pytest.TempPathFactory, **overrides: Any) -> AsyncIterator[Env]:
    """A running app over its own chDB database, with these settings overrides."""
    store = ChDBStore(chdb_path, database=f"q_{uuid.uuid4().hex[:12]}")
    store.migrate()
    try:
        async with running_env(make_settings(tmp_path_factory.mktemp("query_api"), **overrides), store) as env:
            yield env
    finally:
        store.drop_database()


def fill(env: Env) -> Shared:
    world = store_world(env, NOW, [RECENT, OLD], INTRUDER)
    berlin = env.services.meta.create_project("Berlin", timezone="Europe/Berlin")
    env.services.store.insert_logs(log_table([log_row(NOW, body="berlin")], team_id=berlin.id))
    return Shared(env, world.b, berlin)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(chdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    async with app(chdb_path, tmp_path_factory) as env:
        yield fill(env)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tight(chdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    async with app(
        chdb_path,
        tmp_path_factory,
        hogql_personal_key_max_execution_time=0.5,
        hogql_default_limit=3,
        hogql_max_limit=5,
        hogql_allow_offset_with_personal_key=True,
    ) as env:
        yield fill(env)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def busy(chdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    async with app(chdb_path, tmp_path_factory, hogql_max_concurrent_per_project=1, hogql_queue_seconds=0.3) as env:
        yield fill(env)


def query_url(env: Env, suffix: str = "", project_id: int | None = None) -> str:
    return f"/api/projects/{project_id or env.project.id}/query/{suffix}"


async def post(env: Env, body: Any, project_id: int | None = None, key: str | None = None) -> httpx.Response:
    return await env.client.post(query_url(env, project_id=project_id), json=body, headers=env.auth(key))


async def poll(env: Env, query_id: str, project_id: int | None = None) -> httpx.Response:
    return await env.client.get(query_url(env, f"{query_id}/", project_id), headers=env.auth())


async def cancel(env: Env, query_id: str, project_id: int | None = None) -> httpx.Response:
    return await env.client.delete(query_url(env, f"{query_id}/", project_id), headers=env.auth())


async def poll_until_done(
    env: Env, query_id: str, project_id: int | None = None, timeout: float = 15
) -> httpx.Response:
    """Poll until the query is no longer running (the answer is not 202)."""
    deadline = time.monotonic() + timeout
    while True:
        response = await poll(env, query_id, project_id)
        if response.status_code != 202 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.02)


@asynccontextmanager
async def slow_async(env: Env, query_id: str, project_id: int | None = None) -> AsyncIterator[httpx.Response]:
    """SLOW, started async as ``query_id`` and running (it holds a slot); cancelled and finished on exit."""
    started = await post(env, hogql(SLOW, refresh="async", client_query_id=query_id), project_id)
    assert started.status_code == 202, started.text
    try:
        deadline = time.monotonic() + 10
        while (await poll(env, query_id, project_id)).json()["query_status"]["pickup_time"] is None:
            assert time.monotonic() < deadline, "the slow query never started running"
            await asyncio.sleep(0.01)
        yield started
    finally:
        await cancel(env, query_id, project_id)
        assert (await poll_until_done(env, query_id, project_id)).status_code != 202


def assert_no_leak(env: Env, detail: str) -> None:
    """An error detail says nothing about the generated SQL, the store or our internals."""
    for secret in (env.services.store.database, "team_id", "SETTINGS", "`", "DB::Exception", "Traceback", "logpond."):
        assert secret not in detail, (secret, detail)


# --- authentication and permissions (spec §1.3) -------------------------------------------------------


async def test_no_credentials_is_401(shared: Shared) -> None:
    """A request without credentials is 401 not_authenticated with a WWW-Authenticate header."""
    response = await shared.env.client.post(query_url(shared.env), json=hogql("SELECT 1"))
    assert_error(
        response,
        401,
        type="authentication_error",
        code="not_authenticated",
        detail="Authentication credentials were not provided.",
    )
    assert response.headers["WWW-Authenticate"]


async def test_unknown_key_is_401(shared: Shared) -> None:
    """An unknown personal API key is 401 authentication_failed naming where it was found."""
    response = await post(shared.env, hogql("SELECT 1"), key="phx_" + "x" * 40)
    assert_error(
        response,
        401,
        type="authentication_error",
        code="authentication_failed",
        detail="Personal API key found in request Authorization header is invalid.",
    )


async def test_key_without_query_scope_is_403(shared: Shared) -> None:
    """A key with logs:read but not query:read is refused with PostHog's missing-scope sentence."""
    key = shared.env.new_key(["logs:read", "project:read"])
    assert_error(
        await post(shared.env, hogql("SELECT 1"), key=key),
        403,
        type="authentication_error",
        code="permission_denied",
        detail="API key missing required scope 'query:read'",
    )


@pytest.mark.parametrize("scopes", [["query:read"], ["query:write"]], ids=["read", "write"])
async def test_query_scope_alone_suffices(shared: Shared, scopes: list[str]) -> None:
    """query:read (or query:write, which implies it) runs queries and polls them without logs:read."""
    key = shared.env.new_key(scopes)
    response = await post(shared.env, hogql("SELECT count() FROM logs"), key=key)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [[TOTAL]]
    started = await post(shared.env, hogql("SELECT 1", refresh="async"), key=key)
    assert started.status_code == 202, started.text
    query_id = started.json()["query_status"]["id"]
    status = await shared.env.client.get(query_url(shared.env, f"{query_id}/"), headers=shared.env.auth(key))
    assert status.status_code in (200, 202), status.text


async def test_key_scoped_to_another_project_is_403(shared: Shared) -> None:
    """A key restricted to project b cannot query project a."""
    key = shared.env.new_key(["*"], scoped_teams=[shared.other.id])
    a = shared.env.project.id
    assert_error(
        await post(shared.env, hogql("SELECT 1"), key=key),
        403,
        type="authentication_error",
        code="permission_denied",
        detail=f"API key does not have access to the requested project: ID {a}.",
    )
    response = await post(shared.env, hogql("SELECT count() FROM logs"), project_id=shared.other.id, key=key)
    assert response.json()["results"] == [[len(INTRUDER)]]


@pytest.mark.parametrize("project_id", ["987654", "abc", "0"])
async def test_unknown_project_is_404(shared: Shared, project_id: str) -> None:
    """An unknown or non-numeric project id is 404 Project not found."""
    response = await shared.env.client.post(
        f"/api/projects/{project_id}/query/", json=hogql("SELECT 1"), headers=shared.env.auth()
    )
    assert_error(response, 404, type="invalid_request", code="not_found", detail="Project not found.")


async def test_key_in_the_body_is_accepted(shared: Shared) -> None:
    """The personal API key may come in the JSON body as personal_api_key (PostHog's second place)."""
    body = {**hogql("SELECT count() FROM logs"), "personal_api_key": shared.env.key}
    response = await shared.env.client.post(query_url(shared.env), json=body)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [[TOTAL]]


# --- routes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["projects", "environments"])
@pytest.mark.parametrize("slash", ["/", ""], ids=["slash", "bare"])
async def test_route_spellings(shared: Shared, prefix: str, slash: str) -> None:
    """/api/projects and /api/environments, with or without the trailing slash, run the same query."""
    env = shared.env
    url = f"/api/{prefix}/{env.project.id}/query{slash}"
    response = await env.client.post(url, json=hogql("SELECT count() FROM logs"), headers=env.auth())
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [[TOTAL]]
    started = await env.client.post(url, json=hogql("SELECT 7", refresh="async"), headers=env.auth())
    assert started.status_code == 202, started.text
    status_url = f"/api/{prefix}/{env.project.id}/query/{started.json()['query_status']['id']}{slash}"
    for _ in range(500):
        status = await env.client.get(status_url, headers=env.auth())
        if status.status_code != 202:
            break
        await asyncio.sleep(0.01)
    assert status.status_code == 200, status.text
    assert status.json()["query_status"]["results"]["results"] == [[7]]


# --- the request body (spec §2.2) --------------------------------------------------------------------

HOGQL_OK = {"kind": "HogQLQuery", "query": "SELECT 1"}


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({}, "query"),
        ({"query": "SELECT 1"}, "query"),
        ({"query": {"kind": "TrendsQuery", "series": []}}, "query__kind"),
        ({"query": {"query": "SELECT 1"}}, "query__kind"),
        ({"query": {"kind": "HogQLQuery"}}, "query__query"),
        ({"query": {"kind": "HogQLQuery", "query": "   "}}, "query__query"),
        ({"query": {"kind": "HogQLQuery", "query": ["SELECT 1"]}}, "query__query"),
        ({"query": {**HOGQL_OK, "values": ["x"]}}, "query__values"),
        ({"query": {**HOGQL_OK, "values": "x=1"}}, "query__values"),
        ({"query": {**HOGQL_OK, "variables": ["x"]}}, "query__variables"),
        ({"query": {**HOGQL_OK, "variables": {"v1": {"value": 1}}}}, "query__variables"),
        ({"query": HOGQL_OK, "refresh": "sometimes"}, "refresh"),
        ({"query": HOGQL_OK, "refresh": 3}, "refresh"),
        ({"query": HOGQL_OK, "client_query_id": 12}, "client_query_id"),
        ({"query": HOGQL_OK, "client_query_id": "a/b"}, "client_query_id"),
        ({"query": HOGQL_OK, "name": "n" * 129}, "name"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_invalid_body_is_400_naming_the_field(shared: Shared, body: Any, attr: str) -> None:
    """A body that is not a valid HogQLQuery request is 400 invalid_input with attr naming the field."""
    assert_error(await post(shared.env, body), 400, type="validation_error", code="invalid_input", attr=attr)


async def test_malformed_json_is_400_parse_error(shared: Shared) -> None:
    """A body that is not JSON is 400 parse_error."""
    response = await shared.env.client.post(
        query_url(shared.env), content=b'{"query": ', headers={**shared.env.auth(), "Content-Type": "application/json"}
    )
    assert_error(response, 400, type="invalid_request", code="parse_error")


async def test_client_query_id_cannot_be_reused_while_running(shared: Shared) -> None:
    """A second query with the id of a running one is 400 on client_query_id; once it ended, the id is free."""
    async with slow_async(shared.env, "reused-id"):
        response = await post(shared.env, hogql("SELECT 1", client_query_id="reused-id"))
        assert_error(response, 400, type="validation_error", code="invalid_input", attr="client_query_id")
    response = await post(shared.env, hogql("SELECT 1", client_query_id="reused-id"))
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [[1]]


# --- placeholders, filters, variables (spec §2.2) ------------------------------------------------------

AWKWARD = "it's a \"quote\" \\ and '); DROP TABLE logs; -- {x} %s"


async def test_values_are_constants(shared: Shared) -> None:
    """values fill {placeholders} as constants: strings with quotes stay intact, numbers and lists work."""
    values = {"text": AWKWARD, "n": 42, "ratio": 1.5, "levels": ["error", "warn"], "flag": True}
    response = await post(
        shared.env, hogql("SELECT {text} AS t, {n} AS n, {ratio} AS r, {levels} AS l", query_fields={"values": values})
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [[AWKWARD, 42, 1.5, ["error", "warn"]]]

    text = "SELECT count() FROM logs WHERE level IN {levels} AND severity_number >= {min} AND message != {text}"
    response = await post(shared.env, hogql(text, query_fields={"values": {**values, "min": 13}}))
    assert response.json()["results"] == [[10 + len(OLD)]]
    response = await post(
        shared.env,
        hogql("SELECT count() FROM logs WHERE message = {m}", query_fields={"values": {"m": "request 3 timeout"}}),
    )
    assert response.json()["results"] == [[1]]
    # the injection attempt was a string, nothing more
    assert (await run(shared.env, "SELECT count() FROM logs")).json()["results"] == [[TOTAL]]


async def test_missing_placeholder_is_400_naming_it(shared: Shared) -> None:
    """A {placeholder} without a value is 400 hogql_query_error naming the placeholder."""
    response = await post(
        shared.env,
        hogql("SELECT count() FROM logs WHERE level = {wanted_level}", query_fields={"values": {"other": 1}}),
    )
    body = assert_error(response, 400, type="validation_error", code="hogql_query_error")
    assert "wanted_level" in body["detail"]


async def test_placeholder_value_of_unsupported_type_is_400(shared: Shared) -> None:
    """A placeholder value that is an object is refused, not spliced into the query."""
    response = await post(shared.env, hogql("SELECT {m}", query_fields={"values": {"m": {"a": "b"}}}))
    body = assert_error(response, 400, type="validation_error", code="hogql_query_error")
    assert "{m}" in body["detail"]


async def filtered_count(env: Env, filters: Any, *, override: bool = False) -> httpx.Response:
    text = "SELECT count() FROM logs WHERE {filters}"
    if override:
        return await post(env, {**hogql(text), "filters_override": filters})
    return await post(env, hogql(text, query_fields={"filters": filters}))


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"dateRange": {"date_from": "-30M"}}, 30),  # M: minutes, m: months (PostHog)
        ({"dateRange": {"date_from": "-30m"}}, TOTAL),
        ({"dateRange": {"date_from": "-3h", "date_to": "-1h"}}, len(OLD)),
        ({"dateRange": {"date_from": "2026-03-01T11:50:00Z", "date_to": "2026-03-01T11:55:00Z"}}, 6),
        ({"dateRange": {"date_from": "2026-03-01T12:50:00+01:00"}}, 11),
        ({"dateRange": {"date_from": "all"}}, TOTAL),
        ({"properties": [{"key": "http.method", "value": "GET", "operator": "exact", "type": "log_attribute"}]}, 15),
        ({"properties": [{"key": "http.method", "operator": "is_not_set", "type": "log_attribute"}]}, len(OLD)),
        ({"properties": [{"key": "message", "value": "timeout", "operator": "icontains", "type": "log"}]}, 10),
        ({"properties": [{"key": "level", "value": ["warn", "error"], "operator": "exact", "type": "log"}]}, 15),
        ({"properties": [{"key": "service.name", "value": "cron", "type": "log_resource_attribute"}]}, len(OLD)),
        (
            {
                "dateRange": {"date_from": "-30M"},
                "properties": [
                    {"key": "message", "value": "timeout", "operator": "icontains", "type": "log"},
                    {"key": "http.method", "value": "GET", "operator": "exact", "type": "log_attribute"},
                ],
            },
            5,
        ),
        ({}, TOTAL),
    ],
)
async def test_filters_placeholder(shared: Shared, filters: dict[str, Any], expected: int) -> None:
    """{filters} bounds timestamp by dateRange (relative to now, or ISO) and applies log property filters."""
    response = await filtered_count(shared.env, filters)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [[expected]]


async def test_filters_without_filters_match_everything(shared: Shared) -> None:
    """{filters} with no filters given stands for true."""
    response = await run(shared.env, "SELECT count() FROM logs WHERE {filters}")
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [[TOTAL]]


async def test_filters_override_fills_filters(shared: Shared) -> None:
    """The request's filters_override (dashboard filters) fills {filters} too."""
    response = await filtered_count(shared.env, {"dateRange": {"date_from": "-30M"}}, override=True)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [[30]]


@pytest.mark.parametrize(
    ("filters", "attr"),
    [
        ("last week", "filters"),
        ({"dateRange": "-1d"}, "filters__dateRange"),
        ({"dateRange": {"date_from": "yesterday-ish"}}, "filters__dateRange__date_from"),
        ({"dateRange": {"date_to": 5}}, "filters__dateRange__date_to"),
        ({"properties": {"key": "level"}}, "filters__properties"),
        ({"properties": ["level"]}, "filters__properties__0"),
        ({"properties": [{"key": "no_such_field", "value": "x", "type": "log"}]}, "filters__properties__0__key"),
        (
            {"properties": [{"key": "level", "value": "x", "type": "log", "operator": "near"}]},
            "filters__properties__0__operator",
        ),
        ({"properties": [{"key": "level", "value": "x", "type": "cohort"}]}, "filters__properties__0__type"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_bad_filters_are_400_naming_the_field(shared: Shared, filters: Any, attr: str) -> None:
    """A bad filters value is 400 invalid_input whose attr points into filters."""
    assert_error(
        await filtered_count(shared.env, filters), 400, type="validation_error", code="invalid_input", attr=attr
    )


async def test_variables(shared: Shared) -> None:
    """{variables.<code_name>} takes the variable's value; isNull makes it NULL."""
    variables: dict[str, dict[str, Any]] = {"018f": {"variableId": "018f", "code_name": "lvl", "value": "error"}}
    text = "SELECT count() FROM logs WHERE level = {variables.lvl}"
    response = await post(shared.env, hogql(text, query_fields={"variables": variables}))
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [[10]]
    variables["018f"]["isNull"] = True
    response = await post(
        shared.env, hogql("SELECT coalesce({variables.lvl}, 'none')", query_fields={"variables": variables})
    )
    assert response.json()["results"] == [["none"]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT count() FROM logs WHERE nullIf(level, 'error') IS NULL", 10),
        ("SELECT count() FROM logs WHERE nullIf(level, 'error') IS NOT NULL", TOTAL - 10),
        ("SELECT NULL IS NULL", 1),
    ],
)
async def test_is_null(shared: Shared, text: str, expected: int) -> None:
    """IS NULL and IS NOT NULL test for NULL as in HogQL (isNull / isNotNull), not with = NULL."""
    response = await run(shared.env, text)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [[expected]]


async def test_data_visualization_node_is_unwrapped(shared: Shared) -> None:
    """A DataVisualizationNode runs its HogQLQuery source."""
    source = {"kind": "HogQLQuery", "query": "SELECT level, count() AS c FROM logs GROUP BY level ORDER BY level"}
    response = await post(shared.env, {"query": {"kind": "DataVisualizationNode", "source": source}})
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [["error", 10], ["info", 20], ["warn", 5]]


async def test_explain_returns_the_generated_sql(shared: Shared) -> None:
    """explain: true adds the ClickHouse SQL to the answer; without it clickhouse is null."""
    text = "SELECT count() FROM logs WHERE level = 'error'"
    plain = (await run(shared.env, text)).json()
    assert plain["clickhouse"] is None
    explained = (await post(shared.env, hogql(text, query_fields={"explain": True}))).json()
    assert explained["results"] == plain["results"] == [[10]]
    assert isinstance(explained["clickhouse"], str)
    assert explained["clickhouse"].startswith("SELECT") and "LIMIT" in explained["clickhouse"]


# --- errors (spec §2.5) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("SELECT 'a' + 1 FROM logs", "illegal_type_of_argument"),
        ("SELECT level, count() FROM logs", "not_an_aggregate"),
        ("SELECT toUUID('not a uuid') FROM logs", "cannot_parse_uuid"),
        ("SELECT intDiv(1, 0) FROM logs", "illegal_division"),
        ("SELECT sum(count()) FROM logs", "illegal_aggregation"),
        ("SELECT toInt64('abc') FROM logs", "cannot_parse_text"),
        ("SELECT count() FROM logs WHERE match(message, '(')", "cannot_compile_regexp"),
    ],
)
async def test_clickhouse_errors_are_400_with_their_name(shared: Shared, text: str, code: str) -> None:
    """A ClickHouse error caused by the query is 400 with the lower-cased error name and no SQL in the detail."""
    body = assert_error(await run(shared.env, text), 400, type="validation_error", code=code)
    assert_no_leak(shared.env, body["detail"])


@pytest.mark.parametrize(
    "text",
    [
        "SELECT level FROM logs WHERE ((",
        "SELECT no_such_column FROM logs",
        "SELECT no_such_function(1) FROM logs",
        "SELECT count() FROM no_such_table",
        "SELECT count() FROM system.tables",
        "SELECT [1] = 'a' FROM logs",
        "SELECT arrayJoin(range(1000)) AS x FROM logs WHERE toUUID(message) = x",
    ],
)
async def test_error_details_never_leak_sql(shared: Shared, text: str) -> None:
    """Whatever fails, the error envelope carries no generated SQL, database name, team_id or SETTINGS."""
    response = await run(shared.env, text)
    assert response.status_code in (400, 500), response.text
    body = response.json()
    assert body["type"] in ("validation_error", "server_error"), body
    assert_no_leak(shared.env, body["detail"])
    if response.status_code == 500:
        assert body == {
            "type": "server_error",
            "code": "error",
            "detail": "ClickHouse error while executing query.",
            "attr": None,
        }


async def test_timeout_is_504(tight: Shared) -> None:
    """A query over the personal-key time limit is stopped there and answers 504 server_error."""
    started = time.monotonic()
    body = assert_error(await run(tight.env, SLOW), 504, type="server_error", code="error")
    assert time.monotonic() - started < 5
    assert "0.5 seconds" in body["detail"]
    assert_no_leak(tight.env, body["detail"])
    # the app is fine afterwards
    assert (await run(tight.env, "SELECT count() FROM logs")).json()["results"] == [[TOTAL]]


# --- limits (spec §2.4) -----------------------------------------------------------------------------


async def test_explicit_limit_is_clamped(tight: Shared) -> None:
    """A LIMIT above hogql_max_limit returns hogql_max_limit rows; limit/hasMore stay null for an explicit LIMIT."""
    body = (await run(tight.env, "SELECT message FROM logs ORDER BY timestamp DESC LIMIT 20")).json()
    assert body["results"] == [[f"request {i} {'timeout' if i % 3 == 0 else 'ok'}"] for i in range(5)]
    assert (body["hasMore"], body["limit"], body["offset"]) == (None, None, None)
    body = (await run(tight.env, "SELECT message FROM logs ORDER BY timestamp DESC LIMIT 2")).json()
    assert len(body["results"]) == 2


async def test_default_limit_and_has_more_with_settings(tight: Shared) -> None:
    """Without LIMIT, hogql_default_limit rows come back with hasMore; fewer rows mean hasMore false."""
    body = (await run(tight.env, "SELECT message FROM logs ORDER BY timestamp DESC")).json()
    assert body["results"] == [["request 0 timeout"], ["request 1 ok"], ["request 2 ok"]]
    assert (body["hasMore"], body["limit"], body["offset"]) == (True, 3, 0)
    body = (await run(tight.env, "SELECT level, count() FROM logs GROUP BY level ORDER BY level")).json()
    assert body["results"] == [["error", 10], ["info", 20], ["warn", 5]]
    assert (body["hasMore"], body["limit"]) == (False, 3)
    body = (await run(tight.env, "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4")).json()
    assert len(body["results"]) == 3 and body["hasMore"] is True


async def test_offset_is_allowed_when_configured(tight: Shared) -> None:
    """With hogql_allow_offset_with_personal_key, OFFSET works for personal keys."""
    response = await run(tight.env, "SELECT message FROM logs ORDER BY timestamp DESC LIMIT 2 OFFSET 3")
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [["request 3 timeout"], ["request 4 ok"]]


# --- concurrency (spec §1.4, §2.4) ------------------------------------------------------------------


async def test_full_queue_is_429_with_retry_after(busy: Shared) -> None:
    """With the project's only slot taken, a query waits hogql_queue_seconds and gets 429 throttled + Retry-After."""
    async with slow_async(busy.env, "hog-the-slot"):
        started = time.monotonic()
        response = await run(busy.env, "SELECT count() FROM logs")
        waited = time.monotonic() - started
        assert_error(response, 429, type="throttled_error", code="throttled")
        assert int(response.headers["Retry-After"]) >= 1
        assert 0.25 <= waited < 3, waited
    # the slot is free again
    assert (await run(busy.env, "SELECT count() FROM logs")).json()["results"] == [[TOTAL]]


async def test_burst_rate_limit(shared: Shared, monkeypatch: pytest.MonkeyPatch) -> None:
    """More than 240 queries a minute from personal API keys get 429 throttled with Retry-After."""
    limiter = RateLimiter([(240, 60.0), (2400, 3600.0)])  # PostHog's limits, the settings' defaults
    monkeypatch.setattr(shared.env.services, "query_rate_limiter", limiter)
    project = shared.env.services.meta.create_project("Burst")  # its own budget, used up here only
    for _ in range(240):
        response = await run(shared.env, "SELECT 1", project_id=project.id)
        assert response.status_code == 200, response.text
    response = await run(shared.env, "SELECT 1", project_id=project.id)
    assert_error(response, 429, type="throttled_error", code="throttled")
    assert int(response.headers["Retry-After"]) >= 1


async def test_other_project_is_not_throttled_by_a_full_queue(busy: Shared) -> None:
    """Project b still answers while project a's only slot is taken."""
    async with slow_async(busy.env, "hog-a"):
        response = await run(busy.env, "SELECT count() FROM logs", project_id=busy.other.id)
        assert response.status_code == 200, response.text
        assert response.json()["results"] == [[len(INTRUDER)]]


# --- async queries, polling, cancelling (spec §2.1, §2.3) ---------------------------------------------

QUERY_STATUS_KEYS = {
    "id",
    "team_id",
    "complete",
    "query_async",
    "error",
    "error_message",
    "start_time",
    "pickup_time",
    "end_time",
    "expiration_time",
    "task_id",
    "query_progress",
    "results",
    "labels",
    "dashboard_id",
    "insight_id",
}


async def test_async_answers_202_with_query_status(shared: Shared) -> None:
    """refresh=async answers 202 with PostHog's query_status: our id, not complete, async, no error, no results."""
    response = await post(
        shared.env, hogql("SELECT count() FROM logs", refresh="async", client_query_id="shape-1", name="my label")
    )
    assert response.status_code == 202, response.text
    status = response.json()["query_status"]
    assert set(status) >= QUERY_STATUS_KEYS
    assert status["id"] == "shape-1" and status["team_id"] == shared.env.project.id
    assert (status["complete"], status["query_async"], status["error"]) == (False, True, False)
    assert status["error_message"] is None and status["results"] is None and status["end_time"] is None
    assert status["start_time"].endswith("Z")
    assert status["labels"] == ["my label"]
    assert (await poll_until_done(shared.env, "shape-1")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"refresh": "force_async"}, {"refresh": "lazy_async"}, {"async": True}],
    ids=["force_async", "lazy_async", "legacy_async_flag"],
)
async def test_other_async_spellings(shared: Shared, body: dict[str, Any]) -> None:
    """force_async, lazy_async and the legacy async: true also answer 202 and a server-made id."""
    response = await post(shared.env, {**hogql("SELECT 1"), **body})
    assert response.status_code == 202, response.text
    query_id = response.json()["query_status"]["id"]
    assert query_id
    assert (await poll_until_done(shared.env, query_id)).json()["query_status"]["results"]["results"] == [[1]]


async def test_async_result_when_done(shared: Shared) -> None:
    """Polling a finished async query is 200 with complete true and the whole response in results."""
    response = await post(
        shared.env, hogql("SELECT level, count() AS c FROM logs GROUP BY level ORDER BY level", refresh="async")
    )
    query_id = response.json()["query_status"]["id"]
    done = await poll_until_done(shared.env, query_id)
    assert done.status_code == 200, done.text
    status = done.json()["query_status"]
    assert (status["complete"], status["error"], status["error_message"]) == (True, False, None)
    assert status["end_time"] and status["pickup_time"] and status["expiration_time"]
    assert status["results"]["results"] == [["error", 10], ["info", 20], ["warn", 5]]
    assert status["results"]["columns"] == ["level", "c"]
    # still there on a second poll
    again = (await poll(shared.env, query_id)).json()["query_status"]
    assert (again["complete"], again["results"]) == (True, status["results"])


async def test_poll_while_running_is_202_and_delete_cancels(shared: Shared) -> None:
    """A running async query polls 202; DELETE answers 200 and the query then reports an error."""
    async with slow_async(shared.env, "running-1"):
        running = await poll(shared.env, "running-1")
        assert running.status_code == 202, running.text
        assert running.json()["query_status"]["complete"] is False
        started = time.monotonic()
        response = await cancel(shared.env, "running-1")
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["message"], str)
        done = await poll_until_done(shared.env, "running-1")
        assert time.monotonic() - started < 5
    assert done.status_code == 400, done.text
    status = done.json()["query_status"]
    assert (status["complete"], status["error"]) == (True, True)
    assert status["error_message"]


async def test_another_projects_query_id_is_404(shared: Shared) -> None:
    """A query id of project a is unknown under project b, for GET and DELETE."""
    response = await post(shared.env, hogql("SELECT 1", refresh="async", client_query_id="a-only"))
    assert response.status_code == 202
    for method in ("GET", "DELETE"):
        response = await shared.env.client.request(
            method, query_url(shared.env, "a-only/", shared.other.id), headers=shared.env.auth()
        )
        assert_error(response, 404, type="invalid_request", code="not_found")
    assert (await poll_until_done(shared.env, "a-only")).status_code == 200


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_unknown_query_id_is_404(shared: Shared, method: str) -> None:
    """Polling or cancelling an id that never existed is 404."""
    response = await shared.env.client.request(method, query_url(shared.env, "never-ran/"), headers=shared.env.auth())
    assert_error(response, 404, type="invalid_request", code="not_found")


async def test_delete_of_a_finished_query_is_200(shared: Shared) -> None:
    """DELETE of a query that already finished answers 200 with a message and leaves its result alone."""
    response = await post(shared.env, hogql("SELECT 5", refresh="async", client_query_id="finished-1"))
    assert response.status_code == 202
    assert (await poll_until_done(shared.env, "finished-1")).status_code == 200
    response = await cancel(shared.env, "finished-1")
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["message"], str)
    assert (await poll(shared.env, "finished-1")).json()["query_status"]["results"]["results"] == [[5]]


@pytest.mark.parametrize(
    ("text", "detail_part"),
    [
        ("SELECT level FROM logs WHERE ((", "line 1"),
        ("SELECT nope FROM logs", "nope"),
        ("SELECT 'a' + 1 FROM logs", ""),
    ],
    ids=["syntax", "unknown_field", "clickhouse"],
)
async def test_failed_async_query_polls_400_with_error_message(shared: Shared, text: str, detail_part: str) -> None:
    """An async query that fails polls as 400 with complete and error true and a user-facing error_message."""
    response = await post(shared.env, hogql(text, refresh="async"))
    assert response.status_code == 202, response.text
    done = await poll_until_done(shared.env, response.json()["query_status"]["id"])
    assert done.status_code == 400, done.text
    status = done.json()["query_status"]
    assert (status["complete"], status["error"], status["results"]) == (True, True, None)
    assert detail_part in status["error_message"]
    assert_no_leak(shared.env, status["error_message"])


async def test_cancel_a_running_blocking_query(shared: Shared) -> None:
    """DELETE from a concurrent request stops a running blocking query quickly, and it answers non-200."""

    async def cancel_when_running() -> httpx.Response:
        for _ in range(500):
            status = await poll(shared.env, "blocking-1")
            if status.status_code == 202 and status.json()["query_status"]["pickup_time"]:
                await asyncio.sleep(0.1)
                return await cancel(shared.env, "blocking-1")
            await asyncio.sleep(0.01)
        raise AssertionError("the blocking query never showed up as running")

    started = time.monotonic()
    blocking, cancelled = await asyncio.gather(
        post(shared.env, hogql(SLOW, client_query_id="blocking-1")), cancel_when_running()
    )
    assert cancelled.status_code == 200, cancelled.text
    assert blocking.status_code not in (200, 504), blocking.text
    assert blocking.status_code < 500, blocking.text
    assert time.monotonic() - started < 5  # the personal-key time limit is 10 s
    assert (await run(shared.env, "SELECT count() FROM logs")).json()["results"] == [[TOTAL]]


# --- values in results (spec §2.3) ------------------------------------------------------------------


async def test_result_value_encoding(shared: Shared) -> None:
    """UUIDs are strings, 64-bit integers JSON numbers, maps objects, arrays arrays and NULL null."""
    text = (
        "SELECT uuid, toUInt64(18446744073709551615) AS big, toInt64(-9007199254740993) AS neg, count() AS c, "
        "attributes, [1, 2, 3] AS arr, map('k', [1]) AS nested, NULL AS nothing, 1.5 AS f, tuple(1, 'a') AS t "
        "FROM logs WHERE message = 'request 1 ok' GROUP BY uuid, attributes"
    )
    response = await run(shared.env, text)
    assert response.status_code == 200, response.text
    [row] = response.json()["results"]
    assert UUID_RE.match(row[0]), row[0]
    assert row[1:4] == [18446744073709551615, -9007199254740993, 1]
    assert row[4] == {"http.method": "GET", "n": "1"}
    assert row[5:] == [[1, 2, 3], {"k": [1]}, None, 1.5, [1, "a"]]
    types = dict(response.json()["types"])
    assert (types["uuid"], types["big"], types["c"]) == ("UUID", "UInt64", "UInt64")


async def test_datetimes_in_the_project_timezone(shared: Shared) -> None:
    """DateTime values come back as ISO 8601 with the offset of the project's time zone."""
    text = "SELECT timestamp, toDateTime('2026-07-01 10:00:00') AS summer FROM logs"
    response = await run(shared.env, text, project_id=shared.berlin.id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] == [["2026-03-01T13:00:00+01:00", "2026-07-01T12:00:00+02:00"]]
    assert body["timezone"] == "Europe/Berlin"
    utc = (await run(shared.env, "SELECT timestamp FROM logs ORDER BY timestamp DESC LIMIT 1")).json()
    assert utc["results"] == [["2026-03-01T12:00:00Z"]] and utc["timezone"] == "UTC"
