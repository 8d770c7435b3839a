"""HogQL run end to end on chDB: parse, compile, print, execute, and PostHog's response shape.

The tests read one store holding the same six logs for two projects: ``OURS`` (42) and ``OTHER`` (7). The
other project's copies differ only in their body, which ends in ``OTHER_MARK``; ``run`` fails any query
whose result shows that mark, so each test also checks that another project's rows never leak in.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logpond.hogql.errors import HogQLError, HogQLQueryError
from logpond.hogql.parser import ParserPool
from logpond.hogql.runner import HogQLLimits, HogQLRequest, HogQLRunner
from logpond.store.chdb_store import ChDBStore
from tests._log_tables import log_row, log_table

OURS, OTHER = 42, 7
OTHER_MARK = "[team 7]"
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2024, 5, 1, 15, 0, tzinfo=dt.UTC)  # what relative dates in {filters} count from
TRACE_A, TRACE_B, TRACE_C, TRACE_D, TRACE_E = (bytes([n]) * 16 for n in range(1, 6))
HEX_A = "01" * 16

PARSER = ParserPool(processes=0)


def at(minutes: int, microseconds: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes, microseconds=microseconds)


def logs_of(mark: str = "") -> list[dict[str, Any]]:
    """Six logs over two hours and three services; ``mark`` is appended to every body."""
    rows = [
        log_row(
            at(0),
            body="GET /users timeout after 30s",
            severity="error",
            service="api",
            attributes={"http.method": "GET", "http.status": "504", "user": "alice"},
            resource={"host": "h1"},
            trace_id=TRACE_A,
        ),
        log_row(
            at(5, 250_000),
            body="GET /users ok",
            severity="info",
            service="api",
            attributes={"http.method": "GET", "http.status": "200", "user": "bob"},
            resource={"host": "h1"},
            trace_id=TRACE_A,
        ),
        log_row(
            at(20),
            body="POST /orders created",
            severity="info",
            service="api",
            attributes={"http.method": "POST", "http.status": "201", "user": "alice"},
            resource={"host": "h2"},
            trace_id=TRACE_B,
        ),
        log_row(
            at(65),
            body="db connection timeout",
            severity="error",
            service="db",
            attributes={"user": "carol"},
            resource={"host": "h3"},
            trace_id=TRACE_C,
        ),
        log_row(
            at(90), body="cache warm", severity="debug", service="worker", resource={"host": "h3"}, trace_id=TRACE_D
        ),
        log_row(
            at(125),
            body="Disk almost full",
            severity="warn",
            service="worker",
            attributes={"disk": "sda"},
            resource={"host": "h3"},
            trace_id=TRACE_E,
        ),
    ]
    for row in rows:
        row["body"] += mark
    return rows


@pytest.fixture(scope="module")
def logs(chdb_path: Path) -> Iterator[ChDBStore]:
    """One store for the module's read-only tests (a store per test costs most of a second)."""
    store = ChDBStore(chdb_path, database=f"t_{uuid.uuid4().hex[:12]}")
    store.migrate()
    store.insert_logs(log_table(logs_of(), team_id=OURS))
    store.insert_logs(log_table(logs_of(f" {OTHER_MARK}"), team_id=OTHER))
    yield store
    store.drop_database()


def run(
    store: ChDBStore,
    query: str,
    *,
    values: dict[str, Any] | None = None,
    filters: Any = None,
    limits: HogQLLimits | None = None,
    team_id: int = OURS,
    timezone: str = "UTC",
) -> dict[str, Any]:
    """PostHog's response for ``query`` as project ``team_id``; fails if another project's row shows."""
    runner = HogQLRunner(PARSER, store.database)
    request = HogQLRequest(query=query, values=values or {}, filters=filters)
    response = runner.run(team_id, request, limits or HogQLLimits(), execute=store.execute, now=NOW, timezone=timezone)
    if team_id == OURS:
        assert OTHER_MARK not in repr(response["results"])
    return response


def rows(store: ChDBStore, query: str, **kwargs: Any) -> list[list[Any]]:
    return run(store, query, **kwargs)["results"]


# --- the data and the isolation ------------------------------------------------------------------


def test_other_project_sees_only_its_own_copies(logs: ChDBStore) -> None:
    """The other project's query returns its six rows, each with its mark, so a leak would be visible."""
    result = rows(logs, f"select count(), countIf(message like '%{OTHER_MARK}') from logs", team_id=OTHER)
    assert result == [[6, 6]]


# --- typical questions ------------------------------------------------------------------------------


