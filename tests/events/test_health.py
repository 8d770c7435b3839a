"""``/_health`` reports the events writer beside the logs writer."""

from __future__ import annotations

import pytest

from tests.conftest import Env

pytestmark = pytest.mark.asyncio


async def test_health_reports_the_events_writer(env: Env) -> None:
    """After a capture is stored, health is ok with no queued events and no writer error."""
    body = {"api_key": env.project.api_token, "batch": [{"event": "ping", "distinct_id": "u1"}]}
    assert (await env.client.post("/batch/", json=body)).status_code == 200
    assert env.services.events_writer is not None and env.services.events_writer.flush(30)
    health = (await env.client.get("/_health")).json()
    assert health["status"] == "ok"
    assert (health["queued_events"], health["events_writer_error"]) == (0, None)
