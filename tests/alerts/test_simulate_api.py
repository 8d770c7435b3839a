"""``POST …/logs/alerts/simulate/``: a rule replayed over stored logs, bucket by bucket."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from tests._log_tables import log_row
from tests.api._support import assert_error, store_world
from tests.conftest import Env

pytestmark = pytest.mark.asyncio

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
API_ERRORS = {"severityLevels": ["error"], "serviceNames": ["api"]}


def burst(start: dt.datetime, n: int, **fields: Any) -> list[dict[str, Any]]:
    return [log_row(start + dt.timedelta(seconds=i), severity="error", service="api", **fields) for i in range(n)]


@pytest.fixture
async def world(env: Env) -> Env:
    """15 errors in [10:00, 10:05), 3 in [10:05, 10:10), 20 in [11:00, 11:05); another project has many."""
    at = NOW.replace(hour=10)
    rows = burst(at, 15) + burst(at + dt.timedelta(minutes=5), 3) + burst(at + dt.timedelta(hours=1), 20)
    rows += [log_row(at, severity="info", service="api"), log_row(at, severity="error", service="web")]
    intruder = burst(at, 500) + burst(at + dt.timedelta(minutes=30), 500)
    store_world(env, NOW, [rows], intruder)
    return env


async def simulate(env: Env, key: str | None = None, **body: Any) -> httpx.Response:
    doc = {"filters": API_ERRORS, "threshold_count": 10, "date_from": "-3h", **body}
    return await env.client.post(
        f"/api/projects/{env.project.id}/logs/alerts/simulate/", json=doc, headers=env.auth(key)
    )


def by_time(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["timestamp"][11:16]: b for b in doc["buckets"]}


async def test_fires_and_resolves_at_the_checks_that_see_the_bursts(world: Env) -> None:
    """Checks every 5 minutes from date_from: each counts the window before it; the other project is unseen."""
    response = await simulate(world)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert set(doc) == {
        "buckets",
        "fire_count",
        "resolve_count",
        "total_buckets",
        "threshold_count",
        "threshold_operator",
    }
    assert doc["total_buckets"] == len(doc["buckets"]) == 36  # 09:05 … 12:00
    assert (doc["threshold_count"], doc["threshold_operator"]) == (10, "above")
    buckets = by_time(doc)
    assert buckets["09:05"]["timestamp"] == "2026-03-01T09:05:00.000000Z"
    assert [buckets[t]["count"] for t in ("10:00", "10:05", "10:10", "10:15", "11:05", "11:10")] == [0, 15, 3, 0, 20, 0]
    assert buckets["10:05"] | {"reason": ""} == {
        "timestamp": "2026-03-01T10:05:00.000000Z",
        "count": 15,
        "threshold_breached": True,
        "state": "firing",
        "notification": "fire",
        "reason": "",
    }
    assert buckets["10:05"]["reason"] == "15 > 10 — fired"
    assert (buckets["10:10"]["state"], buckets["10:10"]["notification"]) == ("not_firing", "resolve")
    assert (buckets["11:05"]["notification"], buckets["11:10"]["notification"]) == ("fire", "resolve")
    assert (doc["fire_count"], doc["resolve_count"]) == (2, 2)
    quiet = [b for t, b in buckets.items() if t not in ("10:05", "10:10", "11:05", "11:10")]
    assert all((b["state"], b["notification"]) == ("not_firing", "none") for b in quiet)


async def test_longer_window_sums_the_buckets_before_the_check(world: Env) -> None:
    """A 10-minute window at 10:10 counts both bursts (18) and stays above the threshold until 10:20."""
    doc = (await simulate(world, window_minutes=10)).json()
    buckets = by_time(doc)
    assert [buckets[t]["count"] for t in ("10:05", "10:10", "10:15", "10:20")] == [15, 18, 3, 0]
    assert [buckets[t]["state"] for t in ("10:05", "10:10", "10:15")] == ["firing", "firing", "not_firing"]


async def test_n_of_m_waits_for_enough_breaching_windows(world: Env) -> None:
    """With 2 of 3 windows needed, a single breaching 5-minute window never fires."""
    doc = (await simulate(world, evaluation_periods=3, datapoints_to_alarm=2)).json()
    assert (doc["fire_count"], doc["resolve_count"]) == (0, 0)
    assert by_time(doc)["10:05"]["reason"].endswith("— waiting")
    assert by_time(doc)["10:05"]["threshold_breached"] is True


async def test_cooldown_moves_state_without_notifying(world: Env) -> None:
    """Within 120 minutes of the first fire, the resolve and the second fire are not notified."""
    doc = (await simulate(world, cooldown_minutes=120)).json()
    buckets = by_time(doc)
    assert (doc["fire_count"], doc["resolve_count"]) == (1, 0)
    assert (buckets["10:10"]["state"], buckets["10:10"]["notification"]) == ("not_firing", "none")
    assert (buckets["11:05"]["state"], buckets["11:05"]["notification"]) == ("firing", "none")
    assert "cooldown" in buckets["11:05"]["reason"]


async def test_below_fires_while_the_count_is_low(world: Env) -> None:
    """below 1 fires at the first check and resolves while the bursts are in the window."""
    doc = (await simulate(world, threshold_count=1, threshold_operator="below")).json()
    buckets = by_time(doc)
    assert (buckets["09:05"]["state"], buckets["09:05"]["notification"]) == ("firing", "fire")
    assert (buckets["10:05"]["state"], buckets["10:05"]["notification"]) == ("not_firing", "resolve")


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({"filters": None}, "filters"),
        ({"filters": {"searchTerm": "x"}}, "filters"),
        ({"filters": {"severityLevels": ["loud"]}}, "filters__severityLevels"),
        ({"threshold_count": -1}, "threshold_count"),
        ({"threshold_operator": "equal"}, "threshold_operator"),
        ({"window_minutes": 7}, "window_minutes"),
        ({"check_interval_minutes": 10, "window_minutes": 30}, "check_interval_minutes"),
        ({"evaluation_periods": 11}, "evaluation_periods"),
        ({"evaluation_periods": 2, "datapoints_to_alarm": 3}, "datapoints_to_alarm"),
        ({"cooldown_minutes": "soon"}, "cooldown_minutes"),
        ({"date_from": "-40d"}, "date_from"),
        ({"date_from": "yesterday-ish"}, "date_from"),
    ],
)
async def test_bad_rules_name_the_field(env: Env, body: dict[str, Any], attr: str) -> None:
    """Each invalid field is a 400 naming it."""
    response = await simulate(env, **body)
    assert_error(response, 400, type="validation_error", code="invalid_input", attr=attr)


async def test_needs_filters_and_the_logs_read_scope(world: Env) -> None:
    """A body without filters is a 400; a key without logs:read is a 403."""
    response = await world.client.post(
        f"/api/projects/{world.project.id}/logs/alerts/simulate/", json={"threshold_count": 1}, headers=world.auth()
    )
    assert_error(response, 400, type="validation_error", code="invalid_input", attr="filters")
    response = await simulate(world, key=world.new_key(["query:read"]))
    assert response.status_code == 403
