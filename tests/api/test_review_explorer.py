"""Defects found reviewing the explorer aggregates, live tail and exports, each pinned by the request that
showed it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from logpond.store.chdb_store import ChDBStore
from tests._log_tables import log_row, log_table
from tests.api._support import assert_error, iso_z
from tests.conftest import Env, make_settings, running_env

BAD_DATE_LEAF = {
    "type": "AND",
    "values": [{"key": "deadline", "type": "log_attribute", "value": "not a date", "operator": "is_date_after"}],
}


@pytest.mark.parametrize("endpoint", ["query", "count", "export"])
async def test_unparsable_date_in_a_date_filter_is_a_400(env: Env, endpoint: str) -> None:
    """An ``is_date_*`` filter whose value is not a date answers 400 naming filterGroup (it was a 500), and an
    export that fails so leaves no record behind."""
    response = await env.client.post(
        f"/api/projects/{env.project.id}/logs/{endpoint}/",
        json={"query": {"dateRange": {"date_from": "-1h"}, "filterGroup": BAD_DATE_LEAF}},
        headers=env.auth(),
    )
    assert_error(response, 400, type="validation_error", code="invalid_input", attr="filterGroup")
    assert env.services.meta.get_exported_asset(env.project.id, 1) is None


async def test_facet_on_an_attribute_with_more_values_than_the_row_cap(tmp_path: Path, store: ChDBStore) -> None:
    """A facet over an attribute with more distinct values than a query may return (a request id) answers its
    100 most frequent values, not a 504."""
    settings = make_settings(tmp_path, query_max_result_rows=1000)
    async with running_env(settings, store) as env:
        now = dt.datetime.now(dt.UTC)
        env.services.clock = lambda: now
        at = now - dt.timedelta(minutes=5)
        rows = [log_row(at, attributes={"request_id": f"r{i:05}"}) for i in range(1500)]
        rows += [log_row(at, attributes={"request_id": "hot"}) for _ in range(3)]
        store.insert_logs(log_table(rows, team_id=env.project.id))
        response = await env.client.post(
            f"/api/projects/{env.project.id}/logs/facet_values/",
            json={
                "query": {
                    "dateRange": {"date_from": iso_z(now - dt.timedelta(hours=1))},
                    "facetAttribute": "request_id",
                }
            },
            headers=env.auth(),
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert len(results) == 100
        assert results[0] == {"value": "hot", "count": 3}
        assert results[1:4] == [{"value": f"r{i:05}", "count": 1} for i in range(3)]
        searched = await env.client.post(
            f"/api/projects/{env.project.id}/logs/facet_values/",
            json={"query": {"facetAttribute": "request_id", "facetSearch": "R0149"}},
            headers=env.auth(),
        )
        assert searched.status_code == 200, searched.text
        assert searched.json()["results"] == [{"value": f"r0149{i}", "count": 1} for i in range(10)]


LONG = "a" * 300_000  # over ClickHouse's 256 KiB max_query_size once printed into SQL


@pytest.mark.parametrize(
    ("endpoint", "query"),
    [
        ("query", {"searchTerm": LONG}),
        ("count", {"searchTerm": LONG}),
        ("sparkline", {"serviceNames": [LONG]}),
        ("count-ranges", {"searchTerm": LONG}),
        ("services", {"serviceNames": [LONG]}),
        ("facet_values", {"facetAttribute": LONG}),
        ("group-by", {"groupBy": LONG}),
        ("patterns", {"searchTerm": LONG}),
    ],
)
async def test_filter_values_too_long_for_the_store_are_a_400(
    env: Env, endpoint: str, query: dict[str, object]
) -> None:
    """A search text, name or key so long that the SQL is over the store's size limit answers 400, not 500."""
    response = await env.client.post(
        f"/api/projects/{env.project.id}/logs/{endpoint}/", json={"query": query}, headers=env.auth()
    )
    assert_error(response, 400, type="validation_error", code="invalid_input", attr=None)
