"""Attribute keys and values for the filter pickers: ``GET logs/attributes`` and ``GET logs/values``.

Both read the attribute rollups (``log_attribute_keys``, ``log_attribute_values``) that materialized views
fill at ingestion, in 10-minute buckets: a range is widened to whole buckets, as PostHog does, so counts
are per 10 minutes. A ``filterGroup`` (a condition on other attributes of the same log) cannot be answered
from a rollup, nor ``serviceNames`` from the values rollup (kept without services to stay small); then the
logs of the exact range are read instead.

Parameters arrive in the query string; ``dateRange``, ``serviceNames`` and ``filterGroup`` are JSON
text. Anything malformed is a ``FilterError`` naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from logpond.logs.filters import FilterError, LogsFilters, escape_like, filter_conditions, parse_filters
from logpond.query import ast
from logpond.query.ast import Alias, Compare, Constant, Field, Index, JoinExpr, OrderExpr, Select, TableRef, call
from logpond.store.base import QueryResult

Execute = Callable[[Select], QueryResult]

BUCKET = dt.timedelta(minutes=10)
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
VALUE_SEARCH_MIN_LENGTH = 4
MAX_VALUE_LENGTH = 256  # longer values are not kept by the rollup (store/migrations.py)
ATTRIBUTE_TYPES = {"log": "log_attribute", "resource": "log_resource_attribute"}


def _json_param(params: Mapping[str, str], name: str) -> Any:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FilterError(f"{name} must be JSON.", name) from None


def _int_param(params: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FilterError(f"{name} must be an integer.", name) from None
    if not 0 <= value <= high or (name == "limit" and value == 0):
        raise FilterError(f"{name} must be between {1 if name == 'limit' else 0} and {high}.", name)
    return value


def _filters(params: Mapping[str, str], now: dt.datetime) -> LogsFilters:
    doc = {name: _json_param(params, name) for name in ("dateRange", "serviceNames", "filterGroup")}
    return parse_filters(doc, now=now)


def _attribute_type(params: Mapping[str, str]) -> str:
    kind = params.get("attribute_type") or "log"
    if kind not in ATTRIBUTE_TYPES:
        raise FilterError("attribute_type must be log or resource.", "attribute_type")
    return kind


def _floor_bucket(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=moment.minute - moment.minute % 10, second=0, microsecond=0)


def _reads_logs(filters: LogsFilters, *, per_service: bool) -> bool:
    """Whether a request must read the logs: a filterGroup, or services on a rollup kept without them."""
    return bool(filters.filter_group) or (bool(filters.service_names) and not per_service)


def _bucket_conditions(filters: LogsFilters, kind: str) -> list[ast.Expr]:
    """Rollup rows of this attribute type, services and range (widened to the 10-minute buckets it touches)."""
    parts: list[ast.Expr] = [Compare("=", Field("attribute_type"), Constant(kind))]
    if filters.date_from is not None:
        parts.append(Compare(">=", Field("time_bucket"), _second(_floor_bucket(filters.date_from))))
    if filters.date_to is not None:
        # every bucket that overlaps [date_from, date_to): one starting at date_to does not
        parts.append(Compare("<", Field("time_bucket"), _second(filters.date_to)))
    if filters.service_names:
        parts.append(Compare("in", Field("service_name"), Constant(filters.service_names)))
    return parts


def _second(moment: dt.datetime) -> ast.Expr:
    return call("toDateTime", Constant(moment.strftime("%Y-%m-%d %H:%M:%S")), Constant("UTC"))


def _contains(target: ast.Expr, needle: str) -> ast.Expr:
    return Compare("ilike", target, Constant(f"%{escape_like(needle)}%"))


def _map_field(kind: str) -> Field:
    return Field("attributes" if kind == "log" else "resource_attributes")


# --- keys --------------------------------------------------------------------------------------


def _rank(key: str, needle: str, count: int) -> tuple[int, int, int, str]:
    """Exact key first, then keys where the search is a whole word, then by volume, then by name."""
    lowered = key.lower()
    exact = 0 if needle and lowered == needle else 1
    word = 0 if needle and needle in re.split(r"[^a-z0-9]+", lowered) else 1
    return (exact, word, -count, key)


def attributes(execute: Execute, params: Mapping[str, str], *, now: dt.datetime) -> dict[str, Any]:
    """Attribute keys seen in the range, best matches for ``search`` first."""
    kind = _attribute_type(params)
    search = params.get("search") or ""
    limit = _int_param(params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    offset = _int_param(params, "offset", 0, 1_000_000)
    filters = _filters(params, now)
    needle = search.lower()
    if _reads_logs(filters, per_service=True):
        key_expr = call("arrayJoin", call("mapKeys", _map_field(kind)))
        select = Select(
            select=(Alias(call("toString", key_expr), "_key"), Alias(call("count"), "_count")),
            from_=JoinExpr(TableRef("logs")),
            where=filter_conditions(filters),
            group_by=(Field("_key"),),
        )
        counts = {row[0]: int(row[1]) for row in execute(select).rows if needle in row[0].lower()}
    else:
        where = ast.and_(
            *_bucket_conditions(filters, kind), _contains(Field("attribute_key"), search) if search else None
        )
        select = Select(
            select=(Field("attribute_key"), Alias(call("sum", Field("attribute_count")), "_count")),
            from_=JoinExpr(TableRef("log_attribute_keys")),
            where=where,
            group_by=(Field("attribute_key"),),
        )
        counts = {row[0]: int(row[1]) for row in execute(select).rows}
    property_type = ATTRIBUTE_TYPES[kind]
    ranked = sorted(counts, key=lambda k: _rank(k, needle, counts[k]))
    results: list[dict[str, Any]] = [
        {"name": key, "propertyFilterType": property_type, "matchedOn": "key"} for key in ranked
    ]
    if params.get("search_values") == "true" and len(search) >= VALUE_SEARCH_MIN_LENGTH:
        results += [
            {"name": key, "propertyFilterType": property_type, "matchedOn": "value", "matchedValue": value}
            for key, value in _keys_with_matching_values(execute, filters, kind, search)
            if key not in counts
        ]
    return {"results": results[offset : offset + limit], "count": len(results)}


def _keys_with_matching_values(execute: Execute, filters: LogsFilters, kind: str, search: str) -> list[tuple[str, str]]:
    """(key, most frequent matching value) for keys having a value that contains ``search``."""
    # a value's count is spread over rows (10-minute buckets, services, unmerged parts): total it per
    # value first, or argMax would pick the value with the largest single row
    if _reads_logs(filters, per_service=False):
        map_field = _map_field(kind)
        pairs = Select(
            select=(
                Alias(
                    call("arrayJoin", call("arrayZip", call("mapKeys", map_field), call("mapValues", map_field))),
                    "_pair",
                ),
            ),
            from_=JoinExpr(TableRef("logs")),
            where=filter_conditions(filters),
        )
        value: ast.Expr = call("tupleElement", Field("_pair"), Constant(2))
        per_value = Select(
            select=(
                Alias(call("toString", call("tupleElement", Field("_pair"), Constant(1))), "_key"),
                Alias(value, "_value"),
                Alias(call("count"), "_value_count"),
            ),
            from_=JoinExpr(pairs, alias="_pairs"),
            where=ast.and_(Compare("<", call("length", value), Constant(MAX_VALUE_LENGTH)), _contains(value, search)),
            group_by=(Field("_key"), Field("_value")),
        )
    else:
        per_value = Select(
            select=(
                Alias(Field("attribute_key"), "_key"),
                Alias(Field("attribute_value"), "_value"),
                Alias(call("sum", Field("attribute_count")), "_value_count"),
            ),
            from_=JoinExpr(TableRef("log_attribute_values")),
            where=ast.and_(*_bucket_conditions(filters, kind), _contains(Field("attribute_value"), search)),
            group_by=(Field("_key"), Field("_value")),
        )
    select = Select(
        select=(
            Field("_key"),
            Alias(call("argMax", Field("_value"), ast.Tuple((Field("_value_count"), Field("_value")))), "_top"),
            Alias(call("sum", Field("_value_count")), "_count"),
        ),
        from_=JoinExpr(per_value, alias="_values"),
        group_by=(Field("_key"),),
        order_by=(OrderExpr(Field("_count"), "DESC"), OrderExpr(Field("_key"))),
        limit=MAX_LIMIT,
    )
    return [(row[0], row[1]) for row in execute(select).rows]


# --- values ------------------------------------------------------------------------------------


def values(execute: Execute, params: Mapping[str, str], *, now: dt.datetime) -> dict[str, Any]:
    """The values of one attribute key in the range, most frequent first, optionally containing ``value``."""
    key = params.get("key")
    if not key:
        raise FilterError("key is required", "key")
    kind = _attribute_type(params)
    search = params.get("value") or ""
    limit = _int_param(params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    offset = _int_param(params, "offset", 0, 1_000_000)
    filters = _filters(params, now)
    if _reads_logs(filters, per_service=False):
        map_field = _map_field(kind)
        value_expr: ast.Expr = Index(map_field, Constant(key))
        where = ast.and_(
            call("mapContains", map_field, Constant(key)),
            # the same values the rollup keeps
            Compare("<", call("length", value_expr), Constant(MAX_VALUE_LENGTH)),
            filter_conditions(filters),
            _contains(value_expr, search) if search else None,
        )
        select = Select(
            select=(Alias(value_expr, "_value"), Alias(call("count"), "_count")),
            from_=JoinExpr(TableRef("logs")),
            where=where,
            group_by=(Field("_value"),),
            order_by=(OrderExpr(Field("_count"), "DESC"), OrderExpr(Field("_value"))),
            limit=limit,
            offset=offset,
        )
    else:
        where = ast.and_(
            *_bucket_conditions(filters, kind),  # no services here: _reads_logs sent those to the logs
            Compare("=", Field("attribute_key"), Constant(key)),
            _contains(Field("attribute_value"), search) if search else None,
        )
        select = Select(
            select=(Alias(Field("attribute_value"), "_value"), Alias(call("sum", Field("attribute_count")), "_count")),
            from_=JoinExpr(TableRef("log_attribute_values")),
            where=where,
            group_by=(Field("_value"),),
            order_by=(OrderExpr(Field("_count"), "DESC"), OrderExpr(Field("_value"))),
            limit=limit,
            offset=offset,
        )
    results = [{"id": row[0], "name": row[0], "count": int(row[1])} for row in execute(select).rows]
    return {"results": results, "refreshing": False}
