"""Persons end to end: captured events create, update, link and merge persons, as read back through HogQL and
the persons API; person-less events; the person each event is stamped with; persons across a restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from logpond.config import Settings
from logpond.store.chdb_store import ChDBStore
from tests.api._support import assert_error
from tests.conftest import Env, make_settings, running_env
from tests.events.test_capture_api import (
    capture_ok,
    event,
    hogql,
    iso,
    module_app,
    parse_time,
    with_new_project,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

NAMESPACE = uuid.UUID("932979b4-65c3-4424-8467-0b66ec27bc22")
# a whole hour a month ago (the events and persons APIs leave out the future); person times are stored to the
# millisecond
T0 = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).replace(minute=0, second=0, microsecond=123000)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(chdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async for running in module_app(chdb_path, tmp_path_factory.mktemp("persons")):
        yield running


@pytest.fixture
def env(app: Env) -> Env:
    """The module's app with a fresh project, so each test sees only the persons it made."""
    return with_new_project(app)


def derived_id(env: Env, distinct_id: str) -> str:
    """PostHog's person uuid of a distinct id: uuid5 of "<team>:<distinct id>"."""
    return str(uuid.uuid5(NAMESPACE, f"{env.project.id}:{distinct_id}"))


def at(minutes: float) -> str:
    """ISO time ``minutes`` after T0."""
    return iso(T0 + dt.timedelta(minutes=minutes))


def lit(text: str) -> str:
    """A HogQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def person_of(env: Env, distinct_id: str) -> dict[str, Any] | None:
    """The person a distinct id belongs to, from HogQL: id, created_at, properties, is_identified, distinct_ids."""
    rows = await hogql(env, f"SELECT person_id FROM person_distinct_ids WHERE distinct_id = {lit(distinct_id)}")
    if not rows:
        return None
    assert len(rows) == 1, rows
    person_id = rows[0][0]
    found = await hogql(
        env, f"SELECT id, created_at, properties, is_identified FROM persons WHERE id = {lit(person_id)}"
    )
    assert len(found) == 1, (distinct_id, found)
    ids = await hogql(
        env, f"SELECT distinct_id FROM person_distinct_ids WHERE person_id = {lit(person_id)} ORDER BY distinct_id"
    )
    pid, created_at, properties, identified = found[0]
    return {
        "id": pid,
        "created_at": parse_time(created_at),
        "properties": json.loads(properties),
        "is_identified": bool(identified),
        "distinct_ids": [r[0] for r in ids],
    }


async def person_count(env: Env) -> int:
    return int((await hogql(env, "SELECT count() FROM persons"))[0][0])


async def props(env: Env, distinct_id: str) -> dict[str, Any]:
    person = await person_of(env, distinct_id)
    assert person is not None, distinct_id
    return {k: v for k, v in person["properties"].items() if k != "$creator_event_uuid"}


async def event_person_ids(env: Env, distinct_id: str) -> set[str]:
    rows = await hogql(env, f"SELECT DISTINCT person_id FROM events WHERE distinct_id = {lit(distinct_id)}")
    return {r[0] for r in rows}


async def eventually_person_ids(env: Env, distinct_id: str, expected: set[str]) -> set[str]:
    """The person ids of ``distinct_id``'s events once they equal ``expected`` (merges rewrite events in the
    background), or what they still are after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        found = await event_person_ids(env, distinct_id)
        if found == expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------------------------------------------------
# creation and properties
# ---------------------------------------------------------------------------------------------------------


async def test_new_distinct_id_creates_person_with_derived_id(env: Env) -> None:
    """A first event creates a person with PostHog's derived uuid, its creating event and the event's time."""
    first = str(uuid.uuid4())
    await capture_ok(
        env, [event("$pageview", "visitor-1", uuid=first, timestamp=at(0)), event("x", "visitor-1", timestamp=at(5))]
    )
    person = await person_of(env, "visitor-1")
    assert person is not None
    assert person["id"] == derived_id(env, "visitor-1")
    assert person["created_at"] == T0
    assert person["properties"] == {"$creator_event_uuid": first}
    assert person["is_identified"] is False
    assert person["distinct_ids"] == ["visitor-1"]
    assert await event_person_ids(env, "visitor-1") == {person["id"]}
    rows = await hogql(env, "SELECT last_seen_at FROM persons")
    assert parse_time(rows[0][0]) == T0 + dt.timedelta(minutes=5)


