"""Two schedulers on one metadata database, ticking at the same moments from two threads, as two logpond
servers would: every due alert is checked by exactly one of them per slot, and notified exactly once.
Runs on PostgreSQL (``FOR UPDATE SKIP LOCKED``) and on one SQLite file (its write lock).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from logpond.alerts.scheduler import TickReport
from logpond.store.chdb_store import ChDBStore
from tests._postgres import postgres_server, postgres_url  # noqa: F401  (fixtures, requested via shared_meta_url)
from tests.alerts._receiver import Receiver
from tests.alerts._scenario import MIN, START, Clock, World

ALERTS = 42
SERVICES = [f"svc{i}" for i in range(6)]
PER_TICK = 5  # a tick claims at most this many, so each round takes several ticks from each scheduler
MAX_TICKS = 2 * ALERTS  # per scheduler and round: a bound, never reached


@pytest.fixture(params=["postgres", "sqlite"])
def shared_meta_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared-meta.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def worlds(tmp_path: Path, store: ChDBStore, shared_meta_url: str) -> Iterator[tuple[World, World]]:
    clock = Clock(START)
    # servers sharing one metadata database share the key of its stored secrets
    shared = {"alerts_max_per_tick": PER_TICK, "secret_key": "the key both servers are given, 32+ chars"}
    with (
        Receiver() as rx,
        World(tmp_path / "a", store, rx, clock, meta_url=shared_meta_url, **shared) as a,
        World(tmp_path / "b", store, rx, clock, meta_url=shared_meta_url, **shared) as b,
    ):
        a.meta.bootstrap()
        yield a, b


def run_round(worlds: tuple[World, World]) -> list[list[TickReport]]:
    """Both schedulers tick from their own thread, starting together, until a tick finds nothing to claim."""
    start = threading.Barrier(len(worlds))

    def ticks(world: World) -> list[TickReport]:
        start.wait(timeout=10)
        reports = []
        for _ in range(MAX_TICKS):
            reports.append(world.scheduler.tick())
            if reports[-1].claimed == 0:
                break
        return reports

    with ThreadPoolExecutor(len(worlds)) as pool:
        return list(pool.map(ticks, worlds))


def test_two_schedulers_never_check_the_same_alert_twice(worlds: tuple[World, World]) -> None:
    """Over three rounds, each of 42 due alerts is claimed and checked by exactly one scheduler per round,
    fires once with one notification, resolves once with one, and then stays quiet."""
    a, b = worlds
    alerts = [
        a.create_alert(name=f"alert {i}", filters={"serviceNames": [SERVICES[i % len(SERVICES)]]}, threshold_count=5)
        for i in range(ALERTS)
    ]
    # b knows the signing secrets too: the destinations are in the shared database
    b.secrets.update(a.secrets)
    for service in SERVICES:
        a.insert_logs(START - MIN, count=10, service=service)  # only the windows ending 12:00 breach
    ids = {alert.id for alert in alerts}

    expected_states = ["firing", "not_firing", "not_firing"]
    for round_number, state in enumerate(expected_states):
        now = START + round_number * 5 * MIN
        a.clock.set(now)
        per_scheduler = run_round(worlds)
        reports = [report for reports in per_scheduler for report in reports]
        assert sum(r.claimed for r in reports) == ALERTS
        assert sum(r.checked for r in reports) == ALERTS
        checked = [alert_id for r in reports for alert_id in r.transitions]
        assert len(checked) == ALERTS and set(checked) == ids  # disjoint: no alert in two ticks
        assert {r.transitions[alert_id] for r in reports for alert_id in r.transitions} == {state}
        assert all(r.failed_deliveries == 0 for r in reports)
        assert a.meta.alerts.claim_due(now, lease=a.scheduler.lease, limit=ALERTS) == []
        for alert in alerts:
            row = a.get(alert)
            assert (row.state, row.last_checked_at, row.next_check_at) == (state, now, now + 5 * MIN)

    notices = a.notices()
    assert Counter((n.type, n.data["alert_id"]) for n in notices) == Counter(
        {(kind, alert_id): 1 for alert_id in ids for kind in ("logs_alert.firing", "logs_alert.resolved")}
    )
    assert {n.data["result_count"] for n in notices if n.type == "logs_alert.firing"} == {10}
    for alert in alerts:
        assert a.states(alert) == [("not_firing", "firing"), ("firing", "not_firing")]
