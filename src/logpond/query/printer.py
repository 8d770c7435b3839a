"""Print a query tree as ClickHouse SQL — the single place where tenancy and limits are enforced.

Every table reference becomes ``<database>.<physical table> AS <alias>`` and adds
``<alias>.team_id = <team>`` to the WHERE clause of the SELECT that owns it, whether that SELECT is the
top level, a subquery in FROM or IN, a CTE or a branch of a UNION. Only tables in ``schema.TABLES`` and
functions in ``FUNCTIONS`` can be printed; constants are always printed as escaped literals; the SETTINGS
clause comes only from ``QueryLimits``. The printer dispatches on node type through a table, so a new
node type is one new method.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from logpond.query import ast
from logpond.query.schema import TABLES, TableDef
from logpond.store.base import QueryLimits


class QueryError(Exception):
    """The query cannot be printed: unknown table, field or function, or a disallowed construct."""


# HogQL / logpond function name -> ClickHouse function name. Anything else is refused.
FUNCTIONS: dict[str, str] = {
    name: name
    for name in (
        # aggregates
        "count",
        "countIf",
        "sum",
        "sumIf",
        "avg",
        "avgIf",
        "min",
        "minIf",
        "max",
        "maxIf",
        "uniq",
        "uniqIf",
        "uniqExact",
        "any",
        "anyLast",
        "argMax",
        "argMin",
        "groupArray",
        "groupUniqArray",
        "quantile",
        "quantiles",
        "median",
        # comparison and logic
        "equals",
        "notEquals",
        "less",
        "greater",
        "lessOrEquals",
        "greaterOrEquals",
        "and",
        "or",
        "not",
        "if",
        "multiIf",
        "isNull",
        "isNotNull",
        "coalesce",
        "ifNull",
        "nullIf",
        "in",
        "notIn",
        # strings
        "lower",
        "upper",
        "lowerUTF8",
        "upperUTF8",
        "length",
        "lengthUTF8",
        "empty",
        "notEmpty",
        "concat",
        "substring",
        "substringUTF8",
        "trimBoth",
        "trim",
        "position",
        "positionCaseInsensitive",
        "like",
        "notLike",
        "ilike",
        "notILike",
        "match",
        "replaceAll",
        "replaceRegexpAll",
        "extract",
        "splitByChar",
        "startsWith",
        "endsWith",
        "hex",
        "unhex",
        "base64Encode",
        "tryBase64Decode",
        "toString",
        "leftPad",
        "left",
        "right",
        # maps and arrays
        "mapContains",
        "mapKeys",
        "mapValues",
        "has",
        "hasAny",
        "arrayJoin",
        "arrayZip",
        "tupleElement",
        "indexOf",
        "tuple",
        # numbers and types
        "toInt64",
        "toFloat64",
        "toFloat64OrNull",
        "toInt64OrNull",
        "round",
        "floor",
        "ceil",
        "abs",
        "intDiv",
        "plus",
        "minus",
        "multiply",
        "divide",
        "modulo",
        "toUUID",
        "cityHash64",
        "toTypeName",
        # dates and times
        "now",
        "now64",
        "today",
        "toDate",
        "toDateTime",
        "toDateTime64",
        "toStartOfDay",
        "toStartOfHour",
        "toStartOfMinute",
        "toStartOfFiveMinutes",
        "toStartOfTenMinutes",
        "toStartOfFifteenMinutes",
        "toStartOfInterval",
        "toUnixTimestamp",
        "toUnixTimestamp64Micro",
        "fromUnixTimestamp64Micro",
        "dateDiff",
        "parseDateTime64BestEffortOrNull",
    )
}

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0", "\b": "\\b", "\f": "\\f"}


# the only strings the printer copies from nodes into SQL verbatim are checked against these
_INTERVAL_UNITS = frozenset({"second", "minute", "hour", "day", "week", "month", "quarter", "year"})
_JOIN_TYPES = frozenset(
    {
        "JOIN",
        "INNER JOIN",
        "LEFT JOIN",
        "RIGHT JOIN",
        "FULL JOIN",
        "LEFT OUTER JOIN",
        "RIGHT OUTER JOIN",
        "FULL OUTER JOIN",
        "CROSS JOIN",
        "ANY LEFT JOIN",
        "ANY INNER JOIN",
        "SEMI LEFT JOIN",
        "ANTI LEFT JOIN",
    }
)


def quote_string(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


@dataclass
class _Scope:
    """Tables visible to one SELECT: alias -> table definition (None for a subquery in FROM)."""

    tables: dict[str, TableDef | None] = field(default_factory=dict)
    select_aliases: set[str] = field(default_factory=set)


@dataclass
class PrintContext:
    team_id: int
    database: str
    limits: QueryLimits | None = None
    scopes: list[_Scope] = field(default_factory=list)
    alias_counter: int = 0

    def fresh_alias(self, base: str) -> str:
        self.alias_counter += 1
        return f"{base}_{self.alias_counter}" if self.alias_counter > 1 else base


class ClickHousePrinter:
    def __init__(self, context: PrintContext) -> None:
        self.ctx = context
        self._dispatch: dict[type, Callable[[Any], str]] = {
            ast.Constant: self._constant,
            ast.Field: self._field,
            ast.Alias: self._alias,
            ast.Call: self._call,
            ast.Compare: self._compare,
            ast.And: self._and,
            ast.Or: self._or,
            ast.Not: self._not,
            ast.Tuple: self._tuple,
            ast.Array: self._array,
            ast.Index: self._index,
            ast.Interval: self._interval,
            ast.Select: self._select,
            ast.SelectUnion: self._union,
        }

    # --- entry point -----------------------------------------------------------------------------
    def print_query(self, node: ast.Select | ast.SelectUnion) -> str:
        sql = self.visit(node)
        if self.ctx.limits is not None:
            settings = ", ".join(f"{k} = {self._setting_value(v)}" for k, v in self.ctx.limits.as_settings().items())
            sql = f"{sql} SETTINGS {settings}"
        return sql

    def visit(self, node: Any) -> str:
        printer = self._dispatch.get(type(node))
        if printer is None:
            raise QueryError(f"Unsupported query node: {type(node).__name__}")
        return printer(node)

    # --- expressions -----------------------------------------------------------------------------
    def _constant(self, node: ast.Constant) -> str:
        return self.literal(node.value)

    def literal(self, value: Any) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(int(value))
        if isinstance(value, float):
            if math.isnan(value):
                return "nan"
            if math.isinf(value):
                return "inf" if value > 0 else "-inf"
            return repr(float(value))
        if isinstance(value, str):
            return quote_string(value)
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            text = value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            return f"toDateTime64({quote_string(text)}, 6, 'UTC')"
        if isinstance(value, dt.date):
            return f"toDate({quote_string(value.isoformat())})"
        if isinstance(value, uuid.UUID):
            return f"toUUID({quote_string(str(value))})"
        if isinstance(value, list):
            return "[" + ", ".join(self.literal(v) for v in value) + "]"
        if isinstance(value, tuple):
            return "tuple(" + ", ".join(self.literal(v) for v in value) + ")"
        raise QueryError(f"Unsupported constant of type {type(value).__name__}")

    def _field(self, node: ast.Field) -> str:
        for scope in reversed(self.ctx.scopes):
            if node.table is not None:
                if node.table in scope.tables:
                    return self._table_field(node.table, scope.tables[node.table], node.name)
                continue
            matches = [(alias, t) for alias, t in scope.tables.items() if t is not None and node.name in t.fields]
            if len(matches) == 1:
                return self._table_field(matches[0][0], matches[0][1], node.name)
            if len(matches) > 1:
                raise QueryError(f"Field '{node.name}' is ambiguous")
            if node.name in scope.select_aliases or any(t is None for t in scope.tables.values()):
                return quote_identifier(node.name)
        raise QueryError(f"Unable to resolve field: {node.name}")

    def _table_field(self, alias: str, table: TableDef | None, name: str) -> str:
        if table is None:
            return f"{quote_identifier(alias)}.{quote_identifier(name)}"
        definition = table.fields.get(name)
        if definition is None:
            raise QueryError(f"Field '{name}' does not exist on table '{table.name}'")
        return definition.template.format(t=quote_identifier(alias))

    def _alias(self, node: ast.Alias) -> str:
        return f"{self.visit(node.expr)} AS {quote_identifier(node.alias)}"

    def _call(self, node: ast.Call) -> str:
        target = FUNCTIONS.get(node.name)
        if target is None:
            raise QueryError(f"Unsupported function: {node.name}")
        args = ", ".join(self.visit(a) for a in node.args)
        if node.distinct:
            args = "DISTINCT " + args
        if node.params is not None:
            params = ", ".join(self.visit(p) for p in node.params)
            return f"{target}({params})({args})"
        return f"{target}({args})"

    _COMPARE_SQL = {
        "=": "=",
        "!=": "!=",
        "<": "<",
        "<=": "<=",
        ">": ">",
        ">=": ">=",
        "like": "LIKE",
        "not like": "NOT LIKE",
        "ilike": "ILIKE",
        "not ilike": "NOT ILIKE",
        "in": "IN",
        "not in": "NOT IN",
    }

    def _compare(self, node: ast.Compare) -> str:
        op = self._COMPARE_SQL.get(node.op)
        if op is None:
            raise QueryError(f"Unsupported comparison: {node.op}")
        right = node.right
        if node.op in ("in", "not in") and isinstance(right, ast.Constant) and isinstance(right.value, list | tuple):
            if not right.value:  # x IN () is not valid SQL; an empty set matches nothing
                return "false" if node.op == "in" else "true"
            right_sql = "(" + ", ".join(self.literal(v) for v in right.value) + ")"
        elif isinstance(right, ast.Select | ast.SelectUnion):
            right_sql = "(" + self.visit(right) + ")"
        else:
            right_sql = self.visit(right)
        return f"({self.visit(node.left)} {op} {right_sql})"

    def _and(self, node: ast.And) -> str:
        if not node.exprs:
            return "true"
        return "(" + " AND ".join(self.visit(e) for e in node.exprs) + ")"

    def _or(self, node: ast.Or) -> str:
        if not node.exprs:
            return "false"
        return "(" + " OR ".join(self.visit(e) for e in node.exprs) + ")"

    def _not(self, node: ast.Not) -> str:
        return f"(NOT {self.visit(node.expr)})"

    def _tuple(self, node: ast.Tuple) -> str:
        return "tuple(" + ", ".join(self.visit(e) for e in node.exprs) + ")"

    def _array(self, node: ast.Array) -> str:
        return "[" + ", ".join(self.visit(e) for e in node.exprs) + "]"

    def _index(self, node: ast.Index) -> str:
        return f"{self.visit(node.expr)}[{self.visit(node.index)}]"

    def _interval(self, node: ast.Interval) -> str:
        if node.unit not in _INTERVAL_UNITS:
            raise QueryError(f"Unsupported interval unit: {node.unit}")
        return f"toInterval{node.unit.capitalize()}({self.visit(node.value)})"

    # --- queries ---------------------------------------------------------------------------------
    def _union(self, node: ast.SelectUnion) -> str:
        return " UNION ALL ".join("(" + self.visit(s) + ")" for s in node.selects)

    def _select(self, node: ast.Select) -> str:
        if node.ctes:
            raise QueryError("WITH is not supported here yet")
        scope = _Scope()
        scope.select_aliases = {e.alias for e in node.select if isinstance(e, ast.Alias)}
        self.ctx.scopes.append(scope)
        try:
            from_sql, team_conditions = self._from(node.from_, scope) if node.from_ else ("", [])
            parts = ["SELECT"]
            if node.distinct:
                parts.append("DISTINCT")
            parts.append(", ".join(self.visit(e) for e in node.select))
            if from_sql:
                parts.append("FROM " + from_sql)
            if node.prewhere is not None:
                parts.append("PREWHERE " + self.visit(node.prewhere))
            where = [*team_conditions]
            if node.where is not None:
                where.append(self.visit(node.where))
            if where:
                parts.append("WHERE " + " AND ".join(where))
            if node.group_by:
                parts.append("GROUP BY " + ", ".join(self.visit(e) for e in node.group_by))
            if node.having is not None:
                parts.append("HAVING " + self.visit(node.having))
            if node.order_by:
                if any(o.order not in ("ASC", "DESC") for o in node.order_by):
                    raise QueryError("ORDER BY direction must be ASC or DESC")
                parts.append("ORDER BY " + ", ".join(f"{self.visit(o.expr)} {o.order}" for o in node.order_by))
            if node.limit is not None:
                parts.append(f"LIMIT {int(node.limit)}")
                if node.offset is not None:
                    parts.append(f"OFFSET {int(node.offset)}")
            return " ".join(parts)
        finally:
            self.ctx.scopes.pop()

    def _from(self, join: ast.JoinExpr, scope: _Scope) -> tuple[str, list[str]]:
        pieces: list[str] = []
        team_conditions: list[str] = []
        current: ast.JoinExpr | None = join
        while current is not None:
            if isinstance(current.table, ast.TableRef):
                table = TABLES.get(current.table.name)
                if table is None:
                    raise QueryError(f"Unknown table: {current.table.name}")
                alias = current.alias or self.ctx.fresh_alias(table.name)
                if alias in scope.tables:
                    raise QueryError(f"Duplicate table alias: {alias}")
                scope.tables[alias] = table
                quoted = quote_identifier(alias)
                source = f"{quote_identifier(self.ctx.database)}.{quote_identifier(table.physical)} AS {quoted}"
                team_conditions.append(f"({quoted}.{table.team_column} = {int(self.ctx.team_id)})")
            else:
                if current.alias is None:
                    raise QueryError("A subquery in FROM needs an alias")
                alias = current.alias
                scope.tables[alias] = None
                # printed in its own scope, so it carries its own team conditions
                self.ctx.scopes.append(_Scope())
                try:
                    inner = self.visit(current.table)
                finally:
                    self.ctx.scopes.pop()
                source = f"({inner}) AS {quote_identifier(alias)}"
            if current.join_type:
                if current.join_type not in _JOIN_TYPES:
                    raise QueryError(f"Unsupported join type: {current.join_type}")
                piece = f"{current.join_type} {source}"
                if current.constraint is not None:
                    piece += " ON " + self.visit(current.constraint)
                pieces.append(piece)
            else:
                pieces.append(source)
            current = current.next_join
        return " ".join(pieces), team_conditions

    @staticmethod
    def _setting_value(value: Any) -> str:
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, int | float):
            return repr(value)
        return quote_string(str(value))


def print_query(node: ast.Select | ast.SelectUnion, *, team_id: int, database: str, limits: QueryLimits | None) -> str:
    """ClickHouse SQL for ``node`` restricted to ``team_id`` and bounded by ``limits``."""
    return ClickHousePrinter(PrintContext(team_id=team_id, database=database, limits=limits)).print_query(node)
