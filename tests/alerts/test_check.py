"""Alert check queries on a real chDB store: each alert's M half-open windows counted as a Python count over
the inserted rows would count them, from the ``log_counts`` rollup (service and severity filters on whole
minutes) or from the logs (anything else), in one rollup query plus one logs query per chunk of alerts; a
failing alert fails alone, and another project's logs never count.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpond.alerts.check import CHECK_INTERVAL, CheckRequest, check_counts
from logpond.alerts.simulate import parse_alert_filters
from logpond.alerts.state import CheckFailed, CheckOutcome, CheckSucceeded
from logpond.logs.filters import LogsFilters
from logpond.query.ast import Select, TableRef
from logpond.query.printer import print_query
from logpond.store.base import QueryLimits, QueryResult, StoreError
from logpond.store.chdb_store import ChDBStore
from tests._log_tables import log_row, log_table

TEAM = 1
# a whole minute in the past, so that every window lies before now
END = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=3)
US = dt.timedelta(microseconds=1)
MIN = dt.timedelta(minutes=1)
SERVICES = ("api", "web", "db")
LEVELS = ("debug", "info", "warn", "error")
KV = {"type": "log_attribute", "key": "k", "value": "v", "operator": "exact"}
# an always-true leaf: the same counts as no filter, but only the logs can answer it
ANYTHING = {"type": "log", "key": "message", "operator": "not_icontains", "value": "never-in-a-body"}
team_ids = itertools.count(1000)


@dataclass
class Runner:
    """The ``execute`` the scheduler hands in: prints a select for one project and runs it, counting tables."""

    store: ChDBStore
    team_id: int = TEAM
    limits: QueryLimits = field(default_factory=QueryLimits)
    tables: list[str] = field(default_factory=list)

    def __call__(self, select: Select) -> QueryResult:
        assert select.from_ is not None and isinstance(select.from_.table, TableRef)
        self.tables.append(select.from_.table.name)
        sql = print_query(select, team_id=self.team_id, database=self.store.database, limits=self.limits)
        return self.store.execute(sql)

    def check(self, requests: Sequence[CheckRequest], **kwargs: Any) -> dict[Any, CheckOutcome]:
        return check_counts(self, requests, **kwargs)


Row = dict[str, Any]


def insert(store: ChDBStore, rows: list[Row], team_id: int = TEAM) -> list[Row]:
    if rows:
        store.insert_logs(log_table(rows, team_id=team_id))
    return rows


def request(
    key: Any, raw: dict[str, Any], *, window: int = 5, periods: int = 1, end: dt.datetime = END
) -> CheckRequest:
    return CheckRequest(key, parse_alert_filters(raw), window, periods, end)


def brute(rows: Iterable[Row], req: CheckRequest, keep: Callable[[Row], bool] = lambda row: True) -> tuple[int, ...]:
    """The windows' counts, newest first, by looking at every row."""
    filters = req.filters
    counts = []
    for k in range(req.periods):
        end = req.end - k * CHECK_INTERVAL
        start = end - dt.timedelta(minutes=req.window_minutes)
        counts.append(
            sum(
                1
                for row in rows
                if start <= row["timestamp"] < end
                and (not filters.service_names or row["service_name"] in filters.service_names)
                and (not filters.severity_levels or row["severity_text"] in filters.severity_levels)
                and keep(row)
            )
        )
    return tuple(counts)


def has_kv(row: Row) -> bool:
    return ("k", "v") in row["attributes"]


def counts(outcome: CheckOutcome) -> tuple[int, ...]:
    assert isinstance(outcome, CheckSucceeded), outcome
    return outcome.counts


def scattered(seed: int, n: int, span: dt.timedelta, end: dt.datetime = END) -> list[Row]:
    """``n`` rows at random microseconds of ``[end - span, end + 2 min)``, with random services, levels and k."""
    rng = random.Random(seed)
    micros = int((span + 2 * MIN) / US)
    return [
        log_row(
            end - span + rng.randrange(micros) * US,
            service=rng.choice(SERVICES),
            severity=rng.choice(LEVELS),
            attributes={"k": rng.choice("vw")},
        )
        for _ in range(n)
    ]


PATHS = pytest.mark.parametrize(
    ("raw", "table"), [({}, "log_counts"), ({"filterGroup": [ANYTHING]}, "logs")], ids=["rollup", "logs"]
)


@PATHS
def test_windows_are_half_open(store: ChDBStore, raw: dict[str, Any], table: str) -> None:
    """A log exactly at a window's end is not counted; one exactly at its start is."""
    insert(store, [log_row(moment) for moment in (END, END - US, END - 5 * MIN, END - 5 * MIN - US)])
    runner = Runner(store)
    assert runner.check([request("a", raw)]) == {"a": CheckSucceeded((2,))}
    assert runner.tables == [table]


