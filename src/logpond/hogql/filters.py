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
        parts.append(property_condition(leaf, f"filters__properties__{i}", parse_expr))
    return ast.and_(*parts)


def property_condition(leaf: Any, attr: str, parse_expr: Callable[[str], ast.Expr]) -> ast.Expr:
    """The condition of one PostHog property filter, or of an ``{"type": "AND"|"OR", "values": [...]}`` group."""
    if isinstance(leaf, dict) and leaf.get("type") in ("AND", "OR") and isinstance(leaf.get("values"), list):
        parts = tuple(property_condition(v, f"{attr}__values__{i}", parse_expr) for i, v in enumerate(leaf["values"]))
        if not parts:
            return ast.Constant(True)
        return ast.And(parts) if leaf["type"] == "AND" else ast.Or(parts)
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
    if kind == "element":
        return _element(leaf, attr)
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


# An element filter reads the event's autocapture chain: ``a.nav:href="/x"nth-child="1"text="Go";div…``
_ELEMENT_ATTRIBUTES = {"href": "href", "text": "text"}


def _element(leaf: dict[str, Any], attr: str) -> ast.Expr:
    key = leaf["key"]
    operator = leaf.get("operator", "exact")
    value = leaf.get("value")
    values = [str(v) for v in (value if isinstance(value, list) else [value]) if v is not None]
    chain = ast.Chain(("elements_chain",))
    if key == "tag_name" and operator in ("exact", "is_not"):
        tags = [t for t in values if t.replace("-", "").isalnum()]
        if len(tags) != len(values):
            raise FiltersError("A tag name has only letters, digits and dashes.", f"{attr}__value")
        pattern = "(^|;)(" + "|".join(tags) + r")([.:;]|$)"
        condition: ast.Expr = ast.Call("match", (chain, ast.Constant(pattern)))
        return condition if operator == "exact" else ast.Not(condition)
    if key in _ELEMENT_ATTRIBUTES and operator in ("exact", "is_not", "icontains", "not_icontains"):
        name = _ELEMENT_ATTRIBUTES[key]
        if operator in ("exact", "is_not"):
            patterns = [f'%{name}="{escape_like(_chain_escape(v))}"%' for v in values]
            like = ast.Or(tuple(ast.Compare("like", chain, ast.Constant(p)) for p in patterns))
        else:
            patterns = [f'%{name}="%{escape_like(_chain_escape(v))}%"%' for v in values]
            like = ast.Or(tuple(ast.Compare("ilike", chain, ast.Constant(p)) for p in patterns))
        return like if operator in ("exact", "icontains") else ast.Not(like)
    raise FiltersError(
        f"Element filters support tag_name (exact, is_not), href and text (exact, is_not, icontains, "
        f"not_icontains); got {key!r} with {operator!r}.",
        attr,
    )


def _chain_escape(value: str) -> str:
    """A value as the chain stores it: quotes escaped with a backslash (backslashes are not escaped)."""
    return value.replace('"', '\\"')