async def test_numeric_distinct_id_is_its_text(env: Env) -> None:
    """A numeric distinct id is the person of its decimal text."""
    await capture_ok(env, [{"event": "x", "distinct_id": 42}])
    person = await person_of(env, "42")
    assert person is not None and person["id"] == derived_id(env, "42")


async def test_set_overwrites_set_once_keeps_first_unset_removes(env: Env) -> None:
    """$set overwrites, $set_once keeps the first value, $unset (a list or an object) removes keys."""
    await capture_ok(
        env,
        [
            event(
                "a",
                "u",
                properties={"$set": {"plan": "free", "a": 1, "b": 2, "c": 3}, "$set_once": {"first": "one"}},
                timestamp=at(0),
            )
        ],
    )
    await capture_ok(
        env,
        [
            event(
                "b",
                "u",
                properties={"$set": {"plan": "pro"}, "$set_once": {"first": "two", "second": "x"}},
                timestamp=at(1),
            )
        ],
    )
    assert await props(env, "u") == {"plan": "pro", "a": 1, "b": 2, "c": 3, "first": "one", "second": "x"}
    await capture_ok(env, [event("c", "u", properties={"$unset": ["a", "missing"]}, timestamp=at(2))])
    await capture_ok(env, [event("d", "u", properties={"$unset": {"b": None}}, timestamp=at(3))])
    assert await props(env, "u") == {"plan": "pro", "c": 3, "first": "one", "second": "x"}


async def test_top_level_set_and_set_once_are_applied(env: Env) -> None:
    """posthog-python's top-level $set / $set_once count like the ones in properties (top level wins)."""
    await capture_ok(
        env,
        [
            {
                "event": "$set",
                "distinct_id": "u",
                "$set": {"k": "top"},
                "properties": {"$set": {"k": "props", "j": 1}},
                "$set_once": {"o": 1},
            }
        ],
    )
    assert await props(env, "u") == {"k": "top", "j": 1, "o": 1}


async def test_operations_apply_set_once_then_set_then_unset(env: Env) -> None:
    """Within one event $set_once comes first, then $set, then $unset."""
    await capture_ok(
        env,
        [
            event(
                "x",
                "u",
                properties={"$set_once": {"k": "once", "gone": 1}, "$set": {"k": "set", "gone": 2}, "$unset": ["gone"]},
            )
        ],
    )
    assert await props(env, "u") == {"k": "set"}


async def test_initial_properties_and_current_browser_set_only_when_missing(env: Env) -> None:
    """The first event's browser and campaign become $initial_*; $browser and utm_source are filled only while
    missing, and a later explicit $set still changes them."""
    await capture_ok(
        env,
        [
            event(
                "$pageview",
                "u",
                properties={"$browser": "Chrome", "utm_source": "google", "$current_url": "https://a.test/1"},
                timestamp=at(0),
            )
        ],
    )
    await capture_ok(
        env,
        [
            event(
                "$pageview",
                "u",
                properties={"$browser": "Firefox", "utm_source": "bing", "$current_url": "https://a.test/2"},
                timestamp=at(1),
            )
        ],
    )
    assert await props(env, "u") == {
        "$initial_browser": "Chrome",
        "$browser": "Chrome",
        "$initial_utm_source": "google",
        "utm_source": "google",
        "$initial_current_url": "https://a.test/1",
        "$current_url": "https://a.test/1",
    }
    await capture_ok(
        env, [event("$set", "u", properties={"$set": {"$browser": "Safari"}, "$browser": "Edge"}, timestamp=at(2))]
    )
    found = await props(env, "u")
    assert (found["$browser"], found["$initial_browser"]) == ("Safari", "Chrome")


# ---------------------------------------------------------------------------------------------------------
# identify, alias, merges
# ---------------------------------------------------------------------------------------------------------


