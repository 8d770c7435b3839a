"""HogQL under attack: project A's key tries every trick to read project B's rows, and never does.

B (the intruder) holds logs, events, persons and distinct ids that carry ``SECRET`` and look like A's rows
(same bodies, person ids and distinct ids), so a join or filter that lost its ``team_id`` condition would
match them; as after background merges, both projects' rows share parts and granules. Every attempt must end
as a 4xx in PostHog's error envelope or a 200 whose response text holds no ``SECRET`` and whose results hold
no intruder row; where the answer is known, it is checked exactly.

Besides the API, some tests run the printed SQL with its ``additional_table_filters`` backstop taken out,
to check the printer's claim that it enforces the team twice, independently. The module's app parses in a
worker process (``hogql_parse_processes=1``), as the server does; the parse timeout itself is tested in
``test_parser.py`` with an input that takes far longer than any timeout.
Every hole this suite found is closed; its cases stay as regression tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from logpond.hogql.errors import HogQLQueryError
from logpond.hogql.runner import HogQLRequest
from logpond.store.chdb_store import ChDBStore
from tests._log_tables import log_row, log_table
from tests.conftest import Env, make_settings, running_env

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SECRET = "SECRET-b7"  # never written in a query or a placeholder value: responses echo both
SECRET_PARTS = "concat('SECRET', '-b7')"  # how a query names the secret without echoing it
INTRUDER_SERVICE = "intruder-svc"
PERSON = "00000000-0000-4000-8000-0000000000a1"  # alice: the same person id in both projects
GONE = "00000000-0000-4000-8000-0000000000d1"  # a person A deleted
GONE_MARK = "gone@a.example"  # the deleted person's email and distinct id
TEAM_A, TEAM_B = "@A@", "@B@"  # stand for the projects' ids in queries and values


# --- the world ----------------------------------------------------------------------------------------------


@dataclass
class Arena:
    env: Env
    a: int
    b: int

    @property
    def store(self) -> ChDBStore:
        return self.env.services.store  # type: ignore[return-value]

    def fill(self, value: Any) -> Any:
        """``value`` with the project ids and the store's database put in for their stand-ins."""
        if value == TEAM_A:
            return self.a
        if value == TEAM_B:
            return self.b
        if isinstance(value, str):
            return value.replace(TEAM_A, str(self.a)).replace(TEAM_B, str(self.b)).replace("@DB@", self.store.database)
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _seed(store: ChDBStore, a: int, b: int) -> None:
    minute = dt.timedelta(minutes=1)
    store.insert_logs(
        log_table(
            [
                log_row(NOW, body="alpha 0", service="api", attributes={"k": "v0"}),
                log_row(NOW - minute, body="alpha 1", service="api", attributes={"k": "v1"}),
                log_row(NOW - 2 * minute, body="alpha 2", service="web", attributes={"k": "v2"}),
            ],
            team_id=a,
        )
    )
    store.insert_logs(
        log_table(
            [
                # a look-alike of A's first row: a join on body that lost a team condition would match it
                log_row(NOW, body="alpha 0", service=INTRUDER_SERVICE, attributes={"k": SECRET}),
                log_row(
                    NOW - minute,
                    body=SECRET,
                    service=INTRUDER_SERVICE,
                    attributes={"k": "v0", "team_id": str(a)},
                    resource={"region": SECRET},
                ),
            ],
            team_id=b,
        )
    )
    db = store.database
    alice = _sql_string(json.dumps({"email": "alice@a.example"}))
    gone_alive = _sql_string(json.dumps({"email": GONE_MARK, "plan": "free"}))
    gone = _sql_string(json.dumps({"email": GONE_MARK}))
    secret = _sql_string(json.dumps({"k": SECRET, "email": SECRET}))
    at = "'2026-03-01 11:00:00'"
    store.command(
        f"INSERT INTO {db}.events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, "
        "elements_chain, person_id, person_properties, person_created_at, person_mode) VALUES "
        f"(generateUUIDv4(), {a}, 'pageview', 'alice', '{{\"k\": \"v\"}}', {at}, {at}, '', '{PERSON}', '{{}}', "
        f"{at}, 'full'), "
        f"(generateUUIDv4(), {b}, {_sql_string(SECRET)}, 'alice', {secret}, {at}, {at}, '', '{PERSON}', {secret}, "
        f"{at}, 'full')"
    )
    persons = f"INSERT INTO {db}.persons (id, team_id, created_at, properties, is_identified, is_deleted, version)"
    store.command(
        f"{persons} VALUES ('{PERSON}', {a}, {at}, {alice}, 1, 0, 1), ('{GONE}', {a}, {at}, {gone_alive}, 1, 0, 1), "
        f"('{PERSON}', {b}, {at}, {secret}, 1, 0, 1)"
    )
    store.command(f"{persons} VALUES ('{GONE}', {a}, {at}, {gone}, 1, 1, 2)")  # A deletes the person
    distinct_ids = f"INSERT INTO {db}.person_distinct_ids (team_id, distinct_id, person_id, is_deleted, version)"
    store.command(
        f"{distinct_ids} VALUES ({a}, 'alice', '{PERSON}', 0, 1), ({a}, {_sql_string(GONE_MARK)}, '{GONE}', 0, 1), "
        f"({b}, 'alice', '{PERSON}', 0, 1), ({b}, {_sql_string(SECRET)}, '{PERSON}', 0, 1)"
    )
    store.command(f"{distinct_ids} VALUES ({a}, {_sql_string(GONE_MARK)}, '{GONE}', 1, 2)")
    # background merges put every project's logs into shared parts and granules; do it now
    store.command(f"OPTIMIZE TABLE {db}.logs FINAL")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def arena(chdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Arena]:
    """One app over A's and B's look-alike data, parsing HogQL in a worker process, shared by the module."""
    store = ChDBStore(chdb_path, database=f"adv_{uuid.uuid4().hex[:12]}")
    store.migrate()
    settings = make_settings(tmp_path_factory.mktemp("adversarial"), hogql_parse_processes=1)
    try:
        async with running_env(settings, store) as env:
            env.services.clock = lambda: NOW
            b = env.services.meta.create_project("Intruder").id
            _seed(store, env.project.id, b)
            yield Arena(env, env.project.id, b)
    finally:
        store.drop_database()


# --- asking and judging -------------------------------------------------------------------------------------


async def ask(arena: Arena, text: str, values: dict[str, Any] | None = None, **body: Any) -> httpx.Response:
    """POST ``text`` (with its stand-ins filled in) to project A's query endpoint."""
    query: dict[str, Any] = {"kind": "HogQLQuery", "query": arena.fill(text)}
    if values is not None:
        query["values"] = arena.fill(values)
    return await arena.env.client.post(
        f"/api/projects/{arena.a}/query/", json={"query": query, **body}, headers=arena.env.auth()
    )


def assert_envelope(response: httpx.Response) -> dict[str, Any]:
    """A non-200 answer is PostHog's error envelope with a sentence of ours as detail."""
    assert response.status_code != 200
    body = response.json()
    assert set(body) >= {"type", "code", "detail", "attr"}, body
    assert isinstance(body["detail"], str) and body["detail"], body
    return body  # type: ignore[no-any-return]