def test_recent_logs(logs: ChDBStore) -> None:
    """The newest logs come back newest first, with HogQL column names and ClickHouse types."""
    response = run(logs, "select timestamp, message, level, service_name from logs order by timestamp desc limit 3")
    assert response["results"] == [
        ["2024-05-01T14:05:00Z", "Disk almost full", "warn", "worker"],
        ["2024-05-01T13:30:00Z", "cache warm", "debug", "worker"],
        ["2024-05-01T13:05:00Z", "db connection timeout", "error", "db"],
    ]
    assert response["columns"] == ["timestamp", "message", "level", "service_name"]
    assert response["types"] == [
        ["timestamp", "DateTime64(6, 'UTC')"],
        ["message", "String"],
        ["level", "LowCardinality(String)"],
        ["service_name", "LowCardinality(String)"],
    ]


def test_datetimes_are_iso_8601_with_z(logs: ChDBStore) -> None:
    """DateTime64 keeps its microseconds, DateTime its seconds, Date its day; UTC ends in Z."""
    response = run(
        logs, "select timestamp, toDateTime(timestamp), toDate(timestamp) from logs where message = 'GET /users ok'"
    )
    assert response["results"] == [["2024-05-01T12:05:00.250000Z", "2024-05-01T12:05:00Z", "2024-05-01"]]
    assert [t for _, t in response["types"]] == ["DateTime64(6, 'UTC')", "DateTime('UTC')", "Date"]


def test_datetimes_are_shown_in_the_project_time_zone(logs: ChDBStore) -> None:
    """With a project time zone, datetimes carry its offset instead of Z."""
    result = rows(logs, "select timestamp from logs where message = 'cache warm'", timezone="Europe/Berlin")
    assert result == [["2024-05-01T15:30:00+02:00"]]


def test_filter_on_level_and_service(logs: ChDBStore) -> None:
    """level and service_name filter the rows."""
    query = "select message from logs where level = 'error' and service_name = 'api'"
    assert rows(logs, query) == [["GET /users timeout after 30s"]]


def test_filter_on_attributes_in_both_spellings(logs: ChDBStore) -> None:
    """attributes.http.method reads the key 'http.method', the same as attributes['http.method']."""
    response = run(
        logs,
        "select message, attributes.http.status, attributes['user'] from logs "
        "where attributes.http.method = 'GET' and attributes['http.method'] = 'GET' order by timestamp",
    )
    assert response["results"] == [["GET /users timeout after 30s", "504", "alice"], ["GET /users ok", "200", "bob"]]
    assert response["types"][1:] == [["status", "String"], ["attributes['user']", "String"]]


def test_filter_on_resource_attributes(logs: ChDBStore) -> None:
    """resource_attributes reads the resource map, including dotted keys such as service.name."""
    query = (
        "select resource_attributes.host, resource_attributes['service.name'], count() from logs "
        "where resource_attributes.service.name != 'api' group by 1, 2 order by 2"
    )
    assert rows(logs, query) == [["h3", "db", 1], ["h3", "worker", 2]]


def test_message_like_timeout(logs: ChDBStore) -> None:
    """LIKE, NOT LIKE and ILIKE match the message."""
    assert rows(logs, "select message from logs where message like '%timeout%' order by timestamp") == [
        ["GET /users timeout after 30s"],
        ["db connection timeout"],
    ]
    assert rows(logs, "select count() from logs where message not like '%timeout%'") == [[4]]
    assert rows(logs, "select message from logs where message ilike '%DISK%'") == [["Disk almost full"]]
    assert rows(logs, "select count() from logs where message not ilike '%users%'") == [[4]]


def test_regex_operators(logs: ChDBStore) -> None:
    """=~ and !~ match a regular expression; =~* and !~* ignore case."""
    assert rows(logs, "select message from logs where message =~ '^GET' and message !~ 'ok$'") == [
        ["GET /users timeout after 30s"]
    ]
    assert rows(logs, "select message from logs where message =~* '^disk'") == [["Disk almost full"]]
    assert rows(logs, "select count() from logs where message !~* 'USERS|DISK'") == [[3]]


def test_in_not_in_and_between(logs: ChDBStore) -> None:
    """IN and NOT IN take a tuple; BETWEEN and NOT BETWEEN include both ends."""
    assert rows(logs, "select count() from logs where level in ('error', 'warn')") == [[3]]
    assert rows(logs, "select count() from logs where service_name not in ('api', 'db')") == [[2]]
    assert rows(logs, "select count() from logs where severity_number between 9 and 13") == [[3]]
    assert rows(logs, "select count() from logs where severity_number not between 6 and 20") == [[1]]