async def test_identify_gives_the_anonymous_person_the_new_id(env: Env) -> None:
    """$identify to an id without a person: the anonymous person gains that id and becomes identified."""
    await capture_ok(
        env,
        [
            event("$pageview", "anon-1", timestamp=at(0)),
            event(
                "$identify",
                "user-1",
                properties={"$anon_distinct_id": "anon-1", "$set": {"email": "u1@x.test"}},
                timestamp=at(1),
            ),
            event("$pageview", "user-1", timestamp=at(2)),
        ],
    )
    person = await person_of(env, "user-1")
    assert person is not None
    assert person["id"] == derived_id(env, "anon-1")
    assert person["distinct_ids"] == ["anon-1", "user-1"]
    assert person["is_identified"] is True
    assert person["created_at"] == T0
    assert person["properties"]["email"] == "u1@x.test"
    assert await person_count(env) == 1
    rows = await hogql(env, "SELECT DISTINCT person_id FROM events")
    assert rows == [[person["id"]]]


async def test_identify_of_two_new_ids_creates_one_identified_person(env: Env) -> None:
    """$identify where neither id has a person yet creates one identified person holding both ids."""
    await capture_ok(env, [event("$identify", "user-2", properties={"$anon_distinct_id": "anon-2"}, timestamp=at(0))])
    person = await person_of(env, "anon-2")
    assert person is not None
    assert person["distinct_ids"] == ["anon-2", "user-2"]
    assert person["is_identified"] is True
    assert await person_count(env) == 1


async def test_identify_merges_two_anonymous_persons(env: Env) -> None:
    """Both ids with persons, the anonymous one not identified: it merges into the identified id's person, whose
    properties win; the earliest created_at is kept; the other person disappears; earlier events move over."""
    await capture_ok(
        env,
        [
            event("$pageview", "anon-m", properties={"$set": {"plan": "free", "anon_only": 1}}, timestamp=at(0)),
            event("$pageview", "user-m", properties={"$set": {"plan": "pro", "email": "m@x.test"}}, timestamp=at(10)),
        ],
    )
    anon = await person_of(env, "anon-m")
    user = await person_of(env, "user-m")
    assert anon is not None and user is not None and anon["id"] != user["id"]
    await capture_ok(
        env,
        [
            event(
                "$identify",
                "user-m",
                properties={"$anon_distinct_id": "anon-m", "$set": {"last": "identify"}},
                timestamp=at(20),
            )
        ],
    )
    survivor = await person_of(env, "anon-m")
    assert survivor is not None
    assert survivor["id"] == user["id"]
    assert survivor["distinct_ids"] == ["anon-m", "user-m"]
    assert survivor["is_identified"] is True
    assert survivor["created_at"] == T0  # the anonymous person's, the earlier
    assert {k: v for k, v in survivor["properties"].items() if k != "$creator_event_uuid"} == {
        "plan": "pro",
        "anon_only": 1,
        "email": "m@x.test",
        "last": "identify",
    }
    assert survivor["properties"]["$creator_event_uuid"] == user["properties"]["$creator_event_uuid"]
    assert await hogql(env, "SELECT id FROM persons") == [[user["id"]]]
    assert await eventually_person_ids(env, "anon-m", {user["id"]}) == {user["id"]}
    listed = await env.client.get(f"/api/projects/{env.project.id}/persons/", headers=env.auth())
    assert [p["id"] for p in listed.json()["results"]] == [user["id"]]


async def test_chain_of_merges_in_one_request_moves_events_to_the_last_survivor(env: Env) -> None:
    """A merged into B, then B into C, within one request: A's and B's earlier events all end up on C."""
    await capture_ok(
        env,
        [
            event("$pageview", "a", timestamp=at(0)),
            event("$pageview", "b", timestamp=at(1)),
            event("$pageview", "c", timestamp=at(2)),
            event("$identify", "b", properties={"$anon_distinct_id": "a"}, timestamp=at(3)),
            event("$merge_dangerously", "c", properties={"alias": "b"}, timestamp=at(4)),
        ],
    )
    survivor = await person_of(env, "a")
    assert survivor is not None
    assert survivor["id"] == derived_id(env, "c") and survivor["distinct_ids"] == ["a", "b", "c"]
    assert await person_count(env) == 1
    assert await eventually_person_ids(env, "b", {survivor["id"]}) == {survivor["id"]}
    assert await eventually_person_ids(env, "a", {survivor["id"]}) == {survivor["id"]}


