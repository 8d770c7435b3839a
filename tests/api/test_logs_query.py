"""LogsQuery through ``POST /api/projects/<id>/logs/query/``: filters, dates, order, limits, cursors, rows.

One module-wide data set, ingested over OTLP/HTTP into project 1 with the app's clock frozen at ``NOW``:

- ``FILTER`` (about ``NOW - 10h``): eleven records on three resources, named by their ``id`` attribute,
  chosen so every operator has a known answer;
- ``RELATIVE`` (the only data within ``NOW - 3h``): records exactly on, and one microsecond before, the
  boundaries of ``-30M``, ``-1h`` and ``-2h``;
- ``CURSOR`` (about ``NOW - 14h``): 250 records, 100 of them sharing one timestamp;
- ``BULK`` (about ``NOW - 18h``): 2100 records for the limit default and clamp.

Timestamps must be within 24 hours of the real time to be kept, which is why ``NOW`` is the real time.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tests.api._otlp import add_resource_logs, encode
from tests.api._support import UUID_RE, assert_error, ids_of, iso_z, parse_iso
from tests.conftest import Env

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
US = dt.timedelta(microseconds=1)

# --- FILTER data set ---------------------------------------------------------------------------------------

F0 = NOW - dt.timedelta(hours=10)
FILTER_RANGE = {"date_from": iso_z(F0 - dt.timedelta(minutes=1)),
                "date_to": iso_z(F0 + dt.timedelta(hours=1))}

T1 = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
S1 = bytes.fromhex("00f067aa0ba902b7")
T2 = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
S2 = bytes.fromhex("b7ad6b7169203331")

API_RESOURCE = {"service.name": "api", "k8s.namespace.name": "prod", "region": "eu-west", "replicas": 3}
WORKER_RESOURCE = {"service.name": "worker", "k8s.namespace.name": "staging", "replicas": 1}

API_RECORDS: list[dict[str, Any]] = [
    dict(body="GET /users 200", severity_text="INFO", severity_number=9, trace_id=T1, span_id=S1,
         event_name="http.request",
         attributes={"id": "a1", "http.status_code": 200, "http.method": "GET", "user": "alice"}),
    dict(body="upstream timeout", severity_number=17, trace_id=T2, span_id=S2,
         attributes={"id": "a2", "http.status_code": "500", "http.method": "POST", "retry": True}),
    dict(body="disk 50% full", severity_number=13, attributes={"id": "a3", "disk.pct": 50.5, "note": "50%"}),
    dict(body="code 500 returned", severity_number=17,
         attributes={"id": "a4", "http.status_code": 500, "path": "/a_c"}),
    dict(body="ÉCHEC DE CONNEXION", severity_number=17, attributes={"id": "a5"}),
]
WORKER_RECORDS: list[dict[str, Any]] = [
    dict(body="Job abc done", severity_number=9, attributes={"id": "w1", "job": "abc", "duration_ms": 1200}),
    dict(body="job a_c failed", severity_number=17, attributes={"id": "w2", "job": "a_c", "duration_ms": 95}),
    dict(body="cache miss", severity_number=5, attributes={"id": "w3"}),
]
BARE_RECORDS: list[dict[str, Any]] = [
    dict(body="fatal crash", severity_number=21, attributes={"id": "n1", "http.status_code": "abc"}),
    dict(body="path C:\\tmp\\x", severity_number=1, attributes={"id": "n2", "user": "Bob"}),
    dict(body="", severity_text="warning", attributes={"id": "n3"}),
]

A = {"a1", "a2", "a3", "a4", "a5"}
W = {"w1", "w2", "w3"}
N = {"n1", "n2", "n3"}
ALL = A | W | N
ERRORS = {"a2", "a4", "a5", "w2"}
A1_MICROS = 123456

# --- RELATIVE data set -------------------------------------------------------------------------------------

RELATIVE = {
    "r_2h_out": NOW - dt.timedelta(hours=2) - US,
    "r_2h": NOW - dt.timedelta(hours=2),
    "r_1h_out": NOW - dt.timedelta(hours=1) - US,
    "r_1h": NOW - dt.timedelta(hours=1),
    "r_30m_out": NOW - dt.timedelta(minutes=30) - US,
    "r_30m": NOW - dt.timedelta(minutes=30),
    "r_1s": NOW - dt.timedelta(seconds=1),
}
NEWEST_FIRST = sorted(RELATIVE, key=RELATIVE.__getitem__, reverse=True)

# --- CURSOR and BULK data sets -----------------------------------------------------------------------------

C0 = NOW - dt.timedelta(hours=14)
CURSOR_RANGE = {"date_from": iso_z(C0 - dt.timedelta(hours=1)), "date_to": iso_z(C0 + dt.timedelta(hours=1))}
SHARED_TS = C0 + dt.timedelta(milliseconds=75, microseconds=500)
B0 = NOW - dt.timedelta(hours=18)
BULK_RANGE = {"date_from": iso_z(B0 - dt.timedelta(minutes=1)), "date_to": iso_z(B0 + dt.timedelta(hours=1))}
BULK_ROWS = 2100


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(module_env: Env) -> Env:
    """The module's app with the clock frozen at ``NOW`` and all four data sets ingested."""
    module_env.services.clock = lambda: NOW
    filter_request = ExportLogsServiceRequest()
    for offset, record in enumerate(API_RECORDS + WORKER_RECORDS + BARE_RECORDS):
        record["time_unix_nano"] = F0 + dt.timedelta(seconds=offset)
    API_RECORDS[0]["time_unix_nano"] = F0 + dt.timedelta(microseconds=A1_MICROS)
    add_resource_logs(filter_request, API_RECORDS, API_RESOURCE, ("checkout", "2.1.0"))
    add_resource_logs(filter_request, WORKER_RECORDS, WORKER_RESOURCE, ("jobs", ""))
    add_resource_logs(filter_request, BARE_RECORDS, None, None)
    bodies = [
        filter_request.SerializeToString(),
        encode([dict(body=name, attributes={"id": name}, time_unix_nano=ts) for name, ts in RELATIVE.items()],
               {"service.name": "clock"}),
        encode([dict(body=f"c{i}", attributes={"id": f"c{i}"},
                     time_unix_nano=C0 + dt.timedelta(milliseconds=i) if i < 150 else SHARED_TS)
                for i in range(250)], {"service.name": "pager"}),
        encode([dict(body=f"b{i}", attributes={"id": f"b{i}"},
                     time_unix_nano=B0 + dt.timedelta(milliseconds=i))
                for i in range(BULK_ROWS)], {"service.name": "bulk"}),
    ]
    for body in bodies:
        response = await module_env.send_otlp(body)
        assert response.status_code == 200, response.text
    module_env.flush()
    return module_env


