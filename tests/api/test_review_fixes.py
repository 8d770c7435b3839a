"""Inputs at the edges of what the store can represent, oversized bodies, and a decode worker dying."""

from __future__ import annotations

import base64
import os
import signal
from pathlib import Path

import orjson
import pytest

from logpond.store.chdb_store import ChDBStore
from tests.api._otlp import encode
from tests.conftest import Env, make_settings, running_env


@pytest.mark.parametrize(
    ("query", "attr"),
    [
        ({"dateRange": {"date_from": "-9999999d"}}, "dateRange__date_from"),
        ({"dateRange": {"date_from": "-9999999y"}}, "dateRange__date_from"),
        ({"dateRange": {"date_from": "-9999999h"}}, "dateRange__date_from"),
        ({"dateRange": {"date_from": "0001-01-01T00:00:00+05:00"}}, "dateRange__date_from"),
        ({"dateRange": {"date_from": "-1h", "date_to": "9999-12-31T23:59:59Z"}}, "dateRange__date_to"),
        ({"liveLogsCheckpoint": "0001-01-01T00:00:00+05:00"}, "liveLogsCheckpoint"),
        ({"resourceFingerprint": "9" * 5000}, "resourceFingerprint"),
        ({"after": base64.b64encode(orjson.dumps({"timestamp": "9999-12-31T23:59:59.999999Z",
                                                  "uuid": "01a20889-5731-7271-8dff-815f1cacfcf2"})).decode()}, "after"),
    ],
)
async def test_out_of_range_dates_are_400_naming_the_field(env: Env, query: dict[str, object], attr: str) -> None:
    """Dates, cursors and fingerprints outside what the store can hold are a 400 naming the field, not a 500."""
    response = await env.query(query)
    assert response.status_code == 400, response.text
    assert response.json()["attr"] == attr
    count = await env.client.post("/api/projects/1/logs/count/", json={"query": query}, headers=env.auth())
    assert count.status_code in (200, 400)


async def test_count_and_query_agree_on_rows_stamped_in_the_near_future(env: Env) -> None:
    """A log up to 24 h ahead of the server clock is treated alike by query and count (both end at now)."""
    import time

    ahead = time.time_ns() + 3600 * 10**9
    body = encode([{"body": "from the future", "time_unix_nano": ahead}, {"body": "from now"}])
    assert (await env.send_otlp(body)).status_code == 200
    env.flush()
    rows = (await env.query({"dateRange": {"date_from": "-1h"}})).json()["results"]
    count = (await env.client.post("/api/projects/1/logs/count/", json={"query": {"dateRange": {"date_from": "-1h"}}},
                                   headers=env.auth())).json()["count"]
    assert count == len(rows) == 1


async def test_oversized_api_body_is_413_before_authentication(env: Env) -> None:
    """A JSON API body over 20 MB is refused with 413 without being buffered, even with no credentials."""
    big = b'{"personal_api_key": "x", "pad": "' + b"a" * (21 * 1024 * 1024) + b'"}'
    response = await env.client.post("/api/projects/1/logs/query/", content=big,
                                     headers={"Content-Type": "application/json"})
    assert response.status_code in (401, 413)
    response = await env.client.post("/api/projects/1/logs/query/", content=big,
                                     headers={**env.auth(), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_a_dead_decode_worker_is_replaced(tmp_path: Path, store: ChDBStore) -> None:
    """When the decode worker process is killed, the next requests still land and a new worker takes over."""
    settings = make_settings(tmp_path, ingest_decode_processes=1)
    async with running_env(settings, store) as env:
        assert (await env.send_otlp(encode([{"body": "first"}]))).status_code == 200
        pool = env.services.decode_pool
        assert pool is not None
        for pid in list(pool._processes):  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)
        statuses = [(await env.send_otlp(encode([{"body": f"after {i}"}]))).status_code for i in range(3)]
        assert statuses == [200, 200, 200]
        assert env.services.decode_pool is not None and env.services.decode_pool is not pool
        env.flush()
        rows = (await env.query({"dateRange": {"date_from": "-1h"}})).json()["results"]
        assert sorted(r["body"] for r in rows) == ["after 0", "after 1", "after 2", "first"]
