"""PostHog's events API in-process: shape, order, bounds, paging, filters, persons, CSV, auth and isolation.

Events go in as SDKs send them (``POST /batch/`` with explicit timestamps and uuids, so every expected set
is known) and come out through ``GET /api/projects/<id>/events/``. One app serves the whole module, with
four projects:

- ``a``: a dozen hand-written events (page views, an autocapture click, purchases, three events sharing a
  timestamp, an ``$identify``, one three days old);
- ``b``: look-alike events (same distinct ids, event names and element chain) that must never show in ``a``;
- ``ties``: 2,500 events sharing one timestamp;
- ``bulk``: 2,000-odd events around the window an ETL connector extracts, with 1,100 sharing a timestamp;
- ``merges``: an anonymous visitor's event, then the same visitor logged in and identified.

Expected orders are computed in Python with ClickHouse's UUID order (low 64 bits, then high 64 bits),
checked against chDB's own ``ORDER BY`` first.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import random
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
import pytest_asyncio

from logpond.store.chdb_store import ChDBStore
from tests.api._support import assert_error
from tests.conftest import Env, make_settings, running_env

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
T0 = NOW - dt.timedelta(hours=1)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$")
EVENT_KEYS = {"id", "distinct_id", "properties", "event", "timestamp", "person", "elements", "elements_chain"}
US = dt.timedelta(microseconds=1)
_LOW64 = (1 << 64) - 1


def ch_uuid_key(value: str) -> tuple[int, int]:
    """ClickHouse's UUID order: the low 64 bits first, then the high 64 bits."""
    n = uuid.UUID(value).int
    return (n & _LOW64, n >> 64)


@dataclass
class Sent:
    """One event as an SDK sends it, with what the API must give back."""

    uuid: str
    event: str
    distinct_id: str
    timestamp: dt.datetime
    properties: dict[str, Any] = field(default_factory=dict)

    def message(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "distinct_id": self.distinct_id,
            "properties": self.properties,
            "timestamp": self.timestamp.isoformat(),
            "uuid": self.uuid,
        }

    @property
    def key(self) -> tuple[dt.datetime, tuple[int, int]]:
        return (self.timestamp, ch_uuid_key(self.uuid))


def ascending(events: list[Sent]) -> list[str]:
    return [e.uuid for e in sorted(events, key=lambda e: e.key)]


def descending(events: list[Sent]) -> list[str]:
    return ascending(events)[::-1]