async def filtered(env: Env, **query: Any) -> set[str]:
    """Ids of the FILTER records matching ``query`` (within the FILTER time range)."""
    response = await env.query({"dateRange": FILTER_RANGE, **query})
    found = ids_of(response)
    assert len(found) == len(set(found)), found
    return set(found)


def leaf(type_: str, key: str, operator: str, value: Any = None) -> dict[str, Any]:
    node = {"type": type_, "key": key, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def grouped(*leaves: dict[str, Any]) -> dict[str, Any]:
    return {"type": "AND", "values": [{"type": "AND", "values": list(leaves)}]}


T1_HEX = T1.hex()
T2_HEX = T2.hex().upper()

LEAF_CASES = [
    # log: message
    ("log", "message", "exact", "upstream timeout", {"a2"}),
    ("log", "message", "is_not", "upstream timeout", ALL - {"a2"}),
    ("log", "message", "icontains", "TIMEOUT", {"a2"}),
    ("log", "message", "icontains", "échec", {"a5"}),
    ("log", "message", "not_icontains", "job", ALL - {"w1", "w2"}),
    ("log", "message", "regex", "^[Jj]ob ", {"w1", "w2"}),
    ("log", "message", "not_regex", "^[a-z]", {"a1", "a5", "w1", "n3"}),
    ("log", "message", "gt", "job", {"a2", "a5", "w2", "n2"}),
    ("log", "message", "lt", "b", {"a1", "w1", "n3"}),
    ("log", "message", "is_set", None, ALL - {"n3"}),
    ("log", "message", "is_not_set", None, {"n3"}),
    ("log", "message", "exact", ["upstream timeout", "cache miss"], {"a2", "w3"}),
    ("log", "message", "is_not", ["upstream timeout", "cache miss"], ALL - {"a2", "w3"}),
    # log: level (the normalised severity text)
    ("log", "level", "exact", "error", ERRORS),
    ("log", "level", "is_not", "error", ALL - ERRORS),
    ("log", "level", "icontains", "ERR", ERRORS),
    ("log", "level", "not_icontains", "e", {"a1", "w1", "a3", "n3", "n1"}),
    ("log", "level", "regex", "^(warn|fatal)$", {"a3", "n3", "n1"}),
    ("log", "level", "not_regex", "^(warn|fatal)$", ALL - {"a3", "n3", "n1"}),
    ("log", "level", "gt", "info", {"n2", "a3", "n3"}),
    ("log", "level", "lt", "error", {"w3"}),
    ("log", "level", "is_set", None, ALL),
    ("log", "level", "is_not_set", None, set()),
    ("log", "level", "exact", ["warn", "fatal"], {"a3", "n3", "n1"}),
    ("log", "level", "is_not", ["info", "error", "warn"], {"w3", "n1", "n2"}),
    ("log", "severity_level", "exact", ["error"], ERRORS),
    # log: service_name
    ("log", "service_name", "exact", "api", A),
    ("log", "service_name", "is_not", "api", W | N),
    ("log", "service_name", "icontains", "WORK", W),
    ("log", "service_name", "not_icontains", "a", W | N),
    ("log", "service_name", "regex", "^w", W),
    ("log", "service_name", "not_regex", "^w", A | N),
    ("log", "service_name", "gt", "b", W),
    ("log", "service_name", "lt", "b", A | N),
    ("log", "service_name", "is_set", None, A | W),
    ("log", "service_name", "is_not_set", None, N),
    ("log", "service_name", "exact", ["api", "worker"], A | W),
    ("log", "service_name", "is_not", ["api", "worker"], N),
    # log: trace_id and span_id (hex, either case)
    ("log", "trace_id", "exact", T1_HEX, {"a1"}),
    ("log", "trace_id", "exact", T1_HEX.upper(), {"a1"}),
    ("log", "trace_id", "is_not", T1_HEX, ALL - {"a1"}),
    ("log", "trace_id", "exact", [T1_HEX, T2_HEX], {"a1", "a2"}),
    ("log", "trace_id", "is_not", [T1_HEX, T2_HEX], ALL - {"a1", "a2"}),
    ("log", "trace_id", "icontains", "a3ce929d", {"a1"}),
    ("log", "trace_id", "not_icontains", "a3ce929d", ALL - {"a1"}),
    ("log", "trace_id", "regex", "^0AF7", {"a2"}),
    ("log", "trace_id", "regex", r"^4\w{31}$", {"a1"}),
    ("log", "trace_id", "not_regex", "^0+$", {"a1", "a2"}),
    ("log", "trace_id", "gt", "4BF9", {"a1"}),
    ("log", "trace_id", "lt", "1A", ALL - {"a1"}),
    ("log", "trace_id", "is_set", None, {"a1", "a2"}),
    ("log", "trace_id", "is_not_set", None, ALL - {"a1", "a2"}),
    ("log", "span_id", "exact", S1.hex(), {"a1"}),
    ("log", "span_id", "is_set", None, {"a1", "a2"}),
    # log_attribute: strings
    ("log_attribute", "user", "exact", "alice", {"a1"}),
    ("log_attribute", "user", "exact", ["alice", "Bob"], {"a1", "n2"}),
    ("log_attribute", "user", "is_not", "alice", ALL - {"a1"}),
    ("log_attribute", "user", "is_not", ["alice", "Bob"], ALL - {"a1", "n2"}),
    ("log_attribute", "user", "icontains", "ALI", {"a1"}),
    ("log_attribute", "user", "icontains", ["ali", "bob"], {"a1", "n2"}),
    ("log_attribute", "user", "not_icontains", "ali", ALL - {"a1"}),
    ("log_attribute", "user", "not_icontains", ["ali", "bob"], ALL - {"a1", "n2"}),
    ("log_attribute", "user", "exact", [], ALL),
    ("log_attribute", "job", "gt", "a_c", {"w1"}),
    ("log_attribute", "note", "icontains", "50%", {"a3"}),
    ("log_attribute", "path", "exact", "/a_c", {"a4"}),
    ("log_attribute", "retry", "exact", "true", {"a2"}),
    ("log_attribute", "retry", "exact", True, {"a2"}),
    ("log_attribute", "retry", "is_set", None, {"a2"}),
    ("log_attribute", "retry", "is_not_set", None, ALL - {"a2"}),
    # log_attribute: numbers ("500" = 500 = "500.0"; "abc" and missing never equal a number)
    ("log_attribute", "http.status_code", "exact", "500", {"a2", "a4"}),
    ("log_attribute", "http.status_code", "exact", 500, {"a2", "a4"}),
    ("log_attribute", "http.status_code", "exact", "500.0", {"a2", "a4"}),
    ("log_attribute", "http.status_code", "exact", ["200", "500"], {"a1", "a2", "a4"}),
    ("log_attribute", "http.status_code", "is_not", "500", ALL - {"a2", "a4"}),
    ("log_attribute", "http.status_code", "is_not", ["200", "500"], ALL - {"a1", "a2", "a4"}),
    ("log_attribute", "http.status_code", "exact", "abc", {"n1"}),
    ("log_attribute", "http.status_code", "regex", r"^5\d\d$", {"a2", "a4"}),
    ("log_attribute", "http.status_code", "not_regex", r"^5\d\d$", ALL - {"a2", "a4"}),
    ("log_attribute", "http.status_code", "gt", 400, {"a2", "a4"}),
    ("log_attribute", "http.status_code", "gt", "400", {"a2", "a4"}),
    ("log_attribute", "http.status_code", "lt", 400, {"a1"}),
    ("log_attribute", "duration_ms", "gt", 100, {"w1"}),
    ("log_attribute", "duration_ms", "lt", 1000, {"w2"}),
    ("log_attribute", "disk.pct", "gt", 50.25, {"a3"}),
    ("log_attribute", "disk.pct", "lt", 50.25, set()),
    # log_resource_attribute
    ("log_resource_attribute", "k8s.namespace.name", "exact", "prod", A),
    ("log_resource_attribute", "k8s.namespace.name", "is_not", "prod", W | N),
    ("log_resource_attribute", "k8s.namespace.name", "icontains", "STAG", W),
    ("log_resource_attribute", "k8s.namespace.name", "not_icontains", "prod", W | N),
    ("log_resource_attribute", "k8s.namespace.name", "regex", "^(prod|staging)$", A | W),
    ("log_resource_attribute", "k8s.namespace.name", "not_regex", "^prod$", W | N),
    ("log_resource_attribute", "k8s.namespace.name", "exact", ["prod", "staging"], A | W),
    ("log_resource_attribute", "k8s.namespace.name", "gt", "q", W),
    ("log_resource_attribute", "replicas", "exact", "3", A),
    ("log_resource_attribute", "replicas", "exact", 3.0, A),
    ("log_resource_attribute", "replicas", "exact", ["1", "3"], A | W),
    ("log_resource_attribute", "replicas", "is_not", ["1", "3"], N),
    ("log_resource_attribute", "replicas", "gt", 2, A),
    ("log_resource_attribute", "replicas", "lt", 2, W),
    ("log_resource_attribute", "region", "is_set", None, A),
    ("log_resource_attribute", "region", "is_not_set", None, W | N),
    ("log_resource_attribute", "service.name", "exact", "worker", W),
]


@pytest.mark.parametrize(
    ("type_", "key", "operator", "value", "expected"),
    LEAF_CASES,
    ids=[f"{t}-{k}-{o}-{v!r}" for t, k, o, v, _ in LEAF_CASES],
)
async def test_filter_leaf(
    env: Env, type_: str, key: str, operator: str, value: Any, expected: set[str]
) -> None:
    """Each operator on each leaf type returns exactly the records it describes."""
    assert await filtered(env, filterGroup=grouped(leaf(type_, key, operator, value))) == expected


MISSING_ATTRIBUTE_CASES = [
    ("exact", "nobody"), ("icontains", "o"), ("regex", "^.*$"), ("gt", 0), ("lt", 10**9), ("gt", "a"),
    ("lt", "zzz"), ("is_set", None),
]


@pytest.mark.parametrize(("operator", "value"), MISSING_ATTRIBUTE_CASES)
@pytest.mark.parametrize("type_", ["log_attribute", "log_resource_attribute"])
async def test_missing_attribute_never_matches_a_positive_operator(
    env: Env, type_: str, operator: str, value: Any
) -> None:
    """A record without the attribute matches no positive operator, whatever the value."""
    assert await filtered(env, filterGroup=grouped(leaf(type_, "no.such.key", operator, value))) == set()


@pytest.mark.parametrize(
    ("operator", "value"),
    [("is_not", "nobody"), ("is_not", 5), ("not_icontains", "o"), ("not_regex", "^x$"), ("is_not_set", None)],
)
@pytest.mark.parametrize("type_", ["log_attribute", "log_resource_attribute"])
async def test_missing_attribute_always_matches_a_negative_operator(
    env: Env, type_: str, operator: str, value: Any
) -> None:
    """A record without the attribute matches every negative operator."""
    assert await filtered(env, filterGroup=grouped(leaf(type_, "no.such.key", operator, value))) == ALL


async def test_nested_or_and_groups(env: Env) -> None:
    """OR and AND groups nest: fatal logs, or api logs with status 500."""
    group = {"type": "OR", "values": [
        leaf("log", "level", "exact", "fatal"),
        {"type": "AND", "values": [
            leaf("log", "service_name", "exact", "api"),
            leaf("log_attribute", "http.status_code", "exact", "500"),
        ]},
    ]}
    assert await filtered(env, filterGroup=group) == {"n1", "a2", "a4"}


async def test_and_of_or_groups(env: Env) -> None:
    """An AND of an OR group and a leaf keeps only records satisfying both."""
    group = {"type": "AND", "values": [
        {"type": "OR", "values": [
            leaf("log", "service_name", "exact", "worker"),
            leaf("log", "service_name", "is_not_set"),
        ]},
        leaf("log", "level", "exact", ["error", "trace"]),
    ]}
    assert await filtered(env, filterGroup=group) == {"w2", "n2"}


async def test_or_of_or_groups_across_leaf_types(env: Env) -> None:
    """Leaves of different types combine in OR groups at any depth."""
    group = {"type": "OR", "values": [
        {"type": "OR", "values": [leaf("log_attribute", "user", "exact", "alice")]},
        {"type": "OR", "values": [
            leaf("log_attribute", "job", "exact", "abc"),
            leaf("log_resource_attribute", "k8s.namespace.name", "exact", "nowhere"),
        ]},
    ]}
    assert await filtered(env, filterGroup=group) == {"a1", "w1"}


async def test_flat_list_filter_group_is_an_and(env: Env) -> None:
    """A flat list of leaves as filterGroup means all of them."""
    flat = [leaf("log", "service_name", "exact", "api"), leaf("log", "level", "exact", "error")]
    assert await filtered(env, filterGroup=flat) == {"a2", "a4", "a5"}


async def test_empty_filter_group_matches_everything(env: Env) -> None:
    """An empty group, or the empty flat list, filters nothing out."""
    assert await filtered(env, filterGroup={"type": "AND", "values": []}) == ALL
    assert await filtered(env, filterGroup=[]) == ALL


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"severityLevels": ["error", "fatal"]}, ERRORS | {"n1"}),
        ({"severityLevels": ["warn"]}, {"a3", "n3"}),
        ({"severityLevels": []}, ALL),
        ({"serviceNames": ["worker"]}, W),
        ({"serviceNames": ["api", "worker"], "severityLevels": ["info"]}, {"a1", "w1"}),
        ({"serviceNames": ["nope"]}, set()),
    ],
)
async def test_severity_levels_and_service_names(env: Env, query: dict[str, Any], expected: set[str]) -> None:
    """severityLevels and serviceNames restrict to those levels and services."""
    assert await filtered(env, **query) == expected


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("TIMEOUT", {"a2"}),
        ("job", {"w1", "w2"}),
        ("50%", {"a3"}),
        ("%", {"a3"}),
        ("a_c", {"w2"}),
        ("_", {"w2"}),
        ("c:\\tmp\\", {"n2"}),
        ("échec", {"a5"}),
        ("no such text", set()),
        ("", ALL),
    ],
)
async def test_search_term(env: Env, term: str, expected: set[str]) -> None:
    """searchTerm is a case-insensitive substring of the body; % _ and \\ are literal characters."""
    assert await filtered(env, searchTerm=term) == expected


