"""The check queries of log alerts (logs spec §5.4): for many alerts of one project due at once, the number of
logs matching each alert's filters in each of its M rolling windows, in as few store queries as possible.

Window k (k = 0..M-1) of an alert is the half-open ``[end - k*5min - window, end - k*5min)``; counts come back
newest first. Two kinds of query answer them:

- Alerts that filter only on services and severities, with whole-minute windows, are answered together by one
  query on the ``log_counts`` rollup. Every window bound of those alerts is a multiple of some step from the
  earliest bound, so the query sums the rollup into buckets of that step (grouped by service and severity,
  where services and severities no alert names fall into one "other" group each) and the windows are added
  up here. Its time range is the union of the windows, not their hull.
- Every other alert (attribute filters, or an end that is not on a whole minute) is read from the logs, up to
  ``chunk_size`` alerts per query: one ``countIf(filters AND window)`` column per alert and window.

A failed query is retried in smaller pieces, down to one alert per query, so that a failure (an invalid
regular expression in one alert's filters, say) is charged to the alert that caused it and the others still
get their counts. A store that is overloaded or unreachable is not retried: every alert not yet counted fails
as transient and the state machine leaves it as it is. Failure messages are our own sentences; the store's
text can quote logged data and is never passed on.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from logpond.alerts.state import CheckFailed, CheckOutcome, CheckSucceeded
from logpond.logs.aggregates import _second, uses_only_rollup_filters
from logpond.logs.filters import FilterError, LogsFilters, filter_conditions, time_conditions
from logpond.query import ast
from logpond.query.ast import Alias, Compare, Constant, Field, JoinExpr, Select, TableRef, and_, call
from logpond.query.printer import QueryError
from logpond.store.base import QueryResult, StoreError

CHECK_INTERVAL = dt.timedelta(minutes=5)

Execute = Callable[[Select], QueryResult]
Span = tuple[dt.datetime, dt.datetime]

# the store is busy or unreachable: nobody's filters are to blame, so nothing is retried this round
_UNAVAILABLE = {
    "TOO_MANY_SIMULTANEOUS_QUERIES": "The log store was too busy to run the check.",
    "NETWORK_ERROR": "The log store could not be reached.",
    "SOCKET_TIMEOUT": "The log store could not be reached.",
    "ALL_CONNECTION_TRIES_FAILED": "The log store could not be reached.",
    "CANNOT_SCHEDULE_TASK": "The log store was too busy to run the check.",
    "QUERY_WAS_CANCELLED": "The check query was cancelled.",
}
# transient, but possibly caused by one heavy alert among many: worth retrying in smaller pieces
_OVER_LIMIT = {
    "TIMEOUT_EXCEEDED": "The check query timed out.",
    "TOO_SLOW": "The check query timed out.",
    "MEMORY_LIMIT_EXCEEDED": "The check query used more memory than allowed.",
}
# errors in an alert's own filters: they count towards ``broken``
_FILTER_ERRORS = {
    "CANNOT_COMPILE_REGEXP": "Invalid regular expression in a filter (RE2 syntax).",
    "ILLEGAL_TYPE_OF_ARGUMENT": "A filter compares values of incompatible types.",
    "SYNTAX_ERROR": "The alert's filters could not be turned into a valid query.",
    "TOO_MANY_ROWS_OR_BYTES": "The check query returned more rows than allowed.",
}


@dataclass(frozen=True)
class CheckRequest:
    """One alert's check: its filters and windows. ``filters``' date range is ignored."""

    key: Hashable  # the alert's id
    filters: LogsFilters
    window_minutes: int
    periods: int  # M
    end: dt.datetime  # aware UTC

    def windows(self) -> list[Span]:
        """The M half-open windows, newest first."""
        end = self.end if self.end.tzinfo is not None else self.end.replace(tzinfo=dt.UTC)
        window = dt.timedelta(minutes=self.window_minutes)
        return [(end - k * CHECK_INTERVAL - window, end - k * CHECK_INTERVAL) for k in range(self.periods)]


@dataclass(frozen=True)
class _Failure:
    outcome: CheckFailed
    retry_smaller: bool  # whether running fewer alerts per query could succeed or find the culprit
    store_unavailable: bool


def _failure(exc: Exception) -> _Failure:
    if isinstance(exc, StoreError):
        if exc.code in _UNAVAILABLE:
            return _Failure(CheckFailed(_UNAVAILABLE[exc.code], transient=True), False, True)
        if exc.code in _OVER_LIMIT:
            return _Failure(CheckFailed(_OVER_LIMIT[exc.code], transient=True), True, False)
        message = _FILTER_ERRORS.get(exc.code) or (
            f"The check query failed in the log store ({exc.code})." if exc.code else "The check query failed."
        )
        return _Failure(CheckFailed(message), True, False)
    if isinstance(exc, QueryError):
        return _Failure(CheckFailed("The alert's filters could not be turned into a query."), True, False)
    # OSError: the connection to the store failed
    return _Failure(CheckFailed("The log store could not be reached.", transient=True), False, True)


def _chunks(items: Sequence[_Prepared], size: int) -> list[Sequence[_Prepared]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _merged(spans: list[Span]) -> list[Span]:
    """The union of ``spans`` as disjoint spans, oldest first."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _any_of(conditions: list[ast.Expr]) -> ast.Expr:
    return conditions[0] if len(conditions) == 1 else ast.Or(tuple(conditions))


