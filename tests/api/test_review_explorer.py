"""Defects found reviewing the explorer aggregates, live tail and exports, each pinned by the request that
showed it."""

from __future__ import annotations

import pytest

from tests.api._support import assert_error
from tests.conftest import Env

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