async def test_search_term_combines_with_filters(env: Env) -> None:
    """searchTerm, severityLevels and filterGroup all apply together."""
    namespace = leaf("log_resource_attribute", "k8s.namespace.name", "exact", "staging")
    got = await filtered(env, searchTerm="JOB", severityLevels=["error"], filterGroup=grouped(namespace))
    assert got == {"w2"}


# --- dates -------------------------------------------------------------------------------------------------


async def relative_ids(env: Env, date_range: dict[str, Any] | None, **query: Any) -> list[str]:
    doc = dict(query)
    if date_range is not None:
        doc["dateRange"] = date_range
    found = ids_of(await env.query(doc))
    return [i for i in found if i.startswith("r_")]


def newest_first(*names: str) -> list[str]:
    return [n for n in NEWEST_FIRST if n in names]


@pytest.mark.parametrize(
    ("date_range", "expected"),
    [
        ({"date_from": "-30M"}, newest_first("r_1s", "r_30m")),
        ({"date_from": "-30M", "date_to": None}, newest_first("r_1s", "r_30m")),
        ({"date_from": "-1h"}, newest_first("r_1s", "r_30m", "r_30m_out", "r_1h")),
        (None, newest_first("r_1s", "r_30m", "r_30m_out", "r_1h")),
        ({"date_from": "-2h", "date_to": "-1h"}, newest_first("r_1h_out", "r_2h")),
        ({"date_from": "-120M", "date_to": "-30M"}, newest_first("r_30m_out", "r_1h", "r_1h_out", "r_2h")),
        ({"date_from": iso_z(RELATIVE["r_1h"]), "date_to": iso_z(RELATIVE["r_30m"])},
         newest_first("r_1h", "r_30m_out")),
        ({"date_from": iso_z(RELATIVE["r_1h"])[:-1], "date_to": iso_z(RELATIVE["r_30m"])[:-1]},
         newest_first("r_1h", "r_30m_out")),
        ({"date_from": RELATIVE["r_1h"].isoformat(), "date_to": RELATIVE["r_30m"].isoformat()},
         newest_first("r_1h", "r_30m_out")),
        ({"date_from": RELATIVE["r_1h"].astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat(),
          "date_to": RELATIVE["r_30m"].astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat()},
         newest_first("r_1h", "r_30m_out")),
    ],
    ids=["-30M", "-30M-to-null", "-1h", "default-is--1h", "-2h-to--1h", "-120M-to--30M", "iso-Z", "iso-naive",
         "iso-+00:00", "iso-other-offsets"],
)
async def test_date_range_boundaries(
    env: Env, date_range: dict[str, Any] | None, expected: list[str]
) -> None:
    """date_from is inclusive and date_to exclusive, to the microsecond, for relative and ISO dates."""
    assert await relative_ids(env, date_range) == expected


