"""A 200 from ``/batch/`` is a promise: captured events and their persons survive ``kill -9``, once each.

A real ``logpond serve`` answers 200 only once a capture request is in its fsynced events write-ahead log;
its events writer inserts persons, distinct ids and events afterwards. These tests SIGKILL the server while
acknowledged events are still waiting for that writer (right after a burst, and in the middle of a steady
stream), start it again on the same data directory, and read back through HogQL with a personal API key:
every acknowledged event is stored exactly once, persons are as the events made them, and an SDK retry
of a stored batch adds no distinct event, before or after a restart.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e._server import Credentials, Project, ServerProcess, module_server, new_project

WAIT_S = 20.0  # bound on every "until the server shows it" loop
PERSON_NAMESPACE = uuid.UUID("932979b4-65c3-4424-8467-0b66ec27bc22")  # PostHog's person-id namespace
BATCH = 200
DISTINCT_IDS = 50
STREAM_BEFORE_KILL_S = 2.0
STREAM_THREADS = 3
STREAM_MAX_REQUESTS = 1000  # a bound on the stream; the kill comes long before it
UUID_PAGE_REQUESTS = 200  # uuids are read back 200 requests (40,000 events) at a time


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with module_server(tmp_path_factory.mktemp("capture_durability")) as process:
        yield process


@pytest.fixture(autouse=True)
def _running_server(request: pytest.FixtureRequest, server: ServerProcess) -> None:
    """Each test starts with the module's server up (a failed test may have left it killed)."""
    request.node._logpond_servers = [server]  # the e2e conftest attaches its log tail to failures
    if not server.running:
        server.start()


@pytest.fixture(scope="module")
def credentials(server: ServerProcess) -> Credentials:
    return server.credentials()


@pytest.fixture
def project(server: ServerProcess, request: pytest.FixtureRequest) -> Project:
    return new_project(server, f"durability {request.node.name}")


# --- sending -------------------------------------------------------------------------------------------


def event_uuid(run: str, request: int, i: int) -> str:
    return str(uuid.uuid5(PERSON_NAMESPACE, f"e2e-capture:{run}:{request}:{i}"))


def person_uuid(project_id: int, distinct_id: str) -> str:
    return str(uuid.uuid5(PERSON_NAMESPACE, f"{project_id}:{distinct_id}"))


def distinct_id(n: int) -> str:
    return f"user-{n % DISTINCT_IDS:02d}"


def make_batch(run: str, request: int, base: datetime) -> list[dict[str, Any]]:
    """200 events of ``request`` with explicit uuids over 50 distinct ids; a quarter of them ``$set``."""
    events = []
    for i in range(BATCH):
        properties: dict[str, Any] = {"run": run, "req": request, "i": i}
        if i < DISTINCT_IDS:  # every distinct id gets one $set (and $set_once) per request
            properties["$set"] = {"last_req": request}
            properties["$set_once"] = {"first_req": request}
        events.append(
            {
                "event": "page_viewed" if i % 3 else "clicked",
                "distinct_id": distinct_id(i),
                "uuid": event_uuid(run, request, i),
                "timestamp": (base + timedelta(milliseconds=request * BATCH + i)).isoformat(),
                "properties": properties,
            }
        )
    return events


def post_batch(http: httpx.Client, token: str, events: list[dict[str, Any]]) -> httpx.Response:
    return http.post("/batch/", json={"api_key": token, "batch": events})


def capture_client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30.0, trust_env=False)


def read_client(server: ServerProcess, credentials: Credentials) -> httpx.Client:
    headers = {"Authorization": f"Bearer {credentials.key}"}
    return httpx.Client(base_url=server.base_url, timeout=30.0, trust_env=False, headers=headers)


# --- reading back ----------------------------------------------------------------------------------------


def hogql(http: httpx.Client, project_id: int, text: str) -> list[list[Any]]:
    response = http.post(f"/api/projects/{project_id}/query/", json={"query": {"kind": "HogQLQuery", "query": text}})
    assert response.status_code == 200, response.text
    rows: list[list[Any]] = response.json()["results"]
    return rows


def count(http: httpx.Client, project_id: int, text: str) -> int:
    [[n]] = hogql(http, project_id, text)
    return int(n)


def wait_for_count(http: httpx.Client, project_id: int, expected: int) -> int:
    """Poll ``SELECT count() FROM events`` (at most WAIT_S) until it reaches ``expected``; the last count."""
    deadline = time.monotonic() + WAIT_S
    seen = count(http, project_id, "SELECT count() FROM events")
    while seen < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = count(http, project_id, "SELECT count() FROM events")
    return seen


def wait_until_settled(http: httpx.Client, project_id: int) -> int:
    """Poll until the events writer has nothing queued and the event count stops changing; the count."""
    deadline = time.monotonic() + WAIT_S
    previous = -1
    while time.monotonic() < deadline:
        health = http.get("/_health").json()
        assert health["events_writer_error"] is None, health
        current = count(http, project_id, "SELECT count() FROM events")
        if health["queued_events"] == 0 and current == previous:
            return current
        previous = current
        time.sleep(0.3)
    raise AssertionError(f"the event count did not settle within {WAIT_S:.0f} s (last {previous})")