def assert_no_intruder(response: httpx.Response) -> None:
    """The secret is nowhere in the response; an error is PostHog's envelope; rows are A's only."""
    assert SECRET not in response.text, response.text
    if response.status_code == 200:
        results = json.dumps(response.json()["results"])
        assert INTRUDER_SERVICE not in results, results
    else:
        assert 400 <= response.status_code < 600, response.text
        assert_envelope(response)


def without_backstop(sql: str) -> str:
    """``sql`` without its ``additional_table_filters`` setting: only the per-table team conditions remain."""
    stripped = re.sub(r", additional_table_filters = \{[^{}]*\}$", "", sql)
    assert stripped != sql, sql
    return stripped


@dataclass(frozen=True)
class Attempt:
    """One query and what must come of it.

    ``rows``: a 200 with exactly these results. ``refused``: a 4xx (with ``code`` when given). Neither: the
    query may be answered or refused, as long as nothing of the intruder shows.
    """

    query: str
    rows: list[list[Any]] | None = None
    refused: bool = False
    code: str | None = None
    values: dict[str, Any] | None = None


def rows(*expected: list[Any]) -> dict[str, Any]:
    return {"rows": list(expected)}


def refused(code: str | None = None) -> dict[str, Any]:
    return {"refused": True, "code": code}


def attempt(case_id: str, query: str, outcome: dict[str, Any] | None = None, **extra: Any) -> Any:
    return pytest.param(Attempt(query, **(outcome or {}), **extra), id=case_id)


ALPHAS = [["alpha 0"], ["alpha 1"], ["alpha 2"]]