def test_comparison_operators(logs: ChDBStore) -> None:
    """=, ==, !=, <, <=, > and >= compare as in SQL."""
    query = (
        "select countIf(severity_number = 9), countIf(severity_number == 9), countIf(severity_number != 9), "
        "countIf(severity_number < 9), countIf(severity_number <= 9), countIf(severity_number > 13), "
        "countIf(severity_number >= 13) from logs"
    )
    assert rows(logs, query) == [[2, 2, 4, 1, 3, 2, 3]]


def test_time_range_with_now_and_interval(store: ChDBStore) -> None:
    """timestamp > now() - INTERVAL 1 HOUR keeps only the last hour's logs."""
    real_now = dt.datetime.now(dt.UTC)
    store.insert_logs(
        log_table(
            [
                log_row(real_now - dt.timedelta(minutes=10), body="recent"),
                log_row(real_now - dt.timedelta(hours=2), body="older"),
            ],
            team_id=OURS,
        )
    )
    store.insert_logs(log_table([log_row(real_now - dt.timedelta(minutes=5), body=OTHER_MARK)], team_id=OTHER))
    assert rows(store, "select message from logs where timestamp > now() - interval 1 hour") == [["recent"]]
    assert rows(store, "select count() from logs where timestamp >= now() - interval 3 hour") == [[2]]
    assert rows(store, "select count() from logs where timestamp < now() - interval 30 minute") == [[1]]


def test_aggregates(logs: ChDBStore) -> None:
    """count, countIf, uniq, uniqExact, avg, sum, min and max aggregate the project's rows only."""
    response = run(
        logs,
        "select count(), count(*), countIf(level = 'error'), uniq(service_name), uniqExact(attributes.user), "
        "avg(severity_number), sum(severity_number), min(timestamp), max(timestamp) from logs",
    )
    assert response["results"] == [[6, 6, 2, 3, 4, 70 / 6, 70, "2024-05-01T12:00:00Z", "2024-05-01T14:05:00Z"]]
    assert [t for _, t in response["types"]] == [
        "UInt64",
        "UInt64",
        "UInt64",
        "UInt64",
        "UInt64",
        "Float64",
        "UInt64",
        "DateTime64(6, 'UTC')",
        "DateTime64(6, 'UTC')",
    ]


def test_parametric_aggregates(logs: ChDBStore) -> None:
    """quantile(level)(x) and quantiles(levels…)(x) take their levels as parameters."""
    response = run(
        logs,
        "select quantileExact(0.5)(severity_number), quantiles(0.0, 1.0)(severity_number), "
        "topK(1)(service_name) from logs",
    )
    assert response["results"] == [[13, [5, 17], ["api"]]]
    assert response["columns"] == [
        "quantileExact(0.5)(severity_number)",
        "quantiles(0.0, 1.0)(severity_number)",
        "topK(1)(service_name)",
    ]


def test_count_per_hour_in_a_time_zone(logs: ChDBStore) -> None:
    """toStartOfHour with a time zone buckets by that zone's hours, shown in the project's zone."""
    response = run(
        logs,
        "select toStartOfHour(timestamp, 'Asia/Kolkata') as hour, count() as c from logs group by hour order by hour",
    )
    assert response["results"] == [
        ["2024-05-01T11:30:00Z", 3],
        ["2024-05-01T12:30:00Z", 1],
        ["2024-05-01T13:30:00Z", 2],
    ]
    assert response["types"] == [["hour", "DateTime('Asia/Kolkata')"], ["c", "UInt64"]]


def test_to_date_time_with_a_time_zone(logs: ChDBStore) -> None:
    """toDateTime(text, zone) reads the text in that zone."""
    result = rows(logs, "select toDateTime('2024-05-01 08:00:00', 'America/New_York')")
    assert result == [["2024-05-01T12:00:00Z"]]


def test_group_by_having_order_by(logs: ChDBStore) -> None:
    """GROUP BY with HAVING on an alias and ORDER BY on two keys."""
    query = (
        "select service_name, count() as c from logs group by service_name having c >= 2 order by c desc, service_name"
    )
    response = run(logs, query)
    assert response["results"] == [["api", 3], ["worker", 2]]
    assert response["types"] == [["service_name", "LowCardinality(String)"], ["c", "UInt64"]]


# --- the SELECT statement ---------------------------------------------------------------------------


