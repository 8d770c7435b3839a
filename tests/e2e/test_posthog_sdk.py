"""The real posthog-python SDK, configured as PostHog's docs show, captures into a real ``logpond serve``.

What arrives is read back the way users read it: HogQL over ``/api/projects/<id>/query/``, the events API
and the persons API, with a personal API key. One server serves the module; each test gets its own
project (``logpond projects create`` next to the running server), so counts are exact.

Besides the server's view, a tap on the SDK's HTTP session records every request it made (path, status,
``Content-Encoding`` and the batch it carried): that is how the tests see that nothing was retried, that
gzip really was on the wire, and that the SDK talked to nothing but ``/batch/`` on loopback. The SDK is
given no personal API key, so it has no feature-flag or remote-config reason to call anything else.
"""

from __future__ import annotations

import copy
import gzip
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import posthog.request
import pytest
import requests
from posthog import Posthog
from posthog.request import APIError
from posthog.version import VERSION

from tests.e2e._server import HOST, Credentials, Project, ServerProcess, api_client, module_server, new_project

WAIT_S = 15.0  # bound on every "until the server shows it" loop
PERSON_NAMESPACE = uuid.UUID("932979b4-65c3-4424-8467-0b66ec27bc22")  # PostHog's person-id namespace

PLANS = ("free", "pro", "enterprise")
AMOUNTS = (2.5, 9.99, 10, 10.01, 42, 99.5, 100, 250, 1000, 5)  # 9.99 > 10 as text, not as a number
COUNTRIES = ("DE", "FR", "US", "BR", "JP")
BROWSERS = ("Chrome", "Firefox", "Safari")
CATEGORIES = ("books", "garden", "kitchen", "toys")
FORMATS = ("csv", "xlsx", "pdf", "csv")


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with module_server(tmp_path_factory.mktemp("posthog_sdk")) as process:
        yield process


@pytest.fixture(autouse=True)
def _show_server_log(request: pytest.FixtureRequest, server: ServerProcess) -> None:
    request.node._logpond_servers = [server]  # the e2e conftest attaches its log tail to failures


@pytest.fixture(scope="module")
def credentials(server: ServerProcess) -> Credentials:
    return server.credentials()


@pytest.fixture(scope="module")
def http(server: ServerProcess, credentials: Credentials) -> Iterator[httpx.Client]:
    with api_client(server, credentials) as client:
        yield client


@pytest.fixture
def project(server: ServerProcess, request: pytest.FixtureRequest) -> Project:
    return new_project(server, f"sdk {request.node.name}")


# --- the SDK and a tap on its HTTP traffic -------------------------------------------------------------


@dataclass
class Request:
    path: str
    host: str
    status: int
    content_encoding: str | None
    body: dict[str, Any]


