"""The query tree every store read is built as.

Product code (LogsQuery, counts, alerts) builds these nodes; the HogQL compiler produces them from
PostHog's parser. Only ``logpond.query.printer`` turns them into ClickHouse SQL, and it is where the
project's ``team_id`` is added to every table reference and where read limits are attached.
There is deliberately no node for raw SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


class Expr:
    """Base of every expression node."""


@dataclass(frozen=True)
class Constant(Expr):
    """A literal value: None, bool, int, float, str, datetime, or a list/tuple of those."""

    value: Any


@dataclass(frozen=True)
class Field(Expr):
    """A column of a schema table (``name``), optionally qualified with the table's alias."""

    name: str
    table: str | None = None


@dataclass(frozen=True)
class Alias(Expr):
    expr: Expr
    alias: str


@dataclass(frozen=True)
class Call(Expr):
    """A function call; ``name`` is a whitelisted function (see ``printer.FUNCTIONS``)."""

    name: str
    args: tuple[Expr, ...] = ()
    params: tuple[Expr, ...] | None = None  # parametric aggregates: quantile(0.9)(x)
    distinct: bool = False


CompareOperator = Literal["=", "!=", "<", "<=", ">", ">=", "like", "not like", "ilike", "not ilike", "in", "not in"]


@dataclass(frozen=True)
class Compare(Expr):
    op: CompareOperator
    left: Expr
    right: Expr


@dataclass(frozen=True)
class And(Expr):
    exprs: tuple[Expr, ...]


@dataclass(frozen=True)
class Or(Expr):
    exprs: tuple[Expr, ...]


@dataclass(frozen=True)
class Not(Expr):
    expr: Expr


@dataclass(frozen=True)
class Tuple(Expr):
    exprs: tuple[Expr, ...]


@dataclass(frozen=True)
class Array(Expr):
    exprs: tuple[Expr, ...]


@dataclass(frozen=True)
class Index(Expr):
    """``expr[index]``: map lookup, array element (1-based), tuple element."""

    expr: Expr
    index: Expr


@dataclass(frozen=True)
class Interval(Expr):
    """``INTERVAL <value> <unit>``."""

    value: Expr
    unit: Literal["second", "minute", "hour", "day", "week", "month", "quarter", "year"]


@dataclass(frozen=True)
class OrderExpr:
    expr: Expr
    order: Literal["ASC", "DESC"] = "ASC"


@dataclass(frozen=True)
class TableRef:
    """A table of the query schema by its logical name (``logs``); never a physical or system table."""

    name: str


@dataclass(frozen=True)
class JoinExpr:
    table: TableRef | Select | SelectUnion
    alias: str | None = None
    join_type: str | None = None  # e.g. "INNER JOIN", "LEFT JOIN"; None for the first table
    constraint: Expr | None = None
    next_join: JoinExpr | None = None


@dataclass(frozen=True)
class Select(Expr):
    select: tuple[Expr, ...]
    from_: JoinExpr | None = None
    where: Expr | None = None
    prewhere: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    order_by: tuple[OrderExpr, ...] = ()
    limit: int | None = None
    offset: int | None = None
    distinct: bool = False
    ctes: dict[str, Select | SelectUnion] = field(default_factory=dict)


@dataclass(frozen=True)
class SelectUnion(Expr):
    selects: tuple[Select | SelectUnion, ...]


def and_(*exprs: Expr | None) -> Expr | None:
    """AND of the given conditions, skipping Nones; None when nothing remains."""
    parts = tuple(e for e in exprs if e is not None)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return And(parts)


def call(name: str, *args: Expr) -> Call:
    return Call(name, tuple(args))


def const(value: Any) -> Constant:
    return Constant(value)