ATTEMPTS = [
    # --- team_id in the user's own conditions
    attempt("where-team-b", "SELECT body FROM logs WHERE team_id = @B@ ORDER BY body", rows()),
    attempt("where-or-1=1", "SELECT body FROM logs WHERE team_id = @B@ OR 1 = 1 ORDER BY body", rows(*ALPHAS)),
    attempt("where-team-in", "SELECT body FROM logs WHERE team_id IN (@A@, @B@) ORDER BY body", rows(*ALPHAS)),
    attempt("where-team-not-a", "SELECT count() FROM logs WHERE team_id != @A@", rows([0])),
    attempt("where-not-team", "SELECT count() FROM logs WHERE NOT team_id = @A@", rows([0])),
    attempt("select-team-group", "SELECT team_id, count() FROM logs GROUP BY team_id", rows([1, 3])),
    attempt(
        "having-or-1=1",
        "SELECT service_name, count() AS c FROM logs GROUP BY service_name HAVING team_id = @B@ OR 1 = 1 "
        "ORDER BY service_name",
        rows(["api", 2], ["web", 1]),
    ),
    attempt(
        "having-any-team",
        "SELECT service_name, count() FROM logs GROUP BY service_name HAVING any(team_id) = @B@ OR 1 = 1 "
        "ORDER BY service_name",
        rows(["api", 2], ["web", 1]),
    ),
    attempt("join-on-team-b", "SELECT a.body FROM logs AS a JOIN logs AS b ON a.team_id = @B@", rows()),
    attempt("join-on-or-1=1", "SELECT count() FROM logs AS a JOIN logs AS b ON a.body = b.body OR 1 = 1", rows([9])),
    attempt(
        "join-on-team-b-right",
        "SELECT count() FROM logs AS a JOIN logs AS b ON b.team_id = @B@ AND a.body = b.body",
        rows([0]),
    ),
    attempt(
        "secret-search",
        f"SELECT count() FROM logs WHERE body = {SECRET_PARTS} OR attributes.k = {SECRET_PARTS}",
        rows([0]),
    ),
    attempt("service-search", f"SELECT count() FROM logs WHERE service_name = '{INTRUDER_SERVICE}'", rows([0])),
    attempt("attribute-team-id", "SELECT count() FROM logs WHERE attributes.team_id = '@A@'", rows([0])),
    attempt("prewhere-team-b", "SELECT count() FROM logs PREWHERE team_id = @B@", rows([0])),
    attempt("prewhere-or", "SELECT count() FROM logs PREWHERE team_id = @B@ OR 1 = 1", rows([3])),
    # --- subqueries
    attempt(
        "from-subquery",
        "SELECT body FROM (SELECT body, team_id FROM logs) WHERE team_id = @B@ OR 1 = 1 ORDER BY body",
        rows(*ALPHAS),
    ),
    attempt("from-subquery-star", "SELECT count() FROM (SELECT * FROM logs)", rows([3])),
    attempt(
        "in-subquery",
        f"SELECT count() FROM logs WHERE body IN (SELECT body FROM logs WHERE service_name = '{INTRUDER_SERVICE}')",
        rows([0]),
    ),
    attempt(
        "not-in-subquery",
        "SELECT count() FROM logs WHERE body NOT IN (SELECT body FROM logs WHERE team_id = @B@)",
        rows([3]),
    ),
    attempt(
        "scalar-subquery",
        "SELECT (SELECT arraySort(groupArray(body)) FROM logs)",
        rows([["alpha 0", "alpha 1", "alpha 2"]]),
    ),
    attempt("scalar-subquery-count", "SELECT (SELECT count() FROM logs) + (SELECT count() FROM events)", rows([4])),
    attempt(
        "nested-subqueries", "SELECT count() FROM (SELECT * FROM (SELECT * FROM (SELECT body FROM logs)))", rows([3])
    ),
    attempt(
        "subquery-in-join",
        "SELECT count() FROM logs AS a JOIN (SELECT body FROM logs WHERE team_id = @B@ OR 1 = 1) AS b "
        "ON a.body = b.body",
        rows([3]),
    ),
    attempt(
        "exists-style",
        "SELECT count() FROM logs WHERE (SELECT count() FROM logs AS l2 WHERE "
        f"l2.service_name = '{INTRUDER_SERVICE}') > 0",
        rows([0]),
    ),
    # --- joins of every kind; B's "alpha 0" would match A's
    attempt("inner-join", "SELECT count() FROM logs AS a INNER JOIN logs AS b ON a.body = b.body", rows([3])),
    attempt("left-join", "SELECT count() FROM logs AS a LEFT JOIN logs AS b ON a.body = b.body", rows([3])),
    attempt(
        "right-join",
        "SELECT b.body, b.service_name FROM logs AS a RIGHT JOIN logs AS b ON a.body = b.body ORDER BY b.body",
        rows(["alpha 0", "api"], ["alpha 1", "api"], ["alpha 2", "web"]),
    ),
    attempt(
        "full-join-unmatched",
        "SELECT a.body, b.body FROM logs AS a FULL JOIN logs AS b ON a.body = b.body AND a.service_name = "
        "b.service_name ORDER BY a.body, b.body",
        rows(["alpha 0", "alpha 0"], ["alpha 1", "alpha 1"], ["alpha 2", "alpha 2"]),
    ),
    attempt(
        "full-outer-join-never-matching",
        "SELECT a.body, b.body FROM logs AS a FULL OUTER JOIN logs AS b ON a.body = concat(b.body, '!') "
        "ORDER BY a.body, b.body",
        rows(["", "alpha 0"], ["", "alpha 1"], ["", "alpha 2"], ["alpha 0", ""], ["alpha 1", ""], ["alpha 2", ""]),
    ),
    attempt(
        "right-outer-join-never-matching",
        "SELECT b.body FROM logs AS a RIGHT OUTER JOIN logs AS b ON a.body = concat(b.body, '!') ORDER BY b.body",
        rows(*ALPHAS),
    ),
    attempt("cross-join", "SELECT count() FROM logs AS a CROSS JOIN logs AS b", rows([9])),
    attempt("comma-join", "SELECT count() FROM logs AS a, logs AS b", rows([9])),
    attempt("using", "SELECT count() FROM logs AS a JOIN logs AS b USING (body)", rows([3])),
    attempt("full-join-using", "SELECT count() FROM logs AS a FULL JOIN logs AS b USING (body)", rows([3])),
    attempt("any-left-join", "SELECT count() FROM logs AS a ANY LEFT JOIN logs AS b ON a.body = b.body", rows([3])),
    attempt("semi-join", "SELECT count() FROM logs AS a LEFT SEMI JOIN logs AS b ON a.body = b.body", rows([3])),
    attempt("anti-join", "SELECT count() FROM logs AS a LEFT ANTI JOIN logs AS b ON a.body = b.body", rows([0])),
    attempt(
        "three-way-join",
        "SELECT count() FROM logs AS a JOIN logs AS b ON a.body = b.body RIGHT JOIN logs AS c ON b.body = c.body",
        rows([3]),
    ),
    attempt(
        "events-join-persons",
        "SELECT e.event, p.properties FROM events AS e JOIN persons AS p ON e.person_id = p.id",
        rows(["pageview", '{"email": "alice@a.example"}']),
    ),
    attempt(
        "events-full-join-persons",
        "SELECT e.event, p.properties.email FROM events AS e FULL JOIN persons AS p ON e.person_id = p.id "
        "WHERE p.properties.email != 'gone@a.example'",
        rows(["pageview", "alice@a.example"]),
    ),
    attempt(
        "events-right-join-distinct-ids",
        "SELECT e.event, d.distinct_id FROM events AS e RIGHT JOIN person_distinct_ids AS d "
        "ON e.distinct_id = d.distinct_id WHERE d.distinct_id = 'alice'",
        rows(["pageview", "alice"]),
    ),
    attempt(
        "persons-by-distinct-id",
        "SELECT d.distinct_id, p.properties.email FROM person_distinct_ids AS d "
        "LEFT JOIN persons AS p ON d.person_id = p.id",
        rows(["alice", "alice@a.example"]),
    ),
    # --- set operations
    attempt(
        "union-all",
        "SELECT x FROM (SELECT body AS x FROM logs UNION ALL SELECT event AS x FROM events) ORDER BY x",
        rows(*ALPHAS, ["pageview"]),
    ),
    attempt(
        "union-all-count",
        "SELECT count() FROM (SELECT body FROM logs UNION ALL SELECT body FROM logs WHERE team_id = @B@)",
        rows([3]),
    ),
    attempt(
        "union-distinct", "SELECT count() FROM (SELECT body FROM logs UNION DISTINCT SELECT body FROM logs)", rows([3])
    ),
    attempt("intersect", "SELECT count() FROM (SELECT body FROM logs INTERSECT SELECT body FROM logs)", rows([3])),
    attempt(
        "except",
        "SELECT count() FROM (SELECT body FROM logs EXCEPT SELECT body FROM logs WHERE team_id = @B@)",
        rows([3]),
    ),
    attempt(
        "union-of-events",
        "SELECT distinct_id FROM events UNION ALL SELECT distinct_id FROM person_distinct_ids",
        rows(["alice"], ["alice"]),
    ),
    # --- CTEs
    attempt("cte", "WITH x AS (SELECT body FROM logs) SELECT count() FROM x", rows([3])),
    attempt("cte-named-logs", "WITH logs AS (SELECT body FROM logs) SELECT count() FROM logs", rows([3])),
    attempt("cte-named-logs-constant", "WITH logs AS (SELECT 1 AS body) SELECT body FROM logs", rows([1])),
    attempt("cte-named-events", "WITH events AS (SELECT body FROM logs) SELECT count() FROM events", rows([3])),
    attempt(
        "cte-named-persons-joined",
        "WITH persons AS (SELECT id, properties FROM persons) "
        "SELECT count() FROM events AS e JOIN persons AS p ON e.person_id = p.id",
        rows([1]),
    ),
    attempt(
        "cte-references-cte",
        "WITH a AS (SELECT body FROM logs), b AS (SELECT body FROM a), c AS (SELECT body FROM b) SELECT count() FROM c",
        rows([3]),
    ),
    attempt(
        "cte-logs-in-subquery",
        "WITH logs AS (SELECT body FROM logs) SELECT count() FROM (SELECT body FROM logs)",
        rows([3]),
    ),
    attempt(
        "cte-logs-in-in",
        "WITH logs AS (SELECT body FROM logs) SELECT count() FROM logs WHERE body IN (SELECT body FROM logs)",
        rows([3]),
    ),
    attempt(
        "cte-in-subquery-shadows",
        "SELECT count() FROM (WITH logs AS (SELECT body FROM logs) SELECT body FROM logs) AS s "
        "JOIN logs ON s.body = logs.body",
        rows([3]),
    ),
    # --- aliases shadowing tables and columns
    attempt(
        "select-alias-team-id",
        "SELECT body, 2 AS `team_id` FROM logs ORDER BY body",
        rows(["alpha 0", 2], ["alpha 1", 2], ["alpha 2", 2]),
    ),
    attempt("bare-alias-team-id", "SELECT 2 AS team_id FROM logs", refused("hogql_syntax_error")),
    attempt("table-alias-team-id", "SELECT body FROM logs AS team_id", refused("hogql_syntax_error")),
    attempt("table-alias-team-id-backticks", "SELECT count() FROM logs AS `team_id`", rows([3])),
    attempt("select-alias-logs", "SELECT body AS logs FROM logs", refused("hogql_query_error")),
    attempt("select-alias-logs-other-table", "SELECT count() AS logs FROM logs AS l", refused("hogql_query_error")),
    attempt(
        "alias-dotted-team-id",
        "SELECT 1 AS `logs.team_id`, body FROM logs ORDER BY body",
        rows([1, "alpha 0"], [1, "alpha 1"], [1, "alpha 2"]),
    ),
    attempt("alias-dotted-team-id-in-where", "SELECT count() FROM logs WHERE (@B@ AS `logs.team_id`) = @B@", rows([3])),
    attempt("alias-team-id-in-where", "SELECT count() FROM logs WHERE isNotNull(@B@ AS `team_id`)", rows([3])),
    attempt(
        "expression-alias-shadows-table",
        "SELECT count() FROM logs AS t WHERE isNotNull(accurateCastOrNull(tuple(@A@), 'Tuple(team_id Int32)') AS t)",
        refused("hogql_query_error"),
    ),
    attempt(
        "expression-alias-shadows-table-b",
        "SELECT count() FROM logs AS t WHERE isNotNull(accurateCastOrNull(tuple(@B@), 'Tuple(team_id Int32)') AS t)",
        refused("hogql_query_error"),
    ),
    attempt("table-alias-like-another-table", "SELECT count() FROM logs AS events", rows([3])),
    attempt("table-alias-subquery-logs", "SELECT count() FROM (SELECT * FROM logs) AS logs", rows([3])),
    attempt("duplicate-table-alias", "SELECT count() FROM logs AS a JOIN events AS a ON 1 = 1", refused()),
    attempt("lambda-named-logs", "SELECT arrayMap(logs -> logs, [1])", rows([[1]])),
    # --- tables that are not HogQL's
    attempt("table-function-numbers", "SELECT * FROM numbers(10)", refused()),
    attempt("table-function-file", "SELECT * FROM file('/etc/passwd', 'LineAsString')", refused()),
    attempt("table-function-url", "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')", refused()),
    attempt("table-function-remote", "SELECT * FROM remote('127.0.0.1', system.one)", refused()),
    attempt("table-function-s3", "SELECT * FROM s3('http://127.0.0.1:1/bucket/key')", refused()),
    attempt("table-function-input", "SELECT * FROM input('x String')", refused()),
    attempt("table-function-executable", "SELECT * FROM executable('id', 'TSV', 'x String')", refused()),
    attempt("table-function-merge", "SELECT * FROM merge('@DB@', '.*')", refused()),
    attempt("table-function-cluster", "SELECT * FROM cluster('default', system.one)", refused()),
    attempt("table-function-view", "SELECT * FROM view(SELECT 1)", refused()),
    attempt("table-function-generate-random", "SELECT * FROM generateRandom('x String')", refused()),
    attempt("table-function-python", "SELECT * FROM Python(arrow_batch)", refused()),
    attempt("system-one", "SELECT * FROM system.one", refused()),
    attempt("system-tables", "SELECT name FROM system.tables", refused()),
    attempt("system-processes", "SELECT query FROM system.processes", refused()),
    attempt("system-query-log", "SELECT query FROM system.query_log", refused()),
    attempt("information-schema", "SELECT * FROM information_schema.tables", refused()),
    attempt("information-schema-upper", "SELECT * FROM INFORMATION_SCHEMA.TABLES", refused()),
    attempt("default-db", "SELECT * FROM default.logs", refused()),
    attempt("logpond-db", "SELECT * FROM logpond.logs", refused()),
    attempt("store-db", "SELECT * FROM @DB@.logs", refused()),
    attempt("store-db-backticks", "SELECT * FROM `@DB@`.`logs`", refused()),
    attempt("store-db-one-identifier", "SELECT * FROM `@DB@.logs`", refused()),
    attempt("rollup-table", "SELECT * FROM log_counts", refused()),
    attempt("rollup-values-table", "SELECT * FROM log_attribute_values", refused()),
    attempt("migrations-table", "SELECT * FROM schema_migrations", refused()),
    attempt("in-table-name", "SELECT x FROM (SELECT 1 AS x) AS a, (SELECT 2 AS y) AS b WHERE 'x' IN logs", refused()),
    attempt(
        "in-system-table", "SELECT x FROM (SELECT 1 AS x) AS a, (SELECT 2 AS y) AS b WHERE 1 IN system.one", refused()
    ),
    attempt("virtual-column-part", "SELECT _part FROM logs", refused()),
    attempt("virtual-column-table", "SELECT logs._table FROM logs", refused()),
    attempt("hidden-helper-field", "SELECT _trace_id_bytes FROM logs", refused()),
    attempt("table-final", "SELECT count() FROM logs FINAL", refused()),
    # --- functions that read files, settings or server state, or throw or sleep on purpose
    *[
        attempt(f"function-{name}", f"SELECT {name}({args})", refused("hogql_query_error"))
        for name, args in [
            ("file", "'/etc/passwd'"),
            ("getSetting", "'readonly'"),
            ("currentDatabase", ""),
            ("hostName", ""),
            ("version", ""),
            ("throwIf", "1"),
            ("sleep", "1"),
            ("sleepEachRow", "1"),
            ("joinGet", "'j', 'x', 1"),
            ("getMacro", "'replica'"),
            ("dictGet", "'d', 'x', 1"),
            ("dictHas", "'d', 1"),
            ("currentUser", ""),
            ("uptime", ""),
            ("serverUUID", ""),
            ("getServerPort", "'tcp_port'"),
            ("filesystemAvailable", ""),
            ("url", "'http://127.0.0.1:1/'"),
            ("globalVariable", "'x'"),
            ("initializeAggregation", "'sumState', 1"),
            ("transactionID", ""),
        ]
    ],
    attempt("array-reduce-sleep", "SELECT arrayReduce('sleepEachRow', [1, 2])", None),
    attempt("array-reduce-aggregate", "SELECT arrayReduce('groupArray', [1, 2])", refused("hogql_query_error")),
    # --- strings, escapes and identifiers
    attempt("string-drop-table", "SELECT body FROM logs WHERE body = ''; DROP TABLE logs; --'", refused()),
    attempt("string-escaped-quote", "SELECT count() FROM logs WHERE body = 'x\\' OR team_id != 0 OR \\''", rows([0])),
    attempt("string-doubled-quote", "SELECT count() FROM logs WHERE body = 'x'' OR 1 = 1 OR '''", rows([0])),
    attempt("string-backslash-end", "SELECT count() FROM logs WHERE body = '\\\\' OR 1 = 1 --'", rows([3])),
    attempt("string-unicode-quotes", "SELECT body FROM logs WHERE body = \u2019x\u2019 OR 1 = 1", refused()),
    attempt("string-nul-byte", "SELECT count() FROM logs WHERE body = 'a\x00' OR team_id != @A@", rows([0])),
    attempt("string-nul-escape", "SELECT length('a\\0b')", rows([2])),
    attempt("string-dollar-quote", "SELECT $$x$$", refused()),
    attempt("string-double-quoted", 'SELECT count() FROM logs WHERE body = "alpha 0"', refused()),
    attempt("identifier-with-backtick", "SELECT `bo``dy` FROM logs", refused()),
    attempt("identifier-with-escaped-backtick", "SELECT 1 AS `x\\`; DROP TABLE logs; --`", refused()),
    attempt("alias-with-backtick", "SELECT 1 AS `a``b`", rows([1])),
    attempt("alias-with-quotes", "SELECT 1 AS `a.b.c`, 2 AS `'\"`", rows([1, 2])),
    attempt("table-with-backtick", "SELECT * FROM `logs``; DROP TABLE logs`", refused()),
    attempt("map-key-injection", "SELECT count() FROM logs WHERE attributes.`k'] OR 1=1 OR ['` != ''", rows([0])),
    attempt("json-key-injection", "SELECT properties.`k', 1) OR 1=1 --` FROM events", rows([None])),
    attempt("lambda-arg-quoted", "SELECT arrayMap(`x y` -> 1, [1])", refused()),
    # --- comments
    attempt("line-comment", "SELECT count() FROM logs -- WHERE team_id = @B@", rows([3])),
    attempt("block-comment", "SELECT count() FROM logs /* WHERE team_id = @B@ */", rows([3])),
    attempt(
        "nested-block-comment", "SELECT count() FROM logs /* /* nested */ WHERE team_id = @B@ OR 1 = 1 */", refused()
    ),
    attempt(
        "comment-hiding-team",
        "SELECT count() FROM logs WHERE 1 = 1 /* AND team_id = @A@ */ OR team_id = @B@",
        rows([3]),
    ),
    attempt("hash-comment", "SELECT count() FROM logs # WHERE team_id = @B@", rows([3])),
    # --- clauses HogQL refuses
    attempt("settings-readonly", "SELECT 1 SETTINGS readonly = 0", refused()),
    attempt("settings-filters", "SELECT body FROM logs SETTINGS additional_table_filters = {'x': 'y'}", refused()),
    attempt("settings-analyzer", "SELECT count() FROM logs SETTINGS allow_experimental_analyzer = 0", refused()),
    attempt("format", "SELECT 1 FORMAT JSON", refused()),
    attempt("into-outfile", "SELECT body FROM logs INTO OUTFILE '/tmp/x'", refused()),
    attempt("array-join", "SELECT body FROM logs ARRAY JOIN [1] AS x", refused()),
    attempt("with-ties", "SELECT body FROM logs LIMIT 1 WITH TIES", refused()),
    attempt("columns-matcher", "SELECT COLUMNS('.*') FROM logs", refused()),
    attempt("global-in", "SELECT count() FROM logs WHERE body GLOBAL IN (SELECT body FROM logs)", refused()),
    # --- statements other than SELECT
    attempt("two-statements", "SELECT 1; SELECT 2", refused("hogql_syntax_error")),
    attempt("select-then-drop", "SELECT 1; DROP TABLE logs", refused("hogql_syntax_error")),
    attempt("insert", "INSERT INTO logs (body) VALUES ('x')", refused("hogql_syntax_error")),
    attempt("insert-select", "INSERT INTO logs SELECT * FROM logs", refused("hogql_syntax_error")),
    attempt("alter", "ALTER TABLE logs DELETE WHERE 1", refused("hogql_syntax_error")),
    attempt("drop", "DROP TABLE logs", refused("hogql_syntax_error")),
    attempt("drop-database", "DROP DATABASE @DB@", refused("hogql_syntax_error")),
    attempt("truncate", "TRUNCATE TABLE logs", refused("hogql_syntax_error")),
    attempt("create", "CREATE TABLE x (a Int8) ENGINE = Memory", refused("hogql_syntax_error")),
    attempt("kill", "KILL QUERY WHERE 1", refused("hogql_syntax_error")),
    attempt("system", "SYSTEM SHUTDOWN", refused("hogql_syntax_error")),
    attempt("attach", "ATTACH TABLE x", refused("hogql_syntax_error")),
    attempt("detach", "DETACH TABLE logs", refused("hogql_syntax_error")),
    attempt("optimize", "OPTIMIZE TABLE logs FINAL", refused("hogql_syntax_error")),
    attempt("rename", "RENAME TABLE logs TO x", refused("hogql_syntax_error")),
    attempt("grant", "GRANT ALL ON *.* TO default", refused("hogql_syntax_error")),
    attempt("set", "SET readonly = 0", refused("hogql_syntax_error")),
    attempt("use", "USE system", refused("hogql_syntax_error")),
    attempt("show", "SHOW TABLES", refused("hogql_syntax_error")),
    attempt("describe", "DESCRIBE logs", refused("hogql_syntax_error")),
    attempt("explain", "EXPLAIN SELECT 1", refused("hogql_syntax_error")),
    # --- placeholders with hostile values
    attempt("value-drop-table", "SELECT {x}", rows(["'; DROP TABLE logs; --"]), values={"x": "'; DROP TABLE logs; --"}),
    attempt("value-or-1=1", "SELECT count() FROM logs WHERE body = {x}", rows([0]), values={"x": "' OR 1=1 --"}),
    attempt("value-backslash-quote", "SELECT {x}", rows(["\\'"]), values={"x": "\\'"}),
    attempt(
        "value-list", "SELECT count() FROM logs WHERE body IN {x}", rows([1]), values={"x": ["alpha 0", "b') OR (1=1"]}
    ),
    attempt("value-team-id", "SELECT count() FROM logs WHERE team_id = {x}", rows([0]), values={"x": TEAM_B}),
    attempt(
        "value-team-list",
        "SELECT count() FROM logs WHERE team_id IN {x}",
        rows([0]),
        values={"x": [TEAM_B, 0]},
    ),
    attempt(
        "value-object",
        "SELECT count() FROM logs WHERE body IN {x}",
        refused("hogql_query_error"),
        values={"x": {"a": 1}},
    ),
    attempt("value-list-of-objects", "SELECT {x}", refused("hogql_query_error"), values={"x": [{"a": 1}]}),
    attempt("value-nul", "SELECT {x}", rows(["a\x00b"]), values={"x": "a\x00b"}),
    attempt("value-as-table", "SELECT count() FROM {x}", refused("hogql_query_error"), values={"x": "logs"}),
    attempt("value-missing", "SELECT {x}", refused("hogql_query_error"), values={}),
    attempt("value-sql-name", "SELECT {`x'y`}", rows([1]), values={"x'y": 1}),
]


