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
class Chain(Expr):
    """A name as a user wrote it: ``level``, ``l.attributes.http.method``, ``properties.$browser``.

    The printer resolves it against the tables in scope: the first part may name a table alias, the next a
    field, and any further parts are keys inside a map or JSON field.
    """

    parts: tuple[str | int, ...]


@dataclass(frozen=True)
class Star(Expr):
    """``*`` or ``t.*``: every visible field of the tables in scope, expanded by the printer."""

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


CompareOperator = Literal[
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "like",
    "not like",
    "ilike",
    "not ilike",
    "in",
    "not in",
    "global in",
    "global not in",
]


@dataclass(frozen=True)
class Lambda(Expr):
    """``(x, y) -> expr`` as an argument of a higher-order function such as ``arrayMap``."""

    args: tuple[str, ...]
    expr: Expr


@dataclass(frozen=True)
class Between(Expr):
    expr: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True)
class WindowExpr:
    partition_by: tuple[Expr, ...] = ()
    order_by: tuple[OrderExpr, ...] = ()
    frame: str | None = None  # a checked ROWS/RANGE frame, e.g. "ROWS BETWEEN 1 PRECEDING AND CURRENT ROW"


@dataclass(frozen=True)
class WindowCall(Expr):
    """``name(args) OVER (window)``; ``name`` is an aggregate or a window function of the whitelist."""

    name: str
    args: tuple[Expr, ...]
    window: WindowExpr
    params: tuple[Expr, ...] | None = None


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
    """A table of the query schema, or a CTE of an enclosing query, by name; never a physical or system table."""

    name: str


@dataclass(frozen=True)
class Sample:
    """``SAMPLE <ratio> [OFFSET <ratio>]``; ratios are numbers or ``(numerator, denominator)`` pairs."""

    ratio: float | tuple[int, int]
    offset: float | tuple[int, int] | None = None


@dataclass(frozen=True)
class LimitBy:
    n: int
    exprs: tuple[Expr, ...]
    offset: int | None = None


@dataclass(frozen=True)
class JoinExpr:
    table: TableRef | Select | SelectUnion
    alias: str | None = None
    join_type: str | None = None  # e.g. "INNER JOIN", "LEFT JOIN"; None for the first table
    constraint: Expr | None = None
    next_join: JoinExpr | None = None
    using: tuple[str, ...] = ()  # JOIN ... USING (a, b) instead of ON
    sample: Sample | None = None
    final: bool = False


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
    limit_by: LimitBy | None = None


SET_OPERATORS = ("UNION ALL", "UNION DISTINCT", "INTERSECT", "INTERSECT DISTINCT", "EXCEPT", "EXCEPT DISTINCT")


@dataclass(frozen=True)
class SelectUnion(Expr):
    """Selects joined by set operators; ``operators[i]`` joins ``selects[i]`` and ``selects[i + 1]``.

    Without ``operators`` every join is ``UNION ALL``.
    """

    selects: tuple[Select | SelectUnion, ...]
    operators: tuple[str, ...] = ()

    def operator(self, i: int) -> str:
        return self.operators[i] if self.operators else "UNION ALL"


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