async def test_relative_days(env: Env) -> None:
    """-7d starts exactly seven days before now."""
    later = NOW + dt.timedelta(days=7) - dt.timedelta(hours=2)
    env.services.clock = lambda: later
    try:
        got = await relative_ids(env, {"date_from": "-7d"})
    finally:
        env.services.clock = lambda: NOW
    assert got == newest_first("r_1s", "r_30m", "r_30m_out", "r_1h", "r_1h_out", "r_2h")


@pytest.mark.parametrize(
    ("order", "expected"),
    [("latest", NEWEST_FIRST), ("earliest", NEWEST_FIRST[::-1]), (None, NEWEST_FIRST),
     ("sideways", NEWEST_FIRST)],
)
async def test_order_by(env: Env, order: str | None, expected: list[str]) -> None:
    """orderBy latest is newest first (also the default and the fallback), earliest oldest first."""
    query: dict[str, Any] = {"serviceNames": ["clock"]}
    if order is not None:
        query["orderBy"] = order
    assert await relative_ids(env, {"date_from": "-3h"}, **query) == expected


# --- limit, hasMore, cursor --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "returned"), [(None, 1000), (1, 1), (2000, 2000), (2001, 2000), (10**6, 2000)]
)
async def test_limit_default_and_clamp(env: Env, limit: int | None, returned: int) -> None:
    """limit defaults to 1000 and is clamped to 2000; a full page says hasMore with a cursor."""
    query: dict[str, Any] = {"dateRange": BULK_RANGE}
    if limit is not None:
        query["limit"] = limit
    response = await env.query(query)
    body = response.json()
    assert len(body["results"]) == returned
    assert body["hasMore"] is True
    assert isinstance(body["nextCursor"], str) and body["nextCursor"]
    expected_first = [f"b{BULK_ROWS - 1 - i}" for i in range(returned)]
    assert ids_of(response) == expected_first