@pytest.mark.parametrize("case", ATTEMPTS)
async def test_attempt_never_reveals_the_intruder(arena: Arena, case: Attempt) -> None:
    """The attempt is refused with PostHog's envelope or answered from project A's rows alone."""
    response = await ask(arena, case.query, case.values)
    assert_no_intruder(response)
    if case.rows is not None:
        assert response.status_code == 200, response.text
        assert response.json()["results"] == case.rows
    if case.refused:
        assert 400 <= response.status_code < 500, response.text
        if case.code is not None:
            assert response.json()["code"] == case.code, response.text


# --- the team conditions alone ------------------------------------------------------------------------------

INDEPENDENT = [
    pytest.param("SELECT body FROM logs WHERE team_id = @B@ OR 1 = 1", id="where-or"),
    pytest.param("SELECT body FROM (SELECT body FROM logs)", id="from-subquery"),
    pytest.param("SELECT body FROM logs WHERE body IN (SELECT body FROM logs)", id="in-subquery"),
    pytest.param("SELECT (SELECT groupArray(body) FROM logs)", id="scalar-subquery"),
    pytest.param("WITH logs AS (SELECT body FROM logs) SELECT body FROM logs", id="cte-named-logs"),
    pytest.param("SELECT body FROM logs UNION ALL SELECT event FROM events", id="union-all"),
    pytest.param("SELECT a.body, b.body FROM logs AS a JOIN logs AS b ON a.body = b.body", id="inner-join"),
    pytest.param("SELECT a.body, b.body FROM logs AS a LEFT JOIN logs AS b ON a.body = b.body", id="left-join"),
    pytest.param("SELECT a.body, b.body FROM logs AS a RIGHT JOIN logs AS b ON a.body = b.body", id="right-join"),
    pytest.param("SELECT a.body, b.body FROM logs AS a FULL JOIN logs AS b ON a.body = b.body", id="full-join"),
    pytest.param(
        "SELECT a.body, b.body FROM logs AS a FULL JOIN logs AS b ON a.body = concat(b.body, '!')",
        id="full-join-never-matching",
    ),
    pytest.param(
        "SELECT a.body, b.body, c.body FROM logs AS a JOIN logs AS b ON a.body = b.body "
        "RIGHT JOIN logs AS c ON b.body = c.body",
        id="join-then-right-join",
    ),
    pytest.param("SELECT a.body, b.body FROM logs AS a CROSS JOIN logs AS b", id="cross-join"),
    pytest.param("SELECT a.body, b.body FROM logs AS a FULL JOIN logs AS b USING (body)", id="full-join-using"),
    pytest.param(
        "SELECT e.event, p.properties FROM events AS e FULL JOIN persons AS p ON e.person_id = p.id",
        id="events-full-join-persons",
    ),
    pytest.param(
        "SELECT d.distinct_id FROM events AS e RIGHT JOIN person_distinct_ids AS d ON e.distinct_id = d.distinct_id",
        id="events-right-join-distinct-ids",
    ),
    pytest.param(
        "SELECT body, attributes FROM logs AS t "
        "WHERE isNotNull(accurateCastOrNull(tuple(@A@), 'Tuple(team_id Int32)') AS t)",
        id="expression-alias-shadows-table",
    ),
    pytest.param(
        "SELECT a.body, b.body FROM logs AS a JOIN logs AS b "
        "ON a.body = b.body AND isNotNull(accurateCastOrNull(tuple(@A@), 'Tuple(team_id Int32)') AS b)",
        id="expression-alias-shadows-joined-table",
    ),
    pytest.param(
        "SELECT properties FROM persons AS p "
        "WHERE isNotNull(accurateCastOrNull(tuple(@A@, 0), 'Tuple(team_id Int32, is_deleted UInt8)') AS p)",
        id="expression-alias-shadows-persons",
    ),
]