async def test_refused_merge_when_the_other_person_is_identified(env: Env) -> None:
    """$identify cannot merge a person that is already identified: both persons stay, and the event's $set goes
    to its own person; $merge_dangerously then merges them anyway."""
    await capture_ok(
        env,
        [
            event("$identify", "first-login", properties={"$anon_distinct_id": "device"}, timestamp=at(0)),
            event("$pageview", "second-user", properties={"$set": {"who": "second"}}, timestamp=at(1)),
        ],
    )
    first = await person_of(env, "device")
    second = await person_of(env, "second-user")
    assert first is not None and second is not None and first["is_identified"] is True
    await capture_ok(
        env,
        [
            event(
                "$identify",
                "second-user",
                properties={"$anon_distinct_id": "device", "$set": {"refused": True}},
                timestamp=at(2),
            )
        ],
    )
    assert (await person_of(env, "device"))["id"] == first["id"]  # type: ignore[index]
    after = await person_of(env, "second-user")
    assert after is not None and after["id"] == second["id"] and after["distinct_ids"] == ["second-user"]
    assert after["properties"]["refused"] is True
    assert await person_count(env) == 2

    await capture_ok(env, [event("$merge_dangerously", "second-user", properties={"alias": "device"}, timestamp=at(3))])
    merged = await person_of(env, "device")
    assert merged is not None
    assert merged["id"] == second["id"]
    assert merged["distinct_ids"] == ["device", "first-login", "second-user"]
    assert merged["created_at"] == T0
    assert await person_count(env) == 1
    assert await eventually_person_ids(env, "first-login", {second["id"]}) == {second["id"]}


async def test_refused_merge_still_identifies_the_event_person(env: Env) -> None:
    """As in PostHog (mergeDistinctIds sets updateIsIdentified before mergePeople refuses), the $identify
    event's own person becomes identified even when the merge is refused."""
    await capture_ok(
        env,
        [
            event("$identify", "first-login", properties={"$anon_distinct_id": "device"}, timestamp=at(0)),
            event("$pageview", "second-user", timestamp=at(1)),
            event("$identify", "second-user", properties={"$anon_distinct_id": "device"}, timestamp=at(2)),
        ],
    )
    second = await person_of(env, "second-user")
    assert second is not None and second["distinct_ids"] == ["second-user"]
    assert second["is_identified"] is True


async def test_create_alias_links_the_alias(env: Env) -> None:
    """$create_alias adds the alias to the event's person; the alias's later events belong to it."""
    await capture_ok(env, [event("$pageview", "user-a", timestamp=at(0))])
    await capture_ok(env, [event("$create_alias", "user-a", properties={"alias": "crm-123"}, timestamp=at(1))])
    await capture_ok(env, [event("$pageview", "crm-123", properties={"$set": {"from_crm": True}}, timestamp=at(2))])
    person = await person_of(env, "crm-123")
    assert person is not None
    assert person["id"] == derived_id(env, "user-a")
    assert person["distinct_ids"] == ["crm-123", "user-a"]
    assert person["properties"]["from_crm"] is True
    assert await event_person_ids(env, "crm-123") == {person["id"]}


ILLEGAL = ["anonymous", "null", "0", '"undefined"', "[object Object]", "Guest", "'none'"]


@pytest.mark.parametrize("illegal", ILLEGAL)
async def test_illegal_ids_never_merge(env: Env, illegal: str) -> None:
    """Ids clients send when they have none never link persons: not as $anon_distinct_id, alias, or the event's id."""
    await capture_ok(env, [event("$pageview", illegal, timestamp=at(0)), event("$pageview", "real", timestamp=at(1))])
    await capture_ok(
        env,
        [
            event("$identify", "real", properties={"$anon_distinct_id": illegal}, timestamp=at(2)),
            event("$create_alias", "real", properties={"alias": illegal}, timestamp=at(3)),
            event("$identify", illegal, properties={"$anon_distinct_id": "real"}, timestamp=at(4)),
            event("$merge_dangerously", "real", properties={"alias": illegal}, timestamp=at(5)),
        ],
    )
    real = await person_of(env, "real")
    other = await person_of(env, illegal)
    assert real is not None and other is not None
    assert real["distinct_ids"] == ["real"] and other["distinct_ids"] == [illegal]
    assert real["is_identified"] is False
    assert await person_count(env) == 2