class Uuids:
    """Deterministic random version-4 uuids (their ClickHouse order differs from their text order)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def __call__(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


# --- the module's data ----------------------------------------------------------------------------------

_new = Uuids(5)
ELEMENTS = [
    {
        "tag_name": "a",
        "$el_text": "Sign up",
        "attr__href": "/signup",
        "attr__class": "cta",
        "nth_child": 1,
        "nth_of_type": 1,
    },
    {"tag_name": "div", "attr__id": "hero", "nth_child": 2, "nth_of_type": 1},
]
ALICE_SET = {"email": "alice@example.com", "name": "Alice", "username": "ali", "age": 30}

A: dict[str, Sent] = {
    "pv_alice": Sent(
        _new(),
        "$pageview",
        "alice",
        T0 + dt.timedelta(seconds=0, microseconds=123456),
        {
            "$browser": "Chrome",
            "$current_url": "https://shop.example/home",
            "price": 10,
            "plan": "pro",
            "$set": ALICE_SET,
        },
    ),
    "pv_bob": Sent(
        _new(),
        "$pageview",
        "bob",
        T0 + dt.timedelta(seconds=1),
        {"$browser": "Firefox", "price": 25, "plan": "free", "$set": {"email": "bob@example.com"}},
    ),
    "click": Sent(
        _new(),
        "$autocapture",
        "alice",
        T0 + dt.timedelta(seconds=2, microseconds=500000),
        {"$browser": "Chrome", "$event_type": "click", "$elements": ELEMENTS},
    ),
    "buy_carol": Sent(
        _new(),
        "purchase",
        "carol",
        T0 + dt.timedelta(seconds=3),
        {"$browser": "Safari", "price": 99.5, "is_test": True, "tags": ["x", "y"]},
    ),
    "buy_bob": Sent(
        _new(),
        "purchase",
        "bob",
        T0 + dt.timedelta(seconds=4, microseconds=1),
        {"$browser": "Chrome", "price": 5, "coupon": "SPRING-10"},
    ),
    **{
        f"tick{i}": Sent(_new(), "tick", "dave", T0 + dt.timedelta(seconds=5, microseconds=500000), {"n": i})
        for i in range(3)
    },
    "identify": Sent(_new(), "$identify", "alice", T0 + dt.timedelta(seconds=6), {"$anon_distinct_id": "anon-alice"}),
    "old": Sent(_new(), "$pageview", "erin", NOW - dt.timedelta(days=3), {"$browser": "Chrome"}),
}
A_EVENTS = list(A.values())
CHROME = {"pv_alice", "click", "buy_bob", "old"}

B_EVENTS = [
    Sent(
        _new(),
        "$pageview",
        "alice",
        T0 + dt.timedelta(seconds=0, microseconds=500000),
        {"$browser": "Opera", "secret": "b-only", "$set": {"email": "intruder@b.example"}},
    ),
    Sent(_new(), "$autocapture", "alice", T0 + dt.timedelta(seconds=2, microseconds=600000), {"$elements": ELEMENTS}),
    Sent(
        _new(),
        "purchase",
        "bob",
        T0 + dt.timedelta(seconds=3, microseconds=500000),
        {"$browser": "Opera", "price": 1000},
    ),
]

TIE_AT = NOW - dt.timedelta(minutes=30) + dt.timedelta(microseconds=654321)
_tie_uuid = Uuids(7)
TIE_EVENTS = [
    Sent(_tie_uuid(), "tie", f"user-{i % 10}", TIE_AT, {"i": i, "$process_person_profile": False}) for i in range(2500)
]

# The window an ETL connector extracts from ``bulk``: [START, END).
START = NOW - dt.timedelta(hours=3)
END = NOW - dt.timedelta(hours=2)
BULK_TIE = START + dt.timedelta(minutes=17, microseconds=250000)


def _bulk_events() -> list[Sent]:
    rng = random.Random(11)
    new = Uuids(13)
    moments = [START + dt.timedelta(microseconds=rng.randrange(1, 3_600_000_000)) for _ in range(400)]
    moments += [START + dt.timedelta(seconds=rng.randrange(1, 3600)) for _ in range(100)]  # whole seconds
    times = [BULK_TIE] * 1100 + [rng.choice(moments) for _ in range(900)] + [START] * 5
    times += [END] * 5 + [START - US] * 5  # both bounds are exclusive
    times += [START - dt.timedelta(minutes=m) for m in range(1, 21)] + [
        END + dt.timedelta(minutes=m) for m in range(20)
    ]
    return [
        Sent(new(), "bulk", f"user-{i % 7}", moment, {"i": i, "$process_person_profile": False})
        for i, moment in enumerate(times)
    ]


BULK_EVENTS = _bulk_events()

# ``merges``: an anonymous visitor who then logs in; $identify merges the anonymous person into the user's.
MERGE_EVENTS = [
    Sent(_new(), "$pageview", "anon-9", T0, {"$browser": "Chrome"}),
    Sent(_new(), "$pageview", "user-9", T0 + dt.timedelta(seconds=1), {"$set": {"email": "nine@example.com"}}),
    Sent(_new(), "$identify", "user-9", T0 + dt.timedelta(seconds=2), {"$anon_distinct_id": "anon-9"}),
]
BULK_IN_WINDOW = [e for e in BULK_EVENTS if START <= e.timestamp < END]


@dataclass
class World:
    env: Env
    a: Any
    b: Any
    ties: Any
    bulk: Any
    merges: Any


async def send(env: Env, token: str, events: list[Sent]) -> None:
    body = {"api_key": token, "batch": [e.message() for e in events]}
    response = await env.client.post("/batch/", json=body)
    assert response.status_code == 200, response.text


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(chdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    store = ChDBStore(chdb_path, database=f"ev_{uuid.uuid4().hex[:12]}")
    store.migrate()
    try:
        async with running_env(make_settings(tmp_path_factory.mktemp("events_api")), store) as env:
            env.services.clock = lambda: NOW
            meta = env.services.meta
            b, ties, bulk = meta.create_project("Other"), meta.create_project("Ties"), meta.create_project("Bulk")
            merges = meta.create_project("Merges")
            assert env.services.events_writer is not None
            await send(env, env.project.api_token, A_EVENTS)
            await send(env, b.api_token, B_EVENTS)
            await send(env, ties.api_token, TIE_EVENTS)
            await send(env, bulk.api_token, BULK_EVENTS)
            await send(env, merges.api_token, MERGE_EVENTS[:1])  # stored before the merge: rewritten later
            assert env.services.events_writer.flush(30)
            await send(env, merges.api_token, MERGE_EVENTS[1:])
            assert env.services.events_writer.flush(30)
            yield World(env, env.project, b, ties, bulk, merges)
    finally:
        store.drop_database()


async def get(
    world: World, path: str = "", *, project: Any = None, api_key: str | None = None, **params: Any
) -> httpx.Response:
    """``GET /api/projects/<project>/events/<path>`` with ``params`` (lists and dicts sent as JSON)."""
    pid = (project or world.a).id
    query = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in params.items()}
    return await world.env.client.get(
        f"/api/projects/{pid}/events/{path}", params=query, headers=world.env.auth(api_key)
    )


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["results"]]


def param_id(value: Any) -> str | None:
    """A readable test id for a filter or parameter dict (pytest's default for the rest)."""
    return orjson.dumps(value).decode()[:60] if isinstance(value, dict) else None


def names(*keys: str) -> set[str]:
    return {A[k].uuid for k in keys}


async def walk(world: World, url: str, params: dict[str, Any], *, max_pages: int = 100) -> list[dict[str, Any]]:
    """Every event of a listing, following ``next`` verbatim until it is null."""
    response = await world.env.client.get(url, params=params, headers=world.env.auth())
    events: list[dict[str, Any]] = []
    seen_urls: set[str] = set()
    for _ in range(max_pages):
        assert response.status_code == 200, response.text
        body = response.json()
        events += body["results"]
        if body["next"] is None:
            return events
        assert body["results"], "a next URL after an empty page"
        assert body["next"] not in seen_urls, "a repeated next URL"
        seen_urls.add(body["next"])
        response = await world.env.client.get(body["next"], headers=world.env.auth())
    raise AssertionError(f"next was still set after {max_pages} pages")


# --- ClickHouse's UUID order ----------------------------------------------------------------------------


async def test_python_uuid_order_matches_chdb(world: World) -> None:
    """chDB sorts UUIDs by their low 64 bits, then their high 64 bits, exactly as ``ch_uuid_key`` does."""
    sample = [e.uuid for e in A_EVENTS + TIE_EVENTS[:200]] + [
        "00000000-0000-0001-0000-000000000000",
        "00000000-0000-0000-ffff-ffffffffffff",
        "ffffffff-ffff-ffff-0000-000000000000",
    ]
    listed = ", ".join(f"toUUID('{u}')" for u in sample)
    result = world.env.services.store.execute(f"SELECT toString(u) FROM (SELECT arrayJoin([{listed}]) AS u) ORDER BY u")
    chdb_order = [row[0] for row in result.rows]
    assert chdb_order == sorted(sample, key=ch_uuid_key)
    assert chdb_order != sorted(sample), "the sample must tell ClickHouse's order from text order"


# --- response shape -------------------------------------------------------------------------------------


async def test_response_shape(world: World) -> None:
    """The list is {"next", "results"}; each event has exactly PostHog's eight fields, typed as PostHog's."""
    response = await get(world)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"next", "results"}
    assert body["next"] is None
    assert len(body["results"]) == len(A_EVENTS)
    for event in body["results"]:
        assert set(event) == EVENT_KEYS, event
        assert isinstance(event["properties"], dict)
        assert isinstance(event["elements"], list)
        assert isinstance(event["elements_chain"], str)
        assert event["person"] is None
        assert TIMESTAMP.match(event["timestamp"]), event["timestamp"]
        assert uuid.UUID(event["id"])