def unconfirmed_wal_bytes(server: ServerProcess) -> int:
    """Bytes of the (stopped) server's events write-ahead log past the writer's checkpoint.

    More than zero means some acknowledged requests were not confirmed inserted when the server died, so
    the next start must replay them; that is the situation these tests are about.
    """
    wal = server.data_dir / "wal-events"
    checkpoint = wal / "checkpoint.json"
    segment, offset = json.loads(checkpoint.read_text())["position"] if checkpoint.exists() else (0, 0)
    total = 0
    for path in wal.glob("wal-*.log"):
        seq = int(path.stem.split("-")[1])
        if seq > segment:
            total += path.stat().st_size
        elif seq == segment:
            total += max(0, path.stat().st_size - offset)
    return total


# --- the tests ---------------------------------------------------------------------------------------


def test_burst_acknowledged_just_before_kill_9_is_stored_once_with_its_persons(
    server: ServerProcess, credentials: Credentials, project: Project
) -> None:
    """30 batches killed right after the last 200: after a restart, 6000 events once each and 49 persons."""
    pid = project.id
    base = datetime.now(UTC) - timedelta(minutes=30)
    batches = [make_batch("burst", r, base) for r in range(30)]
    # the last request identifies user-01 with user-00: two distinct ids that both have a person by then
    batches[-1][-1] = {
        "event": "$identify",
        "distinct_id": distinct_id(1),
        "uuid": event_uuid("burst", 29, BATCH - 1),
        "timestamp": (base + timedelta(milliseconds=30 * BATCH)).isoformat(),
        "properties": {"$anon_distinct_id": distinct_id(0), "$set": {"email": "one@example.com"}},
    }
    sent = [e["uuid"] for batch in batches for e in batch]
    assert len(set(sent)) == 30 * BATCH

    with capture_client(server) as http:
        for batch in batches:
            response = post_batch(http, project.token, batch)
            assert response.status_code == 200, response.text
    server.kill_9()
    # the writer cannot have inserted the last requests within the moment after their 200
    assert unconfirmed_wal_bytes(server) > 0
    server.start()

    with read_client(server, credentials) as http:
        assert wait_for_count(http, pid, 30 * BATCH) == 30 * BATCH
        assert wait_until_settled(http, pid) == 30 * BATCH
        assert count(http, pid, "SELECT count(DISTINCT uuid) FROM events") == 30 * BATCH
        stored = [row[0] for row in hogql(http, pid, "SELECT uuid FROM events LIMIT 10000")]
        assert sorted(stored) == sorted(sent)

        # each distinct id is one person, except user-00 whose person merged into user-01's
        assert count(http, pid, "SELECT count() FROM persons") == DISTINCT_IDS - 1
        assert (
            hogql(
                http,
                pid,
                "SELECT distinct_id, count() FROM person_distinct_ids GROUP BY distinct_id HAVING count() > 1",
            )
            == []
        )
        mappings = dict(hogql(http, pid, "SELECT distinct_id, toString(person_id) FROM person_distinct_ids"))
        expected = {distinct_id(n): person_uuid(pid, distinct_id(n)) for n in range(DISTINCT_IDS)}
        expected[distinct_id(0)] = person_uuid(pid, distinct_id(1))
        assert mappings == expected
        # person properties: $set_once from the first request, $set from the last, the identify's email
        assert hogql(
            http,
            pid,
            "SELECT count(), countIf(properties.first_req = 0 AND properties.last_req = 29), countIf(is_identified) "
            "FROM persons",
        ) == [[DISTINCT_IDS - 1, DISTINCT_IDS - 1, 1]]
        assert hogql(http, pid, "SELECT toString(id), properties.email FROM persons WHERE is_identified") == [
            [person_uuid(pid, distinct_id(1)), "one@example.com"]
        ]
        # user-00's earlier events move to the person it merged into (a background mutation)
        deadline = time.monotonic() + WAIT_S
        query = (
            f"SELECT count(DISTINCT person_id), countIf(person_id != toUUID('{person_uuid(pid, distinct_id(1))}')) "
            f"FROM events WHERE distinct_id IN ('{distinct_id(0)}', '{distinct_id(1)}')"
        )
        while (seen := hogql(http, pid, query)) != [[1, 0]] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert seen == [[1, 0]]


@dataclass
class Stream:
    """What a sender thread learnt: requests answered 200, requests whose outcome it never saw."""

    acked: set[int] = field(default_factory=set)
    unknown: set[int] = field(default_factory=set)
    statuses: Counter[str] = field(default_factory=Counter)