async def test_has_more_is_false_on_an_exact_last_page(env: Env) -> None:
    """A page holding the last row says hasMore false and has no cursor."""
    query = {"dateRange": {"date_from": "-3h"}, "serviceNames": ["clock"]}
    body = (await env.query({**query, "limit": len(RELATIVE)})).json()
    assert (len(body["results"]), body["hasMore"], body["nextCursor"]) == (len(RELATIVE), False, None)
    first = (await env.query({**query, "limit": len(RELATIVE) - 1})).json()
    assert first["hasMore"] is True
    last = await env.query({**query, "limit": len(RELATIVE) - 1, "after": first["nextCursor"]})
    assert ids_of(last) == [NEWEST_FIRST[-1]]
    assert (last.json()["hasMore"], last.json()["nextCursor"]) == (False, None)


async def walk(env: Env, order: str, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query: dict[str, Any] = {"dateRange": CURSOR_RANGE, "orderBy": order, "limit": limit}
        if cursor is not None:
            query["after"] = cursor
        body = (await env.query(query)).json()
        rows.extend(body["results"])
        if not body["hasMore"]:
            assert body["nextCursor"] is None
            assert len(body["results"]) <= limit
            return rows
        assert len(body["results"]) == limit
        cursor = body["nextCursor"]
        # the documented cursor: base64 of JSON {"timestamp", "uuid"} of the page's last row
        decoded = json.loads(base64.b64decode(cursor))
        last = body["results"][-1]
        assert parse_iso(decoded["timestamp"]) == parse_iso(last["timestamp"])
        assert decoded["uuid"] == last["uuid"]
    raise AssertionError("cursor walk did not end")


@pytest.mark.parametrize("order", ["latest", "earliest"])
async def test_cursor_walk_visits_every_row_once(env: Env, order: str) -> None:
    """Paging with nextCursor returns all 250 rows exactly once, in order, across 100 equal timestamps."""
    rows = await walk(env, order, limit=7)
    ids = [row["attributes"]["id"] for row in rows]
    assert len(ids) == len(set(ids)) == 250
    assert set(ids) == {f"c{i}" for i in range(250)}
    stamps = [parse_iso(row["timestamp"]) for row in rows]
    assert stamps == sorted(stamps, reverse=(order == "latest"))
    assert sum(1 for s in stamps if s == SHARED_TS) == 100


async def test_cursor_walks_in_both_orders_are_mirror_images(env: Env) -> None:
    """The earliest-first walk is exactly the latest-first walk reversed, ties included."""
    latest = [row["uuid"] for row in await walk(env, "latest", limit=7)]
    earliest = [row["uuid"] for row in await walk(env, "earliest", limit=13)]
    assert earliest == latest[::-1]


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        base64.b64encode(b'{"timestamp": "').decode(),
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b'{"timestamp": "2026-01-01T00:00:00Z"}').decode(),
        base64.b64encode(b'{"timestamp": "soon", "uuid": "0197a0b2-0000-7000-8000-000000000000"}').decode(),
        base64.b64encode(b'{"timestamp": "2026-01-01T00:00:00Z", "uuid": "x\' OR 1=1 --"}').decode(),
        12345,
    ],
    ids=["not-base64", "truncated", "not-json", "no-uuid", "bad-timestamp", "bad-uuid", "not-a-string"],
)
async def test_malformed_cursor_is_a_400_naming_after(env: Env, cursor: Any) -> None:
    """A cursor that is not a previous nextCursor is rejected with attr 'after'."""
    response = await env.query({"dateRange": CURSOR_RANGE, "after": cursor})
    assert_error(response, 400, type="validation_error", code="invalid_input", attr="after")


