"""The log alerts API ``/api/projects/<id>/logs/alerts/`` (logs spec §2.2, §5.1, §5.2): create, list, read,
replace, change and delete alerts, what a change does to an alert's state and history, reset, history,
the state timeline and destinations.

One app serves the whole module; every test works in a project of its own, so alerts and limits never mix.
Alerts are put into states a check would leave them in (firing, broken, failures) by writing through the
metadata repository, the way the scheduler does.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from logpond.meta.records import MembershipLevel
from logpond.store.chdb_store import ChDBStore
from tests.api._support import UUID_RE, assert_error, parse_iso
from tests.conftest import Env, make_settings, running_env

pytestmark = pytest.mark.asyncio(loop_scope="module")

ERRORS = {"severityLevels": ["error"]}
HOOK = "http://127.0.0.1:1/hook"
FIELDS = {
    "id",
    "name",
    "enabled",
    "filters",
    "threshold_count",
    "threshold_operator",
    "window_minutes",
    "check_interval_minutes",
    "evaluation_periods",
    "datapoints_to_alarm",
    "cooldown_minutes",
    "snooze_until",
    "schedule_restriction",
    "state",
    "next_check_at",
    "last_notified_at",
    "last_checked_at",
    "first_enabled_at",
    "consecutive_failures",
    "last_error_message",
    "last_delivery_error",
    "last_delivery_error_at",
    "destination_types",
    "state_timeline",
    "created_at",
    "created_by",
    "updated_at",
}
EVENT_FIELDS = {
    "id",
    "created_at",
    "kind",
    "state_before",
    "state_after",
    "threshold_breached",
    "result_count",
    "error_message",
    "query_duration_ms",
}
# every route below an alert's id, with a body it would accept
ALERT_ROUTES = [
    ("GET", "", None),
    ("PUT", "", {"name": "x", "filters": ERRORS}),
    ("PATCH", "", {"name": "x"}),
    ("DELETE", "", None),
    ("POST", "reset", None),
    ("GET", "events", None),
    ("POST", "destinations", {"type": "webhook", "webhook_url": HOOK}),
    ("POST", "destinations/delete", {"hog_function_ids": [str(uuid.uuid4())]}),
]
WRITE_ROUTES = [route for route in ALERT_ROUTES if route[0] != "GET"]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def later(**delta: float) -> str:
    return (now() + dt.timedelta(**delta)).isoformat()


def check(before: str, after: str, **fields: Any) -> dict[str, Any]:
    """A CHECK history entry as the scheduler writes it."""
    return {"kind": "check", "state_before": before, "state_after": after, "threshold_breached": False, **fields}


class Alerts:
    """A fresh project of the module's app, and the calls its tests make."""

    def __init__(self, env: Env, project: Any) -> None:
        self.env = env
        self.project = project
        self.meta = env.services.meta

    def url(self, *parts: str, project_id: int | None = None, prefix: str = "projects") -> str:
        base = f"/api/{prefix}/{project_id or self.project.id}/logs/alerts/"
        return base + "".join(f"{part}/" for part in parts if part)

    async def call(
        self,
        method: str,
        *parts: str,
        json: Any = None,
        key: str | None = None,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        project_id: int | None = None,
    ) -> httpx.Response:
        return await self.env.client.request(
            method,
            self.url(*parts, project_id=project_id),
            json=json,
            params=params,
            headers=self.env.auth(key),
        )

    async def create(self, key: str | None = None, **body: Any) -> dict[str, Any]:
        body = {"name": "Errors", "filters": ERRORS, **body}
        response = await self.call("POST", json=body, key=key)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def get(self, alert_id: str) -> dict[str, Any]:
        response = await self.call("GET", alert_id)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def patch(self, alert_id: str, **body: Any) -> dict[str, Any]:
        response = await self.call("PATCH", alert_id, json=body)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def events(self, alert_id: str, **params: Any) -> dict[str, Any]:
        response = await self.call("GET", alert_id, "events", params=params)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def history(self, alert_id: str) -> list[tuple[str, str, str]]:
        """(kind, state_before, state_after) of every shown history entry, newest first."""
        rows = (await self.events(alert_id))["results"]
        return [(row["kind"], row["state_before"], row["state_after"]) for row in rows]

    def force(self, alert_id: str, events: Sequence[dict[str, Any]] = (), **values: Any) -> None:
        """Write column values and history entries directly, as a check would."""
        stored = self.meta.alerts.update(self.project.id, alert_id, lambda alert: (values, list(events)))
        assert stored is not None

    def other_user(self) -> tuple[Any, str]:
        """A second member of the project's organisation, with an all-scopes key."""
        user = self.meta.create_user(f"{uuid.uuid4().hex[:10]}@example.com", None, first_name="Sam")
        self.meta.add_membership(user.id, self.project.organization_id, MembershipLevel.MEMBER)
        key, _ = self.meta.create_personal_api_key(user.id, "second", ["*"])
        return user, key


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_env(chdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    """One running app over its own chDB database and metadata, shared by the module's tests."""
    store = ChDBStore(chdb_path, database=f"m_{uuid.uuid4().hex[:12]}")
    store.migrate()
    try:
        async with running_env(make_settings(tmp_path_factory.mktemp("alerts_api")), store) as env:
            yield env
    finally:
        store.drop_database()


@pytest.fixture
def alerts(module_env: Env) -> Alerts:
    return Alerts(module_env, module_env.services.meta.create_project(f"Alerts {uuid.uuid4().hex[:8]}"))


def assert_invalid(response: httpx.Response, attr: str | None) -> None:
    assert_error(response, 400, type="validation_error", code="invalid_input", attr=attr)


def assert_not_found(response: httpx.Response) -> None:
    assert_error(response, 404, type="invalid_request", code="not_found")


def assert_denied(response: httpx.Response) -> None:
    assert_error(response, 403, type="authentication_error", code="permission_denied")


# --- create ---------------------------------------------------------------------------------------------


async def test_create_fills_every_field_with_its_default(alerts: Alerts) -> None:
    """A new alert has every §5.1 field with its default, starts not_firing and was created by the key's user."""
    before = now()
    doc = await alerts.create()
    after = now()
    assert set(doc) == FIELDS
    assert UUID_RE.match(doc["id"])
    assert {name: doc[name] for name in FIELDS - {"id", "created_at", "updated_at", "first_enabled_at"}} == {
        "name": "Errors",
        "enabled": True,
        "filters": ERRORS,
        "threshold_count": 100,
        "threshold_operator": "above",
        "window_minutes": 5,
        "check_interval_minutes": 5,
        "evaluation_periods": 1,
        "datapoints_to_alarm": 1,
        "cooldown_minutes": 0,
        "snooze_until": None,
        "schedule_restriction": None,
        "state": "not_firing",
        "next_check_at": None,
        "last_notified_at": None,
        "last_checked_at": None,
        "consecutive_failures": 0,
        "last_error_message": None,
        "last_delivery_error": None,
        "last_delivery_error_at": None,
        "destination_types": [],
        "state_timeline": doc["state_timeline"],
        "created_by": doc["created_by"],
    }
    for name in ("created_at", "updated_at", "first_enabled_at"):
        assert before <= parse_iso(doc[name]) <= after
    admin = alerts.meta.get_admin_user()
    assert doc["created_by"] == {
        "id": admin.id,
        "uuid": admin.uuid,
        "distinct_id": admin.distinct_id,
        "first_name": admin.first_name,
        "last_name": admin.last_name,
        "email": admin.email,
        "is_email_verified": True,
    }
    [segment] = doc["state_timeline"]
    assert (segment["state"], segment["enabled"], segment["start"]) == ("not_firing", True, doc["created_at"])
    assert parse_iso(segment["end"]) >= parse_iso(segment["start"])
    stored = await alerts.get(doc["id"])
    assert {k: v for k, v in stored.items() if k != "state_timeline"} == {
        k: v for k, v in doc.items() if k != "state_timeline"
    }
    assert (await alerts.events(doc["id"]))["count"] == 0


@pytest.mark.parametrize("name", ["", "   ", None, "absent"])
async def test_a_blank_name_becomes_untitled_alert(alerts: Alerts, name: str | None) -> None:
    """An empty, blank, null or missing name is stored as "Untitled alert"."""
    body = {"filters": ERRORS} if name == "absent" else {"name": name, "filters": ERRORS}
    response = await alerts.call("POST", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Untitled alert"


async def test_every_writable_field_is_stored_as_given(alerts: Alerts) -> None:
    """Non-default values of every writable field come back as sent; a future snooze_until starts snoozed."""
    snooze = later(hours=2)
    restriction = {"blocked_windows": [{"start": "22:00", "end": "06:00"}, {"start": "12:00", "end": "13:30"}]}
    doc = await alerts.create(
        name="  Checkout errors  ",
        filters={"severityLevels": ["error", "fatal"], "serviceNames": ["checkout"]},
        threshold_count=0,
        threshold_operator="below",
        window_minutes=60,
        evaluation_periods=10,
        datapoints_to_alarm=10,
        cooldown_minutes=90,
        snooze_until=snooze,
        schedule_restriction=restriction,
    )
    assert doc["name"] == "Checkout errors"
    assert doc["filters"] == {"severityLevels": ["error", "fatal"], "serviceNames": ["checkout"]}
    assert (doc["threshold_count"], doc["threshold_operator"], doc["window_minutes"]) == (0, "below", 60)
    assert (doc["evaluation_periods"], doc["datapoints_to_alarm"], doc["cooldown_minutes"]) == (10, 10, 90)
    assert parse_iso(doc["snooze_until"]) == dt.datetime.fromisoformat(snooze)
    assert doc["schedule_restriction"] == restriction
    assert doc["state"] == "snoozed"


async def test_a_flat_filter_group_is_stored_nested(alerts: Alerts) -> None:
    """A flat list of filterGroup leaves is kept as PostHog's AND(AND(leaves)); empty filters are dropped."""
    leaf = {"type": "log_attribute", "key": "k", "value": "v", "operator": "exact"}
    doc = await alerts.create(filters={"filterGroup": [leaf], "severityLevels": [], "serviceNames": []})
    assert doc["filters"] == {"filterGroup": {"type": "AND", "values": [{"type": "AND", "values": [leaf]}]}}


@pytest.mark.parametrize("filters", [{}, None, {"severityLevels": [], "serviceNames": []}])
async def test_a_disabled_alert_without_filters_is_a_draft(alerts: Alerts, filters: Any) -> None:
    """A disabled alert may have no filter: a draft that was never enabled."""
    doc = await alerts.create(enabled=False, filters=filters)
    assert (doc["enabled"], doc["filters"], doc["state"], doc["first_enabled_at"]) == (False, {}, "not_firing", None)
    assert doc["state_timeline"][0]["enabled"] is False


@pytest.mark.parametrize("filters", ["absent", {}, None, {"severityLevels": [], "serviceNames": []}])
async def test_an_enabled_alert_needs_a_filter(alerts: Alerts, filters: Any) -> None:
    """An enabled alert with no severity, service or filterGroup filter is a 400 naming filters."""
    body: dict[str, Any] = {"name": "everything"}
    if filters != "absent":
        body["filters"] = filters
    assert_invalid(await alerts.call("POST", json=body), "filters")
    assert (await alerts.call("GET")).json()["count"] == 0


def windows(*pairs: tuple[Any, Any]) -> dict[str, Any]:
    return {"blocked_windows": [{"start": start, "end": end} for start, end in pairs]}


INVALID = [
    ({"name": "x" * 256}, "name"),
    ({"name": 5}, "name"),
    ({"enabled": "true"}, "enabled"),
    ({"enabled": 1}, "enabled"),
    ({"enabled": None}, "enabled"),
    ({"threshold_count": -1}, "threshold_count"),
    ({"threshold_count": "10"}, "threshold_count"),
    ({"threshold_count": 1.5}, "threshold_count"),
    ({"threshold_count": True}, "threshold_count"),
    ({"threshold_count": None}, "threshold_count"),
    ({"threshold_count": 2**31}, "threshold_count"),
    ({"threshold_operator": "equals"}, "threshold_operator"),
    ({"threshold_operator": None}, "threshold_operator"),
    ({"window_minutes": 7}, "window_minutes"),
    ({"window_minutes": 0}, "window_minutes"),
    ({"window_minutes": 120}, "window_minutes"),
    ({"window_minutes": "5"}, "window_minutes"),
    ({"evaluation_periods": 0}, "evaluation_periods"),
    ({"evaluation_periods": 11}, "evaluation_periods"),
    ({"evaluation_periods": False}, "evaluation_periods"),
    ({"datapoints_to_alarm": 0}, "datapoints_to_alarm"),
    ({"datapoints_to_alarm": 11, "evaluation_periods": 10}, "datapoints_to_alarm"),
    ({"datapoints_to_alarm": 2}, "datapoints_to_alarm"),  # N > the default M of 1
    ({"datapoints_to_alarm": 3, "evaluation_periods": 2}, "datapoints_to_alarm"),
    ({"cooldown_minutes": -1}, "cooldown_minutes"),
    ({"cooldown_minutes": "5"}, "cooldown_minutes"),
    ({"cooldown_minutes": 10**9}, "cooldown_minutes"),
    ({"snooze_until": "2001-01-01T00:00:00Z"}, "snooze_until"),
    ({"snooze_until": "-1h"}, "snooze_until"),
    ({"snooze_until": "next tuesday-ish"}, "snooze_until"),
    ({"snooze_until": 1_900_000_000}, "snooze_until"),
    ({"schedule_restriction": "22:00-06:00"}, "schedule_restriction"),
    ({"schedule_restriction": {"windows": []}}, "schedule_restriction"),
    ({"schedule_restriction": {"blocked_windows": "22:00"}}, "schedule_restriction__blocked_windows"),
    ({"schedule_restriction": windows(*[("01:00", "02:00")] * 25)}, "schedule_restriction__blocked_windows"),
    ({"schedule_restriction": windows(("25:00", "06:00"))}, "schedule_restriction__blocked_windows__0__start"),
    ({"schedule_restriction": windows(("22:00", "6:00"))}, "schedule_restriction__blocked_windows__0__end"),
    ({"schedule_restriction": windows(("22:00", 600))}, "schedule_restriction__blocked_windows__0__end"),
    ({"schedule_restriction": windows(("22:00", "22:00"))}, "schedule_restriction__blocked_windows__0"),
    ({"schedule_restriction": {"blocked_windows": [{"start": "22:00"}]}}, "schedule_restriction__blocked_windows__0"),
    (
        {"schedule_restriction": windows(("22:00", "06:00"), ("12:60", "13:00"))},
        "schedule_restriction__blocked_windows__1__start",
    ),
    ({"filters": ["error"]}, "filters"),
    ({"filters": {"level": ["error"]}}, "filters"),
    ({"filters": {"searchTerm": "boom"}}, "filters"),
    ({"filters": {"severityLevels": ["loud"]}}, "filters__severityLevels"),
]


@pytest.mark.parametrize(("body", "attr"), INVALID)
async def test_create_rejects_an_invalid_field_by_name(alerts: Alerts, body: dict[str, Any], attr: str) -> None:
    """Each invalid field of a create is a 400 validation_error whose attr names it; nothing is stored."""
    response = await alerts.call("POST", json={"name": "bad", "filters": ERRORS, **body})
    assert_invalid(response, attr)
    assert (await alerts.call("GET")).json()["count"] == 0


async def test_a_name_of_255_characters_is_kept(alerts: Alerts) -> None:
    """The longest allowed name, 255 characters, is stored whole."""
    assert (await alerts.create(name="n" * 255))["name"] == "n" * 255


@pytest.mark.parametrize("name", ["x\x00y", "\x00"])
async def test_a_name_with_a_nul_character_is_rejected(alerts: Alerts, name: str) -> None:
    """A name holding a NUL character is a 400 naming name, as DRF's CharField refuses it (PostgreSQL cannot
    store it in a text column, so accepting it fails there with a 500)."""
    assert_invalid(await alerts.call("POST", json={"name": name, "filters": ERRORS}), "name")
    assert (await alerts.call("GET")).json()["count"] == 0


@pytest.mark.parametrize(
    "group", [[], {"type": "AND", "values": []}, {"type": "AND", "values": [{"type": "AND", "values": []}]}]
)
async def test_an_empty_filter_group_is_no_filter(alerts: Alerts, group: Any) -> None:
    """A filterGroup without a single leaf filters nothing, so an enabled alert with only that is a 400 naming
    filters, like one with empty severityLevels."""
    assert_invalid(await alerts.call("POST", json={"name": "everything", "filters": {"filterGroup": group}}), "filters")
    assert (await alerts.call("GET")).json()["count"] == 0


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"alert"'])
async def test_a_body_that_is_not_an_object_is_rejected(alerts: Alerts, raw: bytes) -> None:
    """A JSON body that is not an object is a 400 naming no field; broken JSON is a parse error."""
    headers = {**alerts.env.auth(), "Content-Type": "application/json"}
    response = await alerts.env.client.post(alerts.url(), content=raw, headers=headers)
    assert_invalid(response, None)
    response = await alerts.env.client.post(alerts.url(), content=b"{nope", headers=headers)
    assert_error(response, 400, type="invalid_request", code="parse_error")


async def test_read_only_fields_in_a_body_are_ignored(alerts: Alerts) -> None:
    """state, consecutive_failures, check_interval_minutes, next_check_at and ids sent by a client change nothing."""
    ignored = {
        "id": str(uuid.uuid4()),
        "state": "firing",
        "consecutive_failures": 7,
        "check_interval_minutes": 60,
        "next_check_at": later(hours=1),
        "last_notified_at": later(hours=-1),
        "first_enabled_at": "2001-01-01T00:00:00Z",
        "created_at": "2001-01-01T00:00:00Z",
        "created_by": {"id": 999},
        "destination_types": ["slack"],
    }
    doc = await alerts.create(**ignored)
    assert doc["id"] != ignored["id"]
    assert (doc["state"], doc["consecutive_failures"], doc["check_interval_minutes"]) == ("not_firing", 0, 5)
    assert (doc["next_check_at"], doc["last_notified_at"], doc["destination_types"]) == (None, None, [])
    assert not doc["first_enabled_at"].startswith("2001") and not doc["created_at"].startswith("2001")
    changed = await alerts.patch(doc["id"], **{**ignored, "state": "broken"})
    assert (changed["state"], changed["consecutive_failures"], changed["next_check_at"]) == ("not_firing", 0, None)
    assert changed["id"] == doc["id"] and changed["created_at"] == doc["created_at"]
    assert await alerts.history(doc["id"]) == []


# --- the per-project limit ------------------------------------------------------------------------------


async def test_a_project_holds_at_most_twenty_alerts(alerts: Alerts) -> None:
    """The 21st alert of a project is a 400; another project can still create, and a delete frees a place."""
    created = [(await alerts.create(enabled=False, filters={}))["id"] for _ in range(20)]
    response = await alerts.call("POST", json={"name": "one too many", "filters": ERRORS})
    assert_error(response, 400, type="validation_error", code="max_alerts")
    assert (await alerts.call("GET")).json()["count"] == 20
    other = alerts.meta.create_project("Other")
    assert (await alerts.call("POST", json={"filters": ERRORS}, project_id=other.id)).status_code == 201
    assert (await alerts.call("DELETE", created[0])).status_code == 204
    assert (await alerts.call("POST", json={"filters": ERRORS})).status_code == 201


async def test_the_alert_limit_is_a_setting(store: ChDBStore, tmp_path: Path) -> None:
    """With alerts_max_per_project=3 the fourth create is a 400 naming the limit; other projects are unaffected."""
    async with running_env(make_settings(tmp_path, alerts_max_per_project=3), store) as env:
        project = Alerts(env, env.project)
        for _ in range(3):
            await project.create()
        body = assert_error(
            await project.call("POST", json={"filters": ERRORS}), 400, type="validation_error", code="max_alerts"
        )
        assert "3" in body["detail"]
        other = env.services.meta.create_project("Other")
        assert (await project.call("POST", json={"filters": ERRORS}, project_id=other.id)).status_code == 201


# --- list -----------------------------------------------------------------------------------------------


async def test_list_is_newest_first_with_limit_offset_pages(alerts: Alerts) -> None:
    """The list is newest first and pages with limit/offset, giving count and absolute next/previous URLs."""
    ids = [(await alerts.create(name=f"a{i}"))["id"] for i in range(5)]
    newest_first = ids[::-1]
    whole = (await alerts.call("GET")).json()
    assert (whole["count"], whole["next"], whole["previous"]) == (5, None, None)
    assert [row["id"] for row in whole["results"]] == newest_first
    assert set(whole["results"][0]) == FIELDS

    first = (await alerts.call("GET", params={"limit": 2})).json()
    assert (first["count"], first["previous"]) == (5, None)
    assert [row["id"] for row in first["results"]] == newest_first[:2]
    assert httpx.URL(first["next"]).is_absolute_url
    second = (await alerts.env.client.get(first["next"], headers=alerts.env.auth())).json()
    assert [row["id"] for row in second["results"]] == newest_first[2:4]
    assert httpx.URL(second["previous"]).params["offset"] == "0"
    last = (await alerts.env.client.get(second["next"], headers=alerts.env.auth())).json()
    assert ([row["id"] for row in last["results"]], last["next"]) == (newest_first[4:], None)
    assert httpx.URL(last["previous"]).params["offset"] == "2"
    assert_invalid(await alerts.call("GET", params={"limit": "many"}), "limit")


async def test_list_filters_by_creator(alerts: Alerts) -> None:
    """?created_by=<user uuid> keeps the alerts that user created; an unknown uuid keeps none."""
    admin = alerts.meta.get_admin_user()
    sam, sam_key = alerts.other_user()
    mine = [(await alerts.create())["id"] for _ in range(2)]
    theirs = [(await alerts.create(key=sam_key))["id"] for _ in range(3)]

    by_sam = (await alerts.call("GET", params={"created_by": sam.uuid})).json()
    assert [row["id"] for row in by_sam["results"]] == theirs[::-1] and by_sam["count"] == 3
    assert {row["created_by"]["uuid"] for row in by_sam["results"]} == {sam.uuid}
    assert by_sam["results"][0]["created_by"]["first_name"] == "Sam"
    by_admin = (await alerts.call("GET", params={"created_by": admin.uuid.upper()})).json()
    assert [row["id"] for row in by_admin["results"]] == mine[::-1]
    paged = (await alerts.call("GET", params={"created_by": sam.uuid, "limit": 2})).json()
    assert httpx.URL(paged["next"]).params["created_by"] == sam.uuid
    nobody = (await alerts.call("GET", params={"created_by": str(uuid.uuid4())})).json()
    assert (nobody["count"], nobody["results"]) == (0, [])
    everyone = (await alerts.call("GET", params={"created_by": ""})).json()
    assert everyone["count"] == 5


@pytest.mark.parametrize("value", ["nope", "123", "1' OR '1'='1"])
async def test_list_rejects_a_created_by_that_is_not_a_uuid(alerts: Alerts, value: str) -> None:
    """A created_by that is not a uuid is a 400 naming created_by."""
    assert_invalid(await alerts.call("GET", params={"created_by": value}), "created_by")


# --- retrieve, replace, delete, unknown ids -------------------------------------------------------------


@pytest.mark.parametrize(("method", "route", "body"), ALERT_ROUTES)
@pytest.mark.parametrize("alert_id", [str(uuid.uuid4()), "not-a-uuid", "123"])
async def test_unknown_or_malformed_alert_ids_are_not_found(
    alerts: Alerts, alert_id: str, method: str, route: str, body: Any
) -> None:
    """Every route under an alert id answers 404 for an unknown or malformed id."""
    await alerts.create()
    assert_not_found(await alerts.call(method, alert_id, route, json=body))


async def test_put_replaces_the_fields_it_sends_and_keeps_the_others(alerts: Alerts) -> None:
    """PUT stores the fields in the body and keeps absent ones as they are (as DRF does for fields with a
    default); an enabled alert still needs a filter."""
    doc = await alerts.create(threshold_count=5, cooldown_minutes=30, window_minutes=15)
    response = await alerts.call(
        "PUT", doc["id"], json={"name": "Renamed", "filters": {"serviceNames": ["api"]}, "threshold_count": 7}
    )
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert (replaced["name"], replaced["filters"], replaced["threshold_count"]) == (
        "Renamed",
        {"serviceNames": ["api"]},
        7,
    )
    assert (replaced["cooldown_minutes"], replaced["window_minutes"]) == (30, 15)
    assert (replaced["id"], replaced["created_at"]) == (doc["id"], doc["created_at"])
    assert parse_iso(replaced["updated_at"]) > parse_iso(doc["updated_at"])
    assert [kind for kind, _, _ in await alerts.history(doc["id"])] == ["threshold_change"]
    assert_invalid(await alerts.call("PUT", doc["id"], json={"name": "no filters", "filters": {}}), "filters")
    assert (await alerts.get(doc["id"]))["name"] == "Renamed"


async def test_put_may_send_back_a_snooze_until_that_has_passed(alerts: Alerts) -> None:
    """A PUT of the alert as read, with a snooze_until now in the past, is accepted and records nothing."""
    doc = await alerts.create()
    alerts.force(doc["id"], snooze_until=now() - dt.timedelta(minutes=5))
    read = await alerts.get(doc["id"])
    response = await alerts.call("PUT", doc["id"], json=read)
    assert response.status_code == 200, response.text
    assert response.json()["snooze_until"] == read["snooze_until"]
    assert await alerts.history(doc["id"]) == []
    assert_invalid(await alerts.call("PATCH", doc["id"], json={"snooze_until": later(minutes=-1)}), "snooze_until")


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({"name": "x" * 256}, "name"),
        ({"enabled": "yes"}, "enabled"),
        ({"filters": {}}, "filters"),
        ({"threshold_count": -5}, "threshold_count"),
        ({"window_minutes": 45}, "window_minutes"),
        ({"snooze_until": "2001-01-01T00:00:00Z"}, "snooze_until"),
        ({"schedule_restriction": windows(("07:00", "07:00"))}, "schedule_restriction__blocked_windows__0"),
        ({"threshold_count": 1, "cooldown_minutes": -1}, "cooldown_minutes"),
    ],
)
async def test_an_invalid_patch_changes_nothing(alerts: Alerts, body: dict[str, Any], attr: str) -> None:
    """A PATCH with an invalid field is a 400 naming it, and neither the alert nor its history changes."""
    doc = await alerts.create()
    assert_invalid(await alerts.call("PATCH", doc["id"], json=body), attr)
    after = await alerts.get(doc["id"])
    assert {k: v for k, v in after.items() if k != "state_timeline"} == {
        k: v for k, v in doc.items() if k != "state_timeline"
    }
    assert await alerts.history(doc["id"]) == []