@pytest.mark.parametrize("text", INDEPENDENT)
async def test_team_conditions_alone_keep_the_intruder_out(arena: Arena, text: str) -> None:
    """The printed SQL keeps B out even without additional_table_filters (or the query is refused)."""
    services = arena.env.services
    assert services.hogql_runner is not None
    try:
        compiled = services.hogql_runner.compile(
            arena.a, HogQLRequest(query=arena.fill(text)), services.hogql_limits(personal_key=False), now=NOW
        )
    except HogQLQueryError:
        assert "accurateCastOrNull" in text  # only the alias-shadowing attempts are refused
        return
    result = arena.store.execute(without_backstop(compiled.sql))
    shown = json.dumps(result.rows)
    assert SECRET not in shown and INTRUDER_SERVICE not in shown, shown


# --- soft-deleted persons -----------------------------------------------------------------------------------

DELETED_PERSON_QUERIES = [
    pytest.param("SELECT properties.email FROM persons", id="persons"),
    pytest.param("SELECT distinct_id FROM person_distinct_ids", id="distinct-ids"),
    pytest.param("SELECT properties.email FROM persons FINAL", id="persons-final"),
    pytest.param(
        "SELECT p2.properties.email FROM persons AS p1 RIGHT JOIN persons AS p2 ON p1.id = p2.id", id="right-join"
    ),
    pytest.param(
        "SELECT p1.properties.email, p2.properties.email FROM persons AS p1 FULL JOIN persons AS p2 ON p1.id = p2.id",
        id="full-join",
    ),
    pytest.param(
        "SELECT e.event, p.properties.email FROM events AS e RIGHT JOIN persons AS p ON e.person_id = p.id",
        id="events-right-join-persons",
    ),
    pytest.param(
        "SELECT d.distinct_id FROM events AS e RIGHT JOIN person_distinct_ids AS d ON e.distinct_id = d.distinct_id",
        id="events-right-join-distinct-ids",
    ),
    pytest.param(
        "SELECT d.distinct_id, p.properties.email FROM person_distinct_ids AS d "
        "FULL JOIN persons AS p ON d.person_id = p.id",
        id="distinct-ids-full-join-persons",
    ),
    pytest.param(
        "SELECT properties.email FROM persons PREWHERE properties.plan = 'free'",
        id="prewhere-before-final",
    ),
    pytest.param(
        "SELECT properties.email FROM persons AS p "
        "WHERE isNotNull(accurateCastOrNull(tuple(@A@, 0), 'Tuple(team_id Int32, is_deleted UInt8)') AS p)",
        id="expression-alias-shadows-persons",
    ),
    pytest.param(
        "SELECT distinct_id FROM person_distinct_ids AS d "
        "WHERE isNotNull(accurateCastOrNull(tuple(@A@, 0), 'Tuple(team_id Int32, is_deleted UInt8)') AS d)",
        id="expression-alias-shadows-distinct-ids",
    ),
]


