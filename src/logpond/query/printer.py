"""Print a query tree as ClickHouse SQL — the single place where tenancy and limits are enforced.

Every query logpond sends to the store, from the Logs API's builders and from HogQL alike, is printed here:

- A table reference becomes ``<database>.<physical table> AS <alias>``, and only tables of the schema the
  caller passed in can be named (HogQL sees ``logs``, ``events``, ``persons``…; never ``system.*``, table
  functions or another database).
- The project's ``team_id`` is enforced twice, independently: ClickHouse's ``additional_table_filters``
  setting filters every read of every referenced table before any user expression sees a row, and each
  table reference adds ``<alias>.team_id = <team>`` to the WHERE (or the join's ON) of the SELECT that owns
  it — top level, subquery, CTE, UNION branch or join alike — which also lets the primary key prune.
- Only functions of ``functions.FUNCTIONS`` can be called; constants are always escaped literals; names
  are always quoted identifiers; the SETTINGS clause comes only from ``QueryLimits`` and the printer itself.

The printer dispatches on node type through a table, so a new node type is one new method; the HogQL
dialect (``logpond.hogql.printer``) overrides the few methods that print differently.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from logpond.query import ast
from logpond.query.functions import check_arity, lookup
from logpond.query.schema import TABLES, TableDef
from logpond.store.base import QueryLimits


class QueryError(Exception):
    """The query cannot be printed: unknown table, field or function, or a disallowed construct."""


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
        "ANY JOIN",
        "SEMI LEFT JOIN",
        "ANTI LEFT JOIN",
        "LEFT SEMI JOIN",
        "LEFT ANTI JOIN",
        "LEFT ANY JOIN",
        "INNER ANY JOIN",
        "ASOF JOIN",
        "ASOF LEFT JOIN",
        "LEFT ASOF JOIN",
    }
)
_ORDER_DIRECTIONS = frozenset({"ASC", "DESC"})


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
    """Names visible in one SELECT (or lambda): its tables, its select aliases, lambda arguments, CTEs.

    ``tables`` maps an alias to its table definition, or to None for a subquery or CTE whose columns the
    printer does not type. A ``boundary`` scope (the root of a subquery) hides the scopes around it from
    field lookups; CTE names stay visible through boundaries, as in SQL.
    """

    tables: dict[str, TableDef | None] = field(default_factory=dict)
    select_aliases: set[str] = field(default_factory=set)
    lambda_args: frozenset[str] = frozenset()
    ctes: set[str] = field(default_factory=set)
    boundary: bool = False


@dataclass
class PrintContext:
    team_id: int
    database: str
    limits: QueryLimits | None = None
    tables: dict[str, TableDef] = field(default_factory=lambda: TABLES)
    settings: dict[str, Any] = field(default_factory=dict)  # extra SETTINGS chosen by logpond, never by users
    scopes: list[_Scope] = field(default_factory=list)
    alias_counter: int = 0
    physical_tables: set[str] = field(default_factory=set)  # every table read, for additional_table_filters
    defining: set[str] = field(default_factory=set)  # aliases whose own expression is being printed
    columns: list[str] = field(default_factory=list)  # output names of the top-level SELECT

    reserved: set[str] = field(default_factory=set)  # every alias and table name the query itself uses

    def fresh_alias(self, base: str) -> str:
        while True:
            self.alias_counter += 1
            alias = f"{base}_{self.alias_counter}" if self.alias_counter > 1 else base
            if alias not in self.reserved:
                return alias


class ClickHousePrinter:
    def __init__(self, context: PrintContext) -> None:
        self.ctx = context
        self._dispatch: dict[type, Callable[[Any], str]] = {
            ast.Constant: self._constant,
            ast.Field: self._field,
            ast.Chain: self._chain,
            ast.Star: self._star,
            ast.Alias: self._alias,
            ast.Call: self._call,
            ast.WindowCall: self._window_call,
            ast.Lambda: self._lambda,
            ast.Compare: self._compare,
            ast.Between: self._between,
            ast.And: self._and,
            ast.Or: self._or,
            ast.Not: self._not,
            ast.Tuple: self._tuple,
            ast.Array: self._array,
            ast.Index: self._index,
            ast.Interval: self._interval,
            ast.Select: self._subquery,
            ast.SelectUnion: self._subquery,
        }

    # --- entry point -----------------------------------------------------------------------------
    def print_query(self, node: ast.Select | ast.SelectUnion) -> str:
        self._reserve_table_aliases(node)
        sql = self.statement(node, top_level=True)
        settings = self.settings()
        if settings:
            sql += " SETTINGS " + ", ".join(f"{k} = {v}" for k, v in settings.items())
        return sql

    def _reserve_table_aliases(self, node: Any) -> None:
        """Refuse an expression alias that names a table anywhere in the query.

        ClickHouse lets an expression alias shadow a table alias, so ``tuple(…) AS t`` would turn the printed
        ``t.team_id = <team>`` into a test of the tuple. Table aliases the printer invents avoid every name
        the query uses.
        """
        expression_aliases: set[str] = set()
        cte_names: set[str] = set()
        table_refs: list[tuple[str | None, str]] = []  # (alias, table name)
        stack = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, ast.Alias):
                expression_aliases.add(item.alias)
            elif isinstance(item, ast.Select):
                cte_names.update(item.ctes)
            elif isinstance(item, ast.JoinExpr) and isinstance(item.table, ast.TableRef):
                table_refs.append((item.alias, item.table.name))
            if isinstance(item, tuple | list):
                stack.extend(item)
            elif isinstance(item, dict):
                stack.extend(item.values())
            elif hasattr(item, "__dataclass_fields__"):
                stack.extend(getattr(item, name) for name in item.__dataclass_fields__)
        # only tables carry team conditions; a CTE or a subquery may share a name with an expression
        table_names = {name for alias, table in table_refs if table not in cte_names for name in (alias, table) if name}
        clash = sorted(expression_aliases & table_names)
        if clash:
            raise QueryError(f"Alias '{clash[0]}' is also the name of a table in the query; choose another alias")
        self.ctx.reserved = expression_aliases | table_names

    def settings(self) -> dict[str, str]:
        settings: dict[str, str] = {}
        if self.ctx.limits is not None:
            settings.update({k: self._setting_value(v) for k, v in self.ctx.limits.as_settings().items()})
        settings.update({k: self._setting_value(v) for k, v in self.ctx.settings.items()})
        if self.ctx.physical_tables:
            filters = ", ".join(
                f"{quote_string(f'{self.ctx.database}.{table}')}: {quote_string(f'team_id = {int(self.ctx.team_id)}')}"
                for table in sorted(self.ctx.physical_tables)
            )
            settings["additional_table_filters"] = "{" + filters + "}"
        return settings

    def visit(self, node: Any) -> str:
        printer = self._dispatch.get(type(node))
        if printer is None:
            raise QueryError(f"Unsupported query node: {type(node).__name__}")
        return printer(node)

    @contextmanager
    def scope(self, scope: _Scope) -> Iterator[_Scope]:
        self.ctx.scopes.append(scope)
        try:
            yield scope
        finally:
            self.ctx.scopes.pop()

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
        parts: tuple[str, ...] = (node.table, node.name) if node.table is not None else (node.name,)
        return self._resolve(parts, qualified=node.table is not None)

    def _chain(self, node: ast.Chain) -> str:
        if not node.parts or not isinstance(node.parts[0], str):
            raise QueryError("A field name must start with a name")
        return self._resolve(node.parts, qualified=False)

    def _resolve(self, parts: tuple[str | int, ...], *, qualified: bool) -> str:
        """SQL for a name: a lambda argument, ``alias.field``, a select alias, or a field of a table in scope.

        A ``Field`` with a table is always qualified; a ``Chain`` is qualified when its first part names a
        table alias in scope and there is more than one part.
        """
        head = str(parts[0])
        for scope in reversed(self.ctx.scopes):
            if head in scope.lambda_args and not qualified:
                return self._access(quote_identifier(head), parts[1:], None)
            if len(parts) > 1 and head in scope.tables:
                return self._table_field(head, scope.tables[head], parts[1:])
            if qualified:
                if scope.boundary:
                    break
                continue
            if head in scope.select_aliases and head not in self.ctx.defining:
                return self._access(quote_identifier(head), parts[1:], None)
            matches = [(alias, t) for alias, t in scope.tables.items() if t is not None and t.has_field(head)]
            if len(matches) > 1:
                raise QueryError(
                    f"Field '{head}' is ambiguous: qualify it with one of {', '.join(a for a, _ in matches)}"
                )
            if matches:
                return self._table_field(matches[0][0], matches[0][1], parts)
            untyped = [alias for alias, t in scope.tables.items() if t is None]
            if len(untyped) == 1:
                return self._table_field(untyped[0], None, parts)
            if untyped:
                return self._access(quote_identifier(head), parts[1:], None)
            if scope.boundary:
                break
        if qualified:
            raise QueryError(f"Unknown table or alias: {head}")
        raise QueryError(f"Unable to resolve field: {head}")

    def _table_field(self, alias: str, table: TableDef | None, parts: tuple[str | int, ...]) -> str:
        name = str(parts[0])
        if table is None:
            return self._access(f"{quote_identifier(alias)}.{quote_identifier(name)}", parts[1:], None)
        definition = table.fields.get(name)
        if definition is None and name in table.nested:
            # a virtual table on the row: ``person.properties.email`` reads the stamped person columns
            if len(parts) < 2:
                fields = ", ".join(f"{name}.{f}" for f in table.nested[name])
                raise QueryError(f"'{name}' is not a column; select one of its fields: {fields}")
            definition = table.nested[name].get(str(parts[1]))
            if definition is None:
                raise QueryError(f"Field '{parts[1]}' does not exist on '{name}' of table '{table.name}'")
            parts = parts[1:]
        if definition is None:
            raise QueryError(f"Field '{name}' does not exist on table '{table.name}'")
        return self._access(definition.template.format(t=quote_identifier(alias)), parts[1:], definition.kind)

    def _access(self, sql: str, rest: tuple[str | int, ...], kind: str | None) -> str:
        """Keys after a field: ``attributes.http.method`` is one map key; JSON fields nest."""
        if not rest:
            return sql
        if kind == "map":
            return f"{sql}[{quote_string('.'.join(str(p) for p in rest))}]"
        if kind == "json":
            path = ", ".join(self.literal(p) for p in rest)
            # a JSON property reads as a string; JSON null and a missing key read as NULL
            return f"{_JSON_STRING}({sql}, {path}), ''), 'null'), '^\"|\"$', '')"
        for part in rest:
            sql = f"{sql}[{self.literal(part)}]"
        return sql

    def _star(self, node: ast.Star) -> str:
        return ", ".join(sql for sql, _ in self._expand_star(node))

    def _expand_star(self, node: ast.Star) -> list[tuple[str, str]]:
        scope = self.ctx.scopes[-1]
        if node.table is not None and node.table not in scope.tables:
            raise QueryError(f"Unknown table or alias: {node.table}")
        out: list[tuple[str, str]] = []
        for alias, table in scope.tables.items():
            if node.table is not None and alias != node.table:
                continue
            if table is None:
                out.append((f"{quote_identifier(alias)}.*", "*"))
                continue
            for name in table.visible_fields():
                sql = table.fields[name].template.format(t=quote_identifier(alias))
                out.append(
                    (
                        f"{sql} AS {quote_identifier(name)}" if node.table is None and len(scope.tables) == 1 else sql,
                        name,
                    )
                )
        if not out:
            raise QueryError("SELECT * needs a table in FROM")
        return out

    def _alias(self, node: ast.Alias) -> str:
        self.ctx.defining.add(node.alias)
        try:
            inner = self.visit(node.expr)
        finally:
            self.ctx.defining.discard(node.alias)
        return f"{inner} AS {quote_identifier(node.alias)}"

    def _function(self, name: str, n_args: int, n_params: int | None, *, window: bool = False) -> str:
        definition = lookup(name, window=window)
        if definition is None:
            raise QueryError(f"Unsupported function: {name}")
        problem = check_arity(name, definition, n_args, n_params)
        if problem:
            raise QueryError(problem)
        return definition.clickhouse

    def _call(self, node: ast.Call) -> str:
        if node.name.lower() == "todatetime" and node.args and _is_text(node.args[0]) and node.params is None:
            # PostHog reads a text time to the microsecond, in any ISO form (T, zone offsets): connectors
            # page with ``timestamp > toDateTime('2026-01-01T10:00:00.123456+00:00')``
            zone = node.args[1] if len(node.args) > 1 else ast.Constant("UTC")
            node = ast.Call("parseDateTime64BestEffortOrNull", (node.args[0], ast.Constant(6), zone))
        target = self._function(node.name, len(node.args), None if node.params is None else len(node.params))
        args = ", ".join(self.visit(a) for a in node.args)
        if node.distinct:
            args = "DISTINCT " + args
        if node.params is not None:
            params = ", ".join(self.visit(p) for p in node.params)
            return f"{target}({params})({args})"
        return f"{target}({args})"

    def _window_call(self, node: ast.WindowCall) -> str:
        target = self._function(
            node.name, len(node.args), None if node.params is None else len(node.params), window=True
        )
        args = ", ".join(self.visit(a) for a in node.args)
        call = f"{target}({args})"
        if node.params is not None:
            call = f"{target}({', '.join(self.visit(p) for p in node.params)})({args})"
        return f"{call} OVER ({self._window(node.window)})"

    def _window(self, window: ast.WindowExpr) -> str:
        parts = []
        if window.partition_by:
            parts.append("PARTITION BY " + ", ".join(self.visit(e) for e in window.partition_by))
        if window.order_by:
            parts.append("ORDER BY " + self._order_list(window.order_by))
        if window.frame:
            parts.append(window.frame)
        return " ".join(parts)

    def _lambda(self, node: ast.Lambda) -> str:
        for arg in node.args:
            if not arg.isidentifier():
                raise QueryError(f"Invalid lambda argument: {arg}")
        with self.scope(_Scope(lambda_args=frozenset(node.args))):
            body = self.visit(node.expr)
        args = ", ".join(quote_identifier(a) for a in node.args)
        return f"(({args}) -> {body})" if len(node.args) != 1 else f"({args} -> {body})"

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
        "global in": "GLOBAL IN",
        "global not in": "GLOBAL NOT IN",
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
        else:
            right_sql = self.visit(right)
        left_sql = self.visit(node.left)
        left_sql, right_sql = _typed_json_comparison(node, left_sql, right_sql)
        return f"({left_sql} {op} {right_sql})"

    def _between(self, node: ast.Between) -> str:
        negation = "NOT " if node.negated else ""
        return f"({self.visit(node.expr)} {negation}BETWEEN {self.visit(node.low)} AND {self.visit(node.high)})"

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
        key = node.index
        if isinstance(node.expr, ast.Chain) and isinstance(key, ast.Constant) and isinstance(key.value, str):
            # ``properties['plan']`` reads like ``properties.plan``: a JSON property, or a map key
            return self._chain(ast.Chain((*node.expr.parts, key.value)))
        return f"{self.visit(node.expr)}[{self.visit(key)}]"

    def _interval(self, node: ast.Interval) -> str:
        if node.unit not in _INTERVAL_UNITS:
            raise QueryError(f"Unsupported interval unit: {node.unit}")
        return f"toInterval{node.unit.capitalize()}({self.visit(node.value)})"

    # --- queries ---------------------------------------------------------------------------------
    def _subquery(self, node: ast.Select | ast.SelectUnion) -> str:
        """A SELECT used as an expression (``x IN (SELECT …)``, a scalar subquery)."""
        return "(" + self.statement(node) + ")"

    def statement(self, node: ast.Select | ast.SelectUnion, *, top_level: bool = False) -> str:
        if isinstance(node, ast.SelectUnion):
            return self._union(node, top_level=top_level)
        if not isinstance(node, ast.Select):
            raise QueryError(f"Expected a SELECT, got {type(node).__name__}")
        return self._select(node, top_level=top_level)

    def _union(self, node: ast.SelectUnion, *, top_level: bool) -> str:
        if not node.selects:
            raise QueryError("An empty UNION")
        parts = [self.statement(node.selects[0], top_level=top_level)]
        for i, select in enumerate(node.selects[1:]):
            operator = node.operator(i)
            if operator not in ast.SET_OPERATORS:
                raise QueryError(f"Unsupported set operator: {operator}")
            parts.append(operator)
            parts.append(self.statement(select))
        return " ".join(p if p in ast.SET_OPERATORS else f"({p})" for p in parts)

    def _select(self, node: ast.Select, *, top_level: bool) -> str:
        with self.scope(_Scope(boundary=True)) as scope:
            with_sql = self._ctes(node.ctes, scope) if node.ctes else ""
            scope.select_aliases = {e.alias for e in node.select if isinstance(e, ast.Alias)}
            from_sql, where_teams = self._from(node.from_, scope) if node.from_ else ("", [])
            for alias in scope.select_aliases & set(scope.tables):
                raise QueryError(f"Alias '{alias}' is also the name of a table in FROM; choose another alias")
            parts = [with_sql, "SELECT"] if with_sql else ["SELECT"]
            if node.distinct:
                parts.append("DISTINCT")
            parts.append(self._select_list(node.select, top_level=top_level))
            if from_sql:
                parts.append("FROM " + from_sql)
            if node.prewhere is not None:
                parts.append("PREWHERE " + self.visit(node.prewhere))
            where = [*where_teams]
            if node.where is not None:
                where.append(self.visit(node.where))
            if where:
                parts.append("WHERE " + " AND ".join(where))
            if node.group_by:
                parts.append("GROUP BY " + ", ".join(self.visit(e) for e in node.group_by))
            if node.having is not None:
                parts.append("HAVING " + self.visit(node.having))
            if node.order_by:
                parts.append("ORDER BY " + self._order_list(node.order_by))
            if node.limit_by is not None:
                limit_by = f"LIMIT {int(node.limit_by.n)}"
                if node.limit_by.offset is not None:
                    limit_by += f" OFFSET {int(node.limit_by.offset)}"
                parts.append(limit_by + " BY " + ", ".join(self.visit(e) for e in node.limit_by.exprs))
            if node.limit is not None:
                parts.append(f"LIMIT {int(node.limit)}")
                if node.offset is not None:
                    parts.append(f"OFFSET {int(node.offset)}")
            return " ".join(parts)

    def _select_list(self, exprs: tuple[ast.Expr, ...], *, top_level: bool) -> str:
        printed: list[str] = []
        scope = self.ctx.scopes[-1]
        taken = set(scope.select_aliases) | set(scope.tables)
        for expr in exprs:
            if isinstance(expr, ast.Star):
                expanded = self._expand_star(expr)
                printed.extend(sql for sql, _ in expanded)
                if top_level:
                    self.ctx.columns.extend(name for _, name in expanded)
                continue
            sql = self.visit(expr)
            name = self.column_name(expr)
            if isinstance(expr, ast.Chain) and sql != quote_identifier(name) and name not in taken:
                # name the column as HogQL does, so an enclosing query or CTE can refer to it (message, trace_id)
                sql = f"{sql} AS {quote_identifier(name)}"
            taken.add(name)
            printed.append(sql)
            if top_level:
                self.ctx.columns.append(name)
        if not printed:
            raise QueryError("SELECT needs at least one expression")
        return ", ".join(printed)

    def column_name(self, expr: ast.Expr) -> str:
        """The name a result column gets: its alias, a field's last name part, or the expression as HogQL."""
        if isinstance(expr, ast.Alias):
            return expr.alias
        if isinstance(expr, ast.Chain) and isinstance(expr.parts[-1], str):
            return expr.parts[-1]
        if isinstance(expr, ast.Field):
            return expr.name
        from logpond.hogql.printer import print_hogql_expr

        return print_hogql_expr(expr)

    def _order_list(self, order_by: tuple[ast.OrderExpr, ...]) -> str:
        if any(o.order not in _ORDER_DIRECTIONS for o in order_by):
            raise QueryError("ORDER BY direction must be ASC or DESC")
        return ", ".join(f"{self.visit(o.expr)} {o.order}" for o in order_by)

    def _ctes(self, ctes: dict[str, ast.Select | ast.SelectUnion], scope: _Scope) -> str:
        printed = []
        for name, body in ctes.items():
            if not isinstance(body, ast.Select | ast.SelectUnion):
                raise QueryError(f"CTE '{name}' must be a SELECT")
            printed.append(f"{quote_identifier(name)} AS ({self.statement(body)})")
            scope.ctes.add(name)  # visible to later CTEs and to the query, not to itself
        return "WITH " + ", ".join(printed)

    def _cte_visible(self, name: str) -> bool:
        return any(name in scope.ctes for scope in self.ctx.scopes)

    def _from(self, join: ast.JoinExpr, scope: _Scope) -> tuple[str, list[str]]:
        """The FROM clause, and the team conditions that belong in this SELECT's WHERE.

        Every table read gets its team condition in WHERE. A table that an outer join may pad with
        default values (the right side of LEFT/FULL, the left side of RIGHT/FULL) accepts team 0 there, the
        default, so the join keeps its meaning; such a table's rows are kept from matching another
        project's by its condition in the ON of its join (the first table's: in the ON of the first
        RIGHT/FULL join). Project ids start at 1, so team 0 is never a real row.
        """
        joins = []
        current: ast.JoinExpr | None = join
        while current is not None:
            joins.append(current)
            current = current.next_join
        if joins[0].join_type:
            raise QueryError("The first table of FROM cannot have a join type")
        types = [(j.join_type or "JOIN").upper() for j in joins]
        for join_type in types[1:]:
            if join_type not in _JOIN_TYPES:
                raise QueryError(f"Unsupported join type: {join_type}")
        pads_left = ["RIGHT" in t or "FULL" in t for t in types]
        pads_right = ["LEFT" in t or "FULL" in t or "ANTI" in t for t in types]
        outer = next((i for i in range(1, len(joins)) if pads_left[i]), None)
        pieces: list[str] = []
        where: list[str] = []
        first_on: str | None = None
        for i, current in enumerate(joins):
            source, alias, table = self._join_source(current, scope)
            padded = (i > 0 and pads_right[i]) or any(pads_left[i + 1 :])
            if table is not None:
                where.append(self._team_condition(alias, table, padded=padded))
            on_condition = self._team_condition(alias, table, padded=False) if table is not None else None
            if i == 0:
                pieces.append(source)
                first_on = on_condition
                continue
            conditions = [c for c in (on_condition, first_on if i == outer else None) if c]
            if current.using:
                if current.constraint is not None:
                    raise QueryError("A join has either ON or USING, not both")
                columns = ", ".join(quote_identifier(c) for c in current.using)
                pieces.append(f"{types[i]} {source} USING ({columns})")
            elif current.constraint is None:
                if types[i] not in ("JOIN", "CROSS JOIN"):
                    raise QueryError(f"{types[i]} needs an ON or USING constraint")
                pieces.append(f"CROSS JOIN {source}")
            else:
                on = " AND ".join([self.visit(current.constraint), *conditions])
                pieces.append(f"{types[i]} {source} ON {on}")
        return " ".join(pieces), where

    def _team_condition(self, alias: str, table: TableDef, *, padded: bool) -> str:
        column = f"{quote_identifier(alias)}.{table.team_column}"
        team = int(self.ctx.team_id)
        condition = f"({column} IN (0, {team}))" if padded else f"({column} = {team})"
        if table.row_condition:
            condition = f"({condition} AND {table.row_condition.format(t=quote_identifier(alias))})"
        return condition

    def _join_source(self, join: ast.JoinExpr, scope: _Scope) -> tuple[str, str, TableDef | None]:
        """``source AS alias`` for one FROM/JOIN item, its alias, and its table (None: subquery or CTE)."""
        if isinstance(join.table, ast.TableRef):
            name = join.table.name
            if self._cte_visible(name):
                alias = join.alias or name
                self._register(scope, alias, None)
                if join.sample is not None:
                    raise QueryError("SAMPLE applies to tables, not to CTEs")
                source = quote_identifier(name) + ("" if alias == name else f" AS {quote_identifier(alias)}")
                return source, alias, None
            table = self.ctx.tables.get(name)
            if table is None:
                raise QueryError(f"Unknown table: {name}")
            alias = join.alias or (name if name not in scope.tables else self.ctx.fresh_alias(name))
            self._register(scope, alias, table)
            self.ctx.physical_tables.add(table.physical)
            quoted = quote_identifier(alias)
            source = f"{quote_identifier(self.ctx.database)}.{quote_identifier(table.physical)} AS {quoted}"
            if join.final or table.final:
                source += " FINAL"
            if join.sample is not None:
                if not table.sampling:
                    raise QueryError(f"Table '{name}' does not support SAMPLE")
                source += " " + self._sample(join.sample)
            return source, alias, table
        if isinstance(join.table, ast.Select | ast.SelectUnion):
            alias = join.alias or self.ctx.fresh_alias("subquery")
            if join.sample is not None:
                raise QueryError("SAMPLE applies to tables, not to subqueries")
            inner = self.statement(join.table)  # printed in its own scope, with its own team conditions
            self._register(scope, alias, None)
            return f"({inner}) AS {quote_identifier(alias)}", alias, None
        raise QueryError(f"Unsupported table expression: {type(join.table).__name__}")

    @staticmethod
    def _register(scope: _Scope, alias: str, table: TableDef | None) -> None:
        if alias in scope.tables:
            raise QueryError(f"Duplicate table alias: {alias}")
        scope.tables[alias] = table

    def _sample(self, sample: ast.Sample) -> str:
        def ratio(value: float | tuple[int, int]) -> str:
            if isinstance(value, tuple):
                return f"{int(value[0])}/{int(value[1])}"
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise QueryError("SAMPLE takes a non-negative number")
            return repr(value)

        sql = f"SAMPLE {ratio(sample.ratio)}"
        if sample.offset is not None:
            sql += f" OFFSET {ratio(sample.offset)}"
        return sql

    @staticmethod
    def _setting_value(value: Any) -> str:
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, int | float):
            return repr(value)
        return quote_string(str(value))