async def test_blank_anon_id_never_links(env: Env) -> None:
    """A blank $anon_distinct_id ("  ") links nothing and is no distinct id of anyone."""
    await capture_ok(env, [event("$identify", "real", properties={"$anon_distinct_id": "  "})])
    person = await person_of(env, "real")
    assert person is not None and person["distinct_ids"] == ["real"]
    assert await person_of(env, "  ") is None


# ---------------------------------------------------------------------------------------------------------
# person-less events ($process_person_profile: false)
# ---------------------------------------------------------------------------------------------------------


async def test_personless_event_creates_no_person(env: Env) -> None:
    """A person-less event makes no person: it carries the derived id, mode propertyless, no person properties,
    and its $set is not stored."""
    await capture_ok(
        env, [event("$pageview", "pl-1", properties={"$process_person_profile": False, "$set": {"x": 1}, "keep": "me"})]
    )
    assert await person_count(env) == 0
    assert await person_of(env, "pl-1") is None
    rows = await hogql(
        env, "SELECT person_id, person_mode, person.properties.x, person.created_at, properties FROM events"
    )
    (row,) = rows
    assert row[:3] == [derived_id(env, "pl-1"), "propertyless", None]
    assert parse_time(row[3]) == dt.datetime(1970, 1, 1, 0, 0, 5, tzinfo=dt.UTC)  # PostHog's "no person" time
    stored = json.loads(row[4])
    assert "$set" not in stored and stored["keep"] == "me" and stored["$process_person_profile"] is False
    # a person made later for that id has the id its person-less events carry
    await capture_ok(env, [event("$pageview", "pl-1")])
    person = await person_of(env, "pl-1")
    assert person is not None and person["id"] == derived_id(env, "pl-1")


async def test_personless_identify_is_dropped(env: Env) -> None:
    """$identify sent person-less is not stored and links nothing."""
    await capture_ok(env, [event("$pageview", "anon", timestamp=at(0)), event("$pageview", "user", timestamp=at(1))])
    await capture_ok(
        env,
        [
            event(
                "$identify",
                "user",
                properties={"$anon_distinct_id": "anon", "$process_person_profile": False},
                timestamp=at(2),
            )
        ],
    )
    assert await hogql(env, "SELECT event FROM events ORDER BY timestamp") == [["$pageview"], ["$pageview"]]
    assert await person_count(env) == 2
    assert (await person_of(env, "user"))["distinct_ids"] == ["user"]  # type: ignore[index]


async def test_personless_event_of_an_existing_person(env: Env) -> None:
    """A person-less event of a distinct id with a person carries that person's id with no properties: mode
    force_upgrade once the person is over a minute old, propertyless before."""
    await capture_ok(env, [event("$pageview", "known", properties={"$set": {"email": "k@x.test"}}, timestamp=at(0))])
    await capture_ok(
        env,
        [
            event("soon", "known", properties={"$process_person_profile": False}, timestamp=at(0.5)),
            event(
                "later",
                "known",
                properties={"$process_person_profile": False, "$set": {"email": "no"}},
                timestamp=at(90),
            ),
        ],
    )
    person_id = derived_id(env, "known")
    rows = await hogql(
        env, "SELECT event, person_id, person_mode, person.properties.email FROM events ORDER BY timestamp"
    )
    assert rows == [
        ["$pageview", person_id, "full", "k@x.test"],
        ["soon", person_id, "propertyless", None],
        ["later", person_id, "force_upgrade", None],
    ]
    assert (await props(env, "known")) == {"email": "k@x.test"}


