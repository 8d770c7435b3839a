"""Log alert records on both metadata engines: the per-project limit, history retention, and claims."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from logpond.alerts.rules import parse_alert, plan_create
from logpond.meta import AlertCheckResult, AlertLimitError, MetaDB
from tests.meta._support import FakeClock

RULE = {"name": "api errors", "filters": {"serviceNames": ["api"], "severityLevels": ["error"]}}


def create(meta: MetaDB, clock: FakeClock, team_id: int, limit: int = 20) -> Any:
    values = plan_create(parse_alert(RULE, now=clock.now, partial=False), now=clock.now)
    return meta.alerts.create(team_id, values, created_by_id=None, max_per_team=limit)


@pytest.fixture
def team(meta: MetaDB) -> int:
    boot = meta.bootstrap()
    assert boot is not None
    return boot.project.id


def test_the_limit_counts_only_the_projects_own_alerts(meta: MetaDB, clock: FakeClock, team: int) -> None:
    """A project at its limit cannot add an alert; another project still can."""
    for _ in range(3):
        create(meta, clock, team, limit=3)
    with pytest.raises(AlertLimitError):
        create(meta, clock, team, limit=3)
    other = meta.create_project("Other").id
    assert create(meta, clock, other, limit=3).team_id == other


def test_history_older_than_the_cutoff_is_deleted(meta: MetaDB, clock: FakeClock, team: int) -> None:
    """delete_events_before removes entries older than the cutoff, of every alert, and keeps newer ones."""
    alert = create(meta, clock, team)
    entry = {"kind": "disable", "state_before": "not_firing", "state_after": "not_firing", "threshold_breached": False}
    meta.alerts.update(team, alert.id, lambda a: ({}, [entry]))
    clock.advance(timedelta(days=91))
    meta.alerts.update(team, alert.id, lambda a: ({}, [{**entry, "kind": "enable"}]))
    assert meta.alerts.delete_events_before(clock.now - timedelta(days=90)) == 1
    total, events = meta.alerts.list_events(team, alert.id)
    assert (total, [e.kind for e in events]) == (1, ["enable"])


def test_a_claim_is_exclusive_until_written_or_expired(meta: MetaDB, clock: FakeClock, team: int) -> None:
    """Claimed alerts are not claimed again until their result is written or the lease ends; a result with a
    stale token is dropped."""
    alerts = [create(meta, clock, team) for _ in range(3)]
    now = clock.now
    first = meta.alerts.claim_due(now, lease=timedelta(minutes=10), limit=2)
    second = meta.alerts.claim_due(now, lease=timedelta(minutes=10), limit=5)
    assert len(first) == 2 and len(second) == 1
    assert {a.id for a in first} | {a.id for a in second} == {a.id for a in alerts}
    assert meta.alerts.claim_due(now, lease=timedelta(minutes=10), limit=5) == []
    later = now + timedelta(minutes=11)
    again = meta.alerts.claim_due(later, lease=timedelta(minutes=10), limit=5)
    assert len(again) == 3
    stale = [AlertCheckResult(a.id, a.claim_token or "", {"state": "firing"}) for a in first]
    assert meta.alerts.finish_checks(stale) == []
    fresh = [
        AlertCheckResult(a.id, a.claim_token or "", {"next_check_at": later + timedelta(minutes=5)}) for a in again
    ]
    assert sorted(meta.alerts.finish_checks(fresh)) == sorted(a.id for a in alerts)
    assert all(meta.alerts.get(team, a.id).state == "not_firing" for a in alerts)
    assert meta.alerts.claim_due(later, lease=timedelta(minutes=10), limit=5) == []