async def test_events_come_back_as_sent(world: World) -> None:
    """Every field reads back what the SDK sent: name, distinct id, properties, exact timestamp, elements."""
    response = await get(world)
    by_id = {e["id"]: e for e in response.json()["results"]}
    for sent in A_EVENTS:
        event = by_id[sent.uuid]
        assert (event["event"], event["distinct_id"]) == (sent.event, sent.distinct_id)
        assert dt.datetime.fromisoformat(event["timestamp"]) == sent.timestamp
        expected = {k: v for k, v in sent.properties.items() if k != "$elements"}
        assert {k: event["properties"].get(k) for k in expected} == expected
    whole_second = by_id[A["pv_bob"].uuid]["timestamp"]
    assert whole_second == "2026-03-01T11:00:01+00:00"
    assert by_id[A["pv_alice"].uuid]["timestamp"] == "2026-03-01T11:00:00.123456+00:00"
    click = by_id[A["click"].uuid]
    assert "$elements" not in click["properties"]
    assert click["elements_chain"].startswith("a.cta:")
    assert [(el["tag_name"], el["href"], el["text"], el["order"]) for el in click["elements"]] == [
        ("a", "/signup", "Sign up", 0),
        ("div", None, None, 1),
    ]
    assert click["elements"][0]["attr_class"] == ["cta"]
    assert click["elements"][1]["attr_id"] == "hero"
    assert by_id[A["pv_bob"].uuid]["elements"] == [] and by_id[A["pv_bob"].uuid]["elements_chain"] == ""


# --- order ----------------------------------------------------------------------------------------------


async def test_default_order_is_newest_first(world: World) -> None:
    """Without orderBy, events come newest first, ties in descending ClickHouse uuid order."""
    assert ids(await get(world)) == descending(A_EVENTS)
    assert ids(await get(world, orderBy=["-timestamp"])) == descending(A_EVENTS)


@pytest.mark.parametrize("order", [["timestamp"], ["timestamp", "uuid"]])
async def test_ascending_order_breaks_ties_by_clickhouse_uuid(world: World, order: list[str]) -> None:
    """orderBy ["timestamp"] or ["timestamp","uuid"] gives oldest first, ties in chDB's uuid order."""
    assert ids(await get(world, orderBy=order)) == ascending(A_EVENTS)
    ticks = [A[f"tick{i}"].uuid for i in range(3)]
    listed = ", ".join(f"toUUID('{u}')" for u in ticks)
    result = world.env.services.store.execute(f"SELECT toString(u) FROM (SELECT arrayJoin([{listed}]) AS u) ORDER BY u")
    got = ids(await get(world, orderBy=order, event="tick"))
    assert got == [row[0] for row in result.rows]


# --- bounds ---------------------------------------------------------------------------------------------