@dataclass(frozen=True)
class _Prepared:
    request: CheckRequest
    windows: list[Span]
    condition: ast.Expr | None  # the filters as a logs condition (unused on the rollup)


# --- the rollup query ------------------------------------------------------------------------------


def _rollup_select(batch: Sequence[_Prepared]) -> tuple[Select, dt.datetime, int]:
    """The rollup select for ``batch``, its first bucket's start and the bucket width in seconds."""
    bounds = sorted({bound for item in batch for span in item.windows for bound in span})
    base = bounds[0]
    step = 0
    for bound in bounds[1:]:
        step = math.gcd(step, int((bound - base).total_seconds()))
    where: list[ast.Expr | None] = [
        _any_of(
            [
                ast.And((Compare(">=", Field("minute"), _second(a)), Compare("<", Field("minute"), _second(b))))
                for a, b in _merged([span for item in batch for span in item.windows])
            ]
        )
    ]
    keys: list[ast.Expr] = [
        call(
            "intDiv",
            call("minus", call("toUnixTimestamp", Field("minute")), Constant(int(base.timestamp()))),
            Constant(step),
        )
    ]
    for column in ("service_name", "severity_text"):
        lists = [
            item.request.filters.service_names if column == "service_name" else item.request.filters.severity_levels
            for item in batch
        ]
        named = sorted({value for values in lists for value in values})
        if all(lists):
            # every alert names some: rows of other values are of no use
            where.append(Compare("in", Field(column), Constant(named)))
            keys.append(Field(column))
        elif named:
            # values no alert names only count for alerts without this filter: one group is enough for them
            keys.append(call("if", Compare("in", Field(column), Constant(named)), Field(column), Constant(None)))
        else:
            keys.append(Constant(None))
    aliased = [Alias(key, f"_k{i}") for i, key in enumerate(keys)]
    select = Select(
        select=(*aliased, Alias(call("sum", Field("logs")), "_count")),
        from_=JoinExpr(TableRef("log_counts")),
        where=and_(*where),
        group_by=tuple(Field(key.alias) for key in aliased),
    )
    return select, base, step