def test_star_lists_the_visible_fields(logs: ChDBStore) -> None:
    """SELECT * returns the logs table's visible fields by name, with trace ids as hex."""
    response = run(logs, "select * from logs where body = 'GET /users ok'")
    assert response["columns"] == [
        "uuid",
        "trace_id",
        "span_id",
        "trace_flags",
        "timestamp",
        "observed_timestamp",
        "time_bucket",
        "body",
        "severity_text",
        "severity_number",
        "service_name",
        "resource_attributes",
        "resource_fingerprint",
        "instrumentation_scope",
        "event_name",
        "attributes",
    ]
    (row,) = response["results"]
    record = dict(zip(response["columns"], row, strict=True))
    assert {k: record[k] for k in ("trace_id", "timestamp", "body", "severity_text", "severity_number")} == {
        "trace_id": HEX_A,
        "timestamp": "2024-05-01T12:05:00.250000Z",
        "body": "GET /users ok",
        "severity_text": "info",
        "severity_number": 9,
    }
    assert record["attributes"] == {"http.method": "GET", "http.status": "200", "user": "bob"}
    assert record["resource_attributes"] == {"host": "h1", "service.name": "api"}


def test_table_star_lists_the_same_fields(logs: ChDBStore) -> None:
    """SELECT l.* over an aliased table returns the same columns as SELECT *."""
    star = run(logs, "select * from logs where body = 'cache warm'")
    table_star = run(logs, "select l.* from logs as l where l.body = 'cache warm'")
    assert table_star["columns"] == star["columns"]
    assert table_star["results"] == star["results"]


def test_aliases(logs: ChDBStore) -> None:
    """Aliases with and without AS name the columns and can be used in WHERE and ORDER BY."""
    response = run(logs, "select message as m, level l from logs where m like 'GET%' order by m")
    assert response["columns"] == ["m", "l"]
    assert response["results"] == [["GET /users ok", "info"], ["GET /users timeout after 30s", "error"]]


def test_prewhere(logs: ChDBStore) -> None:
    """PREWHERE filters like WHERE."""
    query = "select message from logs prewhere service_name = 'worker' where level = 'warn'"
    assert rows(logs, query) == [["Disk almost full"]]


def test_distinct(logs: ChDBStore) -> None:
    """SELECT DISTINCT removes duplicate rows."""
    assert rows(logs, "select distinct service_name from logs order by service_name") == [["api"], ["db"], ["worker"]]


def test_limit_by(logs: ChDBStore) -> None:
    """LIMIT 1 BY service_name keeps the first row of each service in the ORDER BY."""
    query = "select service_name, message from logs order by timestamp desc limit 1 by service_name"
    assert rows(logs, query) == [
        ["worker", "Disk almost full"],
        ["db", "db connection timeout"],
        ["api", "POST /orders created"],
    ]


def test_limit_and_offset(logs: ChDBStore) -> None:
    """LIMIT with OFFSET pages through the ordered rows."""
    query = "select message from logs order by timestamp limit 2 offset 1"
    assert rows(logs, query) == [["GET /users ok"], ["POST /orders created"]]


# --- expressions ------------------------------------------------------------------------------------


def test_arithmetic(logs: ChDBStore) -> None:
    """+, -, *, /, % and unary minus compute as in ClickHouse."""
    response = run(
        logs,
        "select severity_number + 1, severity_number * 2 - 1, severity_number / 2, severity_number % 4, "
        "-severity_number from logs where message = 'cache warm'",
    )
    assert response["results"] == [[6, 9, 2.5, 1, -5]]
    assert response["columns"] == [
        "plus(severity_number, 1)",
        "minus(multiply(severity_number, 2), 1)",
        "divide(severity_number, 2)",
        "modulo(severity_number, 4)",
        "negate(severity_number)",
    ]


def test_null_coalescing(logs: ChDBStore) -> None:
    """a ?? b is b where a is NULL."""
    query = (
        "select nullIf(attributes.user, '') ?? 'nobody' as who from logs where service_name != 'api' order by timestamp"
    )
    assert rows(logs, query) == [["carol"], ["nobody"], ["nobody"]]


def test_case_expressions(logs: ChDBStore) -> None:
    """CASE WHEN and CASE x WHEN pick the first matching branch, else the ELSE."""
    query = (
        "select case when level = 'error' then 'bad' when level = 'warn' then 'meh' else 'ok' end as verdict, "
        "case service_name when 'api' then 1 when 'db' then 2 else 3 end as n from logs order by timestamp"
    )
    assert rows(logs, query) == [["bad", 1], ["ok", 1], ["ok", 1], ["bad", 2], ["ok", 3], ["meh", 3]]