async def test_after_and_before_are_exclusive(world: World) -> None:
    """An event exactly at ``after`` or ``before`` is left out; one microsecond inside is kept."""
    at = A["pv_bob"].timestamp
    got = set(ids(await get(world, after=at.isoformat())))
    assert A["pv_bob"].uuid not in got
    assert got == {e.uuid for e in A_EVENTS if e.timestamp > at}
    got = set(ids(await get(world, before=at.isoformat())))
    assert got == {e.uuid for e in A_EVENTS if e.timestamp < at}
    assert set(ids(await get(world, after=(at - US).isoformat(), before=(at + US).isoformat()))) == names("pv_bob")
    later = {e.uuid for e in A_EVENTS if e.timestamp > at}
    assert set(ids(await get(world, after=at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")))) == later
    assert set(ids(await get(world, after="2026-03-01T13:00:01+02:00"))) == later
    assert set(ids(await get(world, after="2026-03-01 11:00:01"))) == later
    ticks = A["tick0"].timestamp
    assert set(ids(await get(world, after=ticks.isoformat(), before=(ticks + US).isoformat()))) == set()


async def test_relative_bounds(world: World) -> None:
    """``after=-1d`` leaves out the three-day-old event, ``before=-1d`` keeps only it (clock frozen at NOW)."""
    assert set(ids(await get(world, after="-1d"))) == {e.uuid for e in A_EVENTS} - names("old")
    assert ids(await get(world, before="-1d")) == [A["old"].uuid]


async def test_default_limit_and_clamps(world: World) -> None:
    """100 events by default; limit is clamped into 1..1000 (0 and negatives give one event)."""
    response = await get(world, project=world.bulk)
    assert len(ids(response)) == 100 and response.json()["next"] is not None
    assert len(ids(await get(world, project=world.bulk, limit="5000"))) == 1000
    assert len(ids(await get(world, project=world.bulk, limit="1000"))) == 1000
    assert len(ids(await get(world, project=world.bulk, limit="7"))) == 7
    for small in ("0", "-5"):
        response = await get(world, project=world.bulk, limit=small)
        assert len(ids(response)) == 1 and response.json()["next"] is not None


@pytest.mark.parametrize(
    ("params", "attr"),
    [
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "50001"}, "offset"),
        ({"after": "yesterday-ish"}, "after"),
        ({"before": "2026-13-45"}, "before"),
        ({"orderBy": "timestamp"}, "orderBy"),
        ({"orderBy": '{"a": 1}'}, "orderBy"),
        ({"after_uuid": "nope"}, "after_uuid"),
        ({"before_uuid": "nope"}, "before_uuid"),
        ({"person_id": "alice"}, "person_id"),
        ({"where": "event = 'x'"}, "where"),
        ({"where": '["event = "]'}, "where"),
        ({"properties": '{"key": "$browser"}'}, "properties"),
    ],
)
async def test_invalid_parameters_are_400_naming_them(world: World, params: dict[str, str], attr: str) -> None:
    """Each malformed parameter is a 400 validation error whose attr names it."""
    assert_error(await get(world, **params), 400, type="validation_error", code="invalid_input", attr=attr)


# --- next -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/projects/{id}/events/", "/api/projects/{id}/events", "/api/environments/{id}/events/"],
)
async def test_next_url_keeps_path_and_params(world: World, path: str) -> None:
    """next is absolute, on the path requested, with every parameter kept and before moved to the last event."""
    url = path.format(id=world.a.id)
    params = {
        "limit": "2",
        "event": "tick",
        "include_person": "true",
        "properties": orjson.dumps([{"key": "n", "operator": "is_set"}]).decode(),
        "after": "-1d",
    }
    response = await world.env.client.get(url, params=params, headers=world.env.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["results"]) == 2
    parts = urlsplit(body["next"])
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "testserver", url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    last = body["results"][-1]
    assert query == {**params, "before": last["timestamp"], "before_uuid": last["id"]}
    response = await world.env.client.get(body["next"], headers=world.env.auth())
    assert ids(response) == descending([A[f"tick{i}"] for i in range(3)])[2:]
    assert response.json()["next"] is None


async def test_next_moves_after_when_ascending(world: World) -> None:
    """Oldest first, next moves ``after`` (and after_uuid) to the last event and keeps ``before``."""
    params = {"limit": "3", "orderBy": '["timestamp","uuid"]', "before": NOW.isoformat()}
    response = await get(world, **params)
    body = response.json()
    query = {k: v[0] for k, v in parse_qs(urlsplit(body["next"]).query).items()}
    last = body["results"][-1]
    assert query == {**params, "after": last["timestamp"], "after_uuid": last["id"]}


async def test_next_is_null_when_the_page_holds_the_rest(world: World) -> None:
    """A page that ends exactly at the last event has no next URL."""
    response = await get(world, limit=str(len(A_EVENTS)))
    assert len(ids(response)) == len(A_EVENTS) and response.json()["next"] is None
    response = await get(world, limit=str(len(A_EVENTS) - 1))
    assert response.json()["next"] is not None


@pytest.mark.parametrize("order", [None, ["timestamp"]])
async def test_following_next_walks_small_pages_once(world: World, order: list[str] | None) -> None:
    """Pages of two events, next after next, return project a's events once each in the listing's order."""
    params: dict[str, Any] = {"limit": "2"}
    if order:
        params["orderBy"] = orjson.dumps(order).decode()
    events = await walk(world, f"/api/projects/{world.a.id}/events/", params)
    expected = ascending(A_EVENTS) if order else descending(A_EVENTS)
    assert [e["id"] for e in events] == expected


@pytest.mark.parametrize("order", [None, ["timestamp"], ["timestamp", "uuid"]])
async def test_following_next_through_2500_equal_timestamps(world: World, order: list[str] | None) -> None:
    """2,500 events sharing one timestamp, 100 a page: following next returns each exactly once, in order."""
    params: dict[str, Any] = {"limit": "100"}
    if order:
        params["orderBy"] = orjson.dumps(order).decode()
    events = await walk(world, f"/api/projects/{world.ties.id}/events/", params)
    got = [e["id"] for e in events]
    assert len(got) == len(set(got)) == 2500
    assert got == (ascending(TIE_EVENTS) if order else descending(TIE_EVENTS))


# --- filters --------------------------------------------------------------------------------------------


