"""PostHog's HogQL AST (as the parser's JSON) -> logpond's query tree.

One converter per JSON node kind, looked up in a table. The converter is strict: a node kind, a clause or
a type cast it does not know is refused with ``HogQLQueryError`` naming it and its position — never
ignored and never passed through — so whatever reaches the printer is something logpond understands.
Placeholders (``{name}``) are replaced by constants from ``values``, and ``{filters}`` by the date range and
property filters of the request. Names are kept as the user wrote them (``ast.Chain``); the printer
resolves them against the HogQL schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from logpond.hogql.errors import HogQLQueryError
from logpond.query import ast

# ``x::type`` -> function; HogQL lower-cases the type name
_CASTS = {
    "int": "toInt64",
    "integer": "toInt64",
    "int64": "toInt64",
    "int32": "toInt32",
    "float": "toFloat64",
    "float64": "toFloat64",
    "double": "toFloat64",
    "string": "toString",
    "text": "toString",
    "varchar": "toString",
    "date": "toDate",
    "datetime": "toDateTime",
    "datetime64": "toDateTime64",
    "uuid": "toUUID",
    "bool": "toBool",
    "boolean": "toBool",
}

_ARITHMETIC = {"+": "plus", "-": "minus", "*": "multiply", "/": "divide", "%": "modulo"}

_COMPARE = {
    "==": "=",
    "=": "=",
    "!=": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "like": "like",
    "not like": "not like",
    "ilike": "ilike",
    "not ilike": "not ilike",
    "in": "in",
    "not in": "not in",
    "global in": "in",
    "global not in": "not in",
}

_SELECT_KEYS_SUPPORTED = {
    "node",
    "start",
    "end",
    "select",
    "select_from",
    "where",
    "prewhere",
    "group_by",
    "having",
    "order_by",
    "limit",
    "offset",
    "distinct",
    "ctes",
    "limit_by",
    "window_exprs",
}

_SELECT_CLAUSE_NAMES = {
    "array_join_op": "ARRAY JOIN",
    "array_join_list": "ARRAY JOIN",
    "qualify": "QUALIFY",
    "limit_with_ties": "LIMIT … WITH TIES",
    "settings": "SETTINGS",
    "view_name": "views",
    "interpolate": "INTERPOLATE",
}


@dataclass
class CompileOptions:
    values: dict[str, Any] = field(default_factory=dict)
    filters: ast.Expr | None = None  # what ``{filters}`` stands for; None: no filters given (matches all)
    variables: dict[str, Any] = field(default_factory=dict)  # code_name -> value


def _position(node: dict[str, Any]) -> int | None:
    start = node.get("start")
    return start.get("offset") if isinstance(start, dict) else None


class Compiler:
    def __init__(self, text: str, options: CompileOptions | None = None) -> None:
        self.text = text
        self.options = options or CompileOptions()
        self.windows: list[dict[str, Any]] = []  # named windows of the enclosing SELECTs
        self._converters: dict[str, Callable[[dict[str, Any]], Any]] = {
            "Constant": self._constant,
            "Field": self._field,
            "Alias": self._alias,
            "Call": self._call,
            "WindowFunction": self._window_function,
            "CompareOperation": self._compare,
            "ArithmeticOperation": self._arithmetic,
            "And": lambda n: ast.And(tuple(self.expr(e) for e in n["exprs"])),
            "Or": lambda n: ast.Or(tuple(self.expr(e) for e in n["exprs"])),
            "Not": lambda n: ast.Not(self.expr(n["expr"])),
            "Tuple": lambda n: ast.Tuple(tuple(self.expr(e) for e in n["exprs"])),
            "Array": lambda n: ast.Array(tuple(self.expr(e) for e in n["exprs"])),
            "Dict": self._dict,
            "ArrayAccess": lambda n: ast.Index(self.expr(n["array"]), self.expr(n["property"])),
            "TupleAccess": self._tuple_access,
            "Lambda": self._lambda,
            "Placeholder": self._placeholder,
            "TypeCast": self._type_cast,
            "BetweenExpr": lambda n: ast.Between(
                self.expr(n["expr"]), self.expr(n["low"]), self.expr(n["high"]), bool(n.get("negated"))
            ),
            "SelectQuery": self.select,
            "SelectSetQuery": self.select_set,
        }

    # --- errors ----------------------------------------------------------------------------------
    def error(self, message: str, node: dict[str, Any] | None = None) -> HogQLQueryError:
        return HogQLQueryError(message, text=self.text, start=_position(node) if node else None)

    # --- queries ---------------------------------------------------------------------------------
    def query(self, doc: dict[str, Any]) -> ast.Select | ast.SelectUnion:
        node = self.expr(doc)
        if not isinstance(node, ast.Select | ast.SelectUnion):
            raise self.error("Expected a SELECT query", doc)
        return node

    def select_set(self, node: dict[str, Any]) -> ast.SelectUnion:
        selects = [self.query(node["initial_select_query"])]
        operators = []
        for item in node.get("subsequent_select_queries") or []:
            operator = str(item.get("set_operator") or "").upper()
            if operator not in ast.SET_OPERATORS:
                raise self.error(f"Unsupported set operator: {operator or 'none'}", item)
            operators.append(operator)
            selects.append(self.query(item["select_query"]))
        return ast.SelectUnion(tuple(selects), tuple(operators))

    def select(self, node: dict[str, Any]) -> ast.Select:
        for key, value in node.items():
            if key in _SELECT_KEYS_SUPPORTED or value in (None, False, [], {}):
                continue
            raise self.error(f"{_SELECT_CLAUSE_NAMES.get(key, key)} is not supported", node)
        windows = node.get("window_exprs") or {}
        self.windows.append(windows)
        try:
            ctes: dict[str, ast.Select | ast.SelectUnion] = {}
            for cte in node.get("ctes") or []:
                if cte.get("cte_type") != "subquery" or cte.get("using_key") or cte.get("materialized"):
                    raise self.error("Only WITH name AS (SELECT …) is supported", cte)
                if cte.get("columns"):
                    raise self.error("WITH name(columns) AS is not supported", cte)
                ctes[str(cte["name"])] = self.query(cte["expr"])
            select = tuple(self.expr(e) for e in node.get("select") or [])
            limit_by = None
            if node.get("limit_by"):
                lb = node["limit_by"]
                limit_by = ast.LimitBy(
                    self._int(lb["n"], "LIMIT BY"),
                    tuple(self.expr(e) for e in lb.get("exprs") or []),
                    self._int(lb["offset_value"], "LIMIT BY … OFFSET") if lb.get("offset_value") else None,
                )
            return ast.Select(
                select=select,
                from_=self._join(node["select_from"]) if node.get("select_from") else None,
                # a user PREWHERE would run before the team filter (and before FINAL): it joins the WHERE
                where=ast.and_(
                    self.expr(node["prewhere"]) if node.get("prewhere") else None,
                    self.expr(node["where"]) if node.get("where") else None,
                ),
                group_by=tuple(self.expr(e) for e in node.get("group_by") or []),
                having=self.expr(node["having"]) if node.get("having") else None,
                order_by=tuple(self._order(o) for o in node.get("order_by") or []),
                limit=self._int(node["limit"], "LIMIT") if node.get("limit") else None,
                offset=self._int(node["offset"], "OFFSET") if node.get("offset") else None,
                distinct=bool(node.get("distinct")),
                ctes=ctes,
                limit_by=limit_by,
            )
        finally:
            self.windows.pop()

    def _int(self, node: dict[str, Any], clause: str) -> int:
        value = self.expr(node)
        if isinstance(value, ast.Constant) and isinstance(value.value, int) and not isinstance(value.value, bool):
            if value.value < 0:
                raise self.error(f"{clause} must not be negative", node)
            return value.value
        raise self.error(f"{clause} takes a whole number", node)

    def _order(self, node: dict[str, Any]) -> ast.OrderExpr:
        order = str(node.get("order") or "ASC").upper()
        if order not in ("ASC", "DESC"):
            raise self.error("ORDER BY direction must be ASC or DESC", node)
        return ast.OrderExpr(self.expr(node["expr"]), order)  # type: ignore[arg-type]

    def _join(self, node: dict[str, Any]) -> ast.JoinExpr:
        if node.get("node") != "JoinExpr":
            raise self.error("Expected a table", node)
        table_node = node.get("table")
        table: ast.TableRef | ast.Select | ast.SelectUnion
        if not isinstance(table_node, dict):
            raise self.error("Expected a table", node)
        kind = table_node.get("node")
        if kind == "Field":
            chain = table_node.get("chain") or []
            if not chain or not all(isinstance(p, str) for p in chain):
                raise self.error("Expected a table name", table_node)
            table = ast.TableRef(".".join(chain))
        elif kind in ("SelectQuery", "SelectSetQuery"):
            table = self.query(table_node)
        elif kind == "Placeholder":
            raise self.error("A placeholder cannot stand for a table", table_node)
        elif kind == "Call":
            raise self.error(f"Table functions are not supported: {table_node.get('name')}", table_node)
        else:
            raise self.error(f"Unsupported table expression: {kind}", table_node)
        constraint = None
        using: tuple[str, ...] = ()
        if node.get("constraint"):
            c = node["constraint"]
            if c.get("constraint_type") == "USING":
                fields = c["expr"].get("exprs") if c["expr"].get("node") == "Tuple" else [c["expr"]]
                using = tuple(self._plain_name(f) for f in fields)
            else:
                constraint = self.expr(c["expr"])
        sample = self._sample(node["sample"]) if node.get("sample") else None
        if node.get("column_aliases"):
            raise self.error("Column aliases on a table are not supported", node)
        if node.get("table_args"):
            name = ".".join(map(str, table_node.get("chain") or []))
            raise self.error(f"Table functions are not supported: {name}", node)
        return ast.JoinExpr(
            table=table,
            alias=node.get("alias"),
            join_type=node.get("join_type"),
            constraint=constraint,
            next_join=self._join(node["next_join"]) if node.get("next_join") else None,
            using=using,
            sample=sample,
            final=bool(node.get("table_final")),
        )

    def _plain_name(self, node: dict[str, Any]) -> str:
        chain = node.get("chain") if node.get("node") == "Field" else None
        if not chain or len(chain) != 1 or not isinstance(chain[0], str):
            raise self.error("USING takes column names", node)
        return str(chain[0])

    def _sample(self, node: dict[str, Any]) -> ast.Sample:
        def ratio(r: dict[str, Any]) -> float | tuple[int, int]:
            left = self.expr(r["left"])
            right = self.expr(r["right"]) if r.get("right") else None
            if not isinstance(left, ast.Constant) or not isinstance(left.value, int | float):
                raise self.error("SAMPLE takes numbers", r)
            if right is None:
                return left.value
            if (
                not isinstance(right, ast.Constant)
                or not isinstance(right.value, int)
                or not isinstance(left.value, int)
            ):
                raise self.error("SAMPLE ratios are whole numbers", r)
            if right.value == 0:
                raise self.error("SAMPLE ratio divides by zero", r)
            return (left.value, right.value)

        offset = ratio(node["offset_value"]) if node.get("offset_value") else None
        return ast.Sample(ratio(node["sample_value"]), offset)

    # --- expressions -----------------------------------------------------------------------------
    def expr(self, node: Any) -> Any:
        if not isinstance(node, dict):
            raise HogQLQueryError(f"Unexpected value in the query tree: {type(node).__name__}")
        kind = node.get("node")
        converter = self._converters.get(kind)  # type: ignore[arg-type]
        if converter is None:
            raise self.error(f"Unsupported expression: {kind}", node)
        return converter(node)

    def _constant(self, node: dict[str, Any]) -> ast.Constant:
        value = node.get("value")
        if value is None or isinstance(value, bool | int | float | str):
            return ast.Constant(value)
        raise self.error("Unsupported constant", node)

    def _field(self, node: dict[str, Any]) -> ast.Expr:
        chain = node.get("chain") or []
        if not chain:
            raise self.error("Empty field name", node)
        if chain[-1] == "*":
            if len(chain) == 1:
                return ast.Star()
            if len(chain) == 2 and isinstance(chain[0], str):
                return ast.Star(chain[0])
            raise self.error("Unsupported use of *", node)
        if not all(isinstance(p, str | int) and not isinstance(p, bool) for p in chain):
            raise self.error("Invalid field name", node)
        return ast.Chain(tuple(chain))

    def _alias(self, node: dict[str, Any]) -> ast.Alias:
        alias = node.get("alias")
        if not isinstance(alias, str) or not alias:
            raise self.error("Invalid alias", node)
        if node.get("hidden"):
            raise self.error("Hidden aliases are not supported", node)
        expr = self.expr(node["expr"])
        if isinstance(expr, ast.Alias):
            raise self.error(f"An expression has one alias; '{expr.alias}' is already one", node)
        return ast.Alias(expr, alias)

    def _call(self, node: dict[str, Any]) -> ast.Expr:
        name = str(node.get("name") or "")
        if node.get("filter_expr") or node.get("order_by"):
            raise self.error(f"FILTER and ORDER BY inside {name}() are not supported", node)
        args = [node_arg for node_arg in node.get("args") or []]
        if name == "count" and len(args) == 1 and args[0].get("node") == "Field" and args[0].get("chain") == ["*"]:
            args = []  # count(*)
        params = node.get("params")
        return ast.Call(
            name,
            tuple(self.expr(a) for a in args),
            tuple(self.expr(p) for p in params) if params is not None else None,
            bool(node.get("distinct")),
        )

    def _window_function(self, node: dict[str, Any]) -> ast.WindowCall:
        name = str(node.get("name") or "")
        if node.get("over_identifier"):
            window_node = next(
                (w[node["over_identifier"]] for w in reversed(self.windows) if node["over_identifier"] in w), None
            )
            if window_node is None:
                raise self.error(f"Unknown window: {node['over_identifier']}", node)
        else:
            window_node = node.get("over_expr") or {}
        args = tuple(self.expr(e) for e in node.get("exprs") or [])
        params = node.get("args")
        return ast.WindowCall(
            name,
            args,
            self._window(window_node),
            tuple(self.expr(p) for p in params) if params else None,
        )

    def _window(self, node: dict[str, Any]) -> ast.WindowExpr:
        frame = None
        if node.get("frame_method"):
            method = str(node["frame_method"]).upper()
            if method not in ("ROWS", "RANGE"):
                raise self.error("Window frames are ROWS or RANGE", node)
            start = self._frame_bound(node.get("frame_start"))
            end = self._frame_bound(node.get("frame_end")) if node.get("frame_end") else None
            frame = f"{method} BETWEEN {start} AND {end}" if end else f"{method} {start}"
        if node.get("window_name"):
            raise self.error("Window inheritance is not supported", node)
        return ast.WindowExpr(
            tuple(self.expr(e) for e in node.get("partition_by") or []),
            tuple(self._order(o) for o in node.get("order_by") or []),
            frame,
        )

    def _frame_bound(self, node: dict[str, Any] | None) -> str:
        if not node:
            raise HogQLQueryError("A window frame needs a start")
        kind = str(node.get("frame_type") or "").upper()
        value = node.get("frame_value")
        if kind == "CURRENT ROW":
            return "CURRENT ROW"
        if kind in ("PRECEDING", "FOLLOWING"):
            if value is None:
                return f"UNBOUNDED {kind}"
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise self.error("A window frame offset is a whole number", node)
            return f"{int(value)} {kind}"
        raise self.error(f"Unsupported window frame: {kind}", node)

    def _compare(self, node: dict[str, Any]) -> ast.Expr:
        op = str(node.get("op") or "")
        left, right = self.expr(node["left"]), self.expr(node["right"])
        if op in ("==", "=", "!=") and ast.Constant(None) in (left, right):
            # x IS NULL, x = NULL: SQL's "= NULL" is never true, HogQL means a null test
            other = right if left == ast.Constant(None) else left
            return ast.Call("isNull" if op != "!=" else "isNotNull", (other,))
        if op in _COMPARE:
            return ast.Compare(_COMPARE[op], left, right)  # type: ignore[arg-type]
        if op in ("=~", "!~"):
            matched = ast.Call("match", (left, right))
            return matched if op == "=~" else ast.Not(matched)
        if op in ("=~*", "!~*"):
            matched = ast.Call("match", (left, ast.Call("concat", (ast.Constant("(?i)"), right))))
            return matched if op == "=~*" else ast.Not(matched)
        raise self.error(f"Unsupported comparison: {op}", node)

    def _arithmetic(self, node: dict[str, Any]) -> ast.Call:
        op = node.get("op")
        if op not in _ARITHMETIC:
            raise self.error(f"Unsupported operator: {op}", node)
        left, right = self.expr(node["left"]), self.expr(node["right"])
        if op == "-" and left == ast.Constant(0) and "start" not in node["left"]:
            return ast.Call("negate", (right,))  # the parser writes -x as 0 - x
        return ast.Call(_ARITHMETIC[op], (left, right))

    def _dict(self, node: dict[str, Any]) -> ast.Call:
        args: list[ast.Expr] = []
        for key, value in node.get("items") or []:
            args.extend((self.expr(key), self.expr(value)))
        return ast.Call("map", tuple(args))

    def _tuple_access(self, node: dict[str, Any]) -> ast.Call:
        index = node.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise self.error("Tuple access takes a whole number", node)
        return ast.Call("tupleElement", (self.expr(node["tuple"]), ast.Constant(index)))

    def _lambda(self, node: dict[str, Any]) -> ast.Lambda:
        args = node.get("args") or []
        if not args or not all(isinstance(a, str) for a in args):
            raise self.error("Invalid lambda arguments", node)
        return ast.Lambda(tuple(args), self.expr(node["expr"]))

    def _type_cast(self, node: dict[str, Any]) -> ast.Call:
        type_name = str(node.get("type_name") or "").lower()
        function = _CASTS.get(type_name)
        if function is None:
            raise self.error(f"Unsupported type cast: {type_name}", node)
        if function == "toDateTime64":
            return ast.Call(function, (self.expr(node["expr"]), ast.Constant(6)))
        return ast.Call(function, (self.expr(node["expr"]),))

    def _placeholder(self, node: dict[str, Any]) -> ast.Expr:
        inner = node.get("expr") or {}
        chain = inner.get("chain") if inner.get("node") == "Field" else None
        if not chain or not all(isinstance(p, str) for p in chain):
            raise self.error("Placeholders are {name}", node)
        name = ".".join(chain)
        if name == "filters":
            return self.options.filters if self.options.filters is not None else ast.Constant(True)
        if len(chain) == 2 and chain[0] == "variables":
            if chain[1] not in self.options.variables:
                raise self.error(f"Variable {{{name}}} has no value", node)
            return constant_from_json(self.options.variables[chain[1]], name, self.error)
        if name not in self.options.values:
            raise self.error(f"Placeholder {{{name}}} is not given in values", node)
        return constant_from_json(self.options.values[name], name, self.error)


def constant_from_json(value: Any, name: str, error: Callable[..., HogQLQueryError]) -> ast.Expr:
    """A JSON value from ``values`` as a constant: scalars, and lists of scalars as arrays."""
    if value is None or isinstance(value, bool | int | float | str):
        return ast.Constant(value)
    if isinstance(value, list):
        return ast.Array(tuple(constant_from_json(v, name, error) for v in value))
    if isinstance(value, dt.datetime):
        return ast.Constant(value)
    raise error(f"Value of {{{name}}} must be a string, number, boolean, null or a list of those")
