"""Logs filters — dateRange, severityLevels, serviceNames, searchTerm, filterGroup — parsed strictly and
turned into query-tree conditions.

Every malformed part raises ``FilterError`` naming the field (``attr``) so the API answers a 400 that
says exactly what was wrong. Nothing here prints SQL: it returns ``logpond.query.ast`` nodes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from logpond.logs.dates import DateParseError, parse_date
from logpond.query import ast
from logpond.query.ast import Call, Compare, CompareOperator, Constant, Field, Index, Not, and_, call

SEVERITY_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
LEAF_TYPES = ("log", "log_attribute", "log_resource_attribute")
OPERATORS = (
    "exact",
    "is_not",
    "icontains",
    "not_icontains",
    "regex",
    "not_regex",
    "gt",
    "lt",
    "gte",
    "lte",
    "is_set",
    "is_not_set",
    "is_date_exact",
    "is_date_before",
    "is_date_after",
)
NEGATIVE_OPERATORS = ("is_not", "not_icontains", "not_regex")

# `log` leaves: key -> field of the logs table
LOG_FIELDS = {
    "message": "body",
    "body": "body",
    "level": "severity_text",
    "severity_text": "severity_text",
    "severity_number": "severity_number",
    "service_name": "service_name",
    "event_name": "event_name",
    "instrumentation_scope": "instrumentation_scope",
    "trace_id": "trace_id",
    "span_id": "span_id",
    "uuid": "uuid",
    "resource_fingerprint": "resource_fingerprint",
}


class FilterError(ValueError):
    def __init__(self, detail: str, attr: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.attr = attr


@dataclass
class LogsFilters:
    date_from: dt.datetime | None
    date_to: dt.datetime | None
    severity_levels: list[str] = field(default_factory=list)
    service_names: list[str] = field(default_factory=list)
    search_term: str | None = None
    filter_group: dict[str, Any] | None = None
    resource_fingerprint: str | None = None


def _string_list(value: Any, attr: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FilterError("Expected a list of strings.", attr)
    return value


def parse_date_range(
    value: Any, *, now: dt.datetime, default_from: str = "-1h"
) -> tuple[dt.datetime | None, dt.datetime | None]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise FilterError("Expected an object with date_from and date_to.", "dateRange")
    raw_from = value.get("date_from") or default_from
    raw_to = value.get("date_to")
    for name, raw in (("date_from", raw_from), ("date_to", raw_to)):
        if raw is not None and not isinstance(raw, str):
            raise FilterError("Expected a date string.", f"dateRange__{name}")
    try:
        date_from = None if raw_from == "all" else parse_date(raw_from, now=now)
    except DateParseError as exc:
        raise FilterError(str(exc), "dateRange__date_from") from None
    try:
        # no date_to means "until now" for every endpoint alike (PostHog's rule)
        date_to = parse_date(raw_to, now=now) if raw_to else now
    except DateParseError as exc:
        raise FilterError(str(exc), "dateRange__date_to") from None
    if date_from and date_to and date_from > date_to:
        raise FilterError("date_from must not be after date_to.", "dateRange")
    return date_from, date_to


def parse_filters(doc: dict[str, Any], *, now: dt.datetime, default_from: str = "-1h") -> LogsFilters:
    date_from, date_to = parse_date_range(doc.get("dateRange"), now=now, default_from=default_from)
    levels = _string_list(doc.get("severityLevels"), "severityLevels")
    for level in levels:
        if level not in SEVERITY_LEVELS:
            raise FilterError(
                f"Unknown severity level {level!r}; expected one of {', '.join(SEVERITY_LEVELS)}.", "severityLevels"
            )
    search = doc.get("searchTerm")
    if search is not None and not isinstance(search, str):
        raise FilterError("Expected a string.", "searchTerm")
    fingerprint = doc.get("resourceFingerprint")
    if fingerprint is not None and not (
        isinstance(fingerprint, str | int) and str(fingerprint).isdecimal() and int(str(fingerprint)[:21]) < 2**64
    ):
        raise FilterError("Expected a numeric fingerprint.", "resourceFingerprint")
    return LogsFilters(
        date_from=date_from,
        date_to=date_to,
        severity_levels=levels,
        service_names=_string_list(doc.get("serviceNames"), "serviceNames"),
        search_term=search or None,
        filter_group=normalise_filter_group(doc.get("filterGroup")),
        resource_fingerprint=str(fingerprint) if fingerprint is not None else None,
    )


def normalise_filter_group(value: Any) -> dict[str, Any] | None:
    """A PropertyGroupFilter; a flat list of leaves becomes ``AND(AND(leaves))`` as PostHog does."""
    if value is None:
        return None
    if isinstance(value, list):
        value = {"type": "AND", "values": [{"type": "AND", "values": value}]}
    _validate_group(value, "filterGroup", depth=0)
    return value  # type: ignore[no-any-return]


def _validate_group(node: Any, attr: str, depth: int) -> None:
    if depth > 16:
        raise FilterError("Filter groups are nested too deeply (max 16).", attr)
    if not isinstance(node, dict):
        raise FilterError("Expected a filter group or filter object.", attr)
    if "values" in node:
        if node.get("type", "AND") not in ("AND", "OR"):
            raise FilterError("Group type must be AND or OR.", f"{attr}__type")
        if not isinstance(node["values"], list):
            raise FilterError("Expected a list of filters.", f"{attr}__values")
        for i, child in enumerate(node["values"]):
            _validate_group(child, f"{attr}__values__{i}", depth + 1)
        return
    validate_leaf(node, attr)


def validate_leaf(leaf: dict[str, Any], attr: str) -> None:
    if leaf.get("type") not in LEAF_TYPES:
        raise FilterError(
            f"Unknown filter type {leaf.get('type')!r}; expected one of {', '.join(LEAF_TYPES)}.", f"{attr}__type"
        )
    key = leaf.get("key")
    if not isinstance(key, str) or not key:
        raise FilterError("Filter key must be a non-empty string.", f"{attr}__key")
    if leaf["type"] == "log" and key not in LOG_FIELDS and key != "severity_level":
        raise FilterError(f"Unknown log field {key!r}.", f"{attr}__key")
    operator = leaf.get("operator", "exact")
    if operator not in OPERATORS:
        raise FilterError(f"Unknown operator {operator!r}.", f"{attr}__operator")
    value = leaf.get("value")
    if operator not in ("is_set", "is_not_set"):
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, str | int | float | bool) or item is None:
                raise FilterError("Filter value must be a string, number or a list of them.", f"{attr}__value")


# --- building conditions -----------------------------------------------------------------------


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _target(leaf: dict[str, Any]) -> tuple[ast.Expr, ast.Expr | None]:
    """(value expression, presence expression or None) for a leaf's key."""
    key, kind = leaf["key"], leaf["type"]
    if kind == "log":
        name = LOG_FIELDS.get(key, "severity_text")
        if name in ("trace_id", "span_id"):
            # an unset id is stored as zero bytes, read back as all-zero hex
            return Field(name), Compare("!=", Field(name), Constant("0" * (32 if name == "trace_id" else 16)))
        return Field(name), None
    map_field = Field("attributes" if kind == "log_attribute" else "resource_attributes")
    return Index(map_field, Constant(key)), call("mapContains", map_field, Constant(key))