@dataclass
class Sdk:
    """A Posthog client, what it handed to the wire (via ``before_send``), and what ``on_error`` got."""

    client: Posthog
    sent: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[Exception, list[dict[str, Any]]]] = field(default_factory=list)

    def record(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.sent.append(copy.deepcopy(msg))
        return msg

    def on_error(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        self.errors.append((error, batch))


@contextmanager
def sdk(server: ServerProcess, token: str, **options: Any) -> Iterator[Sdk]:
    """A batching Posthog client for ``server``; shut down (which flushes) when the block ends."""
    holder: list[Sdk] = []
    client = Posthog(
        token,
        host=server.base_url,
        capture_mode="v0",  # the default, pinned: POSTHOG_CAPTURE_MODE in the environment must not switch it
        disable_geoip=True,
        on_error=lambda error, batch: holder[0].on_error(error, batch),
        before_send=lambda msg: holder[0].record(msg),
        **options,
    )
    holder.append(Sdk(client))
    try:
        yield holder[0]
    finally:
        client.shutdown()


@contextmanager
def wire_tap() -> Iterator[list[Request]]:
    """Every HTTP request the SDK's shared sessions (events, feature flags) complete while the block runs."""
    seen: list[Request] = []
    sessions = [posthog.request._get_session(), posthog.request._get_flags_session()]

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        sent = response.request
        raw = sent.body.encode() if isinstance(sent.body, str) else sent.body if isinstance(sent.body, bytes) else b""
        encoding = str(sent.headers["Content-Encoding"]) if "Content-Encoding" in sent.headers else None
        text = gzip.decompress(raw) if encoding == "gzip" else raw
        url = urlsplit(sent.url or "")
        body = json.loads(text) if text else {}
        seen.append(Request(url.path, url.hostname or "", response.status_code, encoding, body))

    for session in sessions:
        session.hooks["response"].append(hook)
    try:
        yield seen
    finally:
        for session in sessions:
            session.hooks["response"].remove(hook)


def sent_uuids(requests_seen: list[Request]) -> list[str]:
    return [msg["uuid"] for r in requests_seen for msg in r.body["batch"]]


# --- reading back ------------------------------------------------------------------------------------


def hogql(http: httpx.Client, project: Project, text: str) -> list[list[Any]]:
    response = http.post(f"/api/projects/{project.id}/query/", json={"query": {"kind": "HogQLQuery", "query": text}})
    assert response.status_code == 200, response.text
    rows: list[list[Any]] = response.json()["results"]
    return rows


def wait_for(http: httpx.Client, project: Project, text: str, expected: list[list[Any]]) -> None:
    """Poll a HogQL query (at most WAIT_S) until it returns ``expected``."""
    deadline = time.monotonic() + WAIT_S
    while (seen := hogql(http, project, text)) != expected:
        assert time.monotonic() < deadline, f"{text!r} still gives {seen!r}, not {expected!r}, after {WAIT_S} s"
        time.sleep(0.1)


def person_uuid(project: Project, distinct_id: str) -> str:
    return str(uuid.uuid5(PERSON_NAMESPACE, f"{project.id}:{distinct_id}"))


def order_properties(i: int) -> dict[str, Any]:
    """Twenty properties of the kind a shop sends: text, numbers, booleans, null, a list, an object."""
    return {
        "plan": PLANS[i % 3],
        "amount": AMOUNTS[i % len(AMOUNTS)],
        "currency": "USD" if i % 4 == 0 else "EUR",
        "country": COUNTRIES[i % 5],
        "$current_url": f"https://shop.example.com/products/{i % 40}?ref=mail",
        "$pathname": f"/products/{i % 40}",
        "$browser": BROWSERS[i % 3],
        "utm_source": "newsletter" if i % 2 else "google",
        "utm_campaign": f"spring-{i % 4}",
        "order_id": f"ord-{i:05d}",
        "item_count": i % 7 + 1,
        "coupon": "SPRING10" if i % 6 == 0 else None,
        "is_trial": i % 2 == 0,
        "referrer": "https://www.google.com/",
        "page_load_ms": 120 + i % 300,
        "category": CATEGORIES[i % 4],
        "sku": f"SKU-{i % 50:03d}",
        "tags": ["sale", "new"] if i % 2 else ["gift"],
        "shipping": {"method": "express" if i % 3 == 0 else "standard", "days": i % 5 + 1},
        "note": 'naïve café ☕ "quoted" \\ back' if i % 50 == 0 else "",
    }


EVENT_NAMES = ("$pageview", "product_viewed", "checkout_started", "order_completed")


def event_name(i: int) -> str:
    return EVENT_NAMES[0] if i % 10 < 4 else EVENT_NAMES[i % 3 + 1]


# --- tests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_batched_capture_is_stored_once_and_answers_hogql_exactly(
    server: ServerProcess, http: httpx.Client, project: Project, compress: bool
) -> None:
    """500 events with 20 properties from three users arrive exactly once and HogQL counts them exactly."""
    tag = uuid.uuid4().hex[:8]
    users = [f"shopper-{n}-{tag}" for n in range(3)]
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    with wire_tap() as wire, sdk(server, project.token, gzip=compress, flush_at=100, flush_interval=60) as ph:
        returned = []
        for i in range(500):
            old = i % 25 == 0  # 20 events from three days ago
            returned.append(
                ph.client.capture(
                    event_name(i),
                    distinct_id=users[i % 3],
                    properties=order_properties(i),
                    timestamp=three_days_ago + timedelta(seconds=i) if old else None,
                )
            )
        ph.client.flush()
        assert ph.errors == []

    wait_for(http, project, "SELECT count() FROM events", [[500]])

    # the SDK: five batches of 100, each sent once, compressed as configured, all to /batch/ on loopback
    assert [(r.host, r.path, r.status) for r in wire] == [(HOST, "/batch/", 200)] * 5
    assert {r.content_encoding for r in wire} == {"gzip" if compress else None}
    assert all(r.body["api_key"] == project.token and "sent_at" in r.body for r in wire)
    assert sorted(sent_uuids(wire)) == sorted(returned) == sorted(m["uuid"] for m in ph.sent)
    assert len(set(returned)) == 500

    # the server: each uuid once, with the event, distinct id and every property the SDK sent
    rows = hogql(http, project, "SELECT uuid, event, distinct_id, properties FROM events LIMIT 1000")
    stored = {row[0]: row for row in rows}
    assert sorted(stored) == sorted(returned)
    assert hogql(http, project, "SELECT count(DISTINCT uuid) FROM events") == [[500]]
    for msg in ph.sent:
        _, event, distinct_id, properties = stored[msg["uuid"]]
        assert (event, distinct_id) == (msg["event"], msg["distinct_id"])
        properties = json.loads(properties)
        assert {k: properties.get(k) for k in msg["properties"]} == msg["properties"], msg["uuid"]

    recent = Counter(event_name(i) for i in range(500) if i % 25)
    assert hogql(
        http,
        project,
        "SELECT event, count() FROM events WHERE timestamp > now() - INTERVAL 1 DAY GROUP BY event ORDER BY event",
    ) == sorted([name, n] for name, n in recent.items())
    assert hogql(
        http,
        project,
        "SELECT count() FROM events WHERE properties.$lib = 'posthog-python' "
        f"AND properties.$lib_version = '{VERSION}'",
    ) == [[500]]
    over_10 = sum(1 for i in range(500) if AMOUNTS[i % len(AMOUNTS)] > 10)
    assert hogql(http, project, "SELECT count() FROM events WHERE properties.amount > 10") == [[over_10]]
    assert hogql(http, project, "SELECT count() FROM events WHERE properties.is_trial = true") == [[250]]
    assert hogql(http, project, "SELECT count() FROM events WHERE properties.shipping.method = 'express'") == [[167]]
    per_user = Counter(users[i % 3] for i in range(500))
    assert hogql(
        http, project, "SELECT distinct_id, count() FROM events GROUP BY distinct_id ORDER BY distinct_id"
    ) == sorted([u, n] for u, n in per_user.items())
    wait_for(http, project, "SELECT count() FROM persons", [[3]])

    # subscript access to a property, as PostHog's docs write it
    plans = Counter(PLANS[i % 3] for i in range(500))
    assert hogql(
        http, project, "SELECT properties.plan, count() FROM events GROUP BY properties.plan ORDER BY properties.plan"
    ) == sorted([plan, n] for plan, n in plans.items())
    assert hogql(
        http,
        project,
        "SELECT properties['plan'], count() FROM events GROUP BY properties['plan'] ORDER BY properties['plan']",
    ) == sorted([plan, n] for plan, n in plans.items())


def test_many_small_concurrent_batches_are_each_sent_once_and_stored_once(
    server: ServerProcess, http: httpx.Client, project: Project
) -> None:
    """Three consumer threads posting batches of 7 never see an error, never retry and store every event once."""
    tag = uuid.uuid4().hex[:8]
    with wire_tap() as wire, sdk(server, project.token, gzip=True, thread=3, flush_at=7, max_retries=3) as ph:
        returned = [
            ph.client.capture(
                "api_call",
                distinct_id=f"svc-{i % 5}-{tag}",
                properties={"route": f"/v1/items/{i % 13}", "status": 200 + i % 3, "seq": i},
            )
            for i in range(300)
        ]
        ph.client.flush()

    assert ph.errors == [], ph.errors
    assert {(r.path, r.status) for r in wire} == {("/batch/", 200)}
    assert sorted(sent_uuids(wire)) == sorted(returned)  # every event on the wire exactly once: no retries
    wait_for(http, project, "SELECT count() FROM events", [[300]])
    assert hogql(
        http, project, "SELECT count(DISTINCT uuid), min(toInt(properties.seq)), max(toInt(properties.seq)) FROM events"
    ) == [[300, 0, 299]]
    assert hogql(http, project, "SELECT uuid FROM events GROUP BY uuid HAVING count() > 1") == []
    assert sorted(row[0] for row in hogql(http, project, "SELECT uuid FROM events LIMIT 1000")) == sorted(returned)


def test_person_properties_alias_and_identify_merge_one_person(
    server: ServerProcess, http: httpx.Client, project: Project
) -> None:
    """set/set_once/alias and an ``$identify`` merge leave one identified person that every id's events point to."""
    tag = uuid.uuid4().hex[:8]
    anon, user, crm = f"anon-{tag}", f"ada-{tag}", f"crm-{tag}"
    email = f"ada.{tag}@example.com"
    with wire_tap() as wire, sdk(server, project.token) as ph:
        c = ph.client
        before = [
            c.capture(
                "$pageview",
                distinct_id=anon,
                properties={"$current_url": f"https://example.com/pricing?{n}", "$browser": "Firefox"},
            )
            for n in range(3)
        ]
        before.append(c.capture("signed_up", distinct_id=user, properties={"source": "landing"}))
        c.set(distinct_id=user, properties={"email": email, "name": "Ada Lovelace", "plan": "pro"})
        c.set_once(distinct_id=user, properties={"signup_source": "newsletter", "plan": "free"})
        c.set_once(distinct_id=user, properties={"signup_source": "ads"})
        c.capture(
            "$identify",
            distinct_id=user,
            properties={"$anon_distinct_id": anon, "$set": {"company": "Analytical Engines"}},
        )
        c.alias(previous_id=user, distinct_id=crm)
        after = [
            c.capture("checkout", distinct_id=user, properties={"amount": 30}),
            c.capture("invoice_paid", distinct_id=crm, properties={"amount": 30}),
            c.capture("$pageview", distinct_id=anon, properties={"$current_url": "https://example.com/thanks"}),
        ]
        c.flush()
        assert ph.errors == []
    assert [m["event"] for m in ph.sent] == [
        "$pageview",
        "$pageview",
        "$pageview",
        "signed_up",
        "$set",
        "$set_once",
        "$set_once",
        "$identify",
        "$create_alias",
        "checkout",
        "invoice_paid",
        "$pageview",
    ]
    assert {(r.path, r.status) for r in wire} == {("/batch/", 200)}

    wait_for(http, project, "SELECT count() FROM events", [[len(ph.sent)]])
    person = person_uuid(project, user)  # the person of the id the $identify was sent with survives

    # persons: one row, identified, with the explicit properties and the merged anonymous person's ones
    wait_for(http, project, "SELECT count() FROM persons", [[1]])
    [[person_id, properties, identified]] = hogql(http, project, "SELECT id, properties, is_identified FROM persons")
    properties = json.loads(properties)
    assert person_id == person
    assert identified is True
    assert {k: properties.get(k) for k in ("email", "name", "plan", "signup_source", "company")} == {
        "email": email,
        "name": "Ada Lovelace",
        "plan": "pro",
        "signup_source": "newsletter",
        "company": "Analytical Engines",
    }
    assert properties.get("$initial_current_url") == "https://example.com/pricing?0"  # from the anonymous person
    assert properties.get("$initial_browser") == "Firefox"
    assert sorted(hogql(http, project, "SELECT distinct_id, person_id FROM person_distinct_ids")) == sorted(
        [[anon, person], [user, person], [crm, person]]
    )

    # events carry the person's properties as they were when each was ingested
    emails = dict(hogql(http, project, "SELECT uuid, person.properties.email FROM events"))
    assert [emails[u] for u in before] == [None, None, None, None]
    assert [emails[u] for u in after] == [email, email, email]

    # every event, including the anonymous ones from before the merge, ends up with the survivor's id
    wait_for(http, project, "SELECT DISTINCT person_id FROM events", [[person]])
    assert hogql(
        http, project, f"SELECT count() FROM events WHERE distinct_id = '{anon}' AND person_id = '{person}'"
    ) == [[4]]

    # the persons API finds the same person through any of its distinct ids
    for distinct_id in (anon, user, crm):
        response = http.get(f"/api/projects/{project.id}/persons/", params={"distinct_id": distinct_id})
        assert response.status_code == 200, response.text
        [found] = response.json()["results"]
        assert (found["id"], found["uuid"], found["is_identified"]) == (person, person, True)
        assert sorted(found["distinct_ids"]) == sorted([anon, user, crm])
        assert found["properties"]["email"] == email
        assert found["name"] == email


def test_events_api_returns_sdk_events_with_their_uuids_and_person(
    server: ServerProcess, http: httpx.Client, project: Project
) -> None:
    """GET events/?event=…&include_person=true returns the SDK's events under the uuids the SDK gave them."""
    tag = uuid.uuid4().hex[:8]
    user, email = f"grace-{tag}", f"grace.{tag}@example.com"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    chosen = [uuid.uuid4() for _ in range(4)]
    with sdk(server, project.token, gzip=True) as ph:
        ph.client.set(distinct_id=user, properties={"email": email, "name": "Grace Hopper"})
        returned = [
            ph.client.capture(
                "report_exported",
                distinct_id=user,
                uuid=chosen[n],
                timestamp=start + timedelta(minutes=n),
                properties={"format": FORMATS[n], "rows": 100 * n},
            )
            for n in range(4)
        ]
        for n in range(3):
            ph.client.capture("report_viewed", distinct_id=user, properties={"n": n})
        ph.client.flush()
        assert ph.errors == []
    assert returned == [str(u) for u in chosen]  # the SDK sends the uuid it was given
    wait_for(http, project, "SELECT count() FROM events", [[8]])

    response = http.get(
        f"/api/projects/{project.id}/events/", params={"event": "report_exported", "include_person": "true"}
    )
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["next"] is None
    results = doc["results"]
    assert [e["id"] for e in results] == returned[::-1]  # newest first
    for event in results:
        n = returned.index(event["id"])
        assert (event["event"], event["distinct_id"]) == ("report_exported", user)
        assert event["properties"]["$lib"] == "posthog-python"
        assert event["properties"]["$lib_version"] == VERSION
        assert (event["properties"]["format"], event["properties"]["rows"]) == (FORMATS[n], 100 * n)
        assert event["person"] == {
            "is_identified": False,
            "distinct_ids": [user],
            "properties": {"email": email, "name": "Grace Hopper"},
        }
        # the timestamp the SDK set, moved only by the server's sent_at clock-skew correction
        stored = datetime.fromisoformat(event["timestamp"])
        assert stored.utcoffset() == timedelta(0)
        assert abs(stored - (start + timedelta(minutes=n))) < timedelta(seconds=30), (stored, n)
        assert event["elements"] == [] and event["elements_chain"] == ""

    one = http.get(f"/api/projects/{project.id}/events/{returned[0]}/")
    assert one.status_code == 200, one.text
    assert (one.json()["id"], one.json()["properties"]["rows"]) == (returned[0], 0)
    plain = http.get(f"/api/projects/{project.id}/events/", params={"event": "report_viewed"}).json()["results"]
    assert len(plain) == 3 and all(e["person"] is None for e in plain)


@pytest.mark.parametrize("kind", ["unknown_project_token", "personal_api_key"])
def test_wrong_project_key_stores_nothing_and_reports_401_once(
    server: ServerProcess, http: httpx.Client, project: Project, credentials: Credentials, kind: str
) -> None:
    """With a key that is not a project token the SDK gets a 401 for its batch, reports it and does not retry."""
    bad = f"phc_{uuid.uuid4().hex}" if kind == "unknown_project_token" else credentials.key
    with wire_tap() as wire, sdk(server, bad, max_retries=3, flush_interval=60) as ph:
        for i in range(10):
            ph.client.capture("lost_event", distinct_id=f"nobody-{i % 2}", properties={"i": i})
        ph.client.flush()

    assert [(r.path, r.status) for r in wire] == [("/batch/", 401)]  # one request: a 401 is not retried
    assert len(ph.errors) == 1
    error, batch = ph.errors[0]
    assert isinstance(error, APIError)
    assert error.status == 401
    assert error.message == ("Project API key invalid. You can find your project API key in PostHog project settings.")
    assert sorted(m["uuid"] for m in batch) == sorted(m["uuid"] for m in ph.sent)

    # a client with the right token afterwards: its event arrives, the rejected ones are in no project
    with sdk(server, project.token) as good:
        good.client.capture("kept_event", distinct_id="somebody")
        good.client.flush()
        assert good.errors == []
    wait_for(http, project, "SELECT event, count() FROM events GROUP BY event", [["kept_event", 1]])
    lost = ", ".join(f"'{m['uuid']}'" for m in ph.sent)
    projects = http.get("/api/projects/").json()["results"]
    assert project.id in {p["id"] for p in projects}
    for other in projects:
        found = hogql(
            http,
            Project(other["id"], other["api_token"]),
            f"SELECT count() FROM events WHERE toString(uuid) IN ({lost})",
        )
        assert found == [[0]], other
