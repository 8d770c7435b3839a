"""The log explorer's aggregate endpoints: sparkline, count-ranges, services, facet values and group-by.

Each function takes the request's query object (already decoded JSON) and returns PostHog's response
document. Request fields are checked strictly: a bad one raises ``FilterError`` naming it, which the API
turns into a 400. Counting goes through ``LogCounter`` (rollup where it can) or, for attribute
dimensions, through query trees over ``logs``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from logpond.logs.aggregates import (
    ERROR_LEVELS,
    LogCounter,
    bucket_spine,
    choose_interval,
    parse_ch_datetime,
)
from logpond.logs.filters import FilterError, LogsFilters, escape_like, filter_conditions, parse_filters
from logpond.query import ast
from logpond.query.ast import Alias, Compare, Constant, Field, Index, JoinExpr, OrderExpr, Select, TableRef, call
from logpond.store.base import QueryResult

Execute = Callable[[Select], QueryResult]

SPARKLINE_TARGET_BUCKETS = 50
SPARKLINE_TOP_VALUES = 10
SPARKLINE_MAX_ROWS = 1000
OTHER = "$$_posthog_breakdown_other_$$"
NO_VALUE = "(no value)"
NO_SERVICE = "(no service)"
SERVICES_MAX = 10_000
SERVICES_SPARKLINE_TOP = 25
SERVICES_SPARKLINE_MAX_ROWS = 10_000
MAX_SERVICE_SEARCH = 200
FACET_LIMIT = 100
GROUP_BY_DEFAULT_LIMIT = 100
GROUP_BY_MAX_LIMIT = 500
GROUP_BY_MAX_DIMENSIONS = 4

BREAKDOWNS = {"severity": "severity_text", "service": "service_name"}


def query_object(body: Any) -> dict[str, Any]:
    """The ``query`` object of a request body (PostHog wraps every aggregate's fields in it)."""
    if not isinstance(body, dict):
        raise FilterError("Expected a JSON object.", "query")
    doc = body.get("query", body)
    if not isinstance(doc, dict):
        raise FilterError("query must be an object.", "query")
    return doc


def _choice(doc: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = doc.get(name)
    if value is None:
        return default
    if value not in allowed:
        raise FilterError(f"{name} must be one of {', '.join(allowed)}.", name)
    return str(value)


def _int(doc: dict[str, Any], name: str, default: int, low: int, high: int, *, clamp_high: bool = False) -> int:
    value = doc.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise FilterError(f"{name} must be an integer.", name)
    if value > high and clamp_high:
        return high
    if not low <= value <= high:
        raise FilterError(f"{name} must be between {low} and {high}.", name)
    return value


def _range(counter: LogCounter, filters: LogsFilters, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The concrete ``[from, to)`` of a histogram; ``date_from: "all"`` starts at the project's first log."""
    date_to = filters.date_to or now
    date_from = filters.date_from or counter.earliest() or date_to
    return date_from, date_to


def _iso_seconds(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- sparkline ---------------------------------------------------------------------------------


def sparkline(counter: LogCounter, doc: dict[str, Any], *, now: dt.datetime) -> list[dict[str, Any]]:
    """Zero-filled buckets (about 50) by severity or service: the top 10 values, the rest as "other"."""
    filters = parse_filters(doc, now=now)
    breakdown = _choice(doc, "sparklineBreakdownBy", tuple(BREAKDOWNS), "severity")
    rank_by = _choice(doc, "sparklineRankBy", ("count", "bytes"), "count")
    date_from, date_to = _range(counter, filters, now)
    interval = choose_interval(date_to - date_from, SPARKLINE_TARGET_BUCKETS)
    column = BREAKDOWNS[breakdown]
    counts = counter.counts(filters, by=(column,), interval=interval, with_bytes=True)
    rank_index = 0 if rank_by == "count" else 1
    totals: dict[str, int] = {}
    for (_, value), numbers in counts.items():
        totals[value] = totals.get(value, 0) + numbers[rank_index]
    top = set(sorted(totals, key=lambda v: (-totals[v], v))[:SPARKLINE_TOP_VALUES])
    by_bucket: dict[dt.datetime, dict[str, list[int]]] = {}
    for (bucket, value), (count, size) in counts.items():
        label = (value or NO_VALUE) if value in top else OTHER
        entry = by_bucket.setdefault(bucket, {}).setdefault(label, [0, 0])
        entry[0] += count
        entry[1] += size
    rows: list[dict[str, Any]] = []
    # every bucket yields at least one row, so no more buckets than rows are ever needed (a 400-year range
    # would otherwise build 146,000 of them)
    for bucket in bucket_spine(date_from, date_to, interval, limit=SPARKLINE_MAX_ROWS):
        series = by_bucket.get(bucket) or {NO_VALUE: [0, 0]}
        for label in sorted(series):
            count, size = series[label]
            rows.append({"time": _iso_seconds(bucket), breakdown: label, "count": count, "bytes_uncompressed": size})
    return rows[:SPARKLINE_MAX_ROWS]


# --- count-ranges ------------------------------------------------------------------------------


def interval_name(seconds: int, span: dt.timedelta, target: int) -> str:
    """PostHog's label: seconds when the ideal step is under a minute, else minutes shown as m, h or d."""
    if span.total_seconds() / target < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def count_ranges(counter: LogCounter, doc: dict[str, Any], *, now: dt.datetime) -> dict[str, Any]:
    """Non-empty buckets, oldest first, each ``[date_from, date_to)`` with its count."""
    filters = parse_filters(doc, now=now)
    target = _int(doc, "targetBuckets", 10, 1, 100)
    date_from, date_to = _range(counter, filters, now)
    span = date_to - date_from
    interval = choose_interval(span, target)
    counts = counter.counts(filters, interval=interval)
    step = dt.timedelta(seconds=interval)
    ranges = [
        {"date_from": _iso_seconds(bucket), "date_to": _iso_seconds(bucket + step), "count": numbers[0]}
        for (bucket, *_), numbers in sorted(counts.items(), key=lambda item: item[0][0])
        if numbers[0] > 0
    ]
    return {"ranges": ranges, "interval": interval_name(interval, span, target)}


# --- services ----------------------------------------------------------------------------------


def _severity_bucket(level: str) -> str | None:
    level = level.lower()
    if level in ("trace", "debug"):
        return "debug"
    if level in ("warn", "warning"):
        return "warn"
    if level in ERROR_LEVELS:
        return "error"
    return "info" if level == "info" else None


def services(counter: LogCounter, doc: dict[str, Any], *, now: dt.datetime) -> dict[str, Any]:
    """Per service: volume, errors, severity breakdown and share, plus a sparkline of the top 25."""
    filters = parse_filters(doc, now=now)
    search = doc.get("serviceNameSearch")
    if search is not None and (not isinstance(search, str) or len(search) > MAX_SERVICE_SEARCH):
        raise FilterError(
            f"serviceNameSearch must be a string of at most {MAX_SERVICE_SEARCH} characters.", "serviceNameSearch"
        )
    needle = (search or "").lower()
    per_service: dict[str, dict[str, Any]] = {}
    for (_, service, level), (count, _) in counter.counts(filters, by=("service_name", "severity_text")).items():
        if needle and needle not in service.lower():
            continue
        entry = per_service.setdefault(
            service, {"log_count": 0, "error_count": 0, "breakdown": {"debug": 0, "info": 0, "warn": 0, "error": 0}}
        )
        entry["log_count"] += count
        if level in ERROR_LEVELS:
            entry["error_count"] += count
        bucket = _severity_bucket(level)
        if bucket is not None:
            entry["breakdown"][bucket] += count
    ordered = sorted(per_service, key=lambda s: (-per_service[s]["log_count"], s))
    total = sum(e["log_count"] for e in per_service.values())
    listed = []
    for service in ordered[:SERVICES_MAX]:
        entry = per_service[service]
        count = entry["log_count"]
        listed.append(
            {
                "service_name": service or NO_SERVICE,
                "log_count": count,
                "error_count": entry["error_count"],
                "error_rate": round(entry["error_count"] / count, 4) if count else 0.0,
                "volume_share_pct": round(100 * count / total, 2) if total else 0.0,
                "severity_breakdown": entry["breakdown"],
                "active_rules": [],
            }
        )
    top = ordered[:SERVICES_SPARKLINE_TOP]
    spark_rows: list[dict[str, Any]] = []
    if top:
        date_from, date_to = _range(counter, filters, now)
        interval = choose_interval(date_to - date_from, SPARKLINE_TARGET_BUCKETS)
        spark_filters = dataclasses.replace(filters, service_names=top)
        spark = counter.counts(spark_filters, by=("service_name",), interval=interval)
        for (bucket, service), (count, _) in sorted(spark.items(), key=lambda item: (item[0][0], item[0][1])):
            if count:
                spark_rows.append({"time": _iso_seconds(bucket), "service_name": service or NO_SERVICE, "count": count})
    top_five = listed[:5]
    return {
        "services": listed,
        "sparkline": spark_rows[:SERVICES_SPARKLINE_MAX_ROWS],
        "summary": {
            "top_services_count": len(top_five),
            "top_services_volume_share_pct": round(sum(s["volume_share_pct"] for s in top_five), 2),
        },
        "total_services": len(per_service),
    }


# --- facet values ------------------------------------------------------------------------------

FACET_FIELDS = ("severity_text", "service_name")


def _drop_leaves(node: dict[str, Any] | None, drop: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """``node`` without the filter leaves ``drop`` selects (empty groups disappear)."""
    if node is None:
        return None
    if "values" not in node:
        return None if drop(node) else node
    kept = [c for c in (_drop_leaves(child, drop) for child in node["values"]) if c is not None]
    return {**node, "values": kept} if kept else None


def facet_values(counter: LogCounter, execute: Execute, doc: dict[str, Any], *, now: dt.datetime) -> dict[str, Any]:
    """Counts of the values of one facet (a column or an attribute), without the facet's own filter."""
    given = [name for name in ("facetField", "facetResourceAttribute", "facetAttribute") if doc.get(name) is not None]
    if len(given) != 1:
        raise FilterError("Provide exactly one of facetField, facetResourceAttribute or facetAttribute.", "query")
    name = given[0]
    facet = doc[name]
    if not isinstance(facet, str) or not facet:
        raise FilterError(f"{name} must be a non-empty string.", name)
    search = doc.get("facetSearch")
    if search is not None and not isinstance(search, str):
        raise FilterError("facetSearch must be a string.", "facetSearch")
    filters = parse_filters(doc, now=now)
    counts: dict[str, int]
    if name == "facetField":
        if facet not in FACET_FIELDS:
            raise FilterError(f"facetField must be one of {', '.join(FACET_FIELDS)}.", "facetField")
        if facet == "service_name":
            filters = dataclasses.replace(filters, service_names=[])
        else:
            group = _drop_leaves(
                filters.filter_group,
                lambda leaf: leaf["type"] == "log" and leaf["key"] in ("severity_level", "level", "severity_text"),
            )
            filters = dataclasses.replace(filters, severity_levels=[], filter_group=group)
        counts = {key[1]: numbers[0] for key, numbers in counter.counts(filters, by=(facet,)).items()}
    else:
        kind = "log_attribute" if name == "facetAttribute" else "log_resource_attribute"
        group = _drop_leaves(filters.filter_group, lambda leaf: leaf["type"] == kind and leaf["key"] == facet)
        filters = dataclasses.replace(filters, filter_group=group)
        map_field = Field("attributes" if kind == "log_attribute" else "resource_attributes")
        value = Index(map_field, Constant(facet))
        # searched, ordered and cut in the store: an attribute may have millions of values (request ids)
        select = Select(
            select=(Alias(value, "_value"), Alias(call("count"), "_count")),
            from_=JoinExpr(TableRef("logs")),
            # as PostHog, an empty value is not offered as a facet value
            where=ast.and_(
                Compare("!=", value, Constant("")),
                filter_conditions(filters),
                Compare("like", call("lowerUTF8", value), Constant(f"%{escape_like(search.lower())}%"))
                if search
                else None,
            ),
            group_by=(Field("_value"),),
            order_by=(OrderExpr(Field("_count"), "DESC"), OrderExpr(Field("_value"))),
            limit=FACET_LIMIT,
        )
        counts = {row[0]: int(row[1]) for row in execute(select).rows}
    needle = (search or "").lower()
    ordered = sorted((v for v, c in counts.items() if c > 0 and needle in v.lower()), key=lambda v: (-counts[v], v))
    return {"results": [{"value": v, "count": counts[v]} for v in ordered[:FACET_LIMIT]]}


# --- group-by ----------------------------------------------------------------------------------

GROUP_SOURCES = ("log", "resource", "column")
GROUP_COLUMNS = {
    "severity_level": "severity_text",
    "severity_text": "severity_text",
    "service_name": "service_name",
    "trace_id": "trace_id",
    "span_id": "span_id",
}
GROUP_ORDERS = ("log_count", "error_count", "last_seen")


def _dimension(key: Any, source: Any, attr: str) -> tuple[ast.Expr, ast.Expr]:
    """(value expression, "has a value" condition) of one group-by dimension."""
    if not isinstance(key, str) or not key:
        raise FilterError("Group-by key must be a non-empty string.", attr)
    if source not in GROUP_SOURCES:
        raise FilterError(f"Group-by source must be one of {', '.join(GROUP_SOURCES)}.", attr)
    if source == "column":
        column = GROUP_COLUMNS.get(key)
        if column is None:
            raise FilterError(f"Group-by column must be one of {', '.join(GROUP_COLUMNS)}.", attr)
        value: ast.Expr = Field(column)
        empty = "0" * (32 if column == "trace_id" else 16) if column in ("trace_id", "span_id") else ""
        return value, Compare("!=", value, Constant(empty))
    value = Index(Field("attributes" if source == "log" else "resource_attributes"), Constant(key))
    return value, Compare("!=", value, Constant(""))


def group_by(execute: Execute, doc: dict[str, Any], *, now: dt.datetime) -> dict[str, Any]:
    """Log and error counts and last-seen time per value (or combination of values) of up to 4 dimensions."""
    filters = parse_filters(doc, now=now)
    raw = doc.get("groupBys")
    if raw is not None:
        if not isinstance(raw, list) or not 1 <= len(raw) <= GROUP_BY_MAX_DIMENSIONS:
            raise FilterError(f"groupBys must be a list of 1 to {GROUP_BY_MAX_DIMENSIONS} dimensions.", "groupBys")
        specs = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise FilterError("Each groupBys entry must be an object with key and source.", f"groupBys__{i}")
            specs.append((item.get("key"), item.get("source", "log"), f"groupBys__{i}"))
    else:
        if doc.get("groupBy") is None:
            raise FilterError("Provide groupBy (or groupBys).", "groupBy")
        specs = [(doc.get("groupBy"), doc.get("groupBySource", "log"), "groupBy")]
    # each dimension is checked first: a key or source that is not a string cannot be compared below
    dimensions = [_dimension(key, source, attr) for key, source, attr in specs]
    if len({(k, s) for k, s, _ in specs}) != len(specs):
        raise FilterError("groupBys must not repeat a dimension.", "groupBys")
    order = _choice(doc, "orderGroupsBy", GROUP_ORDERS, "log_count")
    limit = _int(doc, "limit", GROUP_BY_DEFAULT_LIMIT, 1, GROUP_BY_MAX_LIMIT, clamp_high=True)
    where = ast.and_(filter_conditions(filters), *(present for _, present in dimensions))
    keys = [Alias(call("toString", value), f"_d{i}") for i, (value, _) in enumerate(dimensions)]
    is_error = Compare("in", call("lowerUTF8", Field("severity_text")), Constant(list(ERROR_LEVELS)))
    select = Select(
        select=(
            *keys,
            Alias(call("count"), "log_count"),
            Alias(call("countIf", is_error), "error_count"),
            Alias(call("max", Field("timestamp")), "last_seen"),
        ),
        from_=JoinExpr(TableRef("logs")),
        where=where,
        group_by=tuple(Field(k.alias) for k in keys),
        order_by=(OrderExpr(Field(order), "DESC"), *(OrderExpr(Field(k.alias), "ASC") for k in keys)),
        limit=limit,
    )
    totals = Select(
        select=(
            Alias(call("uniqExact", ast.Tuple(tuple(value for value, _ in dimensions))), "_groups"),
            Alias(call("count"), "_logs"),
        ),
        from_=JoinExpr(TableRef("logs")),
        where=where,
    )
    groups = []
    for row in execute(select).rows:
        values = [str(v) for v in row[: len(keys)]]
        log_count, error_count, last_seen = row[len(keys) :]
        groups.append(
            {
                "value": values[0],
                "values": values,
                "log_count": int(log_count),
                "error_count": int(error_count),
                "last_seen": parse_ch_datetime(last_seen).isoformat(),
            }
        )
    total_groups, total_logs = execute(totals).rows[0]
    return {
        "groups": groups,
        "total_groups": int(total_groups),
        "total_logs": int(total_logs),
        "truncated": int(total_groups) > len(groups),
    }
