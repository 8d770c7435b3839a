"""The HogQL dialect of the printer: a query tree back as normalised HogQL.

It gives the ``hogql`` field of query responses and the names of unaliased result columns (``count()``,
``plus(a, 1)``), the way PostHog names them. It overrides only what differs from ClickHouse: names print
as written, tables by their HogQL names with no tenancy conditions, and there are no SETTINGS. It never
produces SQL that runs anywhere.
"""

from __future__ import annotations

import re

from logpond.query import ast
from logpond.query.printer import ClickHousePrinter, PrintContext, quote_identifier

_PLAIN_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")

_COMPARE_FUNCTIONS = {
    "=": "equals",
    "!=": "notEquals",
    "<": "less",
    ">": "greater",
    "<=": "lessOrEquals",
    ">=": "greaterOrEquals",
    "like": "like",
    "not like": "notLike",
    "ilike": "ilike",
    "not ilike": "notILike",
    "in": "in",
    "not in": "notIn",
    "global in": "globalIn",
    "global not in": "globalNotIn",
}


def hogql_name(name: str | int) -> str:
    text = str(name)
    return text if isinstance(name, int) or _PLAIN_NAME.match(text) else quote_identifier(text)


class HogQLPrinter(ClickHousePrinter):
    def _chain(self, node: ast.Chain) -> str:
        return ".".join(hogql_name(p) for p in node.parts)

    def _index(self, node: ast.Index) -> str:
        return f"{self.visit(node.expr)}[{self.visit(node.index)}]"

    def _field(self, node: ast.Field) -> str:
        return f"{hogql_name(node.table)}.{hogql_name(node.name)}" if node.table else hogql_name(node.name)

    def _star(self, node: ast.Star) -> str:
        return f"{hogql_name(node.table)}.*" if node.table else "*"

    def _alias(self, node: ast.Alias) -> str:
        return f"{self.visit(node.expr)} AS {hogql_name(node.alias)}"

    def _call(self, node: ast.Call) -> str:
        args = ", ".join(self.visit(a) for a in node.args)
        if node.distinct:
            args = "DISTINCT " + args
        if node.params is not None:
            return f"{node.name}({', '.join(self.visit(p) for p in node.params)})({args})"
        return f"{node.name}({args})"

    def _window_call(self, node: ast.WindowCall) -> str:
        args = ", ".join(self.visit(a) for a in node.args)
        return f"{node.name}({args}) OVER ({self._window(node.window)})"

    def _lambda(self, node: ast.Lambda) -> str:
        args = ", ".join(hogql_name(a) for a in node.args)
        body = self.visit(node.expr)
        return f"({args}) -> {body}" if len(node.args) != 1 else f"{args} -> {body}"

    def _compare(self, node: ast.Compare) -> str:
        return f"{_COMPARE_FUNCTIONS[node.op]}({self.visit(node.left)}, {self.visit(node.right)})"

    def _between(self, node: ast.Between) -> str:
        negation = "NOT " if node.negated else ""
        return f"{self.visit(node.expr)} {negation}BETWEEN {self.visit(node.low)} AND {self.visit(node.high)}"

    def _and(self, node: ast.And) -> str:
        return "and(" + ", ".join(self.visit(e) for e in node.exprs) + ")"

    def _or(self, node: ast.Or) -> str:
        return "or(" + ", ".join(self.visit(e) for e in node.exprs) + ")"

    def _not(self, node: ast.Not) -> str:
        return f"not({self.visit(node.expr)})"

    def _select(self, node: ast.Select, *, top_level: bool) -> str:
        parts = []
        if node.ctes:
            parts.append("WITH " + ", ".join(f"{hogql_name(n)} AS ({self.statement(b)})" for n, b in node.ctes.items()))
        parts.append("SELECT")
        if node.distinct:
            parts.append("DISTINCT")
        parts.append(", ".join(self.visit(e) for e in node.select))
        if node.from_ is not None:
            parts.append("FROM " + self._hogql_from(node.from_))
        for keyword, clause in (("PREWHERE", node.prewhere), ("WHERE", node.where)):
            if clause is not None:
                parts.append(f"{keyword} {self.visit(clause)}")
        if node.group_by:
            parts.append("GROUP BY " + ", ".join(self.visit(e) for e in node.group_by))
        if node.having is not None:
            parts.append("HAVING " + self.visit(node.having))
        if node.order_by:
            parts.append("ORDER BY " + self._order_list(node.order_by))
        if node.limit_by is not None:
            offset = f" OFFSET {node.limit_by.offset}" if node.limit_by.offset is not None else ""
            parts.append(f"LIMIT {node.limit_by.n}{offset} BY " + ", ".join(self.visit(e) for e in node.limit_by.exprs))
        if node.limit is not None:
            parts.append(f"LIMIT {node.limit}")
            if node.offset is not None:
                parts.append(f"OFFSET {node.offset}")
        return " ".join(parts)

    def _hogql_from(self, join: ast.JoinExpr) -> str:
        pieces = []
        current: ast.JoinExpr | None = join
        while current is not None:
            if isinstance(current.table, ast.TableRef):
                source = hogql_name(current.table.name)
            else:
                source = f"({self.statement(current.table)})"
            if current.final:
                source += " FINAL"
            if current.alias:
                source += f" AS {hogql_name(current.alias)}"
            if current.sample is not None:
                source += " " + self._sample(current.sample)
            if current.join_type:
                source = f"{current.join_type} {source}"
            if current.constraint is not None:
                source += f" ON {self.visit(current.constraint)}"
            elif current.using:
                source += " USING (" + ", ".join(hogql_name(c) for c in current.using) + ")"
            pieces.append(source)
            current = current.next_join
        return " ".join(pieces)

    def settings(self) -> dict[str, str]:
        return {}


def _printer() -> HogQLPrinter:
    return HogQLPrinter(PrintContext(team_id=0, database=""))


def print_hogql(node: ast.Select | ast.SelectUnion) -> str:
    """``node`` as normalised HogQL text."""
    return _printer().statement(node)


def print_hogql_expr(node: ast.Expr) -> str:
    return _printer().visit(node)