def leaf_condition(leaf: dict[str, Any]) -> ast.Expr:
    condition = _leaf_condition_inner(leaf)
    operator = leaf.get("operator", "exact")
    if (
        leaf["type"] != "log"
        and operator not in (*NEGATIVE_OPERATORS, "is_set", "is_not_set")
        and condition != Constant(True)
    ):
        # a missing attribute reads as "", which must not satisfy a positive operator ("" < "abc", "" ~ ".*")
        _, presence = _target(leaf)
        assert presence is not None
        condition = ast.And((presence, condition))
    return condition


def _leaf_condition_inner(leaf: dict[str, Any]) -> ast.Expr:
    operator = leaf.get("operator", "exact")
    target, presence = _target(leaf)
    value = leaf.get("value")
    if operator in ("is_set", "is_not_set"):
        present = presence if presence is not None else call("notEmpty", call("toString", target))
        return present if operator == "is_set" else Not(present)
    values = value if isinstance(value, list) else [value]
    values = [v for v in values if v is not None]
    if not values:
        return Constant(True)
    if leaf["type"] == "log" and leaf["key"] in ("trace_id", "span_id") and "regex" not in operator:
        values = [str(v).upper() for v in values]
    if operator in ("exact", "is_not"):
        numeric = [_as_float(v) for v in values]
        if leaf["type"] != "log" and all(n is not None for n in numeric):
            # PostHog compares attribute values numerically when every value is a number: "500" = "500.0"
            left: ast.Expr = call("toFloat64OrNull", target)
            consts: list[Any] = numeric
        else:
            left, consts = _string_target(target, leaf), [_stringify(v) for v in values]
        if len(consts) == 1:
            cond: ast.Expr = Compare("=" if operator == "exact" else "!=", left, Constant(consts[0]))
        else:
            cond = Compare("in" if operator == "exact" else "not in", left, Constant(consts))
        if operator == "is_not" and left is not target:
            # a missing or non-numeric value is "not equal" to any number
            cond = call("ifNull", cond, Constant(True))
        return cond
    parts = [_single(operator, target, v, leaf) for v in values]
    if len(parts) == 1:
        return parts[0]
    # a list with a negative operator must exclude every value; a positive one may match any
    return ast.And(tuple(parts)) if operator in NEGATIVE_OPERATORS else ast.Or(tuple(parts))


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _string_target(target: ast.Expr, leaf: dict[str, Any]) -> ast.Expr:
    if leaf["type"] == "log" and LOG_FIELDS.get(leaf["key"]) in ("severity_number", "resource_fingerprint", "uuid"):
        return call("toString", target)
    return target