def stream_until_killed(server: ServerProcess, token: str, run: str, base: datetime) -> Stream:
    """Threads post batches in a loop; after ~2 s of acknowledged load the server is SIGKILLed."""
    stream = Stream()
    lock = threading.Lock()
    stop = threading.Event()
    requests = iter(range(STREAM_MAX_REQUESTS))
    deadline = time.monotonic() + 15.0

    def sender() -> None:
        with capture_client(server) as http:
            while not stop.is_set() and time.monotonic() < deadline:
                with lock:
                    request = next(requests, None)
                if request is None:
                    return
                try:
                    response = post_batch(http, token, make_batch(run, request, base))
                except httpx.TransportError:
                    with lock:
                        stream.unknown.add(request)
                        stream.statuses["connection error"] += 1
                    return
                with lock:
                    stream.statuses[str(response.status_code)] += 1
                    if response.status_code == 200:
                        stream.acked.add(request)
                    else:
                        stream.unknown.add(request)

    threads = [threading.Thread(target=sender, name=f"capture-sender-{n}") for n in range(STREAM_THREADS)]
    for thread in threads:
        thread.start()
    try:
        started = time.monotonic()
        while not stream.acked and time.monotonic() - started < 10:
            time.sleep(0.02)
        assert stream.acked, f"no request was acknowledged within 10 s: {stream.statuses}"
        time.sleep(max(0.0, started + STREAM_BEFORE_KILL_S - time.monotonic()))
        assert any(t.is_alive() for t in threads), "the senders finished before the kill: nothing in flight"
        server.kill_9()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=40)
    assert not any(t.is_alive() for t in threads)
    return stream


def test_every_event_acknowledged_before_kill_9_mid_stream_is_stored_exactly_once(
    server: ServerProcess, credentials: Credentials, project: Project
) -> None:
    """Killed mid-stream: every event of an acknowledged request is stored once; no request twice or in part."""
    pid = project.id
    stream = stream_until_killed(server, project.token, "stream", datetime.now(UTC) - timedelta(minutes=30))
    # the server went away under load: some sender saw its connection fail, and nothing else went wrong
    assert stream.statuses["connection error"] >= 1, stream.statuses
    assert set(stream.statuses) <= {"200", "connection error"}, stream.statuses
    assert len(stream.acked) >= 5, stream.statuses
    # some acknowledged requests were not confirmed inserted at the kill: the restart must replay them
    assert unconfirmed_wal_bytes(server) > 0
    server.start()

    with read_client(server, credentials) as http:
        acked_events = len(stream.acked) * BATCH
        assert wait_for_count(http, pid, acked_events) >= acked_events
        total = wait_until_settled(http, pid)
        assert count(http, pid, "SELECT count(DISTINCT uuid) FROM events") == total
        assert hogql(http, pid, "SELECT uuid FROM events GROUP BY uuid HAVING count() > 1 LIMIT 10") == []
        per_request = {
            int(req): (int(n), int(distinct))
            for req, n, distinct in hogql(
                http,
                pid,
                "SELECT properties.req, count(), count(DISTINCT uuid) FROM events GROUP BY properties.req LIMIT 1000",
            )
        }
        # acknowledged requests are all there, whole; others were in flight at the kill: whole or absent
        missing = sorted(stream.acked - set(per_request))
        assert not missing, f"{len(missing)} acknowledged requests are missing, e.g. {missing[:5]}"
        assert set(per_request) <= stream.acked | stream.unknown
        assert set(per_request.values()) == {(BATCH, BATCH)}, "a request was stored in part or twice"
        assert total == len(per_request) * BATCH
        stored: set[str] = set()
        for low in range(0, max(per_request) + 1, UUID_PAGE_REQUESTS):
            where = f"properties.req >= {low} AND properties.req < {low + UUID_PAGE_REQUESTS}"
            stored |= {row[0] for row in hogql(http, pid, f"SELECT uuid FROM events WHERE {where} LIMIT 50000")}
        expected = {event_uuid("stream", r, i) for r in per_request for i in range(BATCH)}
        assert stored == expected


def test_sdk_retry_of_a_stored_batch_adds_no_distinct_event_before_or_after_a_restart(
    server: ServerProcess, credentials: Credentials, project: Project
) -> None:
    """A retry of stored batches is not stored again, whether before a restart or after it.

    The writer remembers the uuids it stored; after a restart it first reads each project's uuids stored in
    the last hour, so an SDK that timed out before the crash and retries after it adds nothing.
    """
    pid = project.id
    original = 5 * BATCH
    base = datetime.now(UTC) - timedelta(minutes=30)
    batches = [make_batch("retry", r, base) for r in range(5)]
    with capture_client(server) as capture, read_client(server, credentials) as http:
        for batch in batches:
            assert post_batch(capture, project.token, batch).status_code == 200
        assert wait_for_count(http, pid, original) == original
        # a retry while the server still remembers the uuids it stored is dropped by the writer
        assert post_batch(capture, project.token, batches[0]).status_code == 200
        assert wait_until_settled(http, pid) == original

    server.kill_9()
    server.start()
    with capture_client(server) as capture, read_client(server, credentials) as http:
        assert wait_until_settled(http, pid) == original
        # the SDK timed out on these before the crash and sends them again to the restarted server
        retried = batches[1] + batches[2]
        assert post_batch(capture, project.token, batches[1]).status_code == 200
        assert post_batch(capture, project.token, batches[2]).status_code == 200
        assert len(retried) == 2 * BATCH
        assert wait_until_settled(http, pid) == original
        assert count(http, pid, "SELECT count(DISTINCT uuid) FROM events") == original