async def test_event_distinct_id_and_person_id(world: World) -> None:
    """event, distinct_id and person_id each narrow the list, and combine."""
    assert set(ids(await get(world, event="purchase"))) == names("buy_carol", "buy_bob")
    assert set(ids(await get(world, distinct_id="bob"))) == names("pv_bob", "buy_bob")
    assert set(ids(await get(world, event="purchase", distinct_id="bob"))) == names("buy_bob")
    assert ids(await get(world, event="no such event")) == []
    query = {
        "query": {"kind": "HogQLQuery", "query": "SELECT DISTINCT person_id FROM events WHERE distinct_id = 'bob'"}
    }
    response = await world.env.client.post(f"/api/projects/{world.a.id}/query/", json=query, headers=world.env.auth())
    assert response.status_code == 200, response.text
    [[bob]] = response.json()["results"]
    assert set(ids(await get(world, person_id=bob))) == names("pv_bob", "buy_bob")
    assert ids(await get(world, person_id=str(uuid.uuid4()))) == []


EVENT_PROPERTY_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"key": "$browser", "value": "Chrome"}, CHROME),
    ({"key": "$browser", "value": "Chrome", "operator": "exact", "type": "event"}, CHROME),
    ({"key": "$browser", "value": ["Safari", "Firefox"], "operator": "exact"}, {"buy_carol", "pv_bob"}),
    (
        {"key": "$browser", "value": "Chrome", "operator": "is_not"},
        {"pv_bob", "buy_carol", "tick0", "tick1", "tick2", "identify"},
    ),
    ({"key": "$browser", "value": "FIRE", "operator": "icontains"}, {"pv_bob"}),
    ({"key": "$current_url", "value": "shop.example", "operator": "icontains"}, {"pv_alice"}),
    ({"key": "$browser", "value": "^(Saf|Fire)", "operator": "regex"}, {"buy_carol", "pv_bob"}),
    ({"key": "price", "value": 20, "operator": "gt"}, {"pv_bob", "buy_carol"}),
    ({"key": "price", "value": "10", "operator": "lt"}, {"buy_bob"}),
    ({"key": "price", "value": 10, "operator": "gte"}, {"pv_alice", "pv_bob", "buy_carol"}),
    ({"key": "price", "value": 25, "operator": "exact"}, {"pv_bob"}),
    ({"key": "price", "value": 99.5, "operator": "exact"}, {"buy_carol"}),
    ({"key": "price", "operator": "is_set"}, {"pv_alice", "pv_bob", "buy_carol", "buy_bob"}),
    ({"key": "coupon", "operator": "is_not_set"}, set(A) - {"buy_bob"}),
    ({"key": "is_test", "value": True, "operator": "exact"}, {"buy_carol"}),
    ({"key": "is_test", "value": "true"}, {"buy_carol"}),
    ({"key": "plan", "value": ["pro", "free"]}, {"pv_alice", "pv_bob"}),
    ({"key": "n", "value": [0, 2]}, {"tick0", "tick2"}),
    ({"key": "$current_url", "value": "%", "operator": "icontains"}, set()),
    ({"key": "$browser", "value": "O'Brien\\"}, set()),
]


@pytest.mark.parametrize(("leaf", "expected"), EVENT_PROPERTY_CASES, ids=param_id)
async def test_event_property_filters(world: World, leaf: dict[str, Any], expected: set[str]) -> None:
    """Each event property filter selects exactly the events whose properties match it."""
    assert set(ids(await get(world, properties=[leaf]))) == names(*expected)


async def test_several_property_filters_are_anded(world: World) -> None:
    """A list of filters keeps the events matching all of them."""
    leaves = [{"key": "$browser", "value": "Chrome"}, {"key": "price", "operator": "is_set"}]
    assert set(ids(await get(world, properties=leaves))) == names("pv_alice", "buy_bob")


@pytest.mark.parametrize(
    ("leaf", "expected"),
    [
        ({"type": "person", "key": "email", "value": "alice@example.com"}, {"pv_alice", "click", "identify"}),
        (
            {"type": "person", "key": "email", "value": "example.com", "operator": "icontains"},
            {"pv_alice", "click", "identify", "pv_bob", "buy_bob"},
        ),
        ({"type": "person", "key": "age", "value": 18, "operator": "gt"}, {"pv_alice", "click", "identify"}),
        ({"type": "element", "key": "tag_name", "value": "a"}, {"click"}),
        ({"type": "element", "key": "tag_name", "value": ["div", "button"]}, {"click"}),
        ({"type": "element", "key": "tag_name", "value": "button"}, set()),
        ({"type": "element", "key": "href", "value": "/signup"}, {"click"}),
        ({"type": "element", "key": "href", "value": "/sign"}, set()),
        ({"type": "element", "key": "text", "value": "Sign up"}, {"click"}),
        ({"type": "element", "key": "text", "value": "SIGN", "operator": "icontains"}, {"click"}),
    ],
    ids=param_id,
)
async def test_person_and_element_filters(world: World, leaf: dict[str, Any], expected: set[str]) -> None:
    """Person filters read the person stamped on each event; element filters read the autocapture chain."""
    assert set(ids(await get(world, properties=[leaf]))) == names(*expected)


async def test_hogql_filters_groups_and_where(world: World) -> None:
    """hogql filters, nested AND/OR groups and ``where`` expressions select exactly their events."""
    hogql = {"type": "hogql", "key": "properties.$browser = 'Chrome'"}
    assert set(ids(await get(world, properties=[hogql]))) == names(*CHROME)
    hogql = {"type": "hogql", "key": "event = 'purchase' AND properties.price > 50"}
    assert set(ids(await get(world, properties=[hogql]))) == names("buy_carol")
    group = {
        "type": "OR",
        "values": [
            {
                "type": "AND",
                "values": [{"key": "$browser", "value": "Chrome"}, {"key": "price", "value": 6, "operator": "gt"}],
            },
            {"type": "hogql", "key": "distinct_id = 'carol'"},
        ],
    }
    assert set(ids(await get(world, properties=group))) == names("pv_alice", "buy_carol")
    assert set(ids(await get(world, properties=[group]))) == names("pv_alice", "buy_carol")
    where = ["event = 'purchase'", "properties.price < 50"]
    assert set(ids(await get(world, where=where))) == names("buy_bob")