async def test_a_patch_checks_n_against_the_stored_m(alerts: Alerts) -> None:
    """Changing only N or only M is checked against the stored other, naming datapoints_to_alarm."""
    doc = await alerts.create(evaluation_periods=3, datapoints_to_alarm=2)
    assert_invalid(await alerts.call("PATCH", doc["id"], json={"evaluation_periods": 1}), "datapoints_to_alarm")
    assert_invalid(await alerts.call("PATCH", doc["id"], json={"datapoints_to_alarm": 4}), "datapoints_to_alarm")
    changed = await alerts.patch(doc["id"], evaluation_periods=5, datapoints_to_alarm=5)
    assert (changed["evaluation_periods"], changed["datapoints_to_alarm"]) == (5, 5)
    changed = await alerts.patch(doc["id"], datapoints_to_alarm=1)
    assert (changed["evaluation_periods"], changed["datapoints_to_alarm"]) == (5, 1)


async def test_delete_removes_the_alert_its_history_and_destinations(alerts: Alerts) -> None:
    """DELETE is a 204; the alert, its history and its destinations are gone and a second delete is a 404."""
    keep = await alerts.create(name="keep")
    doc = await alerts.create()
    await alerts.patch(doc["id"], enabled=False)
    await alerts.patch(keep["id"], enabled=False)
    for alert_id in (doc["id"], keep["id"]):
        response = await alerts.call("POST", alert_id, "destinations", json={"type": "webhook", "webhook_url": HOOK})
        assert response.status_code == 201, response.text

    response = await alerts.call("DELETE", doc["id"])
    assert (response.status_code, response.content) == (204, b"")
    assert_not_found(await alerts.call("GET", doc["id"]))
    assert_not_found(await alerts.call("GET", doc["id"], "events"))
    assert_not_found(await alerts.call("DELETE", doc["id"]))
    assert alerts.meta.alerts.list_events(alerts.project.id, doc["id"]) == (0, [])
    assert alerts.meta.alerts.destinations([doc["id"]]) == {doc["id"]: []}
    assert [row["id"] for row in (await alerts.call("GET")).json()["results"]] == [keep["id"]]
    assert len(alerts.meta.alerts.destinations([keep["id"]])[keep["id"]]) == 4
    assert (await alerts.events(keep["id"]))["count"] == 1