@PATHS
def test_windows_step_back_five_minutes_newest_first(store: ChDBStore, raw: dict[str, Any], table: str) -> None:
    """Window k ends k*5 minutes before the check's end, and the newest window's count comes first."""
    rows = [log_row(END - (1 + 5 * i) * MIN) for i in range(4) for _ in range(i + 1)]  # 1, 2, 3, 4 logs
    insert(store, rows)
    outcomes = Runner(store).check([request("five", raw, periods=3), request("ten", raw, window=10, periods=3)])
    assert outcomes == {"five": CheckSucceeded((1, 2, 3)), "ten": CheckSucceeded((3, 5, 7))}


@PATHS
@pytest.mark.parametrize("window", [5, 10, 15, 30, 60])
def test_every_window_length(store: ChDBStore, raw: dict[str, Any], table: str, window: int) -> None:
    """Each allowed window length, over ten periods, counts what a Python count over the rows finds."""
    rows = insert(store, scattered(window, 400, dt.timedelta(minutes=window + 50)))
    req = request("a", raw, window=window, periods=10)
    runner = Runner(store)
    assert counts(runner.check([req])["a"]) == brute(rows, req)
    assert runner.tables == [table]


@PATHS
def test_windows_across_midnight(store: ChDBStore, raw: dict[str, Any], table: str) -> None:
    """A window that starts on the day before its end counts the logs of both days."""
    midnight = END.replace(hour=0, minute=0)
    rows = insert(store, [log_row(midnight + offset * MIN) for offset in (-56, -52, -1, 5, 9, 10)])
    req = request("a", raw, window=60, periods=2, end=midnight + 10 * MIN)
    assert counts(Runner(store).check([req])["a"]) == brute(rows, req) == (3, 2)


@PATHS
def test_alerts_with_distant_ends_share_a_query(store: ChDBStore, raw: dict[str, Any], table: str) -> None:
    """Alerts whose windows are far apart are counted in one query, and logs between their windows in none."""
    late, early = END, END - 40 * MIN
    rows = insert(
        store, [log_row(m) for m in (late - MIN, late - 20 * MIN, late - 20 * MIN, early - MIN, early - 6 * MIN)]
    )
    reqs = [request("late", raw, end=late), request("early", raw, periods=2, end=early)]
    runner = Runner(store)
    assert runner.check(reqs) == {"late": CheckSucceeded((1,)), "early": CheckSucceeded((1, 1))}
    assert brute(rows, reqs[1]) == (1, 1)
    assert runner.tables == [table]


@st.composite
def rollup_cases(draw: st.DrawFn) -> tuple[list[Row], list[tuple[list[str], list[str], int, int, int]]]:
    rows = [
        log_row(
            END - draw(st.integers(0, 80 * 60 * 1_000_000)) * US,
            service=draw(st.sampled_from(SERVICES)),
            severity=draw(st.sampled_from(LEVELS)),
        )
        for _ in range(draw(st.integers(0, 40)))
    ]
    alerts = draw(
        st.lists(
            st.tuples(
                st.lists(st.sampled_from(SERVICES), unique=True, max_size=2),
                st.lists(st.sampled_from(LEVELS), unique=True, max_size=3),
                st.sampled_from([5, 10, 15, 30, 60]),
                st.integers(1, 4),
                st.integers(0, 7),  # minutes before END
            ),
            min_size=1,
            max_size=6,
        )
    )
    return rows, alerts


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=rollup_cases())
def test_rollup_and_logs_agree_with_a_python_count(
    store: ChDBStore, case: tuple[list[Row], list[tuple[list[str], list[str], int, int, int]]]
) -> None:
    """Service and severity filters give the same counts from the rollup as from the logs (the same filters
    written as a filterGroup) as from counting the inserted rows, with alerts of different ends in one query."""
    rows, alerts = case
    team = next(team_ids)
    insert(store, rows, team_id=team)
    rollup, logs = [], []
    for i, (services, levels, window, periods, before) in enumerate(alerts):
        end = END - before * MIN
        rollup.append(
            request(i, {"serviceNames": services, "severityLevels": levels}, window=window, periods=periods, end=end)
        )
        leaves: list[dict[str, Any]] = [ANYTHING]
        if services:
            leaves.append({"type": "log", "key": "service_name", "operator": "exact", "value": services})
        if levels:
            leaves.append({"type": "log", "key": "level", "operator": "exact", "value": levels})
        logs.append(request(i, {"filterGroup": leaves}, window=window, periods=periods, end=end))
    runner = Runner(store, team_id=team)
    expected = {i: CheckSucceeded(brute(rows, req)) for i, req in enumerate(rollup)}
    assert runner.check(rollup) == expected
    assert runner.tables == ["log_counts"]
    assert runner.check(logs, chunk_size=4) == expected
    assert runner.tables[1:] == ["logs"] * math.ceil(len(logs) / 4)