def test_casts(logs: ChDBStore) -> None:
    """x::int, ::float, ::string, ::date and ::datetime convert the value (text times to the microsecond)."""
    response = run(
        logs,
        "select attributes.http.status::int, severity_number::float, severity_number::string, timestamp::date, "
        "'2024-05-01 12:00:00'::datetime from logs where message = 'GET /users ok'",
    )
    assert response["results"] == [[200, 9.0, "9", "2024-05-01", "2024-05-01T12:00:00Z"]]
    assert [t for _, t in response["types"]] == ["Int64", "Float64", "String", "Date", "Nullable(DateTime64(6, 'UTC'))"]


def test_lambdas(logs: ChDBStore) -> None:
    """arrayMap and arrayFilter take lambdas of one and of two arguments."""
    query = (
        "select arrayMap(x -> x * 2, [1, 2, 3]), arrayFilter(k -> k != 'user', mapKeys(attributes)), "
        "arrayFilter((k, v) -> v = 'GET', mapKeys(attributes), mapValues(attributes)) "
        "from logs where message = 'GET /users ok'"
    )
    response = run(logs, query)
    assert response["results"] == [[[2, 4, 6], ["http.method", "http.status"], ["http.method"]]]
    assert [t for _, t in response["types"]] == ["Array(UInt16)", "Array(String)", "Array(String)"]


def test_window_functions(logs: ChDBStore) -> None:
    """row_number() per partition and a running sum over a ROWS frame."""
    query = (
        "select message, row_number() over (partition by service_name order by timestamp) as n, "
        "sum(severity_number) over (order by timestamp rows between 1 preceding and current row) as pair, "
        "lagInFrame(level, 1, 'none') over w as previous "
        "from logs window w as (order by timestamp rows between unbounded preceding and current row) "
        "order by timestamp"
    )
    response = run(logs, query)
    assert response["types"] == [["message", "String"], ["n", "UInt64"], ["pair", "UInt64"], ["previous", "String"]]
    assert response["results"] == [
        ["GET /users timeout after 30s", 1, 17, "none"],
        ["GET /users ok", 2, 26, "error"],
        ["POST /orders created", 3, 18, "info"],
        ["db connection timeout", 1, 26, "info"],
        ["cache warm", 1, 22, "error"],
        ["Disk almost full", 2, 18, "debug"],
    ]


# --- subqueries and CTEs ----------------------------------------------------------------------------


def test_subquery_in_from(logs: ChDBStore) -> None:
    """A subquery in FROM is read like a table."""
    query = (
        "select service_name, c from (select service_name, count() as c from logs group by service_name) "
        "where c > 1 order by c desc"
    )
    response = run(logs, query)
    assert response["results"] == [["api", 3], ["worker", 2]]
    assert response["types"] == [["service_name", "LowCardinality(String)"], ["c", "UInt64"]]


def test_subquery_in_in(logs: ChDBStore) -> None:
    """x IN (SELECT …) reads the subquery for this project only."""
    query = (
        "select message from logs where service_name in (select service_name from logs where level = 'warn') "
        "order by timestamp"
    )
    assert rows(logs, query) == [["cache warm"], ["Disk almost full"]]
    other_traces = f"select trace_id from logs where message like '%{OTHER_MARK}'"
    assert rows(logs, f"select count() from logs where trace_id in ({other_traces})") == [[0]]


def test_scalar_subquery(logs: ChDBStore) -> None:
    """A scalar subquery counts this project's rows only."""
    response = run(
        logs, "select (select count() from logs) as total, count() as errors from logs where level = 'error'"
    )
    assert response["results"] == [[6, 2]]
    assert response["types"] == [["total", "Nullable(UInt64)"], ["errors", "UInt64"]]


def test_cte(logs: ChDBStore) -> None:
    """WITH name AS (SELECT …) is read like a table, and CTEs can read earlier CTEs."""
    query = (
        "with errors as (select service_name from logs where level = 'error'), "
        "named as (select service_name as s from errors) "
        "select s, count() from named group by s order by s"
    )
    assert rows(logs, query) == [["api", 1], ["db", 1]]


def test_cte_named_logs_shadows_the_table(logs: ChDBStore) -> None:
    """A CTE named logs reads the table inside its body, and the query reads the CTE."""
    query = (
        "with logs as (select body, level as lvl from logs where level = 'error') "
        "select body, lvl from logs order by body"
    )
    response = run(logs, query)
    assert response["results"] == [["GET /users timeout after 30s", "error"], ["db connection timeout", "error"]]
    assert response["columns"] == ["body", "lvl"]