# --- rows, count, has_logs ---------------------------------------------------------------------------------


async def test_response_envelope(env: Env) -> None:
    """The query response echoes the query and carries PostHog's fixed fields."""
    query = {"dateRange": FILTER_RANGE, "limit": 3, "orderBy": "earliest"}
    body = (await env.query(query)).json()
    assert set(body) == {"query", "results", "hasMore", "nextCursor", "maxExportableLogs", "columns"}
    assert body["query"] == query
    assert (body["maxExportableLogs"], body["columns"], body["hasMore"]) == (10000, None, True)


async def test_row_shape(env: Env) -> None:
    """A row carries exactly PostHog's LogRow fields, with hex ids, name@version scope and ISO times."""
    by_id = leaf("log_attribute", "id", "exact", ["a1", "w1", "n1"])
    response = await env.query({"dateRange": FILTER_RANGE, "filterGroup": grouped(by_id)})
    rows = {row["attributes"]["id"]: row for row in response.json()["results"]}
    a1 = rows["a1"]
    assert set(a1) == {
        "uuid", "timestamp", "observed_timestamp", "body", "severity_text", "severity_number", "level",
        "trace_id", "span_id", "attributes", "resource_attributes", "resource_fingerprint",
        "instrumentation_scope", "event_name", "live_logs_checkpoint",
    }
    assert UUID_RE.match(a1["uuid"]) and a1["uuid"][14] == "7"
    assert parse_iso(a1["timestamp"]) == F0 + dt.timedelta(microseconds=A1_MICROS)
    assert parse_iso(a1["observed_timestamp"]) >= NOW
    parse_iso(a1["live_logs_checkpoint"])
    assert {k: v for k, v in a1.items() if k not in ("uuid", "timestamp", "observed_timestamp",
                                                      "resource_fingerprint", "live_logs_checkpoint")} == {
        "body": "GET /users 200",
        "severity_text": "info",
        "severity_number": 9,
        "level": "info",
        "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736",
        "span_id": "00F067AA0BA902B7",
        "attributes": {"id": "a1", "http.status_code": "200", "http.method": "GET", "user": "alice"},
        "resource_attributes": {"service.name": "api", "k8s.namespace.name": "prod", "region": "eu-west",
                                "replicas": "3"},
        "instrumentation_scope": "checkout@2.1.0",
        "event_name": "http.request",
    }
    w1, n1 = rows["w1"], rows["n1"]
    assert (w1["trace_id"], w1["span_id"]) == ("0" * 32, "0" * 16)
    assert (w1["instrumentation_scope"], n1["instrumentation_scope"]) == ("jobs", "")
    assert n1["resource_attributes"] == {"service.name": ""}
    assert (n1["level"], n1["severity_text"], n1["severity_number"]) == ("fatal", "fatal", 21)
    fingerprints = [rows[i]["resource_fingerprint"] for i in ("a1", "w1", "n1")]
    assert all(isinstance(f, str) and f.isdigit() for f in fingerprints)
    assert len(set(fingerprints)) == 3