def _is_text(node: ast.Expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


# the start of every JSON property read (``properties.$browser``): a Nullable(String)
_JSON_STRING = "replaceRegexpAll(nullIf(nullIf(JSONExtractRaw"


def _typed_json_comparison(node: ast.Compare, left: str, right: str) -> tuple[str, str]:
    """Compare a JSON property with a number as a number, and with a boolean as JSON's true/false.

    A property reads as text, so ``properties.price > 10`` would otherwise compare a string with a number
    (a ClickHouse type error) and ``properties.paid = true`` would never match the text ``true``.
    """
    if left.startswith(_JSON_STRING) and isinstance(node.right, ast.Constant):
        return _typed_property(left, right, node.right.value, node.op)
    if right.startswith(_JSON_STRING) and isinstance(node.left, ast.Constant):
        prop, other = _typed_property(right, left, node.left.value, node.op)
        return other, prop
    return left, right


def _typed_property(prop: str, other: str, constant: Any, op: str) -> tuple[str, str]:
    def numeric(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    if isinstance(constant, bool):
        return (prop, "'true'" if constant else "'false'") if op in ("=", "!=") else (prop, other)
    if numeric(constant) or (isinstance(constant, list | tuple) and constant and all(numeric(v) for v in constant)):
        return f"toFloat64OrNull({prop})", other
    return prop, other


def print_query(
    node: ast.Select | ast.SelectUnion,
    *,
    team_id: int,
    database: str,
    limits: QueryLimits | None,
    tables: dict[str, TableDef] | None = None,
    settings: dict[str, Any] | None = None,
) -> str:
    """ClickHouse SQL for ``node`` restricted to ``team_id`` and bounded by ``limits``."""
    sql, _ = print_query_with_columns(
        node, team_id=team_id, database=database, limits=limits, tables=tables, settings=settings
    )
    return sql


def print_query_with_columns(
    node: ast.Select | ast.SelectUnion,
    *,
    team_id: int,
    database: str,
    limits: QueryLimits | None,
    tables: dict[str, TableDef] | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[str, list[str]]:
    """Like ``print_query``, also returning the result's column names as HogQL names them."""
    context = PrintContext(
        team_id=team_id, database=database, limits=limits, tables=tables or TABLES, settings=settings or {}
    )
    sql = ClickHousePrinter(context).print_query(node)
    return sql, context.columns
