"""The log explorer's aggregates over HTTP: ``sparkline/``, ``count-ranges/``, ``services/``,
``facet_values/`` and ``group-by/`` under ``/api/projects/<id>/logs/``.

One module-wide data set, inserted straight into the store (so every log sits at an exact timestamp, days
back if need be) with the app's clock frozen at ``NOW``, an hour boundary. Each window lies in its own
hour so a query over one window sees nothing else:

- ``EDGE`` (``NOW - 3h``): logs on, and a microsecond either side of, the edges of a range that starts and
  ends 30.5 s into a minute, where whole minutes come from the ``log_counts`` rollup and the partial ones
  from the logs;
- ``SPREAD`` (``NOW - 5h``): 13 services plus the empty one, each in its own minute, for top-10 + "other";
- ``SHOP`` (``NOW - 7h``): six services with known severities, attributes, resources and trace ids for
  services, facets and group-by;
- ``MANY`` (``NOW - 9h``): 27 services, for the 25-service cap of the services sparkline;
- ``FINE`` (``NOW - 11h``): logs seconds apart, for count-ranges finer than a minute;
- ``DAYS`` (15 to 5 days back): logs days apart, for daily count-ranges and ``date_from: "all"``.

A second project holds its own logs in the same windows (and an earlier first log); no answer for the
first project may include them. Counts in the expectations are written out by hand from these tables.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests._log_tables import log_bytes, log_row
from tests.api._support import World, assert_error, iso_z, store_world
from tests.conftest import Env

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
US = dt.timedelta(microseconds=1)
SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
OTHER = "$$_posthog_breakdown_other_$$"
NO_VALUE = "(no value)"


def iso_s(moment: dt.datetime) -> str:
    """``2026-01-01T10:00:00Z``: how aggregates write bucket times."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def between(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    return {"date_from": iso_z(start), "date_to": iso_z(end)}


def align(moment: dt.datetime, seconds: int) -> dt.datetime:
    """The start of ``moment``'s bucket of ``seconds``, buckets counted from the Unix epoch."""
    epoch = int(moment.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % seconds, dt.UTC)


# --- EDGE: the range [E_FROM, E_TO) starts and ends 30.5 s into a minute ------------------------------------

E0 = NOW - 3 * HOUR
E_FROM = E0 + dt.timedelta(seconds=30.5)
E_TO = E0 + 60 * MINUTE + dt.timedelta(seconds=30.5)
E_RANGE = between(E_FROM, E_TO)

# (when, severity, minute bucket of the range or None when outside it)
EDGE_PLAN: list[tuple[dt.datetime, str, int | None]] = [
    (E0 + 10 * SECOND, "info", None),
    (E_FROM - US, "info", None),
    (E_FROM, "error", 0),
    (E0 + 45 * SECOND, "warn", 0),
    (E0 + MINUTE - US, "info", 0),
    (E0 + MINUTE, "info", 1),
    *[(E0 + 30 * MINUTE + 5 * SECOND, level, 30) for level in ("info",) * 3 + ("error",) * 2],
    *[(E0 + 30 * MINUTE + 5 * SECOND, level, 30) for level in ("debug", "fatal", "trace")],
    (E0 + 60 * MINUTE - US, "warn", 59),
    (E0 + 60 * MINUTE, "error", 60),
    (E_TO - US, "info", 60),
    (E_TO, "fatal", None),
    (E0 + 60 * MINUTE + 45 * SECOND, "info", None),
    (E0 + 61 * MINUTE, "info", None),
]
EDGE = [
    log_row(when, body=f"edge {i} ✓", severity=level, service="edge-svc", attributes={"k": "välue" * (i % 3)})
    for i, (when, level, _) in enumerate(EDGE_PLAN)
]
# the first log inside the range weighs a known 31 bytes: "edge é" (7) + "ключ" (8) + "значение" (16)
EDGE[2] = log_row(E_FROM, body="edge é", severity="error", service="edge-svc", attributes={"ключ": "значение"})
EDGE_IN = [(row, plan[2]) for row, plan in zip(EDGE, EDGE_PLAN, strict=True) if plan[2] is not None]


def edge_bytes(bucket: int, level: str) -> int:
    return sum(log_bytes(row) for row, b in EDGE_IN if b == bucket and row["severity_text"] == level)


# --- SPREAD: service svc-XX has 14 - XX logs in minute XX; the empty service 5 logs in minute 20 --------------

S0 = NOW - 5 * HOUR
S_RANGE = between(S0, S0 + HOUR)
SPREAD = [
    log_row(S0 + k * MINUTE + i * SECOND, body=("y" * 1000 if k == 13 else "x" * 10), service=f"svc-{k:02d}")
    for k in range(1, 14)
    for i in range(14 - k)
] + [log_row(S0 + 20 * MINUTE + i * SECOND, body="x" * 10, service="") for i in range(5)]

# --- SHOP: services, severities, attributes, resources --------------------------------------------------------

V0 = NOW - 7 * HOUR
V_RANGE = between(V0, V0 + HOUR)
T1 = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
T2 = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
NAMESPACE = {"checkout": "prod", "payments": "prod", "auth": "staging", "Search-API": "staging", "mailer": "dev"}
GET_CART = {"http.route": "/cart", "http.method": "GET"}
POST_PAY = {"http.route": "/pay", "http.method": "POST"}
POST_CHARGE = {"http.route": "/charge", "http.method": "POST"}
# (logs, service, severity, minute, attributes, trace id)
SHOP_PLAN: list[tuple[int, str, str, int, dict[str, str], bytes]] = [
    (2, "checkout", "trace", 5, GET_CART, b""),
    (3, "checkout", "debug", 5, GET_CART, b""),
    (6, "checkout", "info", 5, GET_CART, b""),
    (2, "checkout", "info", 5, POST_PAY, b""),
    (2, "checkout", "info", 40, POST_PAY, b""),
    (2, "checkout", "warn", 40, POST_PAY, b""),
    (2, "checkout", "warn", 40, {"http.method": "GET"}, b""),
    (3, "checkout", "error", 40, POST_PAY, b""),
    (2, "checkout", "error", 40, {"http.route": "", "http.method": "POST"}, b""),
    (1, "checkout", "fatal", 40, {"http.route": "/cart", "http.method": "POST"}, b""),
    (5, "payments", "info", 10, POST_CHARGE, b""),
    (2, "payments", "info", 10, {"http.route": "/refund", "http.method": "POST"}, b""),
    (2, "payments", "error", 10, POST_CHARGE, T1),
    (1, "auth", "fatal", 15, {"http.route": "/login", "http.method": "POST"}, T2),
    (2, "auth", "info", 15, {"http.route": "/login", "http.method": "GET"}, b""),
    (1, "", "info", 20, {}, b""),
    (1, "", "debug", 20, {"http.method": "GET"}, b""),
    (6, "Search-API", "info", 25, {"http.route": "/search", "http.method": "GET"}, b""),
    (1, "Search-API", "warn", 25, {"http.route": "/search", "http.method": "GET"}, b""),
]


