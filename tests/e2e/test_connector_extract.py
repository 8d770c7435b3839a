"""ETL connectors extract events from a real ``logpond serve`` while a sender is still posting to ``/batch/``.

Two extraction styles run side by side, as incremental connectors scheduled again and again:

- **classic** (Airbyte source-posthog <= 1.1): per 30-day slice from the saved state, ``after=<slice start>``,
  ``before=<slice end>``, ``limit=10000`` (the server clamps it to 1000), newest first, following ``next``
  verbatim; the state is the newest timestamp seen, and the next run starts ``after`` it;
- **keyset** (Airbyte, 2026): ``limit=1000``, ``orderBy=["timestamp","uuid"]``, ``after=<slice start - 1 µs>``,
  ``before=<slice end>``, later pages narrowed by a ``hogql`` filter past the last (timestamp, uuid); it stops
  on an empty page, and the next run starts from that (timestamp, uuid).

The sender posts 40 batches of 50 events. In each batch 45 events fall in the extraction window, in threes
sharing a timestamp, later than every earlier batch's (so a request's events become visible together and
never behind what a connector has already passed); 5 are dated weeks before the connectors' start date.
Three times the sender waits until both connectors have read everything it sent so far, so rounds really
run on half-written data.
After the sender is done and every event is stored, one last round picks up the rest: each style must then
have returned every stored event of the window exactly once, and nothing from before its start date.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.e2e._server import Credentials, ServerProcess

BATCHES = 40
PER_BATCH = 50
PAST_PER_BATCH = 5
WAIT_S = 20.0  # bound on every wait for the server or the sender
MAX_PAGES = 200
MAX_ROUNDS = 100
US = timedelta(microseconds=1)
_LOW64 = (1 << 64) - 1


def ch_uuid_key(value: str) -> tuple[int, int]:
    """ClickHouse's UUID order (low 64 bits, then high 64 bits): the order the keyset cursor follows."""
    n = uuid.UUID(value).int
    return (n & _LOW64, n >> 64)


def order_key(event: dict[str, Any]) -> tuple[datetime, tuple[int, int]]:
    return (datetime.fromisoformat(event["timestamp"]), ch_uuid_key(event["id"]))


def start_date() -> datetime:
    """The connectors' start date: the middle of last month, so the window is one day of one partition."""
    first_of_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first_of_month - timedelta(days=15)


def build_batches(start: datetime) -> tuple[list[list[dict[str, Any]]], set[str], set[str]]:
    """The sender's batches, and the uuids of the window's events and of the events before ``start``."""
    rng = random.Random(2026)
    window: set[str] = set()
    past: set[str] = set()
    batches: list[list[dict[str, Any]]] = []
    for b in range(BATCHES):
        batch: list[dict[str, Any]] = []
        for n in range(b * LIVE_PER_BATCH, (b + 1) * LIVE_PER_BATCH):
            group = n // 3  # three events a timestamp
            moment = start + timedelta(hours=1, seconds=53 * group)
            if group % 4:
                moment += timedelta(microseconds=(group * 1009) % 1_000_000)  # else a whole second
            batch.append(message(rng, moment, n))
            window.add(batch[-1]["uuid"])
        for _ in range(PAST_PER_BATCH):
            moment = start - timedelta(days=20, seconds=rng.randrange(86_400), microseconds=rng.randrange(1_000_000))
            batch.append(message(rng, moment, -1))
            past.add(batch[-1]["uuid"])
        rng.shuffle(batch)
        batches.append(batch)
    return batches, window, past


def message(rng: random.Random, moment: datetime, n: int) -> dict[str, Any]:
    return {
        "event": "order placed" if n % 2 else "$pageview",
        "distinct_id": f"user-{rng.randrange(13)}",
        "properties": {"n": n, "$browser": rng.choice(["Chrome", "Firefox", "Safari"])},
        "timestamp": moment.isoformat(),
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    }


