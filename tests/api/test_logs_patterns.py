"""``POST /api/projects/<id>/logs/patterns/``: templates mined from the matching logs, exact or sampled.

Project 1 holds three message shapes in one hour ending at ``END`` (``LOGINS`` 30 info lines, ``PAYMENTS``
12 lines of which 8 error and 4 fatal, ``CACHE`` 18 debug lines) and a second project holds lines no
project-1 answer may show.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import pytest_asyncio

from logpond.logs import patterns_query
from logpond.logs.patterns_query import match_literal, match_regex
from tests._log_tables import log_row, log_table
from tests.api._support import assert_error
from tests.conftest import Env

pytestmark = pytest.mark.asyncio(loop_scope="module")

END = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=5)
START = END - dt.timedelta(hours=1)
RANGE = {"date_from": START.isoformat(), "date_to": END.isoformat()}
STEP = dt.timedelta(seconds=50)

LOGINS = [f"login ok for user {name} from 10.0.{i}.{i + 1}" for i, name in enumerate(["ana", "bo", "cy"] * 10)]
PAYMENTS = [f"payment {1000 + i} failed: timeout after {200 + i}ms" for i in range(12)]
CACHE = [f"cache miss for key session:{i:04d}" for i in range(18)]


def _rows() -> list[dict[str, Any]]:
    rows = []
    for i, body in enumerate(LOGINS):
        rows.append(log_row(START + i * STEP, body=body, service="auth"))
    for i, body in enumerate(PAYMENTS):
        rows.append(log_row(START + i * STEP, body=body, severity="error" if i < 8 else "fatal", service="payments"))
    for i, body in enumerate(CACHE):
        rows.append(log_row(START + i * STEP, body=body, severity="debug", service="cache" if i % 2 else "api"))
    return rows


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(module_env: Env) -> Env:
    store = module_env.services.store
    store.insert_logs(log_table(_rows(), team_id=module_env.project.id))
    other = module_env.services.meta.create_project("other")
    foreign = [log_row(START + i * STEP, body=f"secret {i} from elsewhere") for i in range(50)]
    store.insert_logs(log_table(foreign, team_id=other.id))
    return module_env


async def patterns(env: Env, **query: Any) -> dict[str, Any]:
    response = await env.client.post(
        f"/api/projects/{env.project.id}/logs/patterns/",
        json={"query": {"dateRange": RANGE, **query}},
        headers=env.auth(),
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def by_template(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["pattern"]: p for p in doc["patterns"]}


async def test_every_log_is_mined_when_few_match(env: Env) -> None:
    """With fewer logs than the sample budget, counts are exact and add up to the total."""
    doc = await patterns(env)
    assert (doc["total_count"], doc["scanned_count"], doc["sampled"], doc["sample_coverage_pct"]) == (
        60,
        60,
        False,
        100.0,
    )
    assert sorted(p["count"] for p in doc["patterns"]) == [12, 18, 30]
    assert all(p["estimated_count"] == p["count"] for p in doc["patterns"])
    assert [p["count"] for p in doc["patterns"]] == [30, 18, 12], "most frequent first"


async def test_templates_mask_the_variable_parts(env: Env) -> None:
    """Names, ids, addresses and durations become ``<*>``; the fixed words stay."""
    templates = set(by_template(await patterns(env)))
    assert templates == {
        "login ok for user <*> from <*>",
        "payment <*> failed: timeout after <*>",
        "cache miss for key session:<*>",
    }


async def test_pattern_details(env: Env) -> None:
    """Errors, severities, services, first/last seen, distinct examples and the sparkline per template."""
    payment = by_template(await patterns(env))["payment <*> failed: timeout after <*>"]
    assert (payment["error_count"], payment["estimated_error_count"]) == (12, 12)
    assert payment["severity_counts"] == {"error": 8, "fatal": 4}
    assert payment["services"] == ["payments"]
    assert payment["volume_share_pct"] == 20.0
    assert payment["first_seen"] == START.isoformat()
    assert payment["last_seen"] == (START + 11 * STEP).isoformat()
    assert len(payment["examples"]) == 10
    assert len({e["body"] for e in payment["examples"]}) == 10
    assert payment["examples"][0] == {
        "body": PAYMENTS[0],
        "severity_text": "error",
        "service_name": "payments",
        "timestamp": START.isoformat(),
    }
    assert sum(payment["sparkline"]) == 12
    assert payment["match_literal"] == "failed: timeout after"
    assert payment["match_regex"] is not None


async def test_sparkline_buckets_cover_the_range(env: Env) -> None:
    """Without slicing, the range is split into 24 equal buckets and each pattern has one count per bucket."""
    doc = await patterns(env)
    buckets = doc["sparkline_buckets"]
    assert len(buckets) == 24
    assert buckets[0]["start"] == START.isoformat() and buckets[-1]["end"] == END.isoformat()
    assert all(len(p["sparkline"]) == 24 and sum(p["sparkline"]) == p["count"] for p in doc["patterns"])


async def test_services_are_listed_in_first_seen_order(env: Env) -> None:
    """A template seen in two services lists both, the first one seen first."""
    cache = by_template(await patterns(env))["cache miss for key session:<*>"]
    assert cache["services"] == ["api", "cache"]


async def test_filters_apply(env: Env) -> None:
    """Only logs matching the filters are mined."""
    doc = await patterns(env, severityLevels=["fatal"])
    assert doc["total_count"] == 4
    assert [(p["pattern"], p["count"]) for p in doc["patterns"]] == [("payment <*> failed: timeout after <*>", 4)]
    doc = await patterns(env, searchTerm="LOGIN OK")
    assert [p["count"] for p in doc["patterns"]] == [30]


async def test_another_projects_logs_never_show(env: Env) -> None:
    """The second project's lines are neither counted nor mined."""
    doc = await patterns(env)
    assert all("secret" not in p["pattern"] for p in doc["patterns"])
    assert doc["total_count"] == 60


