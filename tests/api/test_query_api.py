"""The HogQL query API end to end in-process: response shape, limits, errors, async, cancel, concurrency."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest

from tests._log_tables import log_row
from tests.api._support import assert_error, store_world
from tests.conftest import Env

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def hogql(text: str, **extra: Any) -> dict[str, Any]:
    return {"query": {"kind": "HogQLQuery", "query": text, **extra.pop("query_fields", {})}, **extra}


async def run(env: Env, text: str, project_id: int | None = None, key: str | None = None, **extra: Any) -> httpx.Response:
    pid = project_id or env.project.id
    return await env.client.post(f"/api/projects/{pid}/query/", json=hogql(text, **extra), headers=env.auth(key))


@pytest.fixture
async def world(env: Env) -> Env:
    rows = [
        log_row(NOW - dt.timedelta(minutes=i), body=f"request {i} timeout" if i % 3 == 0 else f"request {i} ok",
                severity="error" if i % 3 == 0 else "info", service="api" if i % 2 else "web",
                attributes={"http.method": "GET" if i % 2 else "POST", "n": str(i)})
        for i in range(30)
    ]
    intruder = [log_row(NOW - dt.timedelta(minutes=i), body="secret timeout", severity="error", service="api")
                for i in range(5)]
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
    body = assert_error(await run(world, "SELECT level FROM logs WHERE (("), 400, type="validation_error",
                        code="hogql_syntax_error")
    assert "line 1" in body["detail"]


async def test_other_projects_rows_never_show(world: Env) -> None:
    """The intruder project's rows are invisible, whatever the query says about team_id."""
    response = await run(world, "SELECT count() FROM logs WHERE message LIKE '%secret%' OR team_id != 0")
    assert response.json()["results"] == [[30]]


async def test_offset_with_personal_key_is_refused(world: Env) -> None:
    """OFFSET with a personal API key is a 400 hogql_query_error pointing to keyset pagination."""
    body = assert_error(await run(world, "SELECT message FROM logs LIMIT 10 OFFSET 5"), 400,
                        type="validation_error", code="hogql_query_error")
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

    slow = "SELECT count() FROM logs AS a, logs AS b, logs AS c, logs AS d, logs AS e, logs AS f WHERE sipHash64(a.message, b.message, c.message, d.message, e.message, f.message) % 7 = 1"
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