# --- isolation and scopes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "route", "body"), ALERT_ROUTES)
async def test_another_projects_key_cannot_reach_an_alert(alerts: Alerts, method: str, route: str, body: Any) -> None:
    """Through project B, B's key gets 404 for A's alert on every route, and A's alert is untouched."""
    doc = await alerts.create()
    alerts.force(doc["id"], state="broken", consecutive_failures=5)
    b = alerts.meta.create_project("Tenant B")
    b_key = alerts.env.new_key(["*"], scoped_teams=[b.id])
    assert_not_found(await alerts.call(method, doc["id"], route, json=body, key=b_key, project_id=b.id))
    listed = (await alerts.call("GET", key=b_key, project_id=b.id)).json()
    assert (listed["count"], listed["results"]) == (0, [])
    after = await alerts.get(doc["id"])
    assert (after["name"], after["state"], after["consecutive_failures"]) == ("Errors", "broken", 5)
    assert alerts.meta.alerts.destinations([doc["id"]]) == {doc["id"]: []}


async def test_keys_of_other_projects_and_outsiders_are_denied(alerts: Alerts) -> None:
    """A key restricted to project B, or a user outside A's organisation, gets 403 on every route of A's alerts."""
    doc = await alerts.create()
    alerts.force(doc["id"], state="broken")
    b = alerts.meta.create_project("Tenant B")
    b_key = alerts.env.new_key(["*"], scoped_teams=[b.id])
    org = alerts.meta.create_organization("Elsewhere")
    outsider = alerts.meta.create_user(f"{uuid.uuid4().hex[:10]}@example.com", None)
    alerts.meta.add_membership(outsider.id, org.id, MembershipLevel.OWNER)
    outsider_key, _ = alerts.meta.create_personal_api_key(outsider.id, "outsider", ["*"])
    for key in (b_key, outsider_key):
        assert_denied(await alerts.call("GET", key=key))
        assert_denied(await alerts.call("POST", json={"filters": ERRORS}, key=key))
        for method, route, body in ALERT_ROUTES:
            assert_denied(await alerts.call(method, doc["id"], route, json=body, key=key))
    after = await alerts.get(doc["id"])
    assert (after["name"], after["state"], after["destination_types"]) == ("Errors", "broken", [])
    assert (await alerts.call("GET")).json()["count"] == 1