# --- set operations ---------------------------------------------------------------------------------


def test_union_all(logs: ChDBStore) -> None:
    """UNION ALL keeps every row of both sides."""
    query = (
        "select message from logs where level = 'error' union all select message from logs where service_name = 'db'"
    )
    response = run(logs, query)
    assert sorted(response["results"]) == [
        ["GET /users timeout after 30s"],
        ["db connection timeout"],
        ["db connection timeout"],
    ]
    assert response["types"] == [["message", "String"]]


def test_union_distinct(logs: ChDBStore) -> None:
    """UNION DISTINCT removes duplicates across both sides."""
    query = (
        "select service_name from logs where level = 'error' "
        "union distinct select service_name from logs where level = 'info'"
    )
    assert sorted(rows(logs, query)) == [["api"], ["db"]]


def test_intersect(logs: ChDBStore) -> None:
    """INTERSECT keeps rows on both sides."""
    query = (
        "select service_name from logs where level = 'error' "
        "intersect select service_name from logs where level = 'info'"
    )
    assert rows(logs, query) == [["api"]]


def test_except(logs: ChDBStore) -> None:
    """EXCEPT keeps rows of the left side missing from the right."""
    query = "select distinct service_name from logs except select service_name from logs where level = 'error'"
    assert rows(logs, query) == [["worker"]]


# --- joins ------------------------------------------------------------------------------------------


def test_self_inner_join(logs: ChDBStore) -> None:
    """An INNER JOIN of logs with itself pairs this project's rows only."""
    query = (
        "select a.message, b.message from logs a inner join logs b on a.trace_id = b.trace_id "
        "where a.uuid != b.uuid order by a.timestamp"
    )
    assert rows(logs, query) == [
        ["GET /users timeout after 30s", "GET /users ok"],
        ["GET /users ok", "GET /users timeout after 30s"],
    ]


def test_left_join(logs: ChDBStore) -> None:
    """A LEFT JOIN keeps every left row, with defaults where nothing matched."""
    query = (
        "select a.message, b.message from logs a left join logs b "
        "on a.trace_id = b.trace_id and b.level = 'info' order by a.timestamp"
    )
    result = rows(logs, query)
    assert result == [
        ["GET /users timeout after 30s", "GET /users ok"],
        ["GET /users ok", "GET /users ok"],
        ["POST /orders created", "POST /orders created"],
        ["db connection timeout", ""],
        ["cache warm", ""],
        ["Disk almost full", ""],
    ]


def test_right_join(logs: ChDBStore) -> None:
    """A RIGHT JOIN keeps every right row of this project and no other project's."""
    query = (
        "select a.message, b.message from logs a right join logs b "
        "on a.trace_id = b.trace_id and a.level = 'error' order by b.timestamp"
    )
    assert rows(logs, query) == [
        ["GET /users timeout after 30s", "GET /users timeout after 30s"],
        ["GET /users timeout after 30s", "GET /users ok"],
        ["", "POST /orders created"],
        ["db connection timeout", "db connection timeout"],
        ["", "cache warm"],
        ["", "Disk almost full"],
    ]


def test_full_join(logs: ChDBStore) -> None:
    """A FULL JOIN keeps unmatched rows of both sides of this project and no other project's."""
    query = (
        "select a.message, b.message from logs a full join logs b "
        "on a.trace_id = b.trace_id and a.level = 'warn' and b.level = 'warn'"
    )
    result = sorted(rows(logs, query))
    assert len(result) == 11
    assert ["Disk almost full", "Disk almost full"] in result
    assert result.count(["", "cache warm"]) == 1
    assert result.count(["cache warm", ""]) == 1


def test_cross_join(logs: ChDBStore) -> None:
    """A CROSS JOIN pairs every row of this project with every row of this project."""
    assert rows(logs, "select count(), uniqExact(a.uuid, b.uuid) from logs a cross join logs b") == [[36, 36]]


def test_join_using(logs: ChDBStore) -> None:
    """JOIN … USING (trace_id) pairs rows with the same trace."""
    assert rows(logs, "select count() from logs a join logs b using (trace_id)") == [[8]]


def test_join_with_a_subquery(logs: ChDBStore) -> None:
    """A table joined to an aggregating subquery of itself."""
    query = (
        "select l.message, e.n from logs l inner join "
        "(select service_name, count() as n from logs where level = 'error' group by service_name) e "
        "on l.service_name = e.service_name order by l.timestamp"
    )
    assert rows(logs, query) == [
        ["GET /users timeout after 30s", 1],
        ["GET /users ok", 1],
        ["POST /orders created", 1],
        ["db connection timeout", 1],
    ]