def _single(operator: str, target: ast.Expr, value: Any, leaf: dict[str, Any]) -> ast.Expr:
    text = _stringify(value)
    string_target = _string_target(target, leaf)
    if operator in ("icontains", "not_icontains"):
        like: ast.Expr = Compare("ilike", string_target, Constant(f"%{escape_like(text)}%"))
        return like if operator == "icontains" else Not(like)
    if operator in ("regex", "not_regex"):
        match: ast.Expr = call("match", string_target, Constant(text))
        return match if operator == "regex" else Not(match)
    if operator in ("gt", "lt", "gte", "lte"):
        op = {"gt": ">", "lt": "<", "gte": ">=", "lte": "<="}[operator]
        number = _as_float(value)
        if number is not None:
            # missing or non-numeric values never match a numeric comparison
            return Compare(op, call("toFloat64OrNull", string_target), Constant(number))  # type: ignore[arg-type]
        return Compare(op, string_target, Constant(text))  # type: ignore[arg-type]
    if operator.startswith("is_date_"):
        parsed = call("parseDateTime64BestEffortOrNull", string_target, Constant(6), Constant("UTC"))
        try:
            moment = parse_date(text, now=dt.datetime.now(dt.UTC))
        except DateParseError:
            raise FilterError(f"Invalid date {text!r}.", "filterGroup") from None
        op = {"is_date_exact": "=", "is_date_before": "<", "is_date_after": ">"}[operator]
        return Compare(op, parsed, Constant(moment))  # type: ignore[arg-type]
    raise FilterError(f"Unknown operator {operator!r}.", "filterGroup")


def group_condition(node: dict[str, Any] | None) -> ast.Expr | None:
    if node is None:
        return None
    if "values" not in node:
        return leaf_condition(node)
    parts = [c for c in (group_condition(child) for child in node["values"]) if c is not None]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return ast.Or(tuple(parts)) if node.get("type") == "OR" else ast.And(tuple(parts))


def search_condition(term: str) -> ast.Expr:
    # lowerUTF8(body) LIKE is case-insensitive for any script and is what the ngram bloom-filter index on
    # lowerUTF8(body) can serve (ILIKE would give the same rows but cannot use that index)
    return Compare("like", call("lowerUTF8", Field("body")), Constant(f"%{escape_like(term.lower())}%"))


def _day_bound(op: CompareOperator, moment: dt.datetime) -> ast.Expr:
    # time_bucket (the day) leads the sort key: bounding it lets ClickHouse skip whole days
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0).strftime("%Y-%m-%d %H:%M:%S")
    return Compare(op, Field("time_bucket"), Call("toDateTime", (Constant(day), Constant("UTC"))))


def time_conditions(date_from: dt.datetime | None, date_to: dt.datetime | None) -> list[ast.Expr]:
    parts: list[ast.Expr] = []
    if date_from is not None:
        parts += [_day_bound(">=", date_from), Compare(">=", Field("timestamp"), Constant(date_from))]
    if date_to is not None:
        parts += [_day_bound("<=", date_to), Compare("<", Field("timestamp"), Constant(date_to))]
    return parts


def filter_conditions(filters: LogsFilters, *, include_time: bool = True) -> ast.Expr | None:
    parts: list[ast.Expr | None] = []
    if include_time:
        parts.extend(time_conditions(filters.date_from, filters.date_to))
    if filters.service_names:
        parts.append(Compare("in", Field("service_name"), Constant(filters.service_names)))
    if filters.severity_levels:
        parts.append(Compare("in", Field("severity_text"), Constant(filters.severity_levels)))
    if filters.search_term:
        parts.append(search_condition(filters.search_term))
    if filters.resource_fingerprint is not None:
        parts.append(Compare("=", Field("resource_fingerprint"), Constant(int(filters.resource_fingerprint))))
    parts.append(group_condition(filters.filter_group))
    return and_(*parts)