async def test_a_read_only_key_reads_but_cannot_change(alerts: Alerts) -> None:
    """logs:read lists, retrieves and reads history; every change is a 403 and leaves the alert as it was."""
    doc = await alerts.create()
    alerts.force(doc["id"], state="broken")
    read_key = alerts.env.new_key(["logs:read"])
    assert (await alerts.call("GET", key=read_key)).json()["count"] == 1
    assert (await alerts.call("GET", doc["id"], key=read_key)).status_code == 200
    assert (await alerts.call("GET", doc["id"], "events", key=read_key)).status_code == 200
    assert_denied(await alerts.call("POST", json={"filters": ERRORS}, key=read_key))
    for method, route, body in WRITE_ROUTES:
        assert_denied(await alerts.call(method, doc["id"], route, json=body, key=read_key))
    after = await alerts.get(doc["id"])
    assert (after["name"], after["state"], after["destination_types"]) == ("Errors", "broken", [])
    assert (await alerts.call("GET")).json()["count"] == 1


async def test_logs_write_is_enough_and_other_scopes_are_not(alerts: Alerts) -> None:
    """A logs:write key reads and writes alerts; a key with only other scopes gets 403 even to read."""
    write_key = alerts.env.new_key(["logs:write"])
    doc = await alerts.create(key=write_key)
    assert (await alerts.call("GET", doc["id"], key=write_key)).status_code == 200
    other_key = alerts.env.new_key(["query:read", "project:read"])
    assert_denied(await alerts.call("GET", key=other_key))
    assert_denied(await alerts.call("GET", doc["id"], "events", key=other_key))