# --- placeholders and {filters} ---------------------------------------------------------------------


def test_placeholders_from_values(logs: ChDBStore) -> None:
    """{name} is replaced by the value of that name: strings, numbers and lists."""
    query = "select message from logs where service_name = {service} and severity_number >= {min} and level in {levels}"
    values = {"service": "api", "min": 9, "levels": ["error", "warn"]}
    assert rows(logs, query, values=values) == [["GET /users timeout after 30s"]]
    response = run(logs, "select {service}, {min}, {levels}", values=values)
    assert response["results"] == [["api", 9, ["error", "warn"]]]
    assert response["types"] == [["'api'", "String"], ["9", "UInt8"], ["['error', 'warn']", "Array(String)"]]


def test_placeholder_value_cannot_inject_sql(logs: ChDBStore) -> None:
    """A value with quotes and SQL stays one string literal."""
    query = "select count() from logs where service_name = {service}"
    assert rows(logs, query, values={"service": "api' OR 1=1 --"}) == [[0]]


def test_filters_date_range_and_log_attribute(logs: ChDBStore) -> None:
    """{filters} applies the request's dateRange and property filters."""
    filters = {
        "dateRange": {"date_from": "2024-05-01T12:01:00Z", "date_to": "2024-05-01T13:10:00Z"},
        "properties": [{"type": "log_attribute", "key": "user", "operator": "exact", "value": ["alice", "carol"]}],
    }
    query = "select message from logs where {filters} order by timestamp"
    assert rows(logs, query, filters=filters) == [["POST /orders created"], ["db connection timeout"]]


def test_filters_relative_date_range_and_log_field(logs: ChDBStore) -> None:
    """A relative date_from counts back from the request's now; a log filter reads a logs field."""
    filters = {
        "dateRange": {"date_from": "-2h"},
        "properties": [{"type": "log", "key": "level", "operator": "exact", "value": ["error", "warn"]}],
    }
    query = "select message from logs where {filters} order by timestamp"
    assert rows(logs, query, filters=filters) == [["db connection timeout"], ["Disk almost full"]]


def test_filters_placeholder_without_filters_matches_everything(logs: ChDBStore) -> None:
    """{filters} with no filters in the request keeps every row."""
    assert rows(logs, "select count() from logs where {filters}") == [[6]]


# --- bounds -----------------------------------------------------------------------------------------


def test_query_without_limit_gets_the_default_limit(logs: ChDBStore) -> None:
    """Without LIMIT, the default limit applies and hasMore tells whether rows were left out."""
    limited = run(logs, "select message from logs order by timestamp", limits=HogQLLimits(default_limit=4))
    assert len(limited["results"]) == 4
    assert (limited["hasMore"], limited["limit"], limited["offset"]) == (True, 4, 0)
    complete = run(logs, "select message from logs order by timestamp", limits=HogQLLimits(default_limit=6))
    assert len(complete["results"]) == 6
    assert (complete["hasMore"], complete["limit"], complete["offset"]) == (False, 6, 0)


def test_query_with_limit_has_no_has_more(logs: ChDBStore) -> None:
    """With an explicit LIMIT, hasMore, limit and offset are null."""
    response = run(logs, "select message from logs limit 2")
    assert len(response["results"]) == 2
    assert (response["hasMore"], response["limit"], response["offset"]) == (None, None, None)


def test_set_query_gets_the_default_limit(logs: ChDBStore) -> None:
    """A UNION ALL without LIMIT is bounded as a whole."""
    query = "select message from logs union all select message from logs"
    response = run(logs, query, limits=HogQLLimits(default_limit=10))
    assert len(response["results"]) == 10
    assert (response["hasMore"], response["limit"]) == (True, 10)


def test_limit_is_clamped_to_max_limit(logs: ChDBStore) -> None:
    """A LIMIT above max_limit returns max_limit rows."""
    response = run(logs, "select message from logs order by timestamp limit 5", limits=HogQLLimits(max_limit=2))
    assert response["results"] == [["GET /users timeout after 30s"], ["GET /users ok"]]


