"""Counts of logs by time bucket, service and severity — the numbers behind sparklines, count-ranges,
services and facets.

Whole minutes come from the ``log_counts`` rollup (kept by a materialized view at ingestion), so a 24-hour
sparkline reads about a thousand rows per service instead of millions of logs. The rollup knows only
minute, service and severity; a request that also filters on search text or attributes, or that wants
buckets finer than a minute, reads the logs themselves. The partial minutes at either end of a range are
always read from the logs, so rollup answers are exact to the microsecond.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from logpond.logs.filters import LogsFilters, filter_conditions, time_conditions
from logpond.query import ast
from logpond.query.ast import Alias, Compare, Constant, Field, Interval, JoinExpr, Select, TableRef, and_, call
from logpond.store.base import QueryResult

Execute = Callable[[Select], QueryResult]

# bucket widths a histogram may use, in seconds (PostHog's list: 1, 5, 10 s and 1 min to 1 day)
INTERVALS = (1, 5, 10, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400)
ERROR_LEVELS = ("error", "fatal")
MINUTE = dt.timedelta(minutes=1)

# columns the rollup can group by, with their name in the logs table (the same)
ROLLUP_KEYS = ("service_name", "severity_text")

CountKey = tuple[Any, ...]  # (bucket or None, *values of the ``by`` columns)


def choose_interval(span: dt.timedelta, target: int) -> int:
    """The bucket width, in seconds, nearest to ``span / target`` (ties go to the smaller width)."""
    ideal = max(span.total_seconds(), 1.0) / max(target, 1)
    return min(INTERVALS, key=lambda width: (abs(width - ideal), width))


def interval_label(seconds: int) -> str:
    """``10s``, ``5m``, ``2h``, ``1d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def bucket_start(moment: dt.datetime, seconds: int) -> dt.datetime:
    """The start of ``moment``'s bucket; buckets are aligned to the Unix epoch, as ClickHouse aligns them."""
    epoch = int(moment.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % seconds, dt.UTC)


def bucket_spine(
    date_from: dt.datetime, date_to: dt.datetime, seconds: int, *, limit: int | None = None
) -> list[dt.datetime]:
    """Every bucket that overlaps ``[date_from, date_to)``, oldest first (the first ``limit`` of them)."""
    step = dt.timedelta(seconds=seconds)
    first = bucket_start(date_from, seconds)
    count = max(0, -(-(date_to - first) // step))
    return [first + i * step for i in range(count if limit is None else min(count, limit))]


def parse_ch_datetime(text: str) -> dt.datetime:
    """``2026-01-01 10:00:00[.123456]`` (ClickHouse's UTC text) as an aware datetime."""
    return dt.datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=dt.UTC)


def uses_only_rollup_filters(filters: LogsFilters) -> bool:
    """True when every condition of ``filters`` can be answered from the ``log_counts`` rollup."""
    return not filters.search_term and not filters.filter_group and filters.resource_fingerprint is None


def _second(moment: dt.datetime) -> ast.Expr:
    text = moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return call("toDateTime", Constant(text), Constant("UTC"))


def _ceil_minute(moment: dt.datetime) -> dt.datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + MINUTE


class LogCounter:
    """Counts logs matching ``LogsFilters``, grouped by bucket and columns, from the rollup where it can."""

    def __init__(self, execute: Execute) -> None:
        self.execute = execute

    def counts(
        self,
        filters: LogsFilters,
        *,
        by: Sequence[str] = (),
        interval: int | None = None,
        with_bytes: bool = False,
    ) -> dict[CountKey, list[int]]:
        """``{(bucket, *by values): [count, bytes]}`` over ``filters``' range. ``bucket`` is None without an
        interval; ``bytes`` is 0 unless ``with_bytes``."""
        date_from, date_to = filters.date_from, filters.date_to
        totals: dict[CountKey, list[int]] = {}
        pieces: list[tuple[str, dt.datetime | None, dt.datetime | None]] = []
        rollup_ok = (
            uses_only_rollup_filters(filters)
            and all(column in ROLLUP_KEYS for column in by)
            and (interval is None or interval % 60 == 0)
        )
        if rollup_ok and date_to is not None:
            start = _ceil_minute(date_from) if date_from is not None else None
            end = date_to.replace(second=0, microsecond=0)
            if start is None or start < end:
                pieces.append(("rollup", start, end))
                if start is not None and date_from is not None and date_from < start:
                    pieces.append(("logs", date_from, start))
                if end < date_to:
                    pieces.append(("logs", end, date_to))
        if not pieces:
            pieces.append(("logs", date_from, date_to))
        for source, piece_from, piece_to in pieces:
            select = self._select(source, filters, piece_from, piece_to, by, interval, with_bytes)
            for row in self.execute(select).rows:
                bucket = parse_ch_datetime(row[0]) if interval is not None else None
                key = (bucket, *row[1:-2])
                entry = totals.setdefault(key, [0, 0])
                entry[0] += int(row[-2])
                entry[1] += int(row[-1])
        return totals

    def earliest(self) -> dt.datetime | None:
        """The minute of the project's oldest stored log, or None when it has none."""
        select = Select(select=(call("count"), call("min", Field("minute"))), from_=JoinExpr(TableRef("log_counts")))
        rows = self.execute(select).rows
        if not rows or not int(rows[0][0]):
            return None
        return parse_ch_datetime(rows[0][1])

    @staticmethod
    def _bucket(column: str, interval: int | None) -> ast.Expr:
        if interval is None:
            return Constant(None)
        return call("toStartOfInterval", Field(column), Interval(Constant(interval), "second"))

    def _select(
        self,
        source: str,
        filters: LogsFilters,
        start: dt.datetime | None,
        end: dt.datetime | None,
        by: Sequence[str],
        interval: int | None,
        with_bytes: bool,
    ) -> Select:
        """Counts (and bytes) grouped by bucket and ``by`` over ``[start, end)``, from the rollup or the logs."""
        if source == "rollup":
            conditions: list[ast.Expr | None] = []
            if start is not None:
                conditions.append(Compare(">=", Field("minute"), _second(start)))
            if end is not None:
                conditions.append(Compare("<", Field("minute"), _second(end)))
            if filters.service_names:
                conditions.append(Compare("in", Field("service_name"), Constant(filters.service_names)))
            if filters.severity_levels:
                conditions.append(Compare("in", Field("severity_text"), Constant(filters.severity_levels)))
            where, time_column = and_(*conditions), "minute"
            count, size = call("sum", Field("logs")), call("sum", Field("bytes"))
        else:
            where = and_(*time_conditions(start, end), filter_conditions(filters, include_time=False))
            time_column = "timestamp"
            count, size = call("count"), call("sum", Field("_bytes_uncompressed"))
        keys = [
            Alias(self._bucket(time_column, interval), "_bucket"),
            *(Alias(Field(column), f"_by_{i}") for i, column in enumerate(by)),
        ]
        return Select(
            select=(*keys, Alias(count, "_count"), Alias(size if with_bytes else Constant(0), "_bytes")),
            from_=JoinExpr(TableRef("log_counts" if source == "rollup" else "logs")),
            where=where,
            group_by=tuple(Field(key.alias) for key in keys),
        )