def _shop() -> list[dict[str, Any]]:
    """Logs of SHOP_PLAN: the j-th log of a minute at j s + 123456 µs; mailer's one log ends the hour."""
    rows, per_minute = [], {}
    for logs, service, level, minute, attributes, trace in SHOP_PLAN:
        for _ in range(logs):
            j = per_minute.get(minute, 0)
            per_minute[minute] = j + 1
            when = V0 + minute * MINUTE + j * SECOND + dt.timedelta(microseconds=123456)
            resource = {"k8s.namespace": NAMESPACE[service]} if service in NAMESPACE else {}
            rows.append(
                log_row(when, body=f"shop {service} {level}", severity=level, service=service,
                        attributes=attributes, resource=resource, trace_id=trace, span_id=trace[:8])
            )  # fmt: skip
    rows.append(
        log_row(V0 + HOUR - US, body="sent", service="mailer",
                attributes={"http.route": "/send", "http.method": "POST"}, resource={"k8s.namespace": "dev"})
    )  # fmt: skip
    return rows


SHOP = _shop()


def shop_last(minute: int, j: int) -> str:
    """last_seen of the j-th log of a SHOP minute, as group-by writes it."""
    return (V0 + minute * MINUTE + j * SECOND + dt.timedelta(microseconds=123456)).isoformat()


# --- MANY, FINE, DAYS -----------------------------------------------------------------------------------------

M0 = NOW - 9 * HOUR
M_RANGE = between(M0, M0 + HOUR)
MANY = [log_row(M0 + i * MINUTE, body="m", service=f"m-{i:02d}") for i in range(27) for _ in range(i + 1)]

F0 = NOW - 11 * HOUR
FINE_OFFSETS = [0.0, 9.999999, 10.0, 10.0, 35.0, 99.999999, 100.0, -0.000001]
FINE = [log_row(F0 + dt.timedelta(seconds=s), body="fine", service="fine") for s in FINE_OFFSETS]

D0 = dt.datetime.combine(NOW.date(), dt.time(), dt.UTC) - 15 * DAY
DAYS_OFFSETS = [DAY + 5 * HOUR] * 3 + [5 * DAY - US] * 2 + [9 * DAY, 10 * DAY, -US]
DAYS = [log_row(D0 + offset, body="day", service="daily") for offset in DAYS_OFFSETS]

# --- the other project ------------------------------------------------------------------------------------------

INTRUDER = [
    log_row(when, body="edge intruder", severity="error", service=service, attributes={"http.route": "/intrusion"},
            resource={"k8s.namespace": "prod"}, trace_id=T1)
    for when, service in [
        (E_FROM, "edge-svc"), (E0 + 30 * MINUTE + 5 * SECOND, "intruder"), (S0 + MINUTE, "svc-01"),
        (S0 + 30 * MINUTE, "intruder"), (V0 + 5 * MINUTE, "checkout"), (V0 + 10 * MINUTE, "intruder"),
        (M0, "m-00"), (F0, "fine"), (D0 + DAY + 5 * HOUR, "daily"), (D0 - 2 * DAY, "intruder"),
    ]
]  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(module_env: Env) -> World:
    """The module's app, clock frozen at ``NOW``, with both projects' logs stored."""
    return store_world(module_env, NOW, [EDGE, SPREAD, SHOP, MANY, FINE, DAYS], INTRUDER)


@pytest.fixture
def env(world: World) -> Env:
    return world.env


async def post(
    env: Env, route: str, query: Any, *, project_id: int | None = None, key: str | None = None, wrap: bool = True
) -> httpx.Response:
    pid = project_id or env.project.id
    body = {"query": query} if wrap else query
    return await env.client.post(f"/api/projects/{pid}/logs/{route}/", json=body, headers=env.auth(key))


