"""The query printer: tenancy on every table reference, escaped constants, refusals, limits."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from logpond.query import ast
from logpond.query.ast import Alias, Compare, Constant, Field, JoinExpr, Select, SelectUnion, TableRef, call
from logpond.query.printer import QueryError, print_query, quote_string
from logpond.store.base import QueryLimits
from logpond.store.chdb_store import ChDBStore
from logpond.store.schema import LOG_ARROW_SCHEMA


def logs_select(*select: ast.Expr, where: ast.Expr | None = None, alias: str | None = None) -> Select:
    return Select(select=tuple(select), from_=JoinExpr(TableRef("logs"), alias=alias), where=where)


def test_table_reference_gets_team_condition() -> None:
    """A plain SELECT over logs is printed with the project's team_id condition and the table's database."""
    sql = print_query(logs_select(Field("body")), team_id=7, database="db", limits=None)
    assert sql == (
        "SELECT `logs`.body FROM `db`.`logs` AS `logs` WHERE (`logs`.team_id = 7) "
        "SETTINGS additional_table_filters = {'db.logs': 'team_id = 7'}"
    )


def test_team_condition_is_anded_with_user_where() -> None:
    """A user condition cannot widen the team condition: both are ANDed at the same level."""
    where = ast.Or((Compare("=", Field("team_id"), Constant(8)), Constant(True)))
    sql = print_query(logs_select(Field("body"), where=where), team_id=7, database="db", limits=None)
    assert "WHERE (`logs`.team_id = 7) AND ((`logs`.team_id = 8) OR true)" in sql


def test_every_subquery_union_and_join_gets_its_own_team_condition() -> None:
    """Subqueries in FROM and IN, UNION branches and joined tables each carry the team condition."""
    inner = logs_select(Field("uuid"))
    node = SelectUnion(
        (
            Select(
                select=(Field("uuid", "a"),),
                from_=JoinExpr(
                    TableRef("logs"),
                    alias="a",
                    next_join=JoinExpr(
                        TableRef("logs"),
                        alias="b",
                        join_type="INNER JOIN",
                        constraint=Compare("=", Field("uuid", "a"), Field("uuid", "b")),
                    ),
                ),
            ),
            Select(select=(Field("uuid"),), from_=JoinExpr(inner, alias="sub")),
            logs_select(Field("uuid"), where=Compare("in", Field("uuid"), inner)),
        )
    )
    sql = print_query(node, team_id=42, database="db", limits=None)
    # five table references (the joined one also in its ON) and the additional_table_filters backstop
    assert sql.count("team_id = 42") == 7
    assert "team_id = " not in sql.replace("team_id = 42", "")


def test_strings_are_escaped_literals() -> None:
    """Quotes, backslashes and control characters in constants cannot end the literal."""
    assert quote_string("x' OR 1=1 --") == "'x\\' OR 1=1 --'"
    assert quote_string("a\\'b") == "'a\\\\\\'b'"
    assert quote_string("line\nbreak\0") == "'line\\nbreak\\0'"


def test_unknown_table_function_and_field_are_refused() -> None:
    """Only schema tables, whitelisted functions and known fields can be printed."""
    with pytest.raises(QueryError, match="Unknown table"):
        print_query(
            Select(select=(Constant(1),), from_=JoinExpr(TableRef("system.tables"))),
            team_id=1,
            database="db",
            limits=None,
        )
    with pytest.raises(QueryError, match="Unsupported function"):
        print_query(logs_select(call("file", Constant("/etc/passwd"))), team_id=1, database="db", limits=None)
    with pytest.raises(QueryError, match="Unable to resolve field"):
        print_query(logs_select(Field("password")), team_id=1, database="db", limits=None)


def test_limits_are_printed_as_settings() -> None:
    """Every query carries the time, memory and row limits and readonly."""
    sql = print_query(
        logs_select(Field("body")),
        team_id=1,
        database="db",
        limits=QueryLimits(max_execution_time=5, max_memory_usage=1000, max_result_rows=10),
    )
    assert sql.endswith(
        "SETTINGS max_execution_time = 5, max_memory_usage = 1000, max_result_rows = 10, "
        "result_overflow_mode = 'throw', readonly = 2, additional_table_filters = {'db.logs': 'team_id = 1'}"
    )


def test_datetimes_lists_and_empty_in() -> None:
    """Datetimes print in UTC with microseconds; an empty IN list matches nothing."""
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    where = ast.And(
        (Compare(">=", Field("timestamp"), Constant(moment)), Compare("in", Field("severity_text"), Constant([])))
    )
    sql = print_query(logs_select(Field("body"), where=where), team_id=1, database="db", limits=None)
    assert "toDateTime64('2026-01-02 01:04:05.000006', 6, 'UTC')" in sql
    assert "false" in sql


def _row(team_id: int, body: str) -> dict[str, object]:
    now = dt.datetime.now(dt.UTC)
    return {
        "team_id": team_id,
        "uuid": f"0197a0b2-0000-7000-8000-{team_id:012d}",
        "trace_id": b"",
        "span_id": b"",
        "trace_flags": 0,
        "timestamp": now,
        "observed_timestamp": now,
        "body": body,
        "severity_text": "info",
        "severity_number": 9,
        "service_name": "api",
        "resource_attributes": [("service.name", "api")],
        "instrumentation_scope": "",
        "event_name": "",
        "attributes": [("secret", body)],
    }


def test_printed_queries_return_only_the_projects_rows(store: ChDBStore) -> None:
    """Run on chDB: a UNION, a join and an IN subquery over two projects' rows return only the caller's."""
    store.insert_logs(pa.Table.from_pylist([_row(1, "mine"), _row(2, "theirs")], schema=LOG_ARROW_SCHEMA))
    node = SelectUnion(
        (
            logs_select(Field("body"), where=Compare("in", Field("uuid"), logs_select(Field("uuid")))),
            Select(
                select=(Field("body", "a"),),
                from_=JoinExpr(
                    TableRef("logs"),
                    alias="a",
                    next_join=JoinExpr(
                        TableRef("logs"),
                        alias="b",
                        join_type="LEFT JOIN",
                        constraint=Compare("=", Field("service_name", "a"), Field("service_name", "b")),
                    ),
                ),
            ),
            Select(select=(Alias(Field("body"), "body"),), from_=JoinExpr(logs_select(Field("body")), alias="sub")),
        )
    )
    sql = print_query(node, team_id=1, database=store.database, limits=QueryLimits())
    assert {row[0] for row in store.execute(sql).rows} == {"mine"}


def test_verbatim_strings_are_checked() -> None:
    """Join types, ORDER BY directions and interval units cannot smuggle SQL into the printed query."""
    sneaky_order = Select(select=(Field("body"),), from_=JoinExpr(TableRef("logs")),
                          order_by=(ast.OrderExpr(Field("body"), "ASC UNION ALL SELECT 1"),))  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="ASC or DESC"):
        print_query(sneaky_order, team_id=1, database="db", limits=None)
    sneaky_join = Select(select=(Field("body", "a"),), from_=JoinExpr(TableRef("logs"), alias="a", next_join=JoinExpr(
        TableRef("logs"), alias="b", join_type="JOIN system.tables t ON 1 JOIN", constraint=Constant(True))))
    with pytest.raises(QueryError, match="join type"):
        print_query(sneaky_join, team_id=1, database="db", limits=None)
    with pytest.raises(QueryError, match="interval unit"):
        print_query(logs_select(ast.Interval(Constant(1), "day) FROM x --")), team_id=1, database="db",  # type: ignore[arg-type]
                    limits=None)