async def test_identify_after_personless_events_keeps_them_with_the_person(env: Env) -> None:
    """posthog-js's default ('identified_only'): anonymous events are person-less until $identify. The person
    then made for the two ids takes the anonymous id's derived uuid (PostHog swaps the ids for this), so the
    earlier anonymous events belong to the identified person."""
    await capture_ok(
        env, [event("$pageview", "anon-pl", properties={"$process_person_profile": False}, timestamp=at(0))]
    )
    await capture_ok(env, [event("$identify", "user-pl", properties={"$anon_distinct_id": "anon-pl"}, timestamp=at(1))])
    person = await person_of(env, "user-pl")
    assert person is not None and person["distinct_ids"] == ["anon-pl", "user-pl"]
    assert await eventually_person_ids(env, "anon-pl", {person["id"]}) == {person["id"]}


async def test_identify_into_existing_person_moves_personless_events(env: Env) -> None:
    """An anonymous id used person-less, identified as a user who already has a person: its earlier events are
    moved to that person (PostHog writes a person override for them)."""
    await capture_ok(env, [event("$pageview", "user-x", timestamp=at(0))])
    await capture_ok(
        env, [event("$pageview", "anon-x", properties={"$process_person_profile": False}, timestamp=at(1))]
    )
    await capture_ok(env, [event("$identify", "user-x", properties={"$anon_distinct_id": "anon-x"}, timestamp=at(2))])
    person = await person_of(env, "anon-x")
    assert person is not None and person["id"] == derived_id(env, "user-x")
    assert await eventually_person_ids(env, "anon-x", {person["id"]}) == {person["id"]}


# ---------------------------------------------------------------------------------------------------------
# events stamped with their person
# ---------------------------------------------------------------------------------------------------------


async def test_events_carry_person_properties_as_of_the_event(env: Env) -> None:
    """Each event keeps its person's properties as they were after it: none before $set, the new value after."""
    await capture_ok(env, [event("1 before", "u", timestamp=at(0))])
    await capture_ok(env, [event("2 set", "u", properties={"$set": {"email": "a@x.test"}}, timestamp=at(1))])
    await capture_ok(env, [event("3 after", "u", timestamp=at(2))])
    await capture_ok(
        env,
        [
            event("4 changed", "u", properties={"$set": {"email": "b@x.test"}}, timestamp=at(3)),
            event("5 last", "u", timestamp=at(4)),
        ],
    )
    rows = await hogql(
        env, "SELECT event, person.properties.email, person.id, person.created_at FROM events ORDER BY event"
    )
    assert [r[:2] for r in rows] == [
        ["1 before", None],
        ["2 set", "a@x.test"],
        ["3 after", "a@x.test"],
        ["4 changed", "b@x.test"],
        ["5 last", "b@x.test"],
    ]
    assert {r[2] for r in rows} == {derived_id(env, "u")}
    assert {parse_time(r[3]) for r in rows} == {T0}
    count = await hogql(env, "SELECT count() FROM events WHERE person.properties.email = 'a@x.test'")
    assert count == [[2]]


# ---------------------------------------------------------------------------------------------------------
# restart
# ---------------------------------------------------------------------------------------------------------


async def test_persons_survive_a_restart(settings: Settings, store: ChDBStore) -> None:
    """A restarted app rebuilds person state from the store: a known distinct id keeps its person and properties,
    no duplicate is made, and a merge of persons made before the restart works."""
    async with running_env(settings, store) as env:
        await capture_ok(
            env,
            [
                event(
                    "$pageview",
                    "known",
                    properties={"$set": {"email": "k@x.test"}, "$set_once": {"first": 1}},
                    timestamp=at(0),
                ),
                event("$pageview", "anon-r", properties={"$set": {"a": 1}}, timestamp=at(1)),
                event("$pageview", "user-r", timestamp=at(2)),
            ],
        )
        known = await person_of(env, "known")
        user = await person_of(env, "user-r")
    assert known is not None and user is not None
    async with running_env(settings, store) as env:
        await capture_ok(
            env,
            [
                event(
                    "$pageview",
                    "known",
                    properties={"$set_once": {"first": 2}, "$set": {"seen": "again"}},
                    timestamp=at(5),
                ),
                event("$identify", "user-r", properties={"$anon_distinct_id": "anon-r"}, timestamp=at(6)),
            ],
        )
        again = await person_of(env, "known")
        assert again is not None and again["id"] == known["id"]
        assert again["created_at"] == T0
        assert {k: v for k, v in again["properties"].items() if k != "$creator_event_uuid"} == {
            "email": "k@x.test",
            "first": 1,
            "seen": "again",
        }
        merged = await person_of(env, "anon-r")
        assert merged is not None and merged["id"] == user["id"]
        assert merged["distinct_ids"] == ["anon-r", "user-r"] and merged["properties"]["a"] == 1
        assert await person_count(env) == 2
        assert await event_person_ids(env, "known") == {known["id"]}