async def test_same_resource_same_fingerprint_and_filter(env: Env) -> None:
    """Records of one resource share resource_fingerprint, and resourceFingerprint selects exactly them."""
    rows = (await env.query({"dateRange": FILTER_RANGE, "serviceNames": ["api"]})).json()["results"]
    fingerprints = {row["resource_fingerprint"] for row in rows}
    assert len(fingerprints) == 1
    assert await filtered(env, resourceFingerprint=fingerprints.pop()) == A


async def test_severity_text_is_normalised(env: Env) -> None:
    """A record sent with severity_text 'warning' and no number reads back as warn / 13."""
    by_id = grouped(leaf("log_attribute", "id", "exact", "n3"))
    rows = (await env.query({"dateRange": FILTER_RANGE, "filterGroup": by_id})).json()["results"]
    got = [(r["severity_text"], r["level"], r["severity_number"], r["body"]) for r in rows]
    assert got == [("warn", "warn", 13, "")]


COUNT_CASES = [
    ({}, ALL),
    ({"severityLevels": ["error"]}, ERRORS),
    ({"serviceNames": ["worker"], "searchTerm": "JOB"}, {"w1", "w2"}),
    ({"filterGroup": grouped(leaf("log_attribute", "http.status_code", "gt", 400))}, {"a2", "a4"}),
    ({"filterGroup": [leaf("log_resource_attribute", "k8s.namespace.name", "is_not", "prod")]}, W | N),
    ({"searchTerm": "50%"}, {"a3"}),
]