async def test_without_a_key_every_route_is_401(alerts: Alerts) -> None:
    """No credentials is a 401 on the list and on every alert route."""
    doc = await alerts.create()
    calls = [("GET", alerts.url(), None), ("POST", alerts.url(), {"filters": ERRORS})]
    calls += [(method, alerts.url(doc["id"], route), body) for method, route, body in ALERT_ROUTES]
    for method, url, body in calls:
        response = await alerts.env.client.request(method, url, json=body)
        assert_error(response, 401, type="authentication_error", code="not_authenticated")
    bad = await alerts.env.client.get(alerts.url(), headers={"Authorization": "Bearer phx_not_a_key"})
    assert bad.status_code == 401


async def test_the_environments_prefix_reaches_the_same_alerts(alerts: Alerts) -> None:
    """/api/environments/<id>/logs/alerts/ creates, lists, changes and reads history of the same alerts."""
    url = alerts.url(prefix="environments")
    response = await alerts.env.client.post(url, json={"filters": ERRORS}, headers=alerts.env.auth())
    assert response.status_code == 201, response.text
    alert_id = response.json()["id"]
    newest = (await alerts.create())["id"]
    listed = (await alerts.env.client.get(url, headers=alerts.env.auth(), params={"limit": 1})).json()
    assert ([row["id"] for row in listed["results"]], listed["count"]) == ([newest], 2)
    assert httpx.URL(listed["next"]).path == url  # the path the client used
    response = await alerts.env.client.patch(f"{url}{alert_id}/", json={"enabled": False}, headers=alerts.env.auth())
    assert response.status_code == 200
    events = (await alerts.env.client.get(f"{url}{alert_id}/events/", headers=alerts.env.auth())).json()
    assert [row["kind"] for row in events["results"]] == ["disable"]
    assert (await alerts.get(alert_id))["enabled"] is False


# --- what an update does (spec §5.1, in priority order) ---------------------------------------------------


async def test_disabling_moves_to_not_firing_and_keeps_failures(alerts: Alerts) -> None:
    """Disabling a firing alert makes it not_firing with its failure count kept, and records DISABLE."""
    doc = await alerts.create()
    alerts.force(doc["id"], state="firing", consecutive_failures=2)
    changed = await alerts.patch(doc["id"], enabled=False)
    assert (changed["enabled"], changed["state"], changed["consecutive_failures"]) == (False, "not_firing", 2)
    assert await alerts.history(doc["id"]) == [("disable", "firing", "not_firing")]


async def test_enabling_starts_over_and_sets_first_enabled_at_once(alerts: Alerts) -> None:
    """Enabling records ENABLE, clears failures and next_check_at, and sets first_enabled_at only the first time."""
    doc = await alerts.create(enabled=False)
    assert doc["first_enabled_at"] is None
    alerts.force(doc["id"], state="errored", consecutive_failures=3, next_check_at=now() + dt.timedelta(minutes=5))
    enabled = await alerts.patch(doc["id"], enabled=True)
    assert (enabled["state"], enabled["consecutive_failures"], enabled["next_check_at"]) == ("not_firing", 0, None)
    first = enabled["first_enabled_at"]
    assert first is not None
    await alerts.patch(doc["id"], enabled=False)
    again = await alerts.patch(doc["id"], enabled=True)
    assert again["first_enabled_at"] == first
    assert await alerts.history(doc["id"]) == [
        ("enable", "not_firing", "not_firing"),
        ("disable", "not_firing", "not_firing"),
        ("enable", "errored", "not_firing"),
    ]


async def test_an_alert_created_enabled_keeps_its_first_enabled_at(alerts: Alerts) -> None:
    """first_enabled_at, set at creation, is not moved by a later disable and enable."""
    doc = await alerts.create()
    await alerts.patch(doc["id"], enabled=False)
    assert (await alerts.patch(doc["id"], enabled=True))["first_enabled_at"] == doc["first_enabled_at"]


async def test_enabling_a_draft_needs_a_filter(alerts: Alerts) -> None:
    """A draft cannot be enabled without a filter; enabling it with one records ENABLE."""
    doc = await alerts.create(enabled=False, filters={})
    assert_invalid(await alerts.call("PATCH", doc["id"], json={"enabled": True}), "filters")
    changed = await alerts.patch(doc["id"], enabled=True, filters={"serviceNames": ["api"]})
    assert (changed["enabled"], changed["filters"]) == (True, {"serviceNames": ["api"]})
    assert await alerts.history(doc["id"]) == [("enable", "not_firing", "not_firing")]


async def test_snoozing_and_unsnoozing(alerts: Alerts) -> None:
    """A future snooze_until snoozes (SNOOZE, failures kept); null unsnoozes to not_firing with no failures."""
    doc = await alerts.create()
    alerts.force(doc["id"], state="firing", consecutive_failures=2)
    until = later(hours=1)
    snoozed = await alerts.patch(doc["id"], snooze_until=until)
    assert (snoozed["state"], snoozed["consecutive_failures"]) == ("snoozed", 2)
    assert parse_iso(snoozed["snooze_until"]) == dt.datetime.fromisoformat(until)
    woken = await alerts.patch(doc["id"], snooze_until=None)
    assert (woken["state"], woken["consecutive_failures"], woken["snooze_until"]) == ("not_firing", 0, None)
    assert await alerts.history(doc["id"]) == [("unsnooze", "snoozed", "not_firing"), ("snooze", "firing", "snoozed")]