class Progress:
    """How many window events each connector has read so far; the sender waits on it (bounded)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.classic = 0
        self.keyset = 0
        self.history: list[tuple[int, int]] = []  # (classic, keyset) after each round

    def record(self, classic: int, keyset: int) -> None:
        with self._cond:
            self.classic += classic
            self.keyset += keyset
            self.history.append((self.classic, self.keyset))
            self._cond.notify_all()

    def wait_until_read(self, count: int) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: min(self.classic, self.keyset) >= count, timeout=WAIT_S)


CHECKPOINTS = (10, 20, 30)  # after these many batches the sender waits until both connectors caught up
LIVE_PER_BATCH = PER_BATCH - PAST_PER_BATCH


class Sender(threading.Thread):
    """Posts the batches to ``/batch/`` as an SDK would, pausing at each checkpoint until both connectors have
    read every window event sent so far."""

    def __init__(self, base_url: str, token: str, batches: list[list[dict[str, Any]]], progress: Progress) -> None:
        super().__init__(daemon=True)
        self.base_url, self.token, self.batches, self.progress = base_url, token, batches, progress
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base_url, timeout=30.0, trust_env=False) as http:
                for i, batch in enumerate(self.batches, start=1):
                    response = http.post("/batch/", json={"api_key": self.token, "batch": batch})
                    if response.status_code != 200:
                        self.errors.append(f"batch {i}: {response.status_code} {response.text}")
                        return
                    if i in CHECKPOINTS and not self.progress.wait_until_read(i * LIVE_PER_BATCH):
                        self.errors.append(f"the connectors did not read batch {i}'s events within {WAIT_S} s")
                        return
                    time.sleep(0.01)
        except Exception as exc:  # reported by the test after join()
            self.errors.append(repr(exc))


# --- the two connectors ----------------------------------------------------------------------------------


def slices(begin: datetime, end: datetime, step: timedelta = timedelta(days=30)) -> Iterator[tuple[datetime, datetime]]:
    while begin < end:
        yield begin, min(begin + step, end)
        begin += step


def classic_format(moment: datetime) -> str:
    """Airbyte classic's ``%Y-%m-%dT%H:%M:%S.%f%z`` (``+0000``, no colon)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f%z")