async def test_bad_filters_are_400(world: World) -> None:
    """Unparsable properties JSON, HogQL syntax errors and unknown filter types are 400s, not 500s."""
    response = await get(world, properties="[{'key': '$browser'")
    assert_error(
        response,
        400,
        type="validation_error",
        code="invalid_input",
        attr="properties",
        detail="Properties are unparsable!",
    )
    response = await get(world, properties=[{"type": "hogql", "key": "timestamp > "}])
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "validation_error"
    response = await get(world, properties=[{"type": "cohort", "key": "id", "value": 1}])
    assert response.status_code == 400, response.text
    response = await get(world, properties=[{"key": "price", "value": "lots", "operator": "gt"}])
    assert response.status_code == 400, response.text
    response = await get(world, properties=[{"type": "hogql", "key": "no_such_column = 1"}])
    assert response.status_code == 400, response.text
    response = await get(world, properties=[{"type": "hogql", "key": "sleep(3) = 0"}])
    assert response.status_code == 400, response.text


async def test_bad_regex_names_the_properties_parameter(world: World) -> None:
    """A regex filter ClickHouse cannot compile is a 400 whose attr points into ``properties``."""
    response = await get(world, properties=[{"key": "$browser", "value": "(", "operator": "regex"}])
    assert response.status_code == 400, response.text
    body = response.json()
    # the code is ClickHouse's error name, as the query API answers the same filter
    assert (body["type"], body["code"]) == ("validation_error", "cannot_compile_regexp")
    assert str(body["attr"]).startswith("properties"), body


@pytest.mark.parametrize("condition", ["properties.$browser", "count() > 1", "uuid > toUUID('garbage')"])
async def test_hogql_filters_the_store_rejects_are_400_like_the_query_api(world: World, condition: str) -> None:
    """A hogql filter that ClickHouse refuses (not boolean, an aggregate, a bad UUID literal) is the same 400
    the HogQL query API gives for it, not a 500 about a logs query."""
    query = {"query": {"kind": "HogQLQuery", "query": f"SELECT uuid FROM events WHERE {condition}"}}
    url = f"/api/projects/{world.a.id}/query/"
    reference = await world.env.client.post(url, json=query, headers=world.env.auth())
    assert reference.status_code == 400, reference.text
    response = await get(world, properties=[{"type": "hogql", "key": condition}])
    assert response.status_code == 400, response.text
    assert (response.json()["type"], response.json()["code"]) == ("validation_error", reference.json()["code"])
    response = await get(world, where=[condition])
    assert response.status_code == 400, response.text


# --- persons --------------------------------------------------------------------------------------------


async def test_include_person(world: World) -> None:
    """include_person=true fills person: is_identified, the event's distinct id, the email/name/username subset."""
    response = await get(world, include_person="true", orderBy=["timestamp"])
    by_id = {e["id"]: e["person"] for e in response.json()["results"]}
    alice = {
        "is_identified": True,
        "distinct_ids": ["alice"],
        "properties": {k: ALICE_SET[k] for k in ("email", "name", "username")},
    }
    assert by_id[A["pv_alice"].uuid] == alice
    assert by_id[A["click"].uuid] == alice
    assert by_id[A["pv_bob"].uuid] == {
        "is_identified": False,
        "distinct_ids": ["bob"],
        "properties": {"email": "bob@example.com"},
    }
    assert by_id[A["buy_carol"].uuid] == {"is_identified": False, "distinct_ids": ["carol"], "properties": {}}
    assert all(person is not None for person in by_id.values())
    response = await get(world, include_person="1", distinct_id="bob")
    assert {e["person"]["distinct_ids"][0] for e in response.json()["results"]} == {"bob"}
    response = await get(world, include_person="false")
    assert all(e["person"] is None for e in response.json()["results"])


async def test_merged_person_owns_the_anonymous_events(world: World) -> None:
    """After $identify merges an anonymous person, person_id and include_person see one person for all events."""
    query = {"query": {"kind": "HogQLQuery", "query": "SELECT DISTINCT person_id FROM events"}}
    url = f"/api/projects/{world.merges.id}/query/"
    rows: list[list[str]] = []
    for _ in range(100):  # the anonymous event's person_id is rewritten by a background mutation
        response = await world.env.client.post(url, json=query, headers=world.env.auth())
        assert response.status_code == 200, response.text
        rows = response.json()["results"]
        if len(rows) == 1:
            break
        await asyncio.sleep(0.1)
    [[person_id]] = rows
    got = ids(await get(world, project=world.merges, person_id=person_id, orderBy=["timestamp"]))
    assert got == [e.uuid for e in MERGE_EVENTS]
    response = await get(world, project=world.merges, include_person="true", distinct_id="anon-9")
    [anonymous] = response.json()["results"]
    assert anonymous["person"] == {
        "is_identified": True,
        "distinct_ids": ["anon-9"],
        "properties": {"email": "nine@example.com"},
    }


# --- one event ------------------------------------------------------------------------------------------