@pytest.mark.parametrize(
    ("body", "reschedules"),
    [
        ({"threshold_count": 5}, True),
        ({"threshold_operator": "below"}, True),
        ({"filters": {"serviceNames": ["api"]}}, True),
        ({"evaluation_periods": 4}, False),
        ({"datapoints_to_alarm": 2}, False),
    ],
)
async def test_a_rule_change_starts_over(alerts: Alerts, body: dict[str, Any], reschedules: bool) -> None:
    """Changing threshold, operator, filters, N or M records THRESHOLD_CHANGE and makes the alert not_firing with
    no failures; threshold, operator and filter changes also make the next check due at once."""
    doc = await alerts.create(evaluation_periods=3)
    next_check = now() + dt.timedelta(minutes=3)
    alerts.force(doc["id"], state="firing", consecutive_failures=2, next_check_at=next_check)
    changed = await alerts.patch(doc["id"], **body)
    assert (changed["state"], changed["consecutive_failures"]) == ("not_firing", 0)
    assert changed["next_check_at"] is None if reschedules else parse_iso(changed["next_check_at"]) == next_check
    assert await alerts.history(doc["id"]) == [("threshold_change", "firing", "not_firing")]


async def test_a_rule_change_leaves_a_snoozed_alert_snoozed(alerts: Alerts) -> None:
    """A threshold change of a snoozed alert records THRESHOLD_CHANGE but the alert stays snoozed."""
    doc = await alerts.create(snooze_until=later(hours=1))
    assert doc["state"] == "snoozed"
    changed = await alerts.patch(doc["id"], threshold_count=1)
    assert (changed["state"], changed["threshold_count"], changed["snooze_until"]) == (
        "snoozed",
        1,
        doc["snooze_until"],
    )
    assert await alerts.history(doc["id"]) == [("threshold_change", "snoozed", "snoozed")]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Renamed"},
        {"cooldown_minutes": 60},
        {"schedule_restriction": windows(("00:00", "06:00"))},
        {"name": "", "cooldown_minutes": 5},
    ],
)
async def test_changes_outside_the_rule_record_nothing(alerts: Alerts, body: dict[str, Any]) -> None:
    """Changing the name, cooldown or quiet hours keeps the state, failures and next check, and records nothing."""
    doc = await alerts.create()
    next_check = now() + dt.timedelta(minutes=3)
    alerts.force(doc["id"], state="firing", consecutive_failures=1, next_check_at=next_check)
    changed = await alerts.patch(doc["id"], **body)
    assert (changed["state"], changed["consecutive_failures"]) == ("firing", 1)
    assert parse_iso(changed["next_check_at"]) == next_check
    assert await alerts.history(doc["id"]) == []


async def test_a_window_change_reschedules_without_an_event(alerts: Alerts) -> None:
    """Changing window_minutes makes the next check due at once, keeps the state and records nothing."""
    doc = await alerts.create()
    alerts.force(doc["id"], state="firing", next_check_at=now() + dt.timedelta(minutes=3))
    changed = await alerts.patch(doc["id"], window_minutes=30)
    assert (changed["window_minutes"], changed["state"], changed["next_check_at"]) == (30, "firing", None)
    assert await alerts.history(doc["id"]) == []


async def test_unchanged_values_record_nothing(alerts: Alerts) -> None:
    """A PATCH that sends the stored values (flat filterGroup included) records no event and keeps next_check_at."""
    leaf = {"type": "log_attribute", "key": "k", "value": "v", "operator": "exact"}
    doc = await alerts.create(filters={"filterGroup": [leaf]}, threshold_count=10)
    next_check = now() + dt.timedelta(minutes=3)
    alerts.force(doc["id"], state="firing", next_check_at=next_check)
    changed = await alerts.patch(
        doc["id"], enabled=True, threshold_count=10, threshold_operator="above", filters={"filterGroup": [leaf]}
    )
    assert changed["state"] == "firing" and parse_iso(changed["next_check_at"]) == next_check
    assert await alerts.history(doc["id"]) == []


async def test_enabling_wins_over_a_threshold_change(alerts: Alerts) -> None:
    """Enabling and changing the threshold in one PATCH records only ENABLE."""
    doc = await alerts.create(enabled=False)
    changed = await alerts.patch(doc["id"], enabled=True, threshold_count=3)
    assert (changed["enabled"], changed["threshold_count"], changed["state"]) == (True, 3, "not_firing")
    assert await alerts.history(doc["id"]) == [("enable", "not_firing", "not_firing")]


async def test_disabling_wins_over_snoozing(alerts: Alerts) -> None:
    """Disabling and snoozing in one PATCH records only DISABLE and leaves the alert not_firing."""
    doc = await alerts.create()
    alerts.force(doc["id"], state="firing")
    changed = await alerts.patch(doc["id"], enabled=False, snooze_until=later(hours=1))
    assert (changed["enabled"], changed["state"]) == (False, "not_firing")
    assert changed["snooze_until"] is not None
    assert await alerts.history(doc["id"]) == [("disable", "firing", "not_firing")]


async def test_snoozing_wins_over_a_threshold_change(alerts: Alerts) -> None:
    """Snoozing and changing the threshold in one PATCH records only SNOOZE, and the next check is due at once."""
    doc = await alerts.create()
    alerts.force(doc["id"], state="firing", next_check_at=now() + dt.timedelta(minutes=3))
    changed = await alerts.patch(doc["id"], snooze_until=later(hours=1), threshold_count=1)
    assert (changed["state"], changed["threshold_count"], changed["next_check_at"]) == ("snoozed", 1, None)
    assert await alerts.history(doc["id"]) == [("snooze", "firing", "snoozed")]


# --- reset ----------------------------------------------------------------------------------------------


async def test_reset_brings_a_broken_alert_back(alerts: Alerts) -> None:
    """Reset of a broken alert returns it not_firing with no failures, due at once, and records RESET."""
    doc = await alerts.create()
    alerts.force(
        doc["id"],
        [check("not_firing", "broken", error_message="boom")],
        state="broken",
        consecutive_failures=5,
        next_check_at=now() + dt.timedelta(minutes=5),
        last_error_message="boom",
    )
    response = await alerts.call("POST", doc["id"], "reset")
    assert response.status_code == 200, response.text
    reset = response.json()
    assert set(reset) == FIELDS
    assert (reset["state"], reset["consecutive_failures"], reset["next_check_at"]) == ("not_firing", 0, None)
    assert await alerts.history(doc["id"]) == [("reset", "broken", "not_firing"), ("check", "not_firing", "broken")]


@pytest.mark.parametrize("state", ["not_firing", "firing", "pending_resolve", "errored", "snoozed"])
async def test_reset_of_an_alert_that_is_not_broken_is_refused(alerts: Alerts, state: str) -> None:
    """Reset from any state but broken is a 400 naming state, and changes nothing."""
    doc = await alerts.create()
    alerts.force(doc["id"], state=state, consecutive_failures=2)
    assert_invalid(await alerts.call("POST", doc["id"], "reset"), "state")
    after = await alerts.get(doc["id"])
    assert (after["state"], after["consecutive_failures"]) == (state, 2)
    assert await alerts.history(doc["id"]) == []


# --- history --------------------------------------------------------------------------------------------


async def test_events_are_newest_first_and_paginated(alerts: Alerts) -> None:
    """The history is newest first with every event field, and pages with limit/offset like the list."""
    doc = await alerts.create()
    states = ["not_firing", "firing"] * 3
    alerts.force(
        doc["id"],
        [
            check(states[i], states[i + 1], threshold_breached=i % 2 == 0, result_count=i, query_duration_ms=7)
            for i in range(5)
        ],
    )
    page = await alerts.events(doc["id"], limit=2)
    assert (page["count"], page["previous"]) == (5, None)
    assert set(page["results"][0]) == EVENT_FIELDS
    assert page["results"][0] | {"id": "", "created_at": ""} == {
        "id": "",
        "created_at": "",
        "kind": "check",
        "state_before": "not_firing",
        "state_after": "firing",
        "threshold_breached": True,
        "result_count": 4,
        "error_message": None,
        "query_duration_ms": 7,
    }
    counts = [row["result_count"] for row in page["results"]]
    while page["next"]:
        assert httpx.URL(page["next"]).is_absolute_url
        page = (await alerts.env.client.get(page["next"], headers=alerts.env.auth())).json()
        counts += [row["result_count"] for row in page["results"]]
    assert counts == [4, 3, 2, 1, 0]
    assert httpx.URL(page["previous"]).params["offset"] == "2"
    created = [parse_iso(row["created_at"]) for row in (await alerts.events(doc["id"]))["results"]]
    assert created == sorted(created, reverse=True)


