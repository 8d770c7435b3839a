"""``POST logs/patterns``: log templates of the logs matching a filter, from a bounded sample.

The exact number of matching logs is counted first. At most ``SAMPLE_LIMIT`` logs are then read and
mined (``logpond.logs.patterns``), so the call costs about the same on an hour or a month:

* up to ``SAMPLE_LIMIT`` matching logs: all of them;
* more than ``SLICE_ABOVE``: four evenly spaced thin time slices expected to hold the budget, so the
  store reads only those slices (few slices, because each one costs whole granules per service);
* in between: a deterministic hash sample, ``cityHash64(uuid) % n = 0``.

Per template, ``count`` and ``error_count`` are sample counts; ``estimated_count`` and
``estimated_error_count`` scale them to all matching logs. Shapes follow PostHog's patterns endpoint.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from logpond.logs.aggregates import LogCounter, parse_ch_datetime
from logpond.logs.filters import LogsFilters, filter_conditions, parse_filters, time_conditions
from logpond.logs.patterns import WILDCARD, TemplateMiner
from logpond.query import ast
from logpond.query.ast import Alias, Compare, Constant, Field, JoinExpr, Select, TableRef, call
from logpond.store.base import QueryResult

Execute = Callable[[Select], QueryResult]

# 5,000 lines find every template above ~0.05 % of the logs; twice that costs ~100 ms more per call
SAMPLE_LIMIT = 5_000
SLICE_ABOVE = 20 * SAMPLE_LIMIT
SLICES = 4
SPARKLINE_BUCKETS = 24
MAX_PATTERNS = 200
MAX_EXAMPLES = 10
MAX_SERVICES = 4
BODY_MAX_CHARS = 512
ERROR_LEVELS = ("error", "fatal")


@dataclass
class _Stats:
    first_seen: str  # ClickHouse's text, which sorts like the time
    last_seen: str
    count: int = 0
    errors: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    example_bodies: set[str] = field(default_factory=set)
    services: list[str] = field(default_factory=list)
    severities: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=list)


def _windows(
    date_from: dt.datetime, date_to: dt.datetime, total: int
) -> tuple[list[tuple[dt.datetime, dt.datetime]], bool]:
    """The time windows to sample from, and whether they are slices of the range."""
    if total <= SLICE_ABOVE:
        return [(date_from, date_to)], False
    span = date_to - date_from
    width = span * (0.9 * SAMPLE_LIMIT / total) / SLICES  # a little under the budget: rarely cut by LIMIT
    gap = (span - width * SLICES) / (SLICES - 1)
    starts = [date_from + i * (width + gap) for i in range(SLICES)]
    windows = [(start, start + width) for start in starts]
    windows[-1] = (date_to - width, date_to)  # the last slice ends exactly at the end of the range
    return windows, True


def _in_windows(windows: list[tuple[dt.datetime, dt.datetime]]) -> ast.Expr | None:
    if len(windows) == 1:
        return ast.and_(*time_conditions(*windows[0]))
    return ast.Or(tuple(ast.And(tuple(time_conditions(start, end))) for start, end in windows))


def match_literal(template: str) -> str | None:
    """The longest literal run of the template (3 characters or more), for a quick substring search."""
    runs = [run.strip() for run in template.split(WILDCARD)]
    best = max(runs, key=len, default="")
    return best if len(best) >= 3 else None


def match_regex(template: str, examples: list[str]) -> str | None:
    """An anchored regex matching the template's lines, or None when it is too vague or misses an example."""
    if match_literal(template) is None:
        return None
    parts = []
    for token in template.split(" "):
        pieces = token.split(WILDCARD)
        parts.append(r"\S+".join(re.escape(piece) for piece in pieces) if len(pieces) > 1 else re.escape(token))
    pattern = r"^\s*" + r"\s+".join(parts)
    if all(len(example) < BODY_MAX_CHARS for example in examples):
        pattern += r"\s*$"
    compiled = re.compile(pattern)
    if not all(compiled.search(example) for example in examples):
        return None
    return pattern