def test_attribute_filter_group(store: ChDBStore) -> None:
    """A filterGroup on log attributes, with or without a severity filter, counts only the matching logs."""
    rows = insert(store, scattered(7, 300, dt.timedelta(minutes=40)))
    reqs = [
        request("kv", {"filterGroup": [KV]}, window=15, periods=5),
        request("kv-error", {"filterGroup": [KV], "severityLevels": ["error"]}, window=10, periods=3),
        request("regex", {"filterGroup": [{**KV, "operator": "regex", "value": "^w$"}]}, window=30, periods=2),
    ]
    runner = Runner(store)
    outcomes = runner.check(reqs)
    assert counts(outcomes["kv"]) == brute(rows, reqs[0], has_kv)
    assert counts(outcomes["kv-error"]) == brute(rows, reqs[1], has_kv)
    assert counts(outcomes["regex"]) == brute(rows, reqs[2], lambda row: not has_kv(row))
    assert runner.tables == ["logs"]


def test_an_end_off_the_minute_reads_the_logs(store: ChDBStore) -> None:
    """An end that is not a whole minute is counted from the logs, exactly to the microsecond."""
    end = END - 30 * dt.timedelta(seconds=1) - 250 * US
    start = end - 5 * MIN
    insert(store, [log_row(m, service="api") for m in (end, end - US, start, start - US, start + 20 * US)])
    runner = Runner(store)
    assert runner.check([request("a", {"serviceNames": ["api"]}, end=end)]) == {"a": CheckSucceeded((3,))}
    assert runner.tables == ["logs"]


@pytest.mark.parametrize(
    ("n_rollup", "n_logs", "chunk_size", "tables"),
    [
        (0, 0, 50, []),
        (3, 0, 50, ["log_counts"]),
        (0, 5, 2, ["logs"] * 3),
        (7, 5, 2, ["log_counts"] + ["logs"] * 3),
        (1000, 100, 50, ["log_counts"] + ["logs"] * 2),
    ],
)
def test_queries_per_mix_of_alerts(
    store: ChDBStore, n_rollup: int, n_logs: int, chunk_size: int, tables: list[str]
) -> None:
    """All rollup alerts share one query; the others take one query per ``chunk_size`` of them."""
    rows = insert(store, scattered(3, 200, dt.timedelta(minutes=80)))
    rng = random.Random(n_rollup + n_logs)
    reqs, keeps = [], {}
    for i in range(n_rollup + n_logs):
        raw: dict[str, Any] = {
            "serviceNames": rng.sample(SERVICES, rng.randrange(3)),
            "severityLevels": rng.sample(LEVELS, rng.randrange(3)),
        }
        keep: Callable[[Row], bool] = lambda row: True  # noqa: E731
        if i >= n_rollup:
            value = rng.choice("vw")
            raw["filterGroup"] = [{**KV, "value": value}]
            keep = lambda row, value=value: ("k", value) in row["attributes"]  # noqa: E731
        reqs.append(
            request(i, raw, window=rng.choice([5, 10, 15, 30, 60]), periods=rng.randint(1, 3), end=END - i % 4 * MIN)
        )
        keeps[i] = keep
    runner = Runner(store)
    outcomes = runner.check(reqs, chunk_size=chunk_size)
    assert runner.tables == tables
    assert outcomes == {req.key: CheckSucceeded(brute(rows, req, keeps[req.key])) for req in reqs}


@PATHS
def test_other_projects_logs_are_never_counted(store: ChDBStore, raw: dict[str, Any], table: str) -> None:
    """Logs of another project in the same windows are left out of every count."""
    ours = insert(store, scattered(1, 50, dt.timedelta(minutes=20)))
    insert(store, scattered(2, 80, dt.timedelta(minutes=20)), team_id=TEAM + 1)
    req = request("a", raw, window=10, periods=3)
    assert counts(Runner(store).check([req])["a"]) == brute(ours, req)