async def ok(env: Env, route: str, query: Any, **kwargs: Any) -> Any:
    response = await post(env, route, query, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def spine(
    start: dt.datetime, step: dt.timedelta, buckets: int, filled: dict[int, list[tuple[str, int, int]]], key: str
) -> list[dict[str, Any]]:
    """Expected sparkline rows: every bucket, the ``filled`` ones with their (label, count, bytes) series."""
    rows = []
    for i in range(buckets):
        for label, count, size in filled.get(i, [(NO_VALUE, 0, 0)]):
            rows.append({"time": iso_s(start + i * step), key: label, "count": count, "bytes_uncompressed": size})
    return rows


# --- sparkline ---------------------------------------------------------------------------------------------------

EDGE_SERIES = {
    0: [("error", 1, 31), ("info", 1, edge_bytes(0, "info")), ("warn", 1, edge_bytes(0, "warn"))],
    1: [("info", 1, edge_bytes(1, "info"))],
    30: [(level, n, edge_bytes(30, level)) for level, n in
         [("debug", 1), ("error", 2), ("fatal", 1), ("info", 3), ("trace", 1)]],
    59: [("warn", 1, edge_bytes(59, "warn"))],
    60: [("error", 1, edge_bytes(60, "error")), ("info", 1, edge_bytes(60, "info"))],
}  # fmt: skip


async def test_sparkline_counts_partial_edge_minutes_exactly(env: Env) -> None:
    """Over a range starting and ending 30.5 s into a minute, a log at date_from counts and one at date_to
    does not, to the microsecond; 61 one-minute buckets, the empty ones zero-filled as "(no value)"."""
    rows = await ok(env, "sparkline", {"dateRange": E_RANGE})
    assert rows == spine(E0, MINUTE, 61, EDGE_SERIES, "severity")
    assert len(rows) == 68
    assert sum(r["count"] for r in rows) == len(EDGE_IN) == 15


@pytest.mark.parametrize(
    "extra",
    [
        {"searchTerm": "EDGE"},
        {"filterGroup": [{"type": "log", "key": "message", "operator": "icontains", "value": "edge"}]},
        {"filterGroup": [{"type": "log_resource_attribute", "key": "service.name", "operator": "is_set"}]},
    ],
    ids=["searchTerm", "filterGroup-message", "filterGroup-resource"],
)
async def test_sparkline_raw_path_equals_rollup_path(env: Env, extra: dict[str, Any]) -> None:
    """Filters the rollup cannot answer (search text, attributes) read the logs, with the same numbers."""
    raw = await ok(env, "sparkline", {"dateRange": E_RANGE, **extra})
    assert raw == await ok(env, "sparkline", {"dateRange": E_RANGE})
    assert raw == spine(E0, MINUTE, 61, EDGE_SERIES, "severity")


async def test_sparkline_severity_filter_on_rollup(env: Env) -> None:
    """severityLevels keeps only those levels, in the rollup minutes and the partial edge minutes alike."""
    rows = await ok(env, "sparkline", {"dateRange": E_RANGE, "severityLevels": ["error", "fatal"]})
    series = {b: [s for s in v if s[0] in ("error", "fatal")] for b, v in EDGE_SERIES.items()}
    assert rows == spine(E0, MINUTE, 61, {b: v for b, v in series.items() if v}, "severity")
    assert [(r["time"], r["severity"], r["count"]) for r in rows if r["count"]] == [
        (iso_s(E0), "error", 1),
        (iso_s(E0 + 30 * MINUTE), "error", 2),
        (iso_s(E0 + 30 * MINUTE), "fatal", 1),
        (iso_s(E0 + 60 * MINUTE), "error", 1),
    ]


async def test_sparkline_below_a_minute_reads_logs(env: Env) -> None:
    """A 5-minute range has 5-second buckets (60 of them), counted from the logs themselves."""
    start = E0 + 28 * MINUTE
    rows = await ok(env, "sparkline", {"dateRange": between(start, start + 5 * MINUTE)})
    assert rows == spine(start, 5 * SECOND, 60, {25: EDGE_SERIES[30]}, "severity")


SPREAD_BY_COUNT = {
    **{k: [(f"svc-{k:02d}", 14 - k, 10 * (14 - k))] for k in range(1, 10)},
    **{k: [(OTHER, 14 - k, 10 * (14 - k))] for k in range(10, 13)},
    13: [(OTHER, 1, 1000)],
    20: [(NO_VALUE, 5, 50)],
}
SPREAD_BY_BYTES = {
    **{k: [(f"svc-{k:02d}", 14 - k, 10 * (14 - k))] for k in range(1, 9)},
    **{k: [(OTHER, 14 - k, 10 * (14 - k))] for k in range(9, 13)},
    13: [("svc-13", 1, 1000)],
    20: [(NO_VALUE, 5, 50)],
}


async def test_sparkline_by_service_keeps_top_ten_and_folds_the_rest(env: Env) -> None:
    """By service: the 10 biggest (empty service as "(no value)", ties by name) keep their series; the
    other four services become "$$_posthog_breakdown_other_$$"."""
    rows = await ok(env, "sparkline", {"dateRange": S_RANGE, "sparklineBreakdownBy": "service"})
    assert rows == spine(S0, MINUTE, 60, SPREAD_BY_COUNT, "service")
    labels = {r["service"] for r in rows if r["count"]}
    assert labels == {f"svc-{k:02d}" for k in range(1, 10)} | {NO_VALUE, OTHER}


async def test_sparkline_ranked_by_bytes(env: Env) -> None:
    """Ranked by bytes, svc-13's single 1000-byte log makes the top 10 and svc-09 (50 bytes, tied with the
    empty service and losing on name) joins "other"."""
    query = {"dateRange": S_RANGE, "sparklineBreakdownBy": "service", "sparklineRankBy": "bytes"}
    assert await ok(env, "sparkline", query) == spine(S0, MINUTE, 60, SPREAD_BY_BYTES, "service")


async def test_sparkline_rows_ordered_by_time_then_label(env: Env) -> None:
    """Within a bucket the series are in label order ("$$..." before letters)."""
    rows = await ok(env, "sparkline", {"dateRange": E_RANGE, "sparklineBreakdownBy": "service"})
    assert [(r["time"], r["service"], r["count"]) for r in rows if r["count"]] == [
        (iso_s(E0), "edge-svc", 3),
        (iso_s(E0 + MINUTE), "edge-svc", 1),
        (iso_s(E0 + 30 * MINUTE), "edge-svc", 8),
        (iso_s(E0 + 59 * MINUTE), "edge-svc", 1),
        (iso_s(E0 + 60 * MINUTE), "edge-svc", 2),
    ]
    keys = [(r["time"], r["severity"]) for r in await ok(env, "sparkline", {"dateRange": E_RANGE})]
    assert keys == sorted(keys)


ANCHOR = dt.datetime.combine(NOW.date(), dt.time(), dt.UTC) - 80 * DAY  # a midnight with no logs near it
ZERO = dt.timedelta(0)


@pytest.mark.parametrize(
    ("offset", "span", "step", "buckets"),
    [
        (ZERO, 10 * SECOND, 1, 10),
        (ZERO, 5 * MINUTE, 5, 60),
        (ZERO, 10 * MINUTE, 10, 60),
        (ZERO, HOUR, 60, 60),
        (ZERO, 6 * HOUR, 300, 72),
        (ZERO, 12 * HOUR, 900, 48),
        (ZERO, DAY, 1800, 48),
        (15 * MINUTE, DAY, 1800, 49),
        (ZERO, 2 * DAY, 3600, 48),
        (ZERO, 7 * DAY, 14400, 42),
        (ZERO, 30 * DAY, 43200, 60),
    ],
    ids=["10s", "5m", "10m", "1h", "6h", "12h", "24h", "24h-unaligned", "2d", "7d", "30d"],
)
async def test_sparkline_bucket_width(
    env: Env, offset: dt.timedelta, span: dt.timedelta, step: int, buckets: int
) -> None:
    """The bucket width is the standard width nearest to span / 50; every bucket of the range is present,
    zero-filled, the first aligned at or before date_from."""
    start = ANCHOR + offset
    rows = await ok(env, "sparkline", {"dateRange": between(start, start + span)})
    assert rows == spine(ANCHOR, dt.timedelta(seconds=step), buckets, {}, "severity")


async def test_sparkline_default_range_is_last_hour(env: Env) -> None:
    """Without dateRange the sparkline covers the last hour: 60 empty one-minute buckets."""
    rows = await ok(env, "sparkline", {})
    assert rows == spine(NOW - HOUR, MINUTE, 60, {}, "severity")


# --- count-ranges ------------------------------------------------------------------------------------------------


def ranges(step: dt.timedelta, *buckets: tuple[dt.datetime, int]) -> list[dict[str, Any]]:
    return [{"date_from": iso_s(t), "date_to": iso_s(t + step), "count": n} for t, n in buckets]


async def test_count_ranges_default_ten_buckets(env: Env) -> None:
    """targetBuckets defaults to 10: an hour in 5-minute buckets, empty ones left out, oldest first."""
    body = await ok(env, "count-ranges", {"dateRange": S_RANGE})
    step = 5 * MINUTE
    expected = ranges(step, (S0, 46), (S0 + step, 35), (S0 + 2 * step, 10), (S0 + 4 * step, 5))
    assert body == {"ranges": expected, "interval": "5m"}


async def test_count_ranges_edges_are_exact(env: Env) -> None:
    """Partial first and last minutes count exactly; the last bucket starts before date_to, ends after it."""
    body = await ok(env, "count-ranges", {"dateRange": E_RANGE})
    step = 5 * MINUTE
    assert body == {
        "ranges": ranges(step, (E0, 4), (E0 + 30 * MINUTE, 8), (E0 + 55 * MINUTE, 1), (E0 + 60 * MINUTE, 2)),
        "interval": "5m",
    }
    searched = await ok(env, "count-ranges", {"dateRange": E_RANGE, "searchTerm": "edge"})
    assert searched == body


async def test_count_ranges_per_minute(env: Env) -> None:
    """targetBuckets 60 over an hour gives one-minute buckets: one range per non-empty minute."""
    body = await ok(env, "count-ranges", {"dateRange": S_RANGE, "targetBuckets": 60})
    expected = ranges(MINUTE, *[(S0 + k * MINUTE, 14 - k) for k in range(1, 14)], (S0 + 20 * MINUTE, 5))
    assert body == {"ranges": expected, "interval": "1m"}


async def test_count_ranges_seconds(env: Env) -> None:
    """100 s in 10 buckets: 10-second buckets read from the logs, date_from in, date_to out."""
    body = await ok(env, "count-ranges", {"dateRange": between(F0, F0 + 100 * SECOND)})
    step = 10 * SECOND
    assert body == {
        "ranges": ranges(step, (F0, 2), (F0 + step, 2), (F0 + 3 * step, 1), (F0 + 9 * step, 1)),
        "interval": "10s",
    }


async def test_count_ranges_sixty_seconds(env: Env) -> None:
    """An ideal step under a minute that rounds up to 60 s is written "60s", as PostHog does."""
    body = await ok(env, "count-ranges", {"dateRange": between(F0, F0 + 8 * MINUTE)})
    assert body == {"ranges": ranges(MINUTE, (F0, 5), (F0 + MINUTE, 2)), "interval": "60s"}


async def test_count_ranges_days(env: Env) -> None:
    """Ten days in 10 buckets: whole UTC days; a log a microsecond before midnight stays in its day."""
    body = await ok(env, "count-ranges", {"dateRange": between(D0, D0 + 10 * DAY)})
    assert body == {"ranges": ranges(DAY, (D0 + DAY, 3), (D0 + 4 * DAY, 2), (D0 + 9 * DAY, 1)), "interval": "1d"}


async def test_count_ranges_two_hours_starts_before_date_from(env: Env) -> None:
    """One bucket for two hours is two hours wide and epoch-aligned, so it may start before date_from."""
    body = await ok(env, "count-ranges", {"dateRange": between(S0, S0 + 2 * HOUR), "targetBuckets": 1})
    assert body == {"ranges": ranges(2 * HOUR, (align(S0, 7200), 96)), "interval": "2h"}


async def test_count_ranges_all_time_starts_at_first_log(env: Env) -> None:
    """date_from "all" starts at the minute of the project's own first log (not the other project's)."""
    body = await ok(env, "count-ranges", {"dateRange": {"date_from": "all", "date_to": iso_z(D0 + 2 * DAY)}})
    # span 2 days and 1 minute / 10 -> 4 h buckets
    assert body == {"ranges": ranges(4 * HOUR, (D0 - 4 * HOUR, 1), (D0 + DAY + 4 * HOUR, 3)), "interval": "4h"}


async def test_count_ranges_with_filters(env: Env) -> None:
    """serviceNames and severityLevels narrow the counts."""
    query = {"dateRange": V_RANGE, "targetBuckets": 60, "severityLevels": ["error", "fatal"]}
    body = await ok(env, "count-ranges", query)
    expected = ranges(MINUTE, (V0 + 10 * MINUTE, 2), (V0 + 15 * MINUTE, 1), (V0 + 40 * MINUTE, 6))
    assert body == {"ranges": expected, "interval": "1m"}
    body = await ok(env, "count-ranges", {**query, "serviceNames": ["auth"]})
    assert body == {"ranges": ranges(MINUTE, (V0 + 15 * MINUTE, 1)), "interval": "1m"}


@pytest.mark.parametrize(
    ("span", "target", "interval"),
    [
        (10 * SECOND, 10, "1s"),
        (50 * SECOND, 10, "5s"),
        (100 * SECOND, 10, "10s"),
        (8 * MINUTE, 10, "60s"),
        (10 * MINUTE, 10, "1m"),
        (20 * MINUTE, 10, "2m"),
        (50 * MINUTE, 10, "5m"),
        (100 * MINUTE, 10, "10m"),
        (150 * MINUTE, 10, "15m"),
        (5 * HOUR, 10, "30m"),
        (10 * HOUR, 10, "1h"),
        (20 * HOUR, 10, "2h"),
        (40 * HOUR, 10, "4h"),
        (60 * HOUR, 10, "6h"),
        (5 * DAY, 10, "12h"),
        (10 * DAY, 10, "1d"),
        (HOUR, 1, "1h"),
        (DAY, 100, "15m"),
        (365 * DAY, 2, "1d"),
    ],
)
async def test_count_ranges_interval_names(env: Env, span: dt.timedelta, target: int, interval: str) -> None:
    """The interval is the standard width nearest to span / targetBuckets, written Ns, Nm, Nh or Nd."""
    body = await ok(env, "count-ranges", {"dateRange": between(ANCHOR - span, ANCHOR), "targetBuckets": target})
    assert body == {"ranges": [], "interval": interval}


@pytest.mark.parametrize("target", [0, -1, 101, 10**9, "10", 2.5, True])
async def test_count_ranges_rejects_bad_target_buckets(env: Env, target: Any) -> None:
    """targetBuckets must be an integer from 1 to 100."""
    response = await post(env, "count-ranges", {"dateRange": S_RANGE, "targetBuckets": target})
    assert_error(response, 400, type="validation_error", code="invalid_input", attr="targetBuckets")


@pytest.mark.parametrize("target", [1, 100])
async def test_count_ranges_accepts_target_bounds(env: Env, target: int) -> None:
    """1 and 100 are accepted, and count every log of the range."""
    body = await ok(env, "count-ranges", {"dateRange": S_RANGE, "targetBuckets": target})
    assert sum(r["count"] for r in body["ranges"]) == 96


# --- services ----------------------------------------------------------------------------------------------------


def service(name: str, logs: int, errors: int, rate: float, share: float, breakdown: tuple[int, ...]) -> dict[str, Any]:
    return {
        "service_name": name,
        "log_count": logs,
        "error_count": errors,
        "error_rate": rate,
        "volume_share_pct": share,
        "severity_breakdown": dict(zip(("debug", "info", "warn", "error"), breakdown, strict=True)),
        "active_rules": [],
    }


SHOP_SERVICES = [
    service("checkout", 25, 6, 0.24, 53.19, (5, 10, 4, 6)),
    service("payments", 9, 2, 0.2222, 19.15, (0, 7, 0, 2)),
    service("Search-API", 7, 0, 0.0, 14.89, (0, 6, 1, 0)),
    service("auth", 3, 1, 0.3333, 6.38, (0, 2, 0, 1)),
    service("(no service)", 2, 0, 0.0, 4.26, (1, 1, 0, 0)),
    service("mailer", 1, 0, 0.0, 2.13, (0, 1, 0, 0)),
]
SHOP_SPARKLINE = [
    {"time": iso_s(V0 + 5 * MINUTE), "service_name": "checkout", "count": 13},
    {"time": iso_s(V0 + 10 * MINUTE), "service_name": "payments", "count": 9},
    {"time": iso_s(V0 + 15 * MINUTE), "service_name": "auth", "count": 3},
    {"time": iso_s(V0 + 20 * MINUTE), "service_name": "(no service)", "count": 2},
    {"time": iso_s(V0 + 25 * MINUTE), "service_name": "Search-API", "count": 7},
    {"time": iso_s(V0 + 40 * MINUTE), "service_name": "checkout", "count": 12},
    {"time": iso_s(V0 + 59 * MINUTE), "service_name": "mailer", "count": 1},
]


async def test_services(env: Env) -> None:
    """Per service: logs, errors (error + fatal), 4-dp error rate, severity buckets (debug = trace + debug),
    2-dp share, by volume; the empty service is "(no service)"; summary of the top five."""
    body = await ok(env, "services", {"dateRange": V_RANGE})
    assert body == {
        "services": SHOP_SERVICES,
        "sparkline": SHOP_SPARKLINE,
        "summary": {"top_services_count": 5, "top_services_volume_share_pct": 97.87},
        "total_services": 6,
    }


async def test_services_raw_path_matches(env: Env) -> None:
    """With a search term every log matches, the logs are read instead of the rollup, and nothing changes."""
    body = await ok(env, "services", {"dateRange": V_RANGE})
    for extra in ({"searchTerm": "S"}, {"filterGroup": [{"type": "log", "key": "message", "operator": "is_set"}]}):
        assert await ok(env, "services", {"dateRange": V_RANGE, **extra}) == body


@pytest.mark.parametrize(
    ("search", "names"),
    [
        ("API", ["Search-API"]),
        ("api", ["Search-API"]),
        ("a", ["payments", "Search-API", "auth", "mailer"]),
        ("nothing", []),
        ("", ["checkout", "payments", "Search-API", "auth", "(no service)", "mailer"]),
    ],
)
async def test_services_name_search(env: Env, search: str, names: list[str]) -> None:
    """serviceNameSearch keeps services whose name contains it, ignoring case; shares are of those listed."""
    body = await ok(env, "services", {"dateRange": V_RANGE, "serviceNameSearch": search})
    assert [s["service_name"] for s in body["services"]] == names
    assert body["total_services"] == len(names)
    if names == ["Search-API"]:
        assert body["services"][0]["volume_share_pct"] == 100.0
        assert body["summary"] == {"top_services_count": 1, "top_services_volume_share_pct": 100.0}
        assert body["sparkline"] == [{"time": iso_s(V0 + 25 * MINUTE), "service_name": "Search-API", "count": 7}]
    if not names:
        assert body == {
            "services": [],
            "sparkline": [],
            "summary": {"top_services_count": 0, "top_services_volume_share_pct": 0},
            "total_services": 0,
        }


@pytest.mark.parametrize("search", ["x" * 201, 5, ["api"]], ids=["201-chars", "number", "list"])
async def test_services_rejects_bad_name_search(env: Env, search: Any) -> None:
    """serviceNameSearch longer than 200 characters, or not a string, is a 400 naming it."""
    response = await post(env, "services", {"dateRange": V_RANGE, "serviceNameSearch": search})
    assert_error(response, 400, type="validation_error", code="invalid_input", attr="serviceNameSearch")


async def test_services_name_search_of_200_chars_is_accepted(env: Env) -> None:
    """Exactly 200 characters is allowed."""
    body = await ok(env, "services", {"dateRange": V_RANGE, "serviceNameSearch": "x" * 200})
    assert body["services"] == []


async def test_services_severity_filter(env: Env) -> None:
    """severityLevels restricts what is counted: only services with such logs are listed."""
    body = await ok(env, "services", {"dateRange": V_RANGE, "severityLevels": ["error", "fatal"]})
    assert [(s["service_name"], s["log_count"], s["error_count"], s["error_rate"], s["volume_share_pct"])
            for s in body["services"]] == [
        ("checkout", 6, 6, 1.0, 66.67), ("payments", 2, 2, 1.0, 22.22), ("auth", 1, 1, 1.0, 11.11),
    ]  # fmt: skip


async def test_services_sparkline_covers_top_25(env: Env) -> None:
    """All 27 services are listed; the sparkline has rows only for the 25 biggest (m-02 to m-26)."""
    body = await ok(env, "services", {"dateRange": M_RANGE})
    assert [(s["service_name"], s["log_count"]) for s in body["services"]] == [
        (f"m-{i:02d}", i + 1) for i in range(26, -1, -1)
    ]
    assert body["total_services"] == 27
    assert body["sparkline"] == [
        {"time": iso_s(M0 + i * MINUTE), "service_name": f"m-{i:02d}", "count": i + 1} for i in range(2, 27)
    ]
    assert body["summary"] == {"top_services_count": 5, "top_services_volume_share_pct": 33.06}
    assert [s["volume_share_pct"] for s in body["services"][:5]] == [7.14, 6.88, 6.61, 6.35, 6.08]


# --- facet values ------------------------------------------------------------------------------------------------

SEVERITY_FACET = [("info", 27), ("error", 7), ("warn", 5), ("debug", 4), ("fatal", 2), ("trace", 2)]
SERVICE_FACET = [("checkout", 25), ("payments", 9), ("Search-API", 7), ("auth", 3), ("", 2), ("mailer", 1)]
ROUTE_FACET = [("/cart", 12), ("/pay", 9), ("/charge", 7), ("/search", 7), ("/login", 3), ("/refund", 2),
               ("/send", 1)]  # fmt: skip


def leaf(type_: str, key: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"type": type_, "key": key, "operator": operator, **({"value": value} if value is not None else {})}


async def facet(env: Env, **query: Any) -> list[tuple[str, int]]:
    body = await ok(env, "facet_values", {"dateRange": V_RANGE, **query})
    assert set(body) == {"results"}
    return [(r["value"], r["count"]) for r in body["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, SEVERITY_FACET),
        ({"severityLevels": ["error"]}, SEVERITY_FACET),
        ({"filterGroup": [leaf("log", "level", "exact", "error")]}, SEVERITY_FACET),
        ({"filterGroup": [leaf("log", "severity_level", "exact", ["warn"])], "severityLevels": ["warn"]},
         SEVERITY_FACET),
        ({"serviceNames": ["payments"], "severityLevels": ["info"]}, [("info", 7), ("error", 2)]),
        ({"filterGroup": [leaf("log_attribute", "http.method", "exact", "GET")]},
         [("info", 14), ("debug", 4), ("warn", 3), ("trace", 2)]),
        ({"facetSearch": "R"}, [("error", 7), ("warn", 5), ("trace", 2)]),
    ],
    ids=["all", "own-level-filter", "own-level-leaf", "own-severity_level-leaf", "service-filter-applies",
         "attribute-filter-applies", "search"],
)  # fmt: skip
async def test_facet_severity(env: Env, query: dict[str, Any], expected: list[tuple[str, int]]) -> None:
    """Severity counts ignore the severity filter (levels and level leaves) but keep every other filter."""
    assert await facet(env, facetField="severity_text", **query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, SERVICE_FACET),
        ({"serviceNames": ["checkout"]}, SERVICE_FACET),
        ({"severityLevels": ["error", "fatal"]}, [("checkout", 6), ("payments", 2), ("auth", 1)]),
        ({"facetSearch": "AY"}, [("payments", 9)]),
        ({"facetSearch": "api", "serviceNames": ["auth"]}, [("Search-API", 7)]),
        ({"searchTerm": "shop"}, SERVICE_FACET[:-1]),
    ],
    ids=["all", "own-filter", "severity-applies", "search", "search-own-filter", "searchTerm-applies"],
)
async def test_facet_service(env: Env, query: dict[str, Any], expected: list[tuple[str, int]]) -> None:
    """Service counts ignore serviceNames; facetSearch matches a substring, ignoring case."""
    assert await facet(env, facetField="service_name", **query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ROUTE_FACET),
        ({"filterGroup": [leaf("log_attribute", "http.route", "exact", "/cart")]}, ROUTE_FACET),
        ({"filterGroup": [leaf("log_attribute", "http.method", "exact", "POST")]},
         [("/pay", 9), ("/charge", 7), ("/refund", 2), ("/cart", 1), ("/login", 1), ("/send", 1)]),
        ({"filterGroup": [leaf("log_attribute", "http.route", "is_not", "/cart"),
                          leaf("log_attribute", "http.method", "exact", "GET")]},
         [("/cart", 11), ("/search", 7), ("/login", 2)]),
        ({"facetSearch": "C"}, [("/cart", 12), ("/charge", 7), ("/search", 7)]),
        ({"severityLevels": ["fatal"]}, [("/cart", 1), ("/login", 1)]),
        ({"filterGroup": [leaf("log_resource_attribute", "http.route", "exact", "/cart")]}, []),
    ],
    ids=["all", "own-leaf", "other-leaf", "own-and-other", "search", "severity", "resource-leaf-same-key"],
)  # fmt: skip
async def test_facet_attribute(env: Env, query: dict[str, Any], expected: list[tuple[str, int]]) -> None:
    """An attribute facet counts that attribute's non-empty values, without its own key's leaves."""
    assert await facet(env, facetAttribute="http.route", **query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, [("prod", 34), ("staging", 10), ("dev", 1)]),
        ({"filterGroup": [leaf("log_resource_attribute", "k8s.namespace", "exact", "dev")]},
         [("prod", 34), ("staging", 10), ("dev", 1)]),
        ({"filterGroup": [leaf("log_attribute", "http.route", "exact", "/login")]}, [("staging", 3)]),
        ({"serviceNames": ["payments", "mailer"]}, [("prod", 9), ("dev", 1)]),
        ({"facetSearch": "ST"}, [("staging", 10)]),
    ],
    ids=["all", "own-leaf", "log-attribute-applies", "services-apply", "search"],
)  # fmt: skip
async def test_facet_resource_attribute(env: Env, query: dict[str, Any], expected: list[tuple[str, int]]) -> None:
    """A resource-attribute facet excludes its own key's leaves and applies the rest."""
    assert await facet(env, facetResourceAttribute="k8s.namespace", **query) == expected