async def test_one_entry_person_cache_reads_state_back_from_the_store(tmp_path: Path, store: ChDBStore) -> None:
    """With room for one distinct id in memory, person processing reads the rest from the store and reaches
    the same persons: properties, links and a merge across separate requests."""
    async with running_env(make_settings(tmp_path, person_cache_size=1), store) as env:
        steps = [
            event(
                "$pageview", "anon", properties={"$set": {"plan": "free"}, "$set_once": {"src": "ad"}}, timestamp=at(0)
            ),
            event("$pageview", "user", properties={"$set": {"email": "u@x.test"}}, timestamp=at(1)),
            event("$pageview", "third", timestamp=at(2)),
            event("$set", "anon", properties={"$set": {"plan": "trial"}, "$unset": ["src"]}, timestamp=at(3)),
            event("$identify", "user", properties={"$anon_distinct_id": "anon"}, timestamp=at(4)),
            event("$create_alias", "user", properties={"alias": "crm-1"}, timestamp=at(5)),
            event("$pageview", "crm-1", properties={"$set_once": {"plan": "ignored", "late": True}}, timestamp=at(6)),
        ]
        for step in steps:
            await capture_ok(env, [step])
        person = await person_of(env, "crm-1")
        assert person is not None
        assert person["id"] == derived_id(env, "user")
        assert person["distinct_ids"] == ["anon", "crm-1", "user"]
        assert person["is_identified"] is True and person["created_at"] == T0
        assert await props(env, "anon") == {"plan": "trial", "email": "u@x.test", "late": True}
        assert await person_count(env) == 2
        assert (await person_of(env, "third"))["distinct_ids"] == ["third"]  # type: ignore[index]


# ---------------------------------------------------------------------------------------------------------
# persons API
# ---------------------------------------------------------------------------------------------------------


async def _five_persons(env: Env) -> list[str]:
    """p0..p4 created an hour apart (p4 newest); p2 also has the id 'p2-alias'. Returns their ids, oldest first."""
    events = [
        event(
            "$pageview",
            f"p{i}",
            properties={"$set": {"email": f"P{i}@Example.test", "plan": "pro" if i % 2 else "free", "n": i}},
            timestamp=at(60 * i),
        )
        for i in range(5)
    ]
    events.append(event("$create_alias", "p2", properties={"alias": "p2-alias"}, timestamp=at(300)))
    await capture_ok(env, events)
    return [derived_id(env, f"p{i}") for i in range(5)]


