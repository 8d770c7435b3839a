"""Run a HogQL query for one project: parse, compile, print, execute, and shape PostHog's response.

Everything here is synchronous and touches no HTTP; ``logpond.api.query`` adds authentication, the
per-project concurrency limit, async execution and cancellation around it. The bounds of a query —
rows, time, memory, OFFSET with a personal API key — are decided in ``limits_for`` and ``_bound``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import zoneinfo
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from logpond.hogql.compiler import CompileOptions, Compiler
from logpond.hogql.errors import HogQLQueryError
from logpond.hogql.filters import filters_condition
from logpond.hogql.parser import ParserPool
from logpond.hogql.printer import print_hogql
from logpond.query import ast
from logpond.query.printer import QueryError, print_query_with_columns
from logpond.query.schema import HOGQL_TABLES
from logpond.store.base import QueryLimits, QueryResult

OFFSET_WITH_PERSONAL_KEY = (
    "OFFSET is not supported for queries made with a personal API key: it rereads every skipped row. "
    "Paginate with a keyset instead — ORDER BY timestamp DESC and add WHERE timestamp < <the last timestamp "
    "you received> to the next query — or use a batch export."
)


# ClickHouse would move user conditions into PREWHERE, which runs over whole granules — other projects'
# rows included — before any team filter; an error raised there (a failed cast) would tell the caller
# about rows it cannot read. Without the move, user expressions only see rows that passed the team filter.
HOGQL_SETTINGS = {
    "optimize_move_to_prewhere": 0,
    "output_format_json_quote_64bit_integers": 0,
    "session_timezone": "UTC",
}


@dataclass(frozen=True)
class HogQLLimits:
    default_limit: int = 100
    max_limit: int = 50_000
    max_execution_time: float = 60.0
    max_memory_usage: int = 4 * 1024**3
    allow_offset: bool = True


@dataclass
class HogQLRequest:
    query: str
    values: dict[str, Any] = field(default_factory=dict)
    filters: Any = None
    variables: dict[str, Any] = field(default_factory=dict)
    explain: bool = False


@dataclass
class Compiled:
    sql: str
    columns: list[str]
    hogql: str
    limit: int | None  # the row limit logpond chose (no LIMIT in the query); None when the query had one
    timings: list[dict[str, Any]]


@dataclass
class Timer:
    timings: list[dict[str, Any]] = field(default_factory=list)

    def measure(self, key: str, started: float) -> None:
        self.timings.append({"k": key, "t": round(time.perf_counter() - started, 6)})


def _has_top_level_offset(node: ast.Select | ast.SelectUnion) -> bool:
    if isinstance(node, ast.SelectUnion):
        return any(_has_top_level_offset(s) for s in node.selects)
    return node.offset is not None or (node.limit_by is not None and node.limit_by.offset is not None)


class HogQLRunner:
    """Compiles and runs HogQL for projects; compiled queries are cached by everything they depend on."""

    def __init__(self, parser: ParserPool, database: str, *, cache_size: int = 512) -> None:
        self.parser = parser
        self.database = database
        self._cache: OrderedDict[tuple[Any, ...], Compiled] = OrderedDict()
        self._cache_size = cache_size

    # --- compile ---------------------------------------------------------------------------------
    def compile(self, team_id: int, request: HogQLRequest, limits: HogQLLimits, *, now: dt.datetime) -> Compiled:
        timer = Timer()
        started = time.perf_counter()
        filters_expr = filters_condition(request.filters, now=now, parse_expr=self.parse_expr)
        key = (
            team_id,
            request.query,
            orjson.dumps(request.values, option=orjson.OPT_SORT_KEYS),
            orjson.dumps(request.variables, option=orjson.OPT_SORT_KEYS),
            repr(filters_expr),
            limits,
        )
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            timer.measure("./compile_cached", started)
            return replace(cached, timings=timer.timings)
        try:
            step = time.perf_counter()
            doc = self.parser.parse_select(request.query)
            timer.measure("./parse_select", step)
            step = time.perf_counter()
            options = CompileOptions(values=request.values, filters=filters_expr, variables=request.variables)
            node = Compiler(request.query, options).query(doc)
            if not limits.allow_offset and _has_top_level_offset(node):
                raise HogQLQueryError(OFFSET_WITH_PERSONAL_KEY)
            bounded, limit, columns_from = self._bound(node, limits)
            timer.measure("./compile", step)
            step = time.perf_counter()
            query_limits = QueryLimits(
                max_execution_time=limits.max_execution_time,
                max_memory_usage=limits.max_memory_usage,
                max_result_rows=limits.max_limit + 1,
            )
            sql, columns = print_query_with_columns(
                bounded,
                team_id=team_id,
                database=self.database,
                limits=query_limits,
                tables=HOGQL_TABLES,
                settings=HOGQL_SETTINGS,
            )
            if columns_from is not None:
                _, columns = print_query_with_columns(
                    columns_from, team_id=team_id, database=self.database, limits=None, tables=HOGQL_TABLES
                )
            hogql = print_hogql(node)
            timer.measure("./print", step)
        except QueryError as exc:
            raise HogQLQueryError(str(exc)) from None
        except RecursionError:
            raise HogQLQueryError("The query is nested too deeply.") from None
        compiled = Compiled(sql=sql, columns=columns, hogql=hogql, limit=limit, timings=timer.timings)
        self._cache[key] = compiled
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return compiled

    def parse_expr(self, text: str) -> ast.Expr:
        doc = self.parser.parse_expr(text)
        return Compiler(text).expr(doc)  # type: ignore[no-any-return]

    @staticmethod
    def _bound(
        node: ast.Select | ast.SelectUnion, limits: HogQLLimits
    ) -> tuple[ast.Select | ast.SelectUnion, int | None, ast.Select | ast.SelectUnion | None]:
        """(query with its row bound, the limit logpond chose or None, node to name columns from or None).

        A query without LIMIT gets the default limit plus one row, to tell whether there is more; an
        explicit LIMIT is clamped. A set query is wrapped, so its bound applies to the whole result.
        """
        if isinstance(node, ast.SelectUnion):
            wrapped = ast.Select(
                select=(ast.Star(),), from_=ast.JoinExpr(node, alias="hogql_set"), limit=limits.default_limit + 1
            )
            return wrapped, limits.default_limit, node
        if node.limit is None:
            return replace(node, limit=limits.default_limit + 1), limits.default_limit, None
        return replace(node, limit=min(node.limit, limits.max_limit)), None, None

    # --- run -------------------------------------------------------------------------------------
    def run(
        self,
        team_id: int,
        request: HogQLRequest,
        limits: HogQLLimits,
        *,
        execute: Callable[[str], QueryResult],
        now: dt.datetime,
        timezone: str = "UTC",
    ) -> dict[str, Any]:
        """Compile and execute in one call (the CLI's path; the API compiles before taking a slot)."""
        compiled = self.compile(team_id, request, limits, now=now)
        return self.execute(compiled, request, execute=execute, now=now, timezone=timezone)

    def execute(
        self,
        compiled: Compiled,
        request: HogQLRequest,
        *,
        execute: Callable[[str], QueryResult],
        now: dt.datetime,
        timezone: str = "UTC",
    ) -> dict[str, Any]:
        total = time.perf_counter()
        timings = list(compiled.timings)
        step = time.perf_counter()
        result = execute(compiled.sql)
        timings.append({"k": "./clickhouse_execute", "t": round(time.perf_counter() - step, 6)})
        step = time.perf_counter()
        rows = format_rows(result.rows, result.types, timezone)
        has_more = None
        if compiled.limit is not None:
            has_more = len(rows) > compiled.limit
            rows = rows[: compiled.limit]
        timings.append({"k": "./format", "t": round(time.perf_counter() - step, 6)})
        compile_seconds = sum(t["t"] for t in compiled.timings)
        timings.append({"k": ".", "t": round(compile_seconds + time.perf_counter() - total, 6)})
        columns = compiled.columns if len(compiled.columns) == len(result.types) else result.columns
        return {
            "results": rows,
            "columns": columns,
            "types": [[name, type_] for name, type_ in zip(columns, result.types, strict=False)],
            "hogql": compiled.hogql,
            "clickhouse": compiled.sql if request.explain else None,
            "query": request.query,
            "hasMore": has_more,
            "limit": compiled.limit,
            "offset": 0 if compiled.limit is not None else None,
            "timings": timings,
            "modifiers": {},
            "error": None,
            "explain": None,
            "metadata": None,
            "is_cached": False,
            "cache_key": None,
            "last_refresh": _iso(now, "UTC"),
            "next_allowed_client_refresh": None,
            "cache_target_age": None,
            "timezone": timezone,
            "query_status": None,
        }


# --- values ----------------------------------------------------------------------------------------
_DATETIME_TYPE = re.compile(
    r"^(?:Nullable\()?(?:LowCardinality\()?DateTime(?:64)?(?:\((?:\d+)?(?:,\s*)?(?:'([^']+)')?\))?\)?\)?$"
)


def _iso(value: dt.datetime, timezone: str) -> str:
    text = value.astimezone(_zone(timezone)).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _zone(name: str) -> dt.tzinfo:
    if name == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _datetime_converter(source_tz: str, timezone: str) -> Callable[[Any], Any]:
    source = _zone(source_tz)
    target = _zone(timezone)

    def convert(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            moment = dt.datetime.fromisoformat(value).replace(tzinfo=source)
        except ValueError:
            return value
        text = moment.astimezone(target).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return convert


def format_rows(rows: list[list[Any]], types: list[str], timezone: str) -> list[list[Any]]:
    """Rows as PostHog returns them: datetimes in ISO 8601 in the project's time zone, the rest as JSON."""
    converters: list[tuple[int, Callable[[Any], Any]]] = []
    for i, type_ in enumerate(types):
        match = _DATETIME_TYPE.match(type_)
        if match:
            converters.append((i, _datetime_converter(match.group(1) or "UTC", timezone)))
    if not converters:
        return rows
    for row in rows:
        for i, convert in converters:
            row[i] = convert(row[i])
    return rows