async def test_facet_of_missing_attribute_is_empty(env: Env) -> None:
    """A key no log has gives no values."""
    assert await facet(env, facetAttribute="no.such.key") == []


@pytest.mark.parametrize(
    ("query", "attr"),
    [
        ({}, "query"),
        ({"facetField": "severity_text", "facetAttribute": "http.route"}, "query"),
        ({"facetResourceAttribute": "a", "facetAttribute": "b"}, "query"),
        ({"facetField": "body"}, "facetField"),
        ({"facetField": ""}, "facetField"),
        ({"facetAttribute": 5}, "facetAttribute"),
        ({"facetResourceAttribute": ["k8s.namespace"]}, "facetResourceAttribute"),
        ({"facetField": "service_name", "facetSearch": 3}, "facetSearch"),
        ({"facetField": "service_name", "severityLevels": ["loud"]}, "severityLevels"),
    ],
    ids=["none", "two", "two-attributes", "unknown-field", "empty-field", "number", "list", "search-number",
         "bad-level"],
)  # fmt: skip
async def test_facet_rejects_bad_input(env: Env, query: dict[str, Any], attr: str) -> None:
    """Exactly one facet must be named, with a usable value; otherwise a 400 naming the field."""
    response = await post(env, "facet_values", {"dateRange": V_RANGE, **query})
    assert_error(response, 400, type="validation_error", code="invalid_input", attr=attr)