async def test_retrieve_one_event(world: World) -> None:
    """events/<uuid>/ returns the event as the list does, on both URL spellings, with or without its person."""
    listed = {e["id"]: e for e in (await get(world)).json()["results"]}
    for sent in (A["click"], A["pv_bob"]):
        response = await get(world, f"{sent.uuid}/")
        assert response.status_code == 200, response.text
        assert response.json() == listed[sent.uuid]
    response = await world.env.client.get(
        f"/api/environments/{world.a.id}/events/{A['pv_alice'].uuid}", headers=world.env.auth()
    )
    assert response.status_code == 200 and response.json()["id"] == A["pv_alice"].uuid
    response = await get(world, f"{A['pv_alice'].uuid}/", include_person="true")
    assert response.json()["person"]["properties"]["email"] == "alice@example.com"


async def test_retrieve_errors(world: World) -> None:
    """A malformed id is PostHog's 400 Invalid UUID; unknown ids and other projects' events are 404."""
    response = await get(world, "not-a-uuid/")
    assert response.status_code == 400
    body = response.json()
    assert {k: body[k] for k in ("detail", "code", "type")} == {
        "detail": "Invalid UUID",
        "code": "invalid",
        "type": "validation_error",
    }
    assert_error(await get(world, f"{uuid.uuid4()}/"), 404, type="invalid_request", code="not_found")
    assert_error(await get(world, f"{B_EVENTS[0].uuid}/"), 404, type="invalid_request", code="not_found")
    response = await get(world, f"{A['pv_alice'].uuid}/", project=world.b)
    assert_error(response, 404, type="invalid_request", code="not_found")


# --- CSV and values -------------------------------------------------------------------------------------


async def test_csv_format(world: World) -> None:
    """format=csv returns every event as a CSV row, properties flattened into properties.<key> columns."""
    response = await get(world, format="csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {
        "id",
        "event",
        "distinct_id",
        "timestamp",
        "elements_chain",
        "properties.$browser",
        "properties.price",
    } <= set(rows[0])
    assert {r["id"] for r in rows} == {e.uuid for e in A_EVENTS}
    by_id = {r["id"]: r for r in rows}
    assert by_id[A["pv_bob"].uuid]["properties.$browser"] == "Firefox"
    assert by_id[A["pv_bob"].uuid]["timestamp"] == "2026-03-01T11:00:01+00:00"
    assert by_id[A["tick0"].uuid]["properties.$browser"] == ""
    response = await get(world, format="csv", project=world.bulk)
    assert len(list(csv.DictReader(io.StringIO(response.text)))) == 1000


async def test_property_values(world: World) -> None:
    """events/values/?key= lists the property's values as {"name"}, narrowed by event_name, per project."""
    response = await get(world, "values/", key="$browser")
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert all(set(r) == {"name"} for r in results)
    assert {r["name"] for r in results} == {"Chrome", "Firefox", "Safari"}
    response = await get(world, "values", key="$browser", event_name="purchase")
    assert {r["name"] for r in response.json()["results"]} == {"Chrome", "Safari"}
    response = await get(world, "values/", key="custom_event")
    assert {r["name"] for r in response.json()["results"]} == {"purchase", "tick"}
    response = await get(world, "values/", key="$browser", value="fire")
    assert response.json()["results"] == [{"name": "Firefox"}]
    response = await get(world, "values/", key="$browser", project=world.b)
    assert {r["name"] for r in response.json()["results"]} == {"Opera"}
    assert_error(await get(world, "values/"), 400, type="validation_error", code="invalid_input", attr="key")


# --- auth and isolation ---------------------------------------------------------------------------------


async def test_auth_errors(world: World) -> None:
    """No key is 401; a key without query:read or scoped to another project is 403; an unknown project 404."""
    env = world.env
    for path in ("", "values/?key=$browser", f"{A['pv_bob'].uuid}/"):
        response = await env.client.get(f"/api/projects/{world.a.id}/events/{path}")
        assert_error(response, 401, type="authentication_error", code="not_authenticated")
    no_query = env.new_key(["logs:read", "person:read", "project:read"])
    assert_error(
        await get(world, api_key=no_query),
        403,
        type="authentication_error",
        code="permission_denied",
        detail="API key missing required scope 'query:read'",
    )
    other = env.new_key(["query:read"], scoped_teams=[world.b.id])
    assert_error(
        await get(world, api_key=other),
        403,
        type="authentication_error",
        code="permission_denied",
        detail=f"API key does not have access to the requested project: ID {world.a.id}.",
    )
    assert set(ids(await get(world, api_key=other, project=world.b))) == {e.uuid for e in B_EVENTS}
    assert ids(await get(world, api_key=env.new_key(["query:read"]))) == descending(A_EVENTS)
    response = await env.client.get("/api/projects/987654/events/", headers=env.auth())
    assert_error(response, 404, type="invalid_request", code="not_found", detail="Project not found.")


ISOLATION_PARAMS: list[dict[str, Any]] = [
    {},
    {"distinct_id": "alice"},
    {"event": "$pageview"},
    {"include_person": "true"},
    {"orderBy": ["timestamp"], "after": "2000-01-01T00:00:00Z"},
    {"properties": [{"key": "$browser", "value": "Chrome"}]},
    {"properties": [{"type": "element", "key": "tag_name", "value": "a"}]},
    {"properties": [{"type": "person", "key": "email", "value": "alice@example.com"}]},
    {"properties": [{"type": "hogql", "key": "1 = 1 OR 1 = 1"}]},
    {"properties": [{"type": "hogql", "key": "team_id = {a}"}]},
    {"properties": [{"type": "hogql", "key": "true OR team_id = {a}"}]},
    {"properties": [{"type": "hogql", "key": "uuid IN (SELECT uuid FROM events)"}]},
    {"properties": [{"type": "hogql", "key": "uuid = toUUID('{a_uuid}')"}]},
    {"where": ["1 = 1) OR (1 = 1"]},
    {"where": ["events.team_id = {a}"]},
]