async def persons_api(env: Env, path: str = "", key: str | None = None, **params: Any) -> Any:
    response = await env.client.get(
        f"/api/projects/{env.project.id}/persons/{path}", params=params, headers=env.auth(key)
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_persons_list_newest_first_with_pages(env: Env) -> None:
    """The list is newest first; limit/offset pages link to each other through next and previous."""
    ids = await _five_persons(env)
    everything = await persons_api(env)
    assert [p["id"] for p in everything["results"]] == ids[::-1]
    assert everything["next"] is None and everything["previous"] is None
    person = everything["results"][2]
    assert person["type"] == "person" and person["uuid"] == ids[2]
    assert person["distinct_ids"] == ["p2", "p2-alias"]
    assert person["name"] == "P2@Example.test"
    assert person["is_identified"] is True
    assert parse_time(person["created_at"].replace("+00:00", "Z")) == T0 + dt.timedelta(hours=2)
    assert person["properties"]["plan"] == "free"

    page = await persons_api(env, limit=2)
    seen = [p["id"] for p in page["results"]]
    assert page["previous"] is None
    pages = 1
    while page["next"]:
        response = await env.client.get(page["next"], headers=env.auth())
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["previous"] is not None
        seen += [p["id"] for p in page["results"]]
        pages += 1
    assert pages == 3 and seen == ids[::-1]
    middle = await persons_api(env, limit=2, offset=2)
    assert [p["id"] for p in middle["results"]] == [ids[2], ids[1]]
    assert "offset=0" in middle["previous"] and "offset=4" in middle["next"]


async def test_persons_filters(env: Env) -> None:
    """distinct_id, email, search (email contains, distinct id, uuid) and properties filters select persons."""
    ids = await _five_persons(env)

    async def found(**params: Any) -> list[str]:
        return [p["id"] for p in (await persons_api(env, **params))["results"]]

    assert await found(distinct_id="p2-alias") == [ids[2]]
    assert await found(distinct_id="p2") == [ids[2]]
    assert await found(distinct_id="nobody") == []
    assert await found(email="P3@Example.test") == [ids[3]]
    assert await found(search="p1@example") == [ids[1]]
    assert await found(search="EXAMPLE.TEST") == ids[::-1]
    assert await found(search="p2-alias") == [ids[2]]
    assert await found(search=ids[4]) == [ids[4]]
    assert await found(search="%") == []
    pro = json.dumps([{"key": "plan", "value": "pro", "operator": "exact", "type": "person"}])
    assert await found(properties=pro) == [ids[3], ids[1]]
    gt = json.dumps([{"key": "n", "value": 2, "operator": "gt", "type": "person"}])
    assert await found(properties=gt) == [ids[4], ids[3]]
    bad = await env.client.get(
        f"/api/projects/{env.project.id}/persons/", params={"properties": "{nope"}, headers=env.auth()
    )
    assert_error(bad, 400, type="validation_error", code="invalid_input", attr="properties")


async def test_person_detail(env: Env) -> None:
    """GET persons/<uuid>/ returns the person; a non-uuid is 400 and an unknown uuid 404."""
    ids = await _five_persons(env)
    person = await persons_api(env, f"{ids[2]}/")
    assert person["id"] == ids[2] and person["distinct_ids"] == ["p2", "p2-alias"]
    assert person["properties"]["email"] == "P2@Example.test"
    base = f"/api/projects/{env.project.id}/persons/"
    bad = await env.client.get(base + "p2/", headers=env.auth())
    assert_error(bad, 400, type="validation_error", code="invalid_input", attr="id")
    missing = await env.client.get(base + f"{uuid.uuid4()}/", headers=env.auth())
    assert_error(missing, 404, type="invalid_request", code="not_found")


async def test_persons_need_person_read_scope(env: Env) -> None:
    """A key without person:read gets 403 on the list and on a person; person:read alone is enough."""
    ids = await _five_persons(env)
    base = f"/api/projects/{env.project.id}/persons/"
    without = env.new_key(["query:read", "project:read"])
    for path in (base, base + f"{ids[0]}/"):
        response = await env.client.get(path, headers=env.auth(without))
        assert_error(response, 403, type="authentication_error", code="permission_denied")
        assert "person:read" in response.json()["detail"]
    only = env.new_key(["person:read"])
    assert len((await persons_api(env, key=only))["results"]) == 5


async def test_persons_are_isolated_between_projects(env: Env) -> None:
    """Another project lists none of this project's persons, cannot fetch them by uuid or distinct id, and a key
    scoped to that project is refused here."""
    ids = await _five_persons(env)
    other = with_new_project(env)
    await capture_ok(other, [event("$pageview", "p0", properties={"$set": {"email": "other@x.test"}})])
    listed = await persons_api(other)
    assert [p["id"] for p in listed["results"]] == [derived_id(other, "p0")]
    assert derived_id(other, "p0") != ids[0]
    assert (await persons_api(other, distinct_id="p2"))["results"] == []
    assert (await persons_api(other, search="example.test"))["results"] == []
    response = await other.client.get(f"/api/projects/{other.project.id}/persons/{ids[0]}/", headers=other.auth())
    assert response.status_code == 404
    scoped = env.new_key(["person:read"], scoped_teams=[other.project.id])
    denied = await env.client.get(f"/api/projects/{env.project.id}/persons/", headers=env.auth(scoped))
    assert denied.status_code == 403, denied.text
    assert await hogql(other, "SELECT count() FROM persons WHERE properties.email ILIKE '%example.test'") == [[0]]