def _rollup_counts(execute: Execute, batch: Sequence[_Prepared]) -> dict[Hashable, tuple[int, ...]]:
    select, base, step = _rollup_select(batch)
    span = max(end for item in batch for _, end in item.windows)
    buckets = int((span - base).total_seconds()) // step
    # (service or None, severity or None) -> counts per bucket
    series: dict[tuple[str | None, str | None], list[int]] = {}
    for bucket, service, severity, count in execute(select).rows:
        series.setdefault((service, severity), [0] * buckets)[int(bucket)] += int(count)
    cumulative: dict[tuple[frozenset[str], frozenset[str]], list[int]] = {}
    results: dict[Hashable, tuple[int, ...]] = {}
    for item in batch:
        services = frozenset(item.request.filters.service_names)
        levels = frozenset(item.request.filters.severity_levels)
        if (services, levels) not in cumulative:
            totals = [0] * buckets
            for (service, severity), counts in series.items():
                if (not services or service in services) and (not levels or severity in levels):
                    totals = [a + b for a, b in zip(totals, counts, strict=True)]
            running = [0]
            for count in totals:
                running.append(running[-1] + count)
            cumulative[(services, levels)] = running
        running = cumulative[(services, levels)]
        results[item.request.key] = tuple(
            running[int((end - base).total_seconds()) // step] - running[int((start - base).total_seconds()) // step]
            for start, end in item.windows
        )
    return results


# --- the logs query --------------------------------------------------------------------------------


def _logs_counts(execute: Execute, batch: Sequence[_Prepared]) -> dict[Hashable, tuple[int, ...]]:
    columns: list[ast.Expr] = []
    position: dict[tuple[str, dt.datetime, dt.datetime], int] = {}  # alerts with the same filters share columns
    for item in batch:
        for start, end in item.windows:
            key = (repr(item.condition), start, end)
            if key not in position:
                in_window = and_(
                    item.condition,
                    Compare(">=", Field("timestamp"), Constant(start)),
                    Compare("<", Field("timestamp"), Constant(end)),
                )
                assert in_window is not None
                position[key] = len(columns)
                columns.append(Alias(call("countIf", in_window), f"_w{len(columns)}"))
    ranges = [and_(*time_conditions(a, b)) for a, b in _merged([span for item in batch for span in item.windows])]
    select = Select(
        select=tuple(columns),
        from_=JoinExpr(TableRef("logs")),
        where=_any_of([r for r in ranges if r is not None]),
    )
    row = execute(select).rows[0]
    return {
        item.request.key: tuple(int(row[position[(repr(item.condition), start, end)]]) for start, end in item.windows)
        for item in batch
    }


# --- running and retrying --------------------------------------------------------------------------


class _Checker:
    def __init__(self, execute: Execute) -> None:
        self.execute = execute
        self.outcomes: dict[Hashable, CheckOutcome] = {}
        self.unavailable: CheckFailed | None = None  # set once the store said it is busy or unreachable

    def settle(
        self,
        batch: Sequence[_Prepared],
        count: Callable[[Execute, Sequence[_Prepared]], dict[Hashable, tuple[int, ...]]],
        smaller: Sequence[int],
    ) -> None:
        """Count ``batch`` in one query; if that fails, retry it in pieces of ``smaller[0]``, and so on."""
        if self.unavailable is not None:
            self._fail(batch, self.unavailable)
            return
        smaller = [size for size in smaller if size < len(batch)]
        try:
            results = count(self.execute, batch)
        except (StoreError, QueryError, OSError) as exc:
            failure = _failure(exc)
            if failure.store_unavailable:
                self.unavailable = failure.outcome
            if smaller and failure.retry_smaller:
                for piece in _chunks(batch, smaller[0]):
                    self.settle(piece, count, smaller[1:])
            else:
                self._fail(batch, failure.outcome)
            return
        for key, counts in results.items():
            self.outcomes[key] = CheckSucceeded(counts)

    def _fail(self, batch: Sequence[_Prepared], outcome: CheckFailed) -> None:
        for item in batch:
            self.outcomes[item.request.key] = outcome


def _problem(request: CheckRequest) -> str | None:
    if request.window_minutes < 1:
        return "The alert's window must be at least one minute."
    if request.periods < 1:
        return "The alert must look at one evaluation period or more."
    return None


def check_counts(
    execute: Execute,
    requests: Sequence[CheckRequest],
    *,
    chunk_size: int = 200,
) -> dict[Hashable, CheckOutcome]:
    """Each request's outcome by key: the counts of its windows, newest first, or why the check failed.

    ``execute`` runs one select for the project (the caller binds the team and the limits); every store read
    goes through it. Requests with the same key overwrite each other.
    """
    checker = _Checker(execute)
    rollup: list[_Prepared] = []
    logs: list[_Prepared] = []
    for request in requests:
        problem = _problem(request)
        if problem is not None:
            checker.outcomes[request.key] = CheckFailed(problem)
            continue
        windows = request.windows()
        if uses_only_rollup_filters(request.filters) and windows[0][1].second == windows[0][1].microsecond == 0:
            rollup.append(_Prepared(request, windows, None))
            continue
        try:
            condition = filter_conditions(request.filters, include_time=False)
        except FilterError as exc:
            # our own message about the alert's own filter (e.g. a date that does not parse)
            checker.outcomes[request.key] = CheckFailed(exc.detail)
            continue
        logs.append(_Prepared(request, windows, condition))
    size = max(1, chunk_size)
    if rollup:
        checker.settle(rollup, _rollup_counts, (size, 1))
    # alerts with nearby ends share a query, which keeps each query's time range short
    logs.sort(key=lambda item: item.windows[0][1])
    for chunk in _chunks(logs, size):
        # a failing chunk is split in tenths, then the failing tenth alert by alert
        checker.settle(chunk, _logs_counts, (max(1, size // 10), 1))
    return checker.outcomes