@pytest.mark.parametrize("params", ISOLATION_PARAMS, ids=param_id)
async def test_project_b_never_sees_project_a(world: World, params: dict[str, Any]) -> None:
    """Whatever the parameters, project b's listing holds only b's events (or is a 400)."""
    filled = orjson.loads(
        orjson.dumps(params).decode().replace("{a}", str(world.a.id)).replace("{a_uuid}", A["pv_alice"].uuid)
    )
    response = await get(world, project=world.b, **filled)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        returned = set(ids(response))
        assert returned <= {e.uuid for e in B_EVENTS}, returned
        for event in response.json()["results"]:
            if event["person"] is not None:
                assert event["person"]["properties"].get("email") in (None, "intruder@b.example")
    response = await get(world, project=world.b, format="csv", **filled)
    if response.status_code == 200:
        assert not any(e.uuid in response.text for e in A_EVENTS)


async def test_project_a_never_sees_project_b(world: World) -> None:
    """Project a's listing never shows b's look-alike events, by property, person or id."""
    assert ids(await get(world, properties=[{"key": "$browser", "value": "Opera"}])) == []
    assert ids(await get(world, properties=[{"key": "secret", "operator": "is_set"}])) == []
    person = [{"type": "person", "key": "email", "value": "intruder@b.example"}]
    assert ids(await get(world, properties=person)) == []
    assert set(ids(await get(world, distinct_id="alice"))) == names("pv_alice", "click", "identify")
    assert set(ids(await get(world, project=world.b, distinct_id="alice"))) == {B_EVENTS[0].uuid, B_EVENTS[1].uuid}


# --- connectors -----------------------------------------------------------------------------------------


def keyset_filter(timestamp: str, event_id: str) -> str:
    """Airbyte's (2026) keyset condition, with the cursor's timestamp as the API returned it."""
    return (
        f"timestamp > toDateTime('{timestamp}') OR "
        f"(timestamp = toDateTime('{timestamp}') AND uuid > toUUID('{event_id}'))"
    )


async def test_keyset_filter_from_every_event(world: World) -> None:
    """The keyset condition from each of project a's events returns exactly the events after it, in order."""
    order = ascending(A_EVENTS)
    listed = (await get(world, orderBy=["timestamp", "uuid"])).json()["results"]
    for i, cursor in enumerate(listed):
        leaf = {"type": "hogql", "key": keyset_filter(cursor["timestamp"], cursor["id"])}
        assert ids(await get(world, orderBy=["timestamp", "uuid"], properties=[leaf])) == order[i + 1 :], cursor


async def test_airbyte_keyset_extraction(world: World) -> None:
    """Airbyte's 2026 loop (limit 1000, ascending, after=start-1µs, before=end, hogql keyset cursor, stop on an
    empty page) reads every event of [start, end) once, strictly increasing, each page checked as Airbyte does."""
    base = {
        "limit": "1000",
        "orderBy": '["timestamp","uuid"]',
        "after": (START - US).isoformat(),
        "before": END.isoformat(),
    }
    collected: list[dict[str, Any]] = []
    cursor: tuple[str, str] | None = None
    pages = 0
    for _ in range(20):
        params = dict(base)
        if cursor is not None:
            params["properties"] = orjson.dumps([{"type": "hogql", "key": keyset_filter(*cursor)}]).decode()
        response = await get(world, project=world.bulk, **params)
        page = response.json()["results"] if response.status_code == 200 else None
        assert page is not None, response.text
        if not page:
            break
        pages += 1
        previous = None if cursor is None else (dt.datetime.fromisoformat(cursor[0]), ch_uuid_key(cursor[1]))
        for event in page:
            moment = dt.datetime.fromisoformat(event["timestamp"])
            assert moment.tzinfo is not None and moment.utcoffset() == dt.timedelta(0)
            assert START <= moment < END, event["timestamp"]
            key = (moment, ch_uuid_key(event["id"]))
            assert previous is None or key > previous, (event, previous)
            previous = key
        collected += page
        cursor = (page[-1]["timestamp"], page[-1]["id"])
    else:
        raise AssertionError("the keyset loop never saw an empty page")
    got = [e["id"] for e in collected]
    assert len(got) == len(set(got))
    assert got == ascending(BULK_IN_WINDOW)
    assert pages == 3  # 2,005 events, 1,000 a page


async def test_classic_next_following_extraction(world: World) -> None:
    """Airbyte's classic loop (after/before the slice, limit 10000 clamped to 1000, next followed verbatim)
    reads every event of the slice once, newest first."""
    params = {
        "after": (START - US).strftime("%Y-%m-%dT%H:%M:%S.%f%z"),
        "before": END.strftime("%Y-%m-%dT%H:%M:%S.%f%z"),
        "limit": "10000",
    }
    events = await walk(world, f"/api/projects/{world.bulk.id}/events/", params)
    assert [e["id"] for e in events] == descending(BULK_IN_WINDOW)