def patterns(counter: LogCounter, execute: Execute, doc: dict[str, Any], *, now: dt.datetime) -> dict[str, Any]:
    filters = parse_filters(doc, now=now)
    date_to = filters.date_to or now
    date_from = filters.date_from or counter.earliest() or date_to
    total = sum(numbers[0] for numbers in counter.counts(filters).values())
    windows, sliced = _windows(date_from, date_to, total)
    divisor = 1 if sliced else max(1, math.ceil(total / SAMPLE_LIMIT))
    rows = _sample(execute, filters, windows, divisor)
    # the slices hold about the budget; how many logs they held exactly is what was read, unless the
    # read stopped at the limit (then count them)
    pool = total if not sliced else (len(rows) if len(rows) < SAMPLE_LIMIT else _count(execute, filters, windows))
    if sliced:
        buckets = windows
    else:
        step = (date_to - date_from) / SPARKLINE_BUCKETS
        buckets = [(date_from + i * step, date_from + (i + 1) * step) for i in range(SPARKLINE_BUCKETS)]
    # bucket of a timestamp by bisecting the bucket starts, compared as ClickHouse's text (same format)
    starts = [start.strftime("%Y-%m-%d %H:%M:%S.%f") for start, _ in buckets]

    miner = TemplateMiner(similarity=0.4)
    stats: dict[int, _Stats] = {}
    for prepared, severity, service, timestamp in rows:
        severity = severity.lower()
        cluster = miner.add(prepared, severity)
        entry = stats.get(cluster)
        if entry is None:
            entry = stats[cluster] = _Stats(first_seen=timestamp, last_seen=timestamp, buckets=[0] * len(buckets))
        entry.count += 1
        if severity in ERROR_LEVELS:
            entry.errors += 1
        if timestamp < entry.first_seen:
            entry.first_seen = timestamp
        elif timestamp > entry.last_seen:
            entry.last_seen = timestamp
        entry.severities[severity] = entry.severities.get(severity, 0) + 1
        if len(entry.examples) < MAX_EXAMPLES and prepared not in entry.example_bodies:
            entry.example_bodies.add(prepared)
            entry.examples.append(
                {"body": prepared, "severity_text": severity, "service_name": service, "timestamp": timestamp}
            )
        if len(entry.services) < MAX_SERVICES and service not in entry.services:
            entry.services.append(service)
        index = bisect.bisect_right(starts, timestamp) - 1
        if index >= 0:
            entry.buckets[index] += 1

    scanned = len(rows)
    scale = total / scanned if scanned and scanned < total else 1.0
    templates = miner.templates()
    results: list[dict[str, Any]] = []
    for cluster, entry in stats.items():
        template = templates[cluster]
        examples = [e["body"] for e in entry.examples]
        results.append(
            {
                "pattern": template,
                "count": entry.count,
                "estimated_count": round(entry.count * scale),
                "volume_share_pct": round(100 * entry.count / scanned, 2),
                "error_count": entry.errors,
                "estimated_error_count": round(entry.errors * scale),
                "first_seen": _iso(entry.first_seen),
                "last_seen": _iso(entry.last_seen),
                "examples": [{**example, "timestamp": _iso(example["timestamp"])} for example in entry.examples],
                "services": entry.services,
                "sparkline": [round(n * scale) for n in entry.buckets],
                "severity_counts": entry.severities,
                "match_regex": match_regex(template, examples),
                "match_literal": match_literal(template),
            }
        )
    results.sort(key=lambda p: (-p["count"], p["pattern"]))
    return {
        "patterns": results[:MAX_PATTERNS],
        "scanned_count": scanned,
        "total_count": total,
        "sampled": scanned < total,
        "sample_coverage_pct": round(100 * pool / total, 2) if total else 100.0,
        "sparkline_buckets": [{"start": start.isoformat(), "end": end.isoformat()} for start, end in buckets],
    }


def _iso(text: str) -> str:
    return parse_ch_datetime(text).isoformat()


def _count(execute: Execute, filters: LogsFilters, windows: list[tuple[dt.datetime, dt.datetime]]) -> int:
    select = Select(
        select=(call("count"),),
        from_=JoinExpr(TableRef("logs")),
        where=ast.and_(_in_windows(windows), filter_conditions(filters, include_time=False)),
    )
    return int(execute(select).rows[0][0])


def _sample(
    execute: Execute, filters: LogsFilters, windows: list[tuple[dt.datetime, dt.datetime]], divisor: int
) -> list[list[Any]]:
    sampled = (
        Compare("=", call("modulo", call("cityHash64", Field("uuid")), Constant(divisor)), Constant(0))
        if divisor > 1
        else None
    )
    select = Select(
        select=(
            # the body as PostHog mines it, prepared by the store: whitespace runs collapsed, 512 characters
            call(
                "substringUTF8",
                call("trimBoth", call("replaceRegexpAll", Field("body"), Constant(r"\s+"), Constant(" "))),
                Constant(1),
                Constant(BODY_MAX_CHARS),
            ),
            Field("severity_text"),
            Field("service_name"),
            Alias(Field("timestamp"), "_timestamp"),
        ),
        from_=JoinExpr(TableRef("logs")),
        where=ast.and_(_in_windows(windows), filter_conditions(filters, include_time=False), sampled),
        limit=SAMPLE_LIMIT,
    )
    return execute(select).rows
