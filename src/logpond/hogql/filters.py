"""``{filters}`` in a HogQL query: the request's date range and property filters as one condition.

PostHog fills ``{filters}`` from ``HogQLQuery.filters``: ``dateRange`` bounds ``timestamp``; each entry of
``properties`` is a property filter. Log filters (``log``, ``log_attribute``, ``log_resource_attribute``)
mean what they mean in the Logs API; ``event`` and ``person`` filters read ``properties.<key>`` and
``person.properties.<key>``; ``hogql`` filters are HogQL expressions. Anything else is a 400 naming it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from logpond.hogql.errors import HogQLQueryError
from logpond.logs.dates import DateParseError, parse_date
from logpond.logs.filters import FilterError, escape_like, leaf_condition, validate_leaf
from logpond.query import ast

_LOG_TYPES = ("log", "log_attribute", "log_resource_attribute")


class FiltersError(HogQLQueryError):
    """A bad ``filters`` object; ``attr`` names the field."""

    def __init__(self, message: str, attr: str) -> None:
        super().__init__(message)
        self.attr = attr


def filters_condition(doc: Any, *, now: dt.datetime, parse_expr: Callable[[str], ast.Expr]) -> ast.Expr | None:
    """The condition ``{filters}`` stands for; None when ``doc`` has no filters."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise FiltersError("Expected an object with dateRange and properties.", "filters")
    parts: list[ast.Expr] = []
    date_range = doc.get("dateRange")
    if date_range is not None:
        if not isinstance(date_range, dict):
            raise FiltersError("Expected an object with date_from and date_to.", "filters__dateRange")
        for name, op in (("date_from", ">="), ("date_to", "<=")):
            raw = date_range.get(name)
            if raw is None or raw == "all":
                continue
            if not isinstance(raw, str):
                raise FiltersError("Expected a date string.", f"filters__dateRange__{name}")
            try:
                moment = parse_date(raw, now=now)
            except DateParseError as exc:
                raise FiltersError(str(exc), f"filters__dateRange__{name}") from None
            parts.append(ast.Compare(op, ast.Chain(("timestamp",)), ast.Constant(moment)))  # type: ignore[arg-type]
    properties = doc.get("properties") or []
    if not isinstance(properties, list):
        raise FiltersError("Expected a list of property filters.", "filters__properties")
    for i, leaf in enumerate(properties):
        parts.append(_property(leaf, f"filters__properties__{i}", parse_expr))
    return ast.and_(*parts)


def _property(leaf: Any, attr: str, parse_expr: Callable[[str], ast.Expr]) -> ast.Expr:
    if not isinstance(leaf, dict) or not isinstance(leaf.get("key"), str):
        raise FiltersError("Expected a property filter with a key.", attr)
    kind = leaf.get("type", "event")
    if kind == "hogql":
        return parse_expr(leaf["key"])
    if kind in _LOG_TYPES:
        try:
            validate_leaf(leaf, attr)
            return leaf_condition(leaf)
        except FilterError as exc:
            raise FiltersError(exc.detail, exc.attr or attr) from None
    if kind == "event":
        return _json_property(ast.Chain(("properties", leaf["key"])), leaf, attr)
    if kind == "person":
        return _json_property(ast.Chain(("person", "properties", leaf["key"])), leaf, attr)
    raise FiltersError(f"Unsupported property filter type {kind!r}.", f"{attr}__type")


def _json_property(target: ast.Expr, leaf: dict[str, Any], attr: str) -> ast.Expr:
    operator = leaf.get("operator", "exact")
    value = leaf.get("value")
    if operator == "is_set":
        return ast.Call("isNotNull", (target,))
    if operator == "is_not_set":
        return ast.Call("isNull", (target,))
    values = [v for v in (value if isinstance(value, list) else [value]) if v is not None]
    if not values:
        return ast.Constant(True)
    texts = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
    if operator in ("exact", "is_not"):
        condition: ast.Expr = ast.Compare("in", target, ast.Constant(texts))
        return condition if operator == "exact" else ast.Call("ifNull", (ast.Not(condition), ast.Constant(True)))
    if operator in ("icontains", "not_icontains"):
        like = ast.Or(tuple(ast.Compare("ilike", target, ast.Constant(f"%{escape_like(t)}%")) for t in texts))
        return like if operator == "icontains" else ast.Call("ifNull", (ast.Not(like), ast.Constant(True)))
    if operator in ("regex", "not_regex"):
        match = ast.Or(tuple(ast.Call("match", (target, ast.Constant(t))) for t in texts))
        return match if operator == "regex" else ast.Call("ifNull", (ast.Not(match), ast.Constant(True)))
    if operator in ("gt", "gte", "lt", "lte"):
        try:
            number = float(values[0])
        except (TypeError, ValueError):
            raise FiltersError(f"Operator {operator!r} needs a number.", f"{attr}__value") from None
        op = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[operator]
        return ast.Compare(op, ast.Call("toFloat64OrNull", (target,)), ast.Constant(number))  # type: ignore[arg-type]
    raise FiltersError(f"Unknown operator {operator!r}.", f"{attr}__operator")
