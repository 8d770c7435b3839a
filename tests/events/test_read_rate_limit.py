"""PostHog's rate limit of ClickHouse-backed reads on the events and persons APIs (personal API keys)."""

from __future__ import annotations

from pathlib import Path

import pytest

from logpond.store.chdb_store import ChDBStore
from tests.conftest import make_settings, running_env

pytestmark = pytest.mark.asyncio


async def test_events_and_persons_share_the_projects_read_budget(tmp_path: Path, store: ChDBStore) -> None:
    """Within a minute a project gets api_read_rate_limit_per_minute reads, then 429 with Retry-After."""
    settings = make_settings(tmp_path, api_read_rate_limit_per_minute=3, api_read_rate_limit_per_hour=100)
    async with running_env(settings, store) as env:
        base = f"/api/projects/{env.project.id}"
        for path in ("/events/", "/persons/", "/events/"):
            response = await env.client.get(base + path, headers=env.auth())
            assert response.status_code == 200, response.text
        response = await env.client.get(base + "/persons/", headers=env.auth())
        assert response.status_code == 429
        body = response.json()
        assert (body["type"], body["code"]) == ("throttled_error", "throttled")
        assert body["detail"].startswith("Request was throttled. Expected available in ")
        assert 1 <= int(response.headers["Retry-After"]) <= 60