async def test_quiet_checks_are_hidden(alerts: Alerts) -> None:
    """A check that neither failed nor changed the state is not shown; failed or state-changing checks are."""
    doc = await alerts.create()
    alerts.force(
        doc["id"],
        [
            check("not_firing", "not_firing"),
            check("not_firing", "not_firing", error_message="timeout"),
            check("not_firing", "firing", threshold_breached=True, result_count=150),
            check("firing", "firing", threshold_breached=True, result_count=160),
        ],
    )
    shown = await alerts.events(doc["id"])
    assert shown["count"] == 2
    assert [(row["state_after"], row["error_message"]) for row in shown["results"]] == [
        ("firing", None),
        ("not_firing", "timeout"),
    ]
    assert (await alerts.events(doc["id"], kind="check"))["count"] == 2


async def test_events_filter_by_kind(alerts: Alerts) -> None:
    """?kind= keeps the events of that kind; several kinds are given comma-separated or repeated."""
    doc = await alerts.create()
    alerts.force(doc["id"], [check("not_firing", "firing")], state="firing")
    await alerts.patch(doc["id"], enabled=False)
    await alerts.patch(doc["id"], enabled=True)
    await alerts.patch(doc["id"], threshold_count=1)

    def kinds(page: dict[str, Any]) -> list[str]:
        return [row["kind"] for row in page["results"]]

    assert kinds(await alerts.events(doc["id"])) == ["threshold_change", "enable", "disable", "check"]
    assert kinds(await alerts.events(doc["id"], kind="check")) == ["check"]
    assert kinds(await alerts.events(doc["id"], kind="enable")) == ["enable"]
    assert kinds(await alerts.events(doc["id"], kind="enable,disable")) == ["enable", "disable"]
    repeated = await alerts.call("GET", doc["id"], "events", params=[("kind", "check"), ("kind", "disable")])
    assert kinds(repeated.json()) == ["disable", "check"]
    assert (await alerts.events(doc["id"], kind="reset"))["count"] == 0


async def test_event_pages_keep_a_repeated_kind_filter(alerts: Alerts) -> None:
    """The next link of a history filtered by a repeated ?kind= keeps every kind, so page two continues page one."""
    doc = await alerts.create()
    await alerts.patch(doc["id"], enabled=False)
    await alerts.patch(doc["id"], enabled=True)
    await alerts.patch(doc["id"], threshold_count=1)
    first = await alerts.call(
        "GET", doc["id"], "events", params=[("kind", "enable"), ("kind", "disable"), ("limit", 1)]
    )
    page = first.json()
    assert ([row["kind"] for row in page["results"]], page["count"]) == (["enable"], 2)
    second = (await alerts.env.client.get(page["next"], headers=alerts.env.auth())).json()
    assert second["count"] == 2
    assert [row["kind"] for row in second["results"]] == ["disable"]


@pytest.mark.parametrize("kind", ["fire", "CHECK", "check,boom"])
async def test_an_unknown_event_kind_is_rejected(alerts: Alerts, kind: str) -> None:
    """An unknown ?kind= is a 400 naming kind."""
    doc = await alerts.create()
    response = await alerts.call("GET", doc["id"], "events", params={"kind": kind})
    assert_error(response, 400, type="validation_error", code="invalid_choice", attr="kind")


# --- state timeline -------------------------------------------------------------------------------------


def assert_contiguous(timeline: list[dict[str, Any]], created_at: str, before: dt.datetime) -> None:
    """Segments run from the alert's creation to the moment of the request, each starting where the last ended."""
    assert timeline[0]["start"] == created_at
    for earlier, later_segment in zip(timeline, timeline[1:], strict=False):
        assert earlier["end"] == later_segment["start"]
        assert (earlier["state"], earlier["enabled"]) != (later_segment["state"], later_segment["enabled"])
    for segment in timeline:
        assert parse_iso(segment["start"]) < parse_iso(segment["end"])
    assert before <= parse_iso(timeline[-1]["end"]) <= now()


async def test_the_timeline_follows_disable_and_enable(alerts: Alerts) -> None:
    """After a disable and a re-enable the timeline has enabled, disabled and enabled segments up to now."""
    doc = await alerts.create()
    await alerts.patch(doc["id"], enabled=False)
    await alerts.patch(doc["id"], enabled=True)
    before = now()
    timeline = (await alerts.get(doc["id"]))["state_timeline"]
    assert [(s["state"], s["enabled"]) for s in timeline] == [
        ("not_firing", True),
        ("not_firing", False),
        ("not_firing", True),
    ]
    assert_contiguous(timeline, doc["created_at"], before)
    events = (await alerts.events(doc["id"]))["results"]
    assert [timeline[1]["start"], timeline[2]["start"]] == [events[1]["created_at"], events[0]["created_at"]]


async def test_the_timeline_follows_state_changes(alerts: Alerts) -> None:
    """Checks that fire and resolve, a snooze and a break show as segments of those states, in the list too."""
    doc = await alerts.create()
    alerts.force(doc["id"], [check("not_firing", "firing", threshold_breached=True)], state="firing")
    alerts.force(doc["id"], [check("firing", "not_firing")], state="not_firing")
    await alerts.patch(doc["id"], snooze_until=later(hours=1))
    await alerts.patch(doc["id"], snooze_until=None)
    alerts.force(doc["id"], [check("not_firing", "broken", error_message="bad")], state="broken")
    before = now()
    timeline = (await alerts.call("GET")).json()["results"][0]["state_timeline"]
    assert [s["state"] for s in timeline] == ["not_firing", "firing", "not_firing", "snoozed", "not_firing", "broken"]
    assert all(s["enabled"] for s in timeline)
    assert_contiguous(timeline, doc["created_at"], before)


# --- destinations ---------------------------------------------------------------------------------------