@pytest.mark.parametrize(("filters", "expected"), COUNT_CASES)
async def test_count_matches_query(env: Env, filters: dict[str, Any], expected: set[str]) -> None:
    """count/ applies the same filters as query/ and returns how many rows match."""
    doc = {"dateRange": FILTER_RANGE, **filters}
    assert await filtered(env, **filters) == expected
    response = await env.client.post(f"/api/projects/{env.project.id}/logs/count/", json={"query": doc},
                                      headers=env.auth())
    assert response.status_code == 200, response.text
    assert response.json() == {"count": len(expected)}


async def test_count_over_all_data_sets(env: Env) -> None:
    """count/ over a range covering everything counts every ingested record; dates bound it like query/."""
    url = f"/api/projects/{env.project.id}/logs/count/"
    everything = {"dateRange": {"date_from": "-1d"}}
    response = await env.client.post(url, json={"query": everything}, headers=env.auth())
    assert response.json() == {"count": len(ALL) + len(RELATIVE) + 250 + BULK_ROWS}
    last_hour = {"dateRange": {"date_from": "-1h"}}
    response = await env.client.post(url, json={"query": last_hour}, headers=env.auth())
    assert response.json() == {"count": 4}


async def test_has_logs_false_then_true(env: Env) -> None:
    """has_logs is false for a project with no logs and true once one has been ingested."""
    project = env.services.meta.create_project("has-logs")
    url = f"/api/projects/{project.id}/logs/has_logs/"
    assert (await env.client.get(url, headers=env.auth())).json() == {"hasLogs": False}
    sent = await env.send_otlp(encode([dict(body="first")]), token=project.api_token)
    assert sent.status_code == 200
    env.flush()
    assert (await env.client.get(url, headers=env.auth())).json() == {"hasLogs": True}
    own = await env.client.get(f"/api/projects/{env.project.id}/logs/has_logs", headers=env.auth())
    assert own.json() == {"hasLogs": True}