# --- group-by ----------------------------------------------------------------------------------------------------


async def groups(env: Env, **query: Any) -> dict[str, Any]:
    return await ok(env, "group-by", {"dateRange": V_RANGE, **query})  # type: ignore[no-any-return]


def rows_of(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(values..., log_count, error_count) of each group, checking value repeats values[0]."""
    for group in body["groups"]:
        assert group["value"] == group["values"][0]
    return [(*g["values"], g["log_count"], g["error_count"]) for g in body["groups"]]


ROUTES = [("/cart", 12, 1), ("/pay", 9, 3), ("/charge", 7, 2), ("/search", 7, 0), ("/login", 3, 1),
          ("/refund", 2, 0), ("/send", 1, 0)]  # fmt: skip


async def test_group_by_log_attribute(env: Env) -> None:
    """Groups by a log attribute: logs without it or with it empty are left out of groups and totals."""
    body = await groups(env, groupBy="http.route")
    assert rows_of(body) == ROUTES
    assert (body["total_groups"], body["total_logs"], body["truncated"]) == (7, 41, False)
    assert body["groups"][0]["last_seen"] == shop_last(40, 11)


async def test_group_by_orders(env: Env) -> None:
    """orderGroupsBy error_count and last_seen sort descending, ties by value."""
    by_errors = await groups(env, groupBy="http.route", orderGroupsBy="error_count")
    assert [r[0] for r in rows_of(by_errors)] == ["/pay", "/charge", "/cart", "/login", "/refund", "/search", "/send"]
    by_time = await groups(env, groupBy="http.route", orderGroupsBy="last_seen")
    assert [(g["value"], g["last_seen"]) for g in by_time["groups"]] == [
        ("/send", (V0 + HOUR - US).isoformat()),
        ("/cart", shop_last(40, 11)),
        ("/pay", shop_last(40, 8)),
        ("/search", shop_last(25, 6)),
        ("/login", shop_last(15, 2)),
        ("/charge", shop_last(10, 8)),
        ("/refund", shop_last(10, 6)),
    ]
    default = await groups(env, groupBy="http.route", orderGroupsBy="log_count")
    assert default == await groups(env, groupBy="http.route")


@pytest.mark.parametrize(("limit", "returned"), [(1, 1), (2, 2), (7, 7), (500, 7), (501, 7), (10**6, 7)])
async def test_group_by_limit(env: Env, limit: int, returned: int) -> None:
    """limit cuts the groups (above 500 it is clamped); totals count every group and truncated says so."""
    body = await groups(env, groupBy="http.route", limit=limit)
    assert rows_of(body) == ROUTES[:returned]
    assert (body["total_groups"], body["total_logs"], body["truncated"]) == (7, 41, returned < 7)


@pytest.mark.parametrize(
    ("query", "expected", "total_logs"),
    [
        ({"groupBy": "k8s.namespace", "groupBySource": "resource"},
         [("prod", 34, 8), ("staging", 10, 1), ("dev", 1, 0)], 45),
        ({"groupBy": "severity_level", "groupBySource": "column"},
         [("info", 27, 0), ("error", 7, 7), ("warn", 5, 0), ("debug", 4, 0), ("fatal", 2, 2), ("trace", 2, 0)],
         47),
        ({"groupBy": "service_name", "groupBySource": "column"},
         [("checkout", 25, 6), ("payments", 9, 2), ("Search-API", 7, 0), ("auth", 3, 1), ("mailer", 1, 0)], 45),
        ({"groupBy": "trace_id", "groupBySource": "column"}, [(T1.hex().upper(), 2, 2), (T2.hex().upper(), 1, 1)], 3),
        ({"groupBy": "span_id", "groupBySource": "column"},
         [(T1[:8].hex().upper(), 2, 2), (T2[:8].hex().upper(), 1, 1)], 3),
        ({"groupBy": "http.route", "severityLevels": ["error", "fatal"]},
         [("/pay", 3, 3), ("/charge", 2, 2), ("/cart", 1, 1), ("/login", 1, 1)], 7),
        ({"groupBy": "http.route", "serviceNames": ["payments"], "searchTerm": "ERROR"}, [("/charge", 2, 2)], 2),
        ({"groupBy": "no.such.key"}, [], 0),
    ],
    ids=["resource", "severity", "service", "trace_id", "span_id", "filtered", "searched", "missing-key"],
)  # fmt: skip
async def test_group_by_sources(
    env: Env, query: dict[str, Any], expected: list[tuple[str, int, int]], total_logs: int
) -> None:
    """Resource attributes and columns group too; empty services and unset trace ids are left out."""
    body = await groups(env, **query)
    assert rows_of(body) == expected
    assert (body["total_groups"], body["total_logs"], body["truncated"]) == (len(expected), total_logs, False)


async def test_group_by_two_dimensions(env: Env) -> None:
    """groupBys with two keys groups by both values, listed in request order."""
    body = await groups(env, groupBys=[{"key": "http.route"}, {"key": "http.method", "source": "log"}])
    assert rows_of(body) == [
        ("/cart", "GET", 11, 0), ("/pay", "POST", 9, 3), ("/charge", "POST", 7, 2), ("/search", "GET", 7, 0),
        ("/login", "GET", 2, 0), ("/refund", "POST", 2, 0), ("/cart", "POST", 1, 1), ("/login", "POST", 1, 1),
        ("/send", "POST", 1, 0),
    ]  # fmt: skip
    assert (body["total_groups"], body["total_logs"], body["truncated"]) == (9, 41, False)
    cut = await groups(env, groupBys=[{"key": "http.route"}, {"key": "http.method"}], limit=3)
    assert (len(cut["groups"]), cut["total_groups"], cut["total_logs"], cut["truncated"]) == (3, 9, 41, True)


async def test_group_by_mixed_sources_and_override(env: Env) -> None:
    """groupBys mixes columns and resource attributes, and wins over groupBy."""
    body = await groups(
        env,
        groupBy="http.route",
        groupBys=[{"key": "k8s.namespace", "source": "resource"}, {"key": "service_name", "source": "column"}],
        orderGroupsBy="error_count",
    )
    assert rows_of(body) == [
        ("prod", "checkout", 25, 6), ("prod", "payments", 9, 2), ("staging", "auth", 3, 1),
        ("dev", "mailer", 1, 0), ("staging", "Search-API", 7, 0),
    ]  # fmt: skip
    assert (body["total_groups"], body["total_logs"]) == (5, 45)


@pytest.mark.parametrize(
    ("query", "attr"),
    [
        ({}, "groupBy"),
        ({"groupBy": ""}, "groupBy"),
        ({"groupBy": 5}, "groupBy"),
        ({"groupBy": "x", "groupBySource": "event"}, "groupBy"),
        ({"groupBy": "body", "groupBySource": "column"}, "groupBy"),
        ({"groupBys": []}, "groupBys"),
        ({"groupBys": "http.route"}, "groupBys"),
        ({"groupBys": [{"key": f"k{i}"} for i in range(5)]}, "groupBys"),
        ({"groupBys": [{"key": "a"}, {"key": "a", "source": "log"}]}, "groupBys"),
        ({"groupBys": ["http.route"]}, "groupBys__0"),
        ({"groupBys": [{"key": "a"}, {"key": ""}]}, "groupBys__1"),
        ({"groupBys": [{"key": "a"}, {"key": "b", "source": "span"}]}, "groupBys__1"),
        ({"groupBys": [{"key": {"nested": 1}}]}, "groupBys__0"),
        ({"groupBys": [{"key": "a", "source": ["log"]}]}, "groupBys__0"),
        ({"groupBy": "x", "orderGroupsBy": "value"}, "orderGroupsBy"),
        ({"groupBy": "x", "limit": 0}, "limit"),
        ({"groupBy": "x", "limit": -5}, "limit"),
        ({"groupBy": "x", "limit": "10"}, "limit"),
        ({"groupBy": "x", "limit": 1.5}, "limit"),
        ({"groupBy": "x", "dateRange": {"date_from": "yesterday-ish"}}, "dateRange__date_from"),
    ],
    ids=["none", "empty", "number", "bad-source", "bad-column", "empty-list", "not-a-list", "five", "duplicate",
         "entry-not-object", "empty-key", "entry-bad-source", "unhashable-key", "unhashable-source", "bad-order",
         "limit-0", "limit-negative", "limit-string", "limit-float", "bad-date"],
)  # fmt: skip
async def test_group_by_rejects_bad_input(env: Env, query: dict[str, Any], attr: str) -> None:
    """Each malformed group-by field is a 400 naming it."""
    response = await post(env, "group-by", {"dateRange": V_RANGE, **query})
    assert_error(response, 400, type="validation_error", code="invalid_input", attr=attr)


# --- bad requests common to the POST aggregates ------------------------------------------------------------------

POST_ROUTES = ["sparkline", "count-ranges", "services", "facet_values", "group-by"]
VALID = {
    "sparkline": {},
    "count-ranges": {},
    "services": {},
    "facet_values": {"facetField": "service_name"},
    "group-by": {"groupBy": "http.route"},
}


@pytest.mark.parametrize("route", POST_ROUTES)
@pytest.mark.parametrize(
    ("body", "attr"),
    [([], "query"), ("text", "query"), ({"query": []}, "query"), ({"query": "x"}, "query"), ({"query": 5}, "query")],
    ids=["list", "string", "query-list", "query-string", "query-number"],
)
async def test_non_object_query_is_400(env: Env, route: str, body: Any, attr: str) -> None:
    """A body that is not an object, or whose query is not one, is a 400 naming query."""
    response = await post(env, route, body, wrap=False)
    assert_error(response, 400, type="validation_error", code="invalid_input", attr=attr)


@pytest.mark.parametrize("route", POST_ROUTES)
async def test_malformed_json_body_is_400(env: Env, route: str) -> None:
    """Bytes that are not JSON are a parse error, not a 500."""
    response = await env.client.post(
        f"/api/projects/{env.project.id}/logs/{route}/", content=b'{"query": {', headers=env.auth()
    )
    assert_error(response, 400, type="invalid_request", code="parse_error")


@pytest.mark.parametrize("route", POST_ROUTES)
@pytest.mark.parametrize(
    ("query", "attr"),
    [
        ({"dateRange": {"date_from": "soon"}}, "dateRange__date_from"),
        ({"dateRange": {"date_from": "-1h", "date_to": 5}}, "dateRange__date_to"),
        ({"dateRange": "-1h"}, "dateRange"),
        ({"dateRange": {"date_from": "-1h", "date_to": "-2h"}}, "dateRange"),
        ({"severityLevels": ["loud"]}, "severityLevels"),
        ({"serviceNames": "api"}, "serviceNames"),
        ({"searchTerm": 5}, "searchTerm"),
        ({"filterGroup": [{"type": "nope", "key": "x"}]}, "filterGroup__values__0__values__0__type"),
        ({"resourceFingerprint": "abc"}, "resourceFingerprint"),
    ],
    ids=["date-from", "date-to-type", "range-not-object", "reversed", "level", "services", "search", "filter",
         "fingerprint"],
)  # fmt: skip
async def test_bad_filters_are_400(env: Env, route: str, query: dict[str, Any], attr: str) -> None:
    """The shared filters are checked strictly on every aggregate."""
    response = await post(env, route, {**VALID[route], **query})
    assert_error(response, 400, type="validation_error", code="invalid_input", attr=attr)


@pytest.mark.parametrize(
    ("field", "value"),
    [("sparklineBreakdownBy", "level"), ("sparklineBreakdownBy", 1), ("sparklineRankBy", "size"),
     ("sparklineRankBy", ["count"])],
)  # fmt: skip
async def test_sparkline_rejects_unknown_breakdown_or_rank(env: Env, field: str, value: Any) -> None:
    """Only severity/service breakdowns and count/bytes ranking exist."""
    response = await post(env, "sparkline", {"dateRange": E_RANGE, field: value})
    assert_error(response, 400, type="validation_error", code="invalid_input", attr=field)


@pytest.mark.parametrize("route", POST_ROUTES)
async def test_empty_body_uses_defaults(env: Env, route: str) -> None:
    """An empty body is an empty query: the last hour, which holds no logs here."""
    body = VALID[route]
    response = await env.client.post(
        f"/api/projects/{env.project.id}/logs/{route}/", json={"query": body} if body else None, headers=env.auth()
    )
    assert response.status_code == 200, response.text


# --- projects ----------------------------------------------------------------------------------------------------

ROUTES_WITH_QUERY = {**{route: ("POST", VALID[route]) for route in POST_ROUTES},
                     "attributes": ("GET", None), "values": ("GET", {"key": "http.route"})}  # fmt: skip


async def call(env: Env, route: str, project: Any, *, key: str | None = None, prefix: str = "projects",
               slash: str = "/", auth: bool = True) -> httpx.Response:  # fmt: skip
    method, query = ROUTES_WITH_QUERY[route]
    url = f"/api/{prefix}/{project}/logs/{route}{slash}"
    headers = env.auth(key) if auth else {}
    if method == "POST":
        return await env.client.post(url, json={"query": {"dateRange": V_RANGE, **query}}, headers=headers)
    params = {"dateRange": '{"date_from": "-30d"}', **(query or {})}
    return await env.client.get(url, params=params, headers=headers)


async def test_other_project_sees_only_its_own_logs(world: World) -> None:
    """Every aggregate of the other project counts only its own logs, which the first never sees."""
    env, b = world.env, world.b.id
    spark = await ok(env, "sparkline", {"dateRange": E_RANGE}, project_id=b)
    assert [(r["time"], r["severity"], r["count"]) for r in spark if r["count"]] == [
        (iso_s(E0), "error", 1), (iso_s(E0 + 30 * MINUTE), "error", 1),
    ]  # fmt: skip
    assert (await ok(env, "count-ranges", {"dateRange": S_RANGE}, project_id=b))["ranges"] == ranges(
        5 * MINUTE, (S0, 1), (S0 + 30 * MINUTE, 1)
    )
    services = await ok(env, "services", {"dateRange": V_RANGE}, project_id=b)
    assert [(s["service_name"], s["log_count"]) for s in services["services"]] == [("checkout", 1), ("intruder", 1)]
    facet = await ok(env, "facet_values", {"dateRange": V_RANGE, "facetAttribute": "http.route"}, project_id=b)
    assert facet == {"results": [{"value": "/intrusion", "count": 2}]}
    grouped = await ok(env, "group-by", {"dateRange": V_RANGE, "groupBy": "k8s.namespace", "groupBySource": "resource"},
                       project_id=b)  # fmt: skip
    assert rows_of(grouped) == [("prod", 2, 2)]
    everything = {"dateRange": {"date_from": "all", "date_to": iso_z(NOW)}, "targetBuckets": 1}
    a_total = sum(r["count"] for r in (await ok(env, "count-ranges", everything))["ranges"])
    b_total = sum(r["count"] for r in (await ok(env, "count-ranges", everything, project_id=b))["ranges"])
    assert (a_total, b_total) == (len(EDGE) + len(SPREAD) + len(SHOP) + len(MANY) + len(FINE) + len(DAYS), 10)


@pytest.mark.parametrize("route", list(ROUTES_WITH_QUERY))
async def test_key_scoped_to_other_project_is_403(world: World, route: str) -> None:
    """A key restricted to the other project is denied here, and allowed there."""
    env = world.env
    key = env.new_key(["logs:read"], scoped_teams=[world.b.id])
    denied = await call(env, route, world.a.id, key=key)
    assert_error(denied, 403, type="authentication_error", code="permission_denied",
                 detail=f"API key does not have access to the requested project: ID {world.a.id}.")  # fmt: skip
    assert (await call(env, route, world.b.id, key=key)).status_code == 200


@pytest.mark.parametrize("route", list(ROUTES_WITH_QUERY))
async def test_key_without_logs_scope_is_403(world: World, route: str) -> None:
    """A key without logs:read is denied, naming the scope."""
    env = world.env
    key = env.new_key(["query:read"])
    assert_error(await call(env, route, world.a.id, key=key), 403, type="authentication_error",
                 code="permission_denied", detail="API key missing required scope 'logs:read'")  # fmt: skip


@pytest.mark.parametrize("route", list(ROUTES_WITH_QUERY))
@pytest.mark.parametrize("project", ["99999", "abc", "0"])
async def test_unknown_project_is_404(world: World, route: str, project: str) -> None:
    """An id naming no project is a 404."""
    response = await call(world.env, route, project)
    assert_error(response, 404, type="invalid_request", code="not_found", detail="Project not found.")


@pytest.mark.parametrize("route", list(ROUTES_WITH_QUERY))
async def test_no_key_is_401(world: World, route: str) -> None:
    """Without credentials every aggregate is a 401."""
    response = await call(world.env, route, world.a.id, auth=False)
    assert_error(response, 401, type="authentication_error", code="not_authenticated")


@pytest.mark.parametrize("route", list(ROUTES_WITH_QUERY))
async def test_environments_alias_and_slashes(world: World, route: str) -> None:
    """/api/environments/ answers like /api/projects/, with or without the trailing slash."""
    env = world.env
    answers = [
        await call(env, route, world.a.id, prefix=prefix, slash=slash)
        for prefix in ("projects", "environments")
        for slash in ("/", "")
    ]
    assert [r.status_code for r in answers] == [200] * 4
    assert all(r.json() == answers[0].json() for r in answers)