async def test_large_ranges_are_hash_sampled(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the sample budget a deterministic sample is mined and counts are scaled to the total."""
    monkeypatch.setattr(patterns_query, "SAMPLE_LIMIT", 20)
    first = await patterns(env)
    assert first["sampled"] is True and first["total_count"] == 60
    assert 0 < first["scanned_count"] <= 20
    assert sum(p["count"] for p in first["patterns"]) == first["scanned_count"]
    scale = 60 / first["scanned_count"]
    assert all(p["estimated_count"] == round(p["count"] * scale) for p in first["patterns"])
    assert await patterns(env) == first, "the sample is deterministic"


async def test_very_large_ranges_read_thin_slices(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the slicing threshold only a few thin slices of the range are read."""
    monkeypatch.setattr(patterns_query, "SAMPLE_LIMIT", 5)
    monkeypatch.setattr(patterns_query, "SLICE_ABOVE", 10)
    doc = await patterns(env)
    buckets = doc["sparkline_buckets"]
    assert len(buckets) == patterns_query.SLICES
    assert buckets[-1]["end"] == END.isoformat()
    assert doc["sample_coverage_pct"] < 100
    assert doc["scanned_count"] <= 5


async def test_no_logs_no_patterns(env: Env) -> None:
    """An empty range answers with no patterns and full coverage."""
    empty = {
        "date_from": (END + dt.timedelta(minutes=1)).isoformat(),
        "date_to": (END + dt.timedelta(minutes=2)).isoformat(),
    }
    doc = await patterns(env, dateRange=empty)
    assert (doc["patterns"], doc["total_count"], doc["scanned_count"], doc["sampled"]) == ([], 0, 0, False)


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({"query": []}, "query"),
        ({"query": {"dateRange": {"date_from": "yesterday-ish"}}}, "dateRange__date_from"),
        ({"query": {"severityLevels": ["loud"]}}, "severityLevels"),
    ],
)
async def test_bad_input_names_the_field(env: Env, body: dict[str, Any], attr: str) -> None:
    """Malformed requests are a 400 naming the field."""
    response = await env.client.post(f"/api/projects/{env.project.id}/logs/patterns/", json=body, headers=env.auth())
    assert_error(response, 400, type="validation_error", code="invalid_input", attr=attr)


async def test_bodies_are_mined_as_one_short_line(env: Env) -> None:
    """Whitespace runs (newlines, tabs) collapse to one space and a body is cut at 512 characters."""
    at = END + dt.timedelta(minutes=30)
    long_body = "stack trace " + "frame " * 400
    rows = [log_row(at, body="  worker\n\tcrashed   hard \n"), log_row(at, body=long_body)]
    env.services.store.insert_logs(log_table(rows, team_id=env.project.id))
    window = {"date_from": at.isoformat(), "date_to": (at + dt.timedelta(seconds=1)).isoformat()}
    doc = await patterns(env, dateRange=window)
    examples = sorted(p["examples"][0]["body"] for p in doc["patterns"])
    assert examples == sorted(["worker crashed hard", long_body[:512]])


async def test_match_helpers() -> None:
    """The literal is the longest fixed run; the regex matches the examples or is None."""
    assert match_literal("user <*> logged in from <*>") == "logged in from"
    assert match_literal("<*> <*> ok") is None
    regex = match_regex("user <*> logged in from <*>", ["user ana logged in from 10.0.0.1"])
    assert regex is not None
    assert match_regex("user <*> logged in", ["something else entirely"]) is None