def test_an_invalid_regex_fails_only_its_alert(store: ChDBStore) -> None:
    """An alert whose regex does not compile fails (not transient, with our own message) while the alerts
    sharing its query still get their counts, from one retry each."""
    rows = insert(store, scattered(5, 100, dt.timedelta(minutes=20)))
    reqs = [
        request("before", {"filterGroup": [KV]}, window=10, periods=2),
        request("bad", {"filterGroup": [{**KV, "operator": "regex", "value": "("}]}),
        request("after", {"filterGroup": [KV], "serviceNames": ["api"]}, window=15),
        request("rollup", {"severityLevels": ["warn"]}, window=5, periods=3),
    ]
    runner = Runner(store)
    outcomes = runner.check(reqs)
    assert outcomes["bad"] == CheckFailed("Invalid regular expression in a filter (RE2 syntax).", transient=False)
    assert counts(outcomes["before"]) == brute(rows, reqs[0], has_kv)
    assert counts(outcomes["after"]) == brute(rows, reqs[2], has_kv)
    assert counts(outcomes["rollup"]) == brute(rows, reqs[3])
    assert runner.tables == ["log_counts", "logs", "logs", "logs", "logs"]


def test_a_filter_that_cannot_be_built_fails_without_a_query(store: ChDBStore) -> None:
    """A filter value only checked while the query is built (a date that does not parse) fails its alert
    with a message about the filter, and never reaches the store."""
    bad_date = {"type": "log_attribute", "key": "when", "operator": "is_date_before", "value": "not a date"}
    runner = Runner(store)
    outcomes = runner.check([request("bad", {"filterGroup": [bad_date]}), request("ok", {"filterGroup": [KV]})])
    assert outcomes["bad"] == CheckFailed("Invalid date 'not a date'.", transient=False)
    assert outcomes["ok"] == CheckSucceeded((0,))
    assert runner.tables == ["logs"]


def test_a_memory_limit_is_transient_and_retried_alert_by_alert(store: ChDBStore) -> None:
    """A check over the store's memory limit is transient for every alert, after each was tried alone."""
    insert(store, scattered(6, 20, dt.timedelta(minutes=10)))
    runner = Runner(store, limits=QueryLimits(max_memory_usage=1000))
    reqs = [request(i, {"filterGroup": [KV]}) for i in range(2)] + [request("rollup", {})]
    outcomes = runner.check(reqs)
    failed = CheckFailed("The check query used more memory than allowed.", transient=True)
    assert outcomes == {0: failed, 1: failed, "rollup": failed}
    assert runner.tables == ["log_counts", "logs", "logs", "logs"]


@dataclass
class FailingStore:
    """A store that answers every query with one ClickHouse error whose text quotes logged data."""

    error: Exception
    tables: list[str] = field(default_factory=list)

    def __call__(self, select: Select) -> QueryResult:
        assert select.from_ is not None and isinstance(select.from_.table, TableRef)
        self.tables.append(select.from_.table.name)
        raise self.error


def store_error(code: str) -> StoreError:
    return StoreError(f"Code: 1. DB::Exception: secret body text in a log. ({code})", code=code)


@pytest.mark.parametrize(
    ("error", "message", "transient", "tables"),
    [
        (store_error("TOO_MANY_SIMULTANEOUS_QUERIES"), "The log store was too busy to run the check.", True, 1),
        (store_error("NETWORK_ERROR"), "The log store could not be reached.", True, 1),
        (ConnectionRefusedError("secret"), "The log store could not be reached.", True, 1),
        (store_error("TIMEOUT_EXCEEDED"), "The check query timed out.", True, 7),
        (store_error("ILLEGAL_TYPE_OF_ARGUMENT"), "A filter compares values of incompatible types.", False, 7),
        (store_error("UNKNOWN_IDENTIFIER"), "The check query failed in the log store (UNKNOWN_IDENTIFIER).", False, 7),
    ],
)
def test_store_failures_become_our_own_messages(error: Exception, message: str, transient: bool, tables: int) -> None:
    """A busy or unreachable store fails every alert as transient after one query; other errors are retried
    alert by alert; every message is ours and none quotes the store's text."""
    failing = FailingStore(error)
    reqs = [request(i, {"serviceNames": ["api"]}) for i in range(2)]
    reqs += [request(i, {"filterGroup": [KV]}) for i in range(2, 5)]
    outcomes = check_counts(failing, reqs)
    assert outcomes == dict.fromkeys(range(5), CheckFailed(message, transient=transient))
    assert len(failing.tables) == tables


def test_no_requests_no_queries(store: ChDBStore) -> None:
    """Nothing due, nothing asked of the store."""
    runner = Runner(store)
    assert runner.check([]) == {}
    assert runner.tables == []


def test_filters_date_range_is_ignored(store: ChDBStore) -> None:
    """Only the windows bound a check: a date range left in the filters changes nothing."""
    rows = insert(store, scattered(8, 60, dt.timedelta(minutes=15)))
    narrow = LogsFilters(date_from=END - US, date_to=END, service_names=["api"])
    req = CheckRequest("a", narrow, 10, 2, END)
    assert counts(Runner(store).check([req])["a"]) == brute(rows, req)