async def add_destination(alerts: Alerts, alert_id: str, **body: Any) -> dict[str, Any]:
    response = await alerts.call("POST", alert_id, "destinations", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_webhook_destination_makes_one_function_per_notification(alerts: Alerts) -> None:
    """A webhook destination answers 201 with four ids and a signing secret, is stored encrypted, and shows in
    destination_types."""
    doc = await alerts.create()
    created = await add_destination(alerts, doc["id"], type="webhook", webhook_url=HOOK)
    ids = created["hog_function_ids"]
    assert len(ids) == len(set(ids)) == 4 and all(UUID_RE.match(i) for i in ids)
    assert created["type"] == "webhook"
    assert created["signing_secret"].startswith("whsec_")
    assert created["signing_secret"] not in str(created["config"])
    stored = alerts.meta.alerts.destinations([doc["id"]])[doc["id"]]
    assert {d.kind for d in stored} == {"firing", "resolved", "broken", "errored"}
    # kept encrypted in the metadata database, opened with the server's key
    assert all(d.config["signing_secret"].startswith("enc:v1:") for d in stored)
    assert all(created["signing_secret"] not in str(d.config) and HOOK not in str(d.config) for d in stored)
    box = alerts.env.services.secret_box
    assert {box.open_fields(d.config)["signing_secret"] for d in stored} == {created["signing_secret"]}
    assert {box.open_fields(d.config)["webhook_url"] for d in stored} == {HOOK}
    assert (await alerts.get(doc["id"]))["destination_types"] == ["webhook"]
    assert (await alerts.call("GET")).json()["results"][0]["destination_types"] == ["webhook"]
    chosen = await add_destination(alerts, doc["id"], type="webhook", webhook_url=HOOK, webhook_secret="s" * 20)
    assert chosen["signing_secret"] == "s" * 20


async def test_slack_and_webhook_destinations_are_both_listed(alerts: Alerts) -> None:
    """A slack incoming-webhook destination is accepted and destination_types lists both types, sorted."""
    doc = await alerts.create()
    slack = await add_destination(alerts, doc["id"], type="slack", slack_webhook_url="http://127.0.0.1:1/slack")
    assert (len(slack["hog_function_ids"]), slack["type"]) == (4, "slack")
    assert "signing_secret" not in slack
    await add_destination(alerts, doc["id"], type="webhook", webhook_url=HOOK)
    assert (await alerts.get(doc["id"]))["destination_types"] == ["slack", "webhook"]


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({}, "type"),
        ({"type": "email", "webhook_url": HOOK}, "type"),
        ({"type": "webhook"}, "webhook_url"),
        ({"type": "webhook", "webhook_url": "ftp://127.0.0.1/hook"}, "webhook_url"),
        ({"type": "webhook", "webhook_url": "https://10.0.0.1/hook"}, "webhook_url"),
        ({"type": "webhook", "webhook_url": HOOK, "webhook_secret": "short"}, "webhook_secret"),
        ({"type": "webhook", "webhook_url": HOOK, "colour": "red"}, "colour"),
        ({"type": "webhook", "webhook_url": HOOK, "slack_channel_id": "C123"}, "slack_channel_id"),
        ({"type": "teams"}, "webhook_url"),
        ({"type": "slack"}, "slack_webhook_url"),
        ({"type": "slack", "slack_workspace_id": 1, "slack_channel_id": "C123"}, "slack_workspace_id"),
    ],
)
async def test_a_bad_destination_is_rejected_by_field(alerts: Alerts, body: dict[str, Any], attr: str) -> None:
    """An invalid destination body is a 400 naming the field, and no destination is stored."""
    doc = await alerts.create()
    assert_invalid(await alerts.call("POST", doc["id"], "destinations", json=body), attr)
    assert alerts.meta.alerts.destinations([doc["id"]]) == {doc["id"]: []}
    assert (await alerts.get(doc["id"]))["destination_types"] == []


async def test_deleting_destinations(alerts: Alerts) -> None:
    """Deleting a destination's ids is a 204 and destination_types goes back to empty."""
    doc = await alerts.create()
    created = await add_destination(alerts, doc["id"], type="webhook", webhook_url=HOOK)
    ids = [i.upper() for i in created["hog_function_ids"]]
    response = await alerts.call("POST", doc["id"], "destinations/delete", json={"hog_function_ids": ids})
    assert (response.status_code, response.content) == (204, b"")
    assert (await alerts.get(doc["id"]))["destination_types"] == []
    assert alerts.meta.alerts.destinations([doc["id"]]) == {doc["id"]: []}
    again = await alerts.call("POST", doc["id"], "destinations/delete", json={"hog_function_ids": ids[:1]})
    assert_error(again, 400, type="validation_error", code="invalid_destination", attr="hog_function_ids")


async def test_deleting_another_alerts_destination_deletes_nothing(alerts: Alerts) -> None:
    """Ids that include another alert's destination are a 400, and neither alert loses a destination."""
    doc = await alerts.create()
    other = await alerts.create(name="other")
    mine = (await add_destination(alerts, doc["id"], type="webhook", webhook_url=HOOK))["hog_function_ids"]
    theirs = (await add_destination(alerts, other["id"], type="teams", webhook_url=HOOK))["hog_function_ids"]
    response = await alerts.call(
        "POST", doc["id"], "destinations/delete", json={"hog_function_ids": [*mine, theirs[0]]}
    )
    body = assert_error(response, 400, type="validation_error", code="invalid_destination", attr="hog_function_ids")
    assert theirs[0] in body["detail"]
    stored = alerts.meta.alerts.destinations([doc["id"], other["id"]])
    assert (len(stored[doc["id"]]), len(stored[other["id"]])) == (4, 4)
    assert (await alerts.get(other["id"]))["destination_types"] == ["teams"]


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({"hog_function_ids": []}, "hog_function_ids"),
        ({}, "hog_function_ids"),
        ({"hog_function_ids": "all"}, "hog_function_ids"),
        ([], "hog_function_ids"),
        ({"hog_function_ids": ["not-a-uuid"]}, "hog_function_ids__0"),
    ],
)
async def test_deleting_destinations_needs_a_list_of_ids(alerts: Alerts, body: Any, attr: str) -> None:
    """An empty, missing or malformed list of destination ids is a 400 and deletes nothing."""
    doc = await alerts.create()
    await add_destination(alerts, doc["id"], type="webhook", webhook_url=HOOK)
    assert_invalid(await alerts.call("POST", doc["id"], "destinations/delete", json=body), attr)
    assert len(alerts.meta.alerts.destinations([doc["id"]])[doc["id"]]) == 4


async def test_plain_http_to_loopback_needs_the_setting(store: ChDBStore, tmp_path: Path) -> None:
    """With alerts_allow_http_loopback off, an http://127.0.0.1 webhook is a 400 naming webhook_url."""
    async with running_env(make_settings(tmp_path, alerts_allow_http_loopback=False), store) as env:
        project = Alerts(env, env.project)
        doc = await project.create()
        for body in (
            {"type": "webhook", "webhook_url": HOOK},
            {"type": "teams", "webhook_url": "http://localhost:8080/hook"},
        ):
            assert_invalid(await project.call("POST", doc["id"], "destinations", json=body), "webhook_url")
        response = await project.call(
            "POST", doc["id"], "destinations", json={"type": "webhook", "webhook_url": "https://hooks.example.com/a"}
        )
        assert response.status_code == 201, response.text
        assert (await project.get(doc["id"]))["destination_types"] == ["webhook"]


REGEX_LEAF = {"key": "path", "operator": "regex", "type": "log_attribute"}


async def test_a_regex_the_store_cannot_compile_is_refused_when_saved(alerts: Alerts) -> None:
    """An RE2 pattern that does not compile is a 400 on create and on update (the store would only fail once a
    log reached it), a valid one is kept, and an unparseable date leaf is refused the same way."""
    bad = {"filterGroup": [{**REGEX_LEAF, "value": "(unclosed"}]}
    assert_invalid(await alerts.call("POST", json={"filters": bad}), "filters__filterGroup")
    doc = await alerts.create(filters={"filterGroup": [{**REGEX_LEAF, "value": "^/api/(v1|v2)/"}]})
    assert_invalid(await alerts.call("PATCH", doc["id"], json={"filters": bad}), "filters__filterGroup")
    date_leaf = {"key": "at", "operator": "is_date_after", "value": "not a date", "type": "log_attribute"}
    assert_invalid(
        await alerts.call("PATCH", doc["id"], json={"filters": {"filterGroup": [date_leaf]}}), "filters__filterGroup"
    )
    assert (await alerts.get(doc["id"]))["filters"]["filterGroup"]["values"][0]["values"][0][
        "value"
    ] == "^/api/(v1|v2)/"


async def test_an_upper_case_alert_id_finds_the_alert(alerts: Alerts) -> None:
    """The alert id in a path is a uuid in any case, as PostHog's uuid lookup reads it."""
    doc = await alerts.create()
    assert (await alerts.get(doc["id"].upper()))["id"] == doc["id"]
    response = await alerts.call("GET", doc["id"].upper(), "events")
    assert response.status_code == 200, response.text