def classic_run(
    http: httpx.Client, base_url: str, project_id: int, start: datetime, state: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One incremental classic run: every slice from the state (or start date) to now, following next."""
    url = f"{base_url}/api/projects/{project_id}/events/"
    begin = datetime.fromisoformat(state) if state else start
    events: list[dict[str, Any]] = []
    for lo, hi in slices(begin, datetime.now(UTC)):
        response = http.get(url, params={"after": classic_format(lo), "before": classic_format(hi), "limit": "10000"})
        seen: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            assert response.status_code == 200, response.text
            body = response.json()
            assert len(body["results"]) <= 1000
            seen += body["results"]
            if body["next"] is None:
                break
            ours, theirs = urlsplit(url), urlsplit(body["next"])
            assert (theirs.scheme, theirs.netloc, theirs.path) == (ours.scheme, ours.netloc, ours.path), body["next"]
            response = http.get(body["next"])
        else:
            raise AssertionError(f"next was still set after {MAX_PAGES} pages")
        for event in seen:
            assert lo < datetime.fromisoformat(event["timestamp"]) < hi, (event["timestamp"], lo, hi)
        keys = [order_key(e) for e in seen]
        assert all(a > b for a, b in zip(keys, keys[1:], strict=False)), "a classic slice is not newest first"
        events += seen
    newest = max(events, key=order_key)["timestamp"] if events else state
    return events, newest


def keyset_filter(timestamp: str, event_id: str) -> str:
    return (
        f"timestamp > toDateTime('{timestamp}') OR "
        f"(timestamp = toDateTime('{timestamp}') AND uuid > toUUID('{event_id}'))"
    )


def keyset_run(
    http: httpx.Client, project_id: int, start: datetime, state: tuple[str, str] | None
) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
    """One incremental keyset run from the state's (timestamp, uuid), checking each page as Airbyte does."""
    begin = datetime.fromisoformat(state[0]) if state else start
    cursor = state
    events: list[dict[str, Any]] = []
    for lo, hi in slices(begin, datetime.now(UTC)):
        base = {
            "limit": "1000",
            "orderBy": '["timestamp","uuid"]',
            "after": (lo - US).isoformat(),
            "before": hi.isoformat(),
        }
        for _ in range(MAX_PAGES):
            params = dict(base)
            if cursor is not None:
                params["properties"] = json.dumps([{"type": "hogql", "key": keyset_filter(*cursor)}])
            response = http.get(f"/api/projects/{project_id}/events/", params=params)
            assert response.status_code == 200, response.text
            page = response.json()["results"]
            if not page:
                break
            previous = None if cursor is None else (datetime.fromisoformat(cursor[0]), ch_uuid_key(cursor[1]))
            for event in page:
                moment = datetime.fromisoformat(event["timestamp"])
                assert moment.utcoffset() == timedelta(0), event["timestamp"]
                assert lo <= moment < hi, (event["timestamp"], lo, hi)
                assert previous is None or order_key(event) > previous, "a keyset page is not past its cursor"
                previous = order_key(event)
            events += page
            cursor = (page[-1]["timestamp"], page[-1]["id"])
        else:
            raise AssertionError(f"no empty page after {MAX_PAGES} pages")
    return events, cursor


def hogql(http: httpx.Client, project_id: int, text: str) -> list[list[Any]]:
    response = http.post(f"/api/projects/{project_id}/query/", json={"query": {"kind": "HogQLQuery", "query": text}})
    assert response.status_code == 200, response.text
    rows: list[list[Any]] = response.json()["results"]
    return rows


def wait_for_count(http: httpx.Client, project_id: int, expected: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while (seen := hogql(http, project_id, "SELECT count() FROM events")[0][0]) != expected:
        assert seen < expected and time.monotonic() < deadline, f"{seen} events stored, expected {expected}"
        time.sleep(0.2)


# --- tests -----------------------------------------------------------------------------------------------


def test_incremental_extraction_during_ingestion_returns_every_event_once(
    server: ServerProcess, credentials: Credentials
) -> None:
    """Classic and keyset connectors, run again and again while batches arrive and once after, together
    return every stored event of their window exactly once, and none dated before their start date."""
    start = start_date()
    batches, window, past = build_batches(start)
    progress = Progress()
    sender = Sender(server.base_url, credentials.token, batches, progress)
    pid = credentials.project_id
    classic_runs: list[list[dict[str, Any]]] = []
    keyset_runs: list[list[dict[str, Any]]] = []
    classic_state: str | None = None
    keyset_state: tuple[str, str] | None = None
    headers = {"Authorization": f"Bearer {credentials.key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30.0, trust_env=False) as http:

        def extraction_round() -> None:
            nonlocal classic_state, keyset_state
            classic, classic_state = classic_run(http, server.base_url, pid, start, classic_state)
            keyset, keyset_state = keyset_run(http, pid, start, keyset_state)
            classic_runs.append(classic)
            keyset_runs.append(keyset)
            progress.record(len(classic), len(keyset))

        sender.start()
        deadline = time.monotonic() + 2 * WAIT_S
        while sender.is_alive() and time.monotonic() < deadline:
            extraction_round()
            time.sleep(0.05)
        sender.join(WAIT_S)
        assert not sender.is_alive() and sender.errors == []
        wait_for_count(http, pid, len(window) + len(past))
        extraction_round()  # the final pass picks up the rest
        stored = {row[0] for row in hogql(http, pid, "SELECT uuid FROM events LIMIT 10000")}

    assert stored == window | past
    # rounds ran with the data partly written: at each checkpoint both had read exactly what was sent
    for checkpoint in CHECKPOINTS:
        assert (checkpoint * LIVE_PER_BATCH,) * 2 in progress.history, progress.history
    for name, runs in (("classic", classic_runs), ("keyset", keyset_runs)):
        for run in runs:
            run_ids = [e["id"] for e in run]
            assert len(run_ids) == len(set(run_ids)), f"{name}: a run returned an event twice"
        everything = [e["id"] for run in runs for e in run]
        assert set(everything) == stored - past, f"{name}: {len(stored - past - set(everything))} events never read"
        assert len(everything) == len(set(everything)), f"{name}: an event was read by two runs"


def test_connector_can_name_its_streams(server: ServerProcess, credentials: Credentials) -> None:
    """What Nekt-style connectors read to name a stream {organization_slug}_events_{project_name} is served:
    projects (id, name, organization uuid), the organization's slug, and the user's organizations' slugs."""
    web = server.cli_json("projects", "create", "Web App")
    headers = {"Authorization": f"Bearer {credentials.key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30.0, trust_env=False) as http:
        response = http.get("/api/projects")
        assert response.status_code == 200, response.text
        projects = response.json()["results"]
        assert {p["id"] for p in projects} == {credentials.project_id, int(web["id"])}
        response = http.get("/api/users/@me/")
        assert response.status_code == 200, response.text
        user_slugs = {o["id"]: o["slug"] for o in response.json()["organizations"]}
        streams: dict[str, int] = {}
        for project in projects:
            assert isinstance(project["name"], str) and project["name"]
            org_id = str(uuid.UUID(project["organization"]))
            response = http.get(f"/api/organizations/{org_id}/")
            assert response.status_code == 200, response.text
            organization = response.json()
            assert organization["id"] == org_id
            slug = organization["slug"]
            assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug), slug
            assert user_slugs[org_id] == slug
            streams[f"{slug}_events_{project['name']}"] = project["id"]
            response = http.get(f"/api/projects/{project['id']}/events/", params={"limit": "1"})
            assert response.status_code == 200, response.text
        slug = user_slugs[str(uuid.UUID(projects[0]["organization"]))]
        assert streams[f"{slug}_events_Web App"] == int(web["id"])
        assert len(streams) == 2