def test_response_has_posthogs_fields(logs: ChDBStore) -> None:
    """The response carries the normalised HogQL, the query, timings and PostHog's other fields."""
    response = run(logs, "select count() from logs where level = 'error'")
    assert response["hogql"] == "SELECT count() FROM logs WHERE equals(level, 'error')"
    assert response["query"] == "select count() from logs where level = 'error'"
    assert response["clickhouse"] is None
    assert response["error"] is None
    assert response["last_refresh"] == "2024-05-01T15:00:00Z"
    assert {t["k"] for t in response["timings"]} >= {"./parse_select", "./compile", "./clickhouse_execute", "."}


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("select * from system.tables", "system.tables"),
        ("select * from numbers(10)", "numbers"),
        ("select * from other_db.logs", "other_db.logs"),
        ("select file('/etc/passwd')", "Unsupported function: file"),
        ("select url('http://127.0.0.1/', 'CSV')", "Unsupported function: url"),
        ("select dictGet('d', 'attr', 1)", "Unsupported function: dictGet"),
        ("select sleep(3)", "Unsupported function: sleep"),
        ("select throwIf(1)", "Unsupported function: throwIf"),
        ("select nope from logs", "Unable to resolve field: nope"),
        ("select l.nope from logs l", "Field 'nope' does not exist on table 'logs'"),
        ("select message from logs where {missing}", "Placeholder {missing} is not given in values"),
    ],
)
def test_refused_queries(logs: ChDBStore, query: str, message: str) -> None:
    """Unknown tables, table functions, functions, fields and placeholders are a HogQLQueryError naming them."""
    with pytest.raises(HogQLQueryError, match=re.escape(message)):
        run(logs, query)


def test_settings_clause_is_refused(logs: ChDBStore) -> None:
    """A SETTINGS clause in the query is refused, so users cannot change limits or readonly."""
    with pytest.raises(HogQLError, match="(?i)settings"):
        run(logs, "select count() from logs settings readonly = 0, max_execution_time = 1000")


def test_settings_clause_is_a_query_error(logs: ChDBStore) -> None:
    """A SETTINGS clause is a HogQLQueryError, like every other disallowed construct."""
    with pytest.raises(HogQLQueryError):
        run(logs, "select count() from logs settings max_threads = 1")


@pytest.mark.parametrize(
    "query",
    [
        "select message from logs limit 2 offset 1",
        "select message from logs order by timestamp limit 1 offset 1 by service_name limit 10",
        "select message from logs limit 2 offset 1 union all select message from logs",
    ],
)
def test_offset_is_refused_when_not_allowed(logs: ChDBStore, query: str) -> None:
    """With allow_offset=False, OFFSET (also in LIMIT BY and in a UNION branch) is a HogQLQueryError."""
    with pytest.raises(HogQLQueryError, match="OFFSET is not supported"):
        run(logs, query, limits=HogQLLimits(allow_offset=False))


# --- known bugs in src (see the report of the change that added this file) --------------------------


def test_table_arguments_are_refused(logs: ChDBStore) -> None:
    """logs(10) is a table function call, refused rather than read as the table logs."""
    with pytest.raises(HogQLQueryError):
        run(logs, "select count() from logs(10)")


def test_left_join_using_keeps_unmatched_rows(logs: ChDBStore) -> None:
    """A LEFT JOIN … USING keeps a left row that matches nothing."""
    query = (
        "select a.service_name, b.message from (select 'nosuch' as service_name) a "
        "left join logs b using (service_name)"
    )
    assert rows(logs, query) == [["nosuch", ""]]


def test_subquery_keeps_hogql_field_names(logs: ChDBStore) -> None:
    """A subquery's message and trace_id columns can be read by those names outside it."""
    query = "select message, trace_id from (select message, trace_id from logs where level = 'warn')"
    assert rows(logs, query) == [["Disk almost full", "05" * 16]]


_SETTINGS_FILTER = re.compile(r", additional_table_filters = \{[^}]*\}$")


@pytest.mark.parametrize(
    "join",
    [
        "inner join",
        "left join",
        "cross join",
        "right join",
        "full join",
    ],
)
def test_team_conditions_alone_isolate_joins(logs: ChDBStore, join: str) -> None:
    """Without additional_table_filters, the printed team conditions alone keep other projects' rows out."""
    constraint = "" if join == "cross join" else " on a.trace_id = b.trace_id"
    query = f"select a.message, b.message from logs a {join} logs b{constraint}"
    compiled = HogQLRunner(PARSER, logs.database).compile(OURS, HogQLRequest(query=query), HogQLLimits(), now=NOW)
    sql, replaced = _SETTINGS_FILTER.subn("", compiled.sql)
    assert replaced == 1
    assert OTHER_MARK not in repr(logs.execute(sql).rows)