@pytest.mark.parametrize("text", DELETED_PERSON_QUERIES)
async def test_deleted_persons_stay_hidden(arena: Arena, text: str) -> None:
    """A person (or distinct id) the project deleted never comes back, whatever the join or alias."""
    response = await ask(arena, text)
    assert_no_intruder(response)
    if "accurateCastOrNull" in text:  # an alias shadowing a table is refused outright
        assert response.status_code == 400, response.text
        return
    assert response.status_code == 200, response.text
    assert GONE_MARK not in json.dumps(response.json()["results"]), response.text


# --- oracles: intruder rows never reach an expression that could fail on them ------------------------------

# Each expression is harmless on every row of A (their values are replaced by '1') and fails on any other row.
NOT_A_LOG = "service_name NOT IN ('api', 'web')"
ORACLES = [
    pytest.param(f"SELECT count() FROM logs WHERE toInt64(if({NOT_A_LOG}, body, '1')) > 0", [[3]], id="where"),
    pytest.param(
        f"SELECT count() FROM logs PREWHERE toInt64(if({NOT_A_LOG}, body, '1')) > 0",
        [[3]],
        id="prewhere",
    ),
    pytest.param(
        f"SELECT count() FROM logs WHERE intDiv(1, if({NOT_A_LOG}, 0, 1)) = 1",
        [[3]],
        id="division-by-zero",
    ),
    pytest.param(
        f"SELECT count() FROM logs WHERE length(repeat(body, if({NOT_A_LOG}, 1000000000000, 1))) > 0",
        [[3]],
        id="huge-string",
    ),
    pytest.param(
        "SELECT count() FROM logs WHERE length(toString(toUUID(if(attributes.k IN ('v0', 'v1', 'v2'), "
        "'00000000-0000-0000-0000-000000000000', attributes.k)))) = 36",
        [[3]],
        id="attribute-to-uuid",
    ),
    pytest.param(
        f"SELECT count() FROM logs WHERE toInt64(if({NOT_A_LOG}, body, '1')) > 0 AND body LIKE 'alpha%'",
        [[3]],
        id="where-and",
    ),
    pytest.param(f"SELECT sum(toInt64(if({NOT_A_LOG}, body, '1'))) FROM logs", [[3]], id="select-list"),
    pytest.param(
        "SELECT count() FROM logs AS a JOIN logs AS b "
        "ON a.body = b.body AND toInt64(if(b.service_name NOT IN ('api', 'web'), b.body, '1')) > 0",
        [[3]],
        id="join-on",
    ),
    pytest.param(
        f"SELECT (SELECT count() FROM logs WHERE toInt64(if({NOT_A_LOG}, body, '1')) > 0)",
        [[3]],
        id="scalar-subquery",
    ),
    pytest.param(
        f"SELECT count() FROM logs WHERE body IN (SELECT body FROM logs WHERE toInt64(if({NOT_A_LOG}, body, '1')) > 0)",
        [[3]],
        id="in-subquery",
    ),
    pytest.param(
        "SELECT count() FROM events WHERE toInt64(if(event = 'pageview', '1', event)) > 0",
        [[1]],
        id="events-where",
    ),
    pytest.param(
        "SELECT count() FROM events PREWHERE toInt64(if(event = 'pageview', '1', event)) > 0",
        [[1]],
        id="events-prewhere",
    ),
    pytest.param(
        "SELECT count() FROM persons WHERE toInt64(if(properties.email LIKE '%@a.example', '1', properties)) > 0",
        [[1]],
        id="persons-where",
    ),
    pytest.param(
        "SELECT count() FROM persons PREWHERE toInt64(if(properties.email LIKE '%@a.example', '1', properties)) > 0",
        [[1]],
        id="persons-prewhere",
    ),
    pytest.param(
        "SELECT count() FROM person_distinct_ids WHERE toInt64(if(distinct_id IN ('alice', 'gone@a.example'), '1', "
        "distinct_id)) > 0",
        [[1]],
        id="distinct-ids-where",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ORACLES)
async def test_intruder_rows_never_reach_user_expressions(arena: Arena, text: str, expected: list[list[Any]]) -> None:
    """An expression that would fail (or blow up) on an intruder row never sees one: the answer is A's count.

    If B's rows reached it, the status code (an error's name) would tell A that B holds such a row.
    """
    response = await ask(arena, text)
    assert_no_intruder(response)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == expected


async def test_error_codes_cannot_spell_out_another_projects_values(arena: Arena) -> None:
    """Guessing a prefix of B's body gets the same answer whether B holds such a body or not.

    Otherwise a 400-or-200 per guess spells out any value of any project, one character at a time.
    """
    guess = "SELECT count() FROM logs WHERE toInt64(if({a} OR NOT startsWith(body, '{prefix}'), '1', 'x')) > 0"
    answers = []
    for prefix in ("SECRET-", "NOPE-"):
        response = await ask(arena, guess.format(a="service_name IN ('api', 'web')", prefix=prefix))
        assert_no_intruder(response)
        answers.append((response.status_code, response.json().get("results")))
    assert answers == [(200, [[3]]), (200, [[3]])]


# --- error details are our own sentences --------------------------------------------------------------------

FAILING_ON_OWN_VALUES = [
    pytest.param("SELECT toInt64(body) FROM logs", "cannot_parse_text", id="to-int"),
    pytest.param("SELECT toUUID(body) FROM logs", "cannot_parse_uuid", id="to-uuid"),
    pytest.param("SELECT parseDateTimeBestEffort(body) FROM logs", "cannot_parse_datetime", id="parse-datetime"),
    pytest.param("SELECT toDate(body) FROM logs", "cannot_parse_date", id="to-date"),
    pytest.param("SELECT toInt64(attributes.k) FROM logs", "cannot_parse_text", id="attribute-to-int"),
    pytest.param("SELECT toUUID(properties) FROM persons", "cannot_parse_uuid", id="person-properties-to-uuid"),
    pytest.param("SELECT toInt64(event) FROM events", "cannot_parse_text", id="event-to-int"),
    pytest.param("SELECT body + 1 FROM logs", "illegal_type_of_argument", id="string-plus-int"),
    pytest.param("SELECT intDiv(1, 0)", "illegal_division", id="division-by-zero"),
]


@pytest.mark.parametrize(("text", "code"), FAILING_ON_OWN_VALUES)
async def test_errors_never_quote_values(arena: Arena, text: str, code: str) -> None:
    """A query failing on a value gets the error's name and our sentence, never ClickHouse's text or SQL."""
    response = await ask(arena, text)
    assert_no_intruder(response)
    assert response.status_code == 400, response.text
    body = assert_envelope(response)
    assert body["code"] == code
    for leak in ("alpha", "alice", "pageview", "DB::Exception", "Code:", arena.store.database, "SELECT", "`"):
        assert leak not in body["detail"], body["detail"]


MISTAKES = [
    pytest.param("SELECT toInt64(body) FROM logs", id="conversion"),
    pytest.param(
        "SELECT 1 AS `a` ` b`",
        id="alias-of-alias",
    ),
    pytest.param(
        "SELECT arrayReduce('sleepEachRow', [1, 2])",
        id="array-reduce-unknown-aggregate",
    ),
    pytest.param(
        "SELECT (SELECT body FROM logs)",
        id="scalar-subquery-many-rows",
    ),
    pytest.param(
        "SELECT length(repeat(body, 1000000000000)) FROM logs",
        id="string-too-large",
    ),
    pytest.param(
        "SELECT JSONExtractKeysAndValues(body, 'String', 'x') FROM logs",
        id="unknown-type-name",
    ),
]


@pytest.mark.parametrize("text", MISTAKES)
async def test_mistakes_in_a_query_are_400s(arena: Arena, text: str) -> None:
    """A query the store rejects because of what it asks is the user's mistake: 400, not a server error."""
    response = await ask(arena, text)
    assert_no_intruder(response)
    assert response.status_code == 400, response.text


# --- aggregates over joins count A's rows only --------------------------------------------------------------

AGGREGATES = (
    "SELECT count(), uniq(b.body), arraySort(groupArray(a.body)), "
    f"countIf(a.service_name = '{INTRUDER_SERVICE}' OR b.service_name = '{INTRUDER_SERVICE}'), "
    "any(b.service_name) IN ('api', 'web', '') FROM logs AS a {join}"
)
A3 = ["alpha 0", "alpha 1", "alpha 2"]


@pytest.mark.parametrize(
    ("join", "expected"),
    [
        pytest.param("JOIN logs AS b ON a.body = b.body", [3, 3, A3, 0, 1], id="inner"),
        pytest.param("LEFT JOIN logs AS b ON a.body = b.body", [3, 3, A3, 0, 1], id="left"),
        pytest.param("RIGHT JOIN logs AS b ON a.body = b.body", [3, 3, A3, 0, 1], id="right"),
        pytest.param("FULL JOIN logs AS b ON a.body = b.body", [3, 3, A3, 0, 1], id="full"),
        pytest.param("CROSS JOIN logs AS b", [9, 3, sorted(A3 * 3), 0, 1], id="cross"),
        pytest.param("JOIN logs AS b USING (body)", [3, 3, A3, 0, 1], id="using"),
        pytest.param("LEFT JOIN logs AS b ON a.body = concat(b.body, '!')", [3, 1, A3, 0, 1], id="left-unmatched"),
        pytest.param(
            "RIGHT JOIN logs AS b ON a.body = concat(b.body, '!')", [3, 3, ["", "", ""], 0, 1], id="right-unmatched"
        ),
        pytest.param(
            "FULL JOIN logs AS b ON a.body = concat(b.body, '!')", [6, 4, ["", "", "", *A3], 0, 1], id="full-unmatched"
        ),
        pytest.param(
            "JOIN (SELECT body, service_name FROM logs) AS b ON a.body = b.body", [3, 3, A3, 0, 1], id="subquery"
        ),
    ],
)
async def test_aggregates_over_joins_count_only_a(arena: Arena, join: str, expected: list[Any]) -> None:
    """count(), uniq(), groupArray() and any() over every kind of join add up A's rows and nothing else."""
    response = await ask(arena, AGGREGATES.format(join=join))
    assert_no_intruder(response)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [expected]


async def test_aggregates_over_events_and_persons_count_only_a(arena: Arena) -> None:
    """Joining events, distinct ids and persons (B holds the same person id and distinct id) counts A's only."""
    response = await ask(
        arena,
        "SELECT count(), uniq(p.id), groupArray(e.event), any(p.properties.email) FROM events AS e "
        "JOIN person_distinct_ids AS d ON e.distinct_id = d.distinct_id "
        "FULL JOIN persons AS p ON d.person_id = p.id",
    )
    assert_no_intruder(response)
    assert response.json()["results"] == [[1, 1, ["pageview"], "alice@a.example"]]


# --- other ways in ------------------------------------------------------------------------------------------


async def test_key_scoped_to_a_cannot_query_b(arena: Arena) -> None:
    """A personal key scoped to project A gets PostHog's envelope, not rows, at B's query endpoint."""
    key = arena.env.new_key(["query:read"], scoped_teams=[arena.a])
    response = await arena.env.client.post(
        f"/api/projects/{arena.b}/query/",
        json={"query": {"kind": "HogQLQuery", "query": "SELECT body FROM logs"}},
        headers=arena.env.auth(key),
    )
    assert response.status_code in (403, 404), response.text
    assert_no_intruder(response)


async def test_async_attempt_never_reveals_the_intruder(arena: Arena) -> None:
    """An attack run with refresh=async is polled to A's rows only."""
    text = "SELECT a.body, b.body FROM logs AS a FULL JOIN logs AS b ON a.body = concat(b.body, '!')"
    response = await ask(arena, text, refresh="async")
    assert response.status_code == 202, response.text
    query_id = response.json()["query_status"]["id"]
    for _ in range(250):
        poll = await arena.env.client.get(f"/api/projects/{arena.a}/query/{query_id}/", headers=arena.env.auth())
        if poll.status_code != 202:
            break
        await asyncio.sleep(0.02)
    assert poll.status_code == 200, poll.text
    assert SECRET not in poll.text
    results = poll.json()["query_status"]["results"]["results"]
    assert sorted(results) == sorted([["", b] for b in A3] + [[a, ""] for a in A3])


async def test_b_cannot_poll_a_query_of_a(arena: Arena) -> None:
    """A's query id polled at B's endpoint is not found."""
    response = await ask(arena, "SELECT count() FROM logs", refresh="async", client_query_id="adv-a-only")
    assert response.status_code == 202, response.text
    poll = await arena.env.client.get(f"/api/projects/{arena.b}/query/adv-a-only/", headers=arena.env.auth())
    assert poll.status_code == 404, poll.text
    assert_envelope(poll)


# --- size and nesting ---------------------------------------------------------------------------------------


async def test_query_over_64_kib_is_refused_fast(arena: Arena) -> None:
    """A query longer than 64 KiB is a 400 before any parsing, at once."""
    started = time.monotonic()
    response = await ask(arena, "SELECT '" + "a" * (64 * 1024) + "' FROM logs")
    elapsed = time.monotonic() - started
    body = assert_envelope(response)
    assert (response.status_code, body["code"]) == (400, "hogql_syntax_error")
    assert "65536" in body["detail"]
    assert elapsed < 3.0


def _nested_subqueries(depth: int) -> str:
    text = "SELECT count() FROM logs"
    for _ in range(depth):
        text = f"SELECT * FROM ({text})"
    return text


NESTED = [
    pytest.param("SELECT " + "(" * 100 + "1" + ")" * 100, id="parentheses-100"),
    # 40, not 30: a parser process whose caches are warm from earlier queries can parse 30 nested calls in
    # about the 2 s the timeout allows, so 30 raced the timeout; past the bracket limit it is refused at once
    pytest.param("SELECT " + "abs(" * 40 + "1" + ")" * 40, id="function-calls-40"),
    pytest.param(_nested_subqueries(50), id="subqueries-50"),
    pytest.param("SELECT " + "[" * 60 + "1" + "]" * 60, id="arrays-60"),
    pytest.param("SELECT count() FROM logs WHERE " + "NOT " * 2000 + "1", id="not-2000"),
    pytest.param("SELECT " + "- " * 3000 + "1", id="unary-minus-3000"),
]


@pytest.mark.parametrize("text", NESTED)
async def test_deep_nesting_is_refused_and_the_server_recovers(arena: Arena, text: str) -> None:
    """Deep nesting is a 400 within a few seconds (the parse timeout is 2 s); a normal query then answers."""
    started = time.monotonic()
    response = await ask(arena, text)
    elapsed = time.monotonic() - started
    body = assert_envelope(response)
    assert (response.status_code, body["code"]) == (400, "hogql_syntax_error"), response.text
    # the parse timeout, plus starting a worker if the previous case's was killed
    assert elapsed < 15, elapsed
    after = await ask(arena, "SELECT count() FROM logs")
    assert (after.status_code, after.json()["results"]) == (200, [[3]]), after.text


# --- nothing else lost --------------------------------------------------------------------------------------


async def test_store_is_intact_after_every_attempt(arena: Arena) -> None:
    """After all the DROPs, INSERTs and injections, both projects still hold exactly the rows they were given."""
    db = arena.store.database
    counts = arena.store.execute(
        f"SELECT (SELECT count() FROM {db}.logs WHERE team_id = {arena.a}), "
        f"(SELECT count() FROM {db}.logs WHERE team_id = {arena.b}), (SELECT count() FROM {db}.events), "
        f"(SELECT count() FROM {db}.persons), (SELECT count() FROM {db}.person_distinct_ids)"
    ).rows
    assert counts == [[3, 2, 2, 4, 5]]
    response = await ask(arena, "SELECT count() FROM logs")
    assert response.json()["results"] == [[3]]
