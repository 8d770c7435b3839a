"""PostHog capture through HTTP in-process: every path, method, payload shape and encoding, timestamps,
retries, refusals (each storing nothing of its request), backpressure, elements and project isolation.

Stored events are read back the way users read them: HogQL (``POST /api/projects/<id>/query/``) and the
events API, once the events writer has drained its queue.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import gzip
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio

from logpond.store.chdb_store import ChDBStore
from tests.api._support import assert_error
from tests.conftest import Env, make_settings, running_env
from tests.ingest.test_capture import lz_compress_to_base64

pytestmark = pytest.mark.asyncio(loop_scope="module")

ORIGIN = "https://shop.example"
PATHS = ["/batch", "/capture", "/e", "/i/v0/e", "/track"]


# ---------------------------------------------------------------------------------------------------------
# the app, and helpers (tests/events/test_persons.py uses them too)
# ---------------------------------------------------------------------------------------------------------


async def module_app(chdb_path: Path, data_dir: Path) -> AsyncIterator[Env]:
    """One running app over its own chDB database, for a whole test module."""
    store = ChDBStore(chdb_path, database=f"m_{uuid.uuid4().hex[:12]}")
    store.migrate()
    try:
        async with running_env(make_settings(data_dir), store) as running:
            yield running
    finally:
        store.drop_database()


def with_new_project(app: Env) -> Env:
    """``app`` seen through a new, empty project of its own (its token, its id; the all-projects key)."""
    project = app.services.meta.create_project(f"p-{uuid.uuid4().hex[:8]}")
    return dataclasses.replace(app, project=project)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(chdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async for running in module_app(chdb_path, tmp_path_factory.mktemp("capture")):
        yield running


@pytest.fixture
def env(app: Env) -> Env:
    """The module's app with a fresh project: a test sees only what it captured itself (apps start slowly;
    projects are cheap, and their isolation is tested below)."""
    return with_new_project(app)


def drain(env: Env) -> None:
    """Wait until every acknowledged event is in the store."""
    assert env.services.events_writer is not None
    assert env.services.events_writer.flush(30)


async def hogql(env: Env, text: str, project_id: int | None = None, key: str | None = None) -> list[list[Any]]:
    """The rows of a HogQL query, asserting it succeeded."""
    pid = project_id or env.project.id
    response = await env.client.post(
        f"/api/projects/{pid}/query/",
        json={"query": {"kind": "HogQLQuery", "query": text}},
        headers=env.auth(key),
    )
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


async def stored_events(env: Env, project_id: int | None = None) -> list[tuple[str, str]]:
    """(event, distinct_id) of every stored event, sorted."""
    rows = await hogql(env, "SELECT event, distinct_id FROM events ORDER BY event, distinct_id", project_id)
    return [(r[0], r[1]) for r in rows]


async def stored_distinct_ids(env: Env, project_id: int | None = None) -> list[str]:
    """Every distinct id that has a person, sorted."""
    rows = await hogql(env, "SELECT distinct_id FROM person_distinct_ids ORDER BY distinct_id", project_id)
    return [r[0] for r in rows]


def event(name: str = "$pageview", distinct_id: str = "user-1", **fields: Any) -> dict[str, Any]:
    """One event as the SDKs send it."""
    return {"event": name, "distinct_id": distinct_id, "properties": fields.pop("properties", {}), **fields}


async def capture(
    env: Env,
    events: list[dict[str, Any]],
    *,
    token: str | None = None,
    path: str = "/batch/",
    **request: Any,
) -> httpx.Response:
    """POST ``events`` in a batch envelope with the project token."""
    body = {"api_key": token or env.project.api_token, "batch": events}
    return await env.client.post(path, content=json.dumps(body).encode(), **request)


async def capture_ok(env: Env, events: list[dict[str, Any]], **kwargs: Any) -> None:
    """Capture ``events`` and wait until they are stored."""
    response = await capture(env, events, **kwargs)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "Ok"}
    drain(env)


def parse_time(text: str) -> dt.datetime:
    """A HogQL DateTime64 (``2026-01-01T10:00:00.123456Z``) as an aware datetime."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------------------------------------------------
# paths and methods
# ---------------------------------------------------------------------------------------------------------


async def test_every_path_with_and_without_slash_accepts_post(env: Env) -> None:
    """POST to each of the five capture paths, with and without a trailing slash, stores its event."""
    sent = []
    for path in PATHS:
        for slash in ("", "/"):
            name = f"post {path}{slash}"
            response = await capture(env, [event(name)], path=path + slash)
            assert response.status_code == 200, (path + slash, response.text)
            assert response.json() == {"status": "Ok"}
            sent.append((name, "user-1"))
    drain(env)
    assert await stored_events(env) == sorted(sent)


async def test_every_path_accepts_get_with_base64_data(env: Env) -> None:
    """GET with ?data=<base64 JSON> (image-pixel capture) stores the event on every path."""
    sent = []
    for path in PATHS:
        for slash in ("", "/"):
            name = f"get {path}{slash}"
            payload = {"api_key": env.project.api_token, "batch": [event(name, "pixel")]}
            data = base64.b64encode(json.dumps(payload).encode()).decode()
            response = await env.client.get(path + slash, params={"data": data})
            assert response.status_code == 200, (path + slash, response.text)
            sent.append((name, "pixel"))
    drain(env)
    assert await stored_events(env) == sorted(sent)


async def test_get_with_plain_json_data(env: Env) -> None:
    """GET ?data= also takes URL-encoded JSON as it is."""
    payload = {"token": env.project.api_token, "event": "json pixel", "distinct_id": "u"}
    response = await env.client.get("/e/", params={"data": json.dumps(payload)})
    assert response.status_code == 200, response.text
    drain(env)
    assert await stored_events(env) == [("json pixel", "u")]


@pytest.mark.parametrize("path", [p + s for p in PATHS for s in ("", "/")])
async def test_options_preflight_echoes_origin(env: Env, path: str) -> None:
    """A browser's preflight gets CORS headers that echo its origin and requested headers, with credentials."""
    response = await env.client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-requested-with",
        },
    )
    assert response.status_code in (200, 204), response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "content-type,x-requested-with"


async def test_post_and_error_responses_carry_cors_headers(env: Env) -> None:
    """Both an accepted and a refused capture answer with the caller's origin, so the browser can read them."""
    ok = await capture(env, [event()], headers={"Origin": ORIGIN})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    refused = await env.client.post("/e/", content=b"{", headers={"Origin": ORIGIN})
    assert refused.status_code == 400
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert refused.headers["access-control-allow-credentials"] == "true"


async def test_beacon_answers_204_and_stores(env: Env) -> None:
    """?beacon=1 (navigator.sendBeacon) gets 204 with an empty body, and the event is stored."""
    response = await capture(env, [event("$pageleave")], path="/e/?beacon=1")
    assert response.status_code == 204
    assert response.content == b""
    drain(env)
    assert await stored_events(env) == [("$pageleave", "user-1")]


# ---------------------------------------------------------------------------------------------------------
# payload shapes
# ---------------------------------------------------------------------------------------------------------


def _shapes(token: str) -> dict[str, Any]:
    return {
        "array of events": [
            {"event": "array", "distinct_id": "d1", "api_key": token},
            {"event": "array", "distinct_id": "d2", "properties": {"token": token}},
        ],
        "envelope api_key": {"api_key": token, "batch": [{"event": "envelope api_key", "distinct_id": "d1"}]},
        "envelope token": {"token": token, "batch": [{"event": "envelope token", "distinct_id": "d1"}]},
        "single api_key": {"event": "single api_key", "distinct_id": "d1", "api_key": token},
        "single token": {"event": "single token", "distinct_id": "d1", "token": token},
        "properties.token": {"event": "properties.token", "properties": {"token": token, "distinct_id": "d1"}},
    }


@pytest.mark.parametrize(
    "shape",
    ["array of events", "envelope api_key", "envelope token", "single api_key", "single token", "properties.token"],
)
async def test_payload_shapes(env: Env, shape: str) -> None:
    """Each shape the SDKs send is accepted, with the token wherever that shape carries it."""
    payload = _shapes(env.project.api_token)[shape]
    response = await env.client.post("/capture/", json=payload)
    assert response.status_code == 200, response.text
    drain(env)
    expected = [("array", "d1"), ("array", "d2")] if shape == "array of events" else [(shape, "d1")]
    assert await stored_events(env) == expected


# ---------------------------------------------------------------------------------------------------------
# encodings
# ---------------------------------------------------------------------------------------------------------


def _encoded(kind: str, payload: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    """(query string, body, headers) of ``payload`` sent with encoding ``kind``."""
    text = json.dumps(payload, ensure_ascii=False)
    raw = text.encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    if kind == "json":
        return "", raw, {"Content-Type": "application/json"}
    if kind == "gzip magic bytes":
        return "", gzip.compress(raw), {"Content-Type": "text/plain"}
    if kind == "content-encoding gzip":
        return "", gzip.compress(raw), {"Content-Encoding": "gzip"}
    if kind == "compression=gzip-js":
        return "?compression=gzip-js", gzip.compress(raw), {"Content-Type": "text/plain"}
    if kind == "compression=base64":
        return "?compression=base64", base64.b64encode(raw), {}
    if kind == "compression=lz64":
        return "?compression=lz64", lz_compress_to_base64(text).encode(), {}
    if kind == "form base64":
        return "", urlencode({"data": base64.b64encode(raw).decode()}).encode(), form
    if kind == "form lz64 field":
        return "", urlencode({"data": lz_compress_to_base64(text), "compression": "lz64"}).encode(), form
    if kind == "form base64 field":
        return "", urlencode({"data": base64.b64encode(raw).decode(), "compression": "base64"}).encode(), form
    raise AssertionError(kind)


ENCODINGS = [
    "json",
    "gzip magic bytes",
    "content-encoding gzip",
    "compression=gzip-js",
    "compression=base64",
    "compression=lz64",
    "form base64",
    "form lz64 field",
    "form base64 field",
]


@pytest.mark.parametrize("kind", ENCODINGS)
async def test_encodings(env: Env, kind: str) -> None:
    """Each body encoding of posthog-js and the other SDKs stores the same events, non-ASCII text intact."""
    payload = {
        "api_key": env.project.api_token,
        "batch": [
            event(kind, "ü-user", properties={"$current_url": "https://x.test/ü?a=1+2", "note": "日本 ✓"}),
            event(kind, "second"),
        ],
    }
    query, body, headers = _encoded(kind, payload)
    response = await env.client.post("/batch/" + query, content=body, headers=headers)
    assert response.status_code == 200, response.text
    drain(env)
    assert await stored_events(env) == sorted([(kind, "ü-user"), (kind, "second")])
    rows = await hogql(env, "SELECT properties.$current_url, properties.note FROM events WHERE distinct_id = 'ü-user'")
    assert rows == [["https://x.test/ü?a=1+2", "日本 ✓"]]


# ---------------------------------------------------------------------------------------------------------
# timestamps, uuids and retries
# ---------------------------------------------------------------------------------------------------------


async def _times(env: Env, name: str) -> tuple[dt.datetime, dt.datetime]:
    rows = await hogql(env, f"SELECT timestamp, created_at FROM events WHERE event = '{name}'")
    assert len(rows) == 1, rows
    return parse_time(rows[0][0]), parse_time(rows[0][1])


_SLACK = dt.timedelta(milliseconds=2)


async def test_envelope_sent_at_corrects_clock_skew(env: Env) -> None:
    """A client clock three days ahead: timestamp - sent_at (10 s ago) is applied to the server's receive time."""
    client_now = utc_now() + dt.timedelta(days=3)
    before = utc_now()
    payload = {
        "api_key": env.project.api_token,
        "sent_at": iso(client_now),
        "batch": [event("skewed", timestamp=iso(client_now - dt.timedelta(seconds=10)))],
    }
    response = await env.client.post("/batch/", json=payload)
    after = utc_now()
    assert response.status_code == 200, response.text
    drain(env)
    timestamp, created_at = await _times(env, "skewed")
    assert before - _SLACK <= created_at <= after + _SLACK
    assert timestamp == created_at - dt.timedelta(seconds=10)


async def test_underscore_query_param_corrects_clock_skew(env: Env) -> None:
    """posthog-js's ``_`` (client milliseconds) acts as sent_at when the payload has none."""
    client_now = (utc_now() - dt.timedelta(hours=5)).replace(microsecond=123000)
    millis = int(client_now.timestamp() * 1000)
    before = utc_now()
    body = [event("underscore", timestamp=iso(client_now - dt.timedelta(seconds=30)), api_key=env.project.api_token)]
    response = await env.client.post(f"/e/?_={millis}", json=body)
    after = utc_now()
    assert response.status_code == 200, response.text
    drain(env)
    timestamp, created_at = await _times(env, "underscore")
    assert before - _SLACK <= created_at <= after + _SLACK
    assert timestamp == created_at - dt.timedelta(seconds=30)


async def test_timestamp_without_sent_at_is_kept(env: Env) -> None:
    """Without sent_at the event's own timestamp is stored as sent, to the microsecond."""
    await capture_ok(env, [event("historic", timestamp="2024-02-29T23:59:58.123456+02:00")])
    timestamp, _ = await _times(env, "historic")
    assert timestamp == dt.datetime(2024, 2, 29, 21, 59, 58, 123456, tzinfo=dt.UTC)


async def test_offset_is_subtracted_from_receive_time(env: Env) -> None:
    """``offset`` (ms before sending) without a timestamp gives receive time minus offset."""
    await capture_ok(env, [event("offset", offset=90_000)])
    timestamp, created_at = await _times(env, "offset")
    assert timestamp == created_at - dt.timedelta(seconds=90)


async def test_missing_timestamp_is_receive_time(env: Env) -> None:
    """An event with neither timestamp nor offset happened when the server received it."""
    before = utc_now()
    response = await capture(env, [event("now")])
    after = utc_now()
    assert response.status_code == 200
    drain(env)
    timestamp, created_at = await _times(env, "now")
    assert timestamp == created_at
    assert before - _SLACK <= timestamp <= after + _SLACK


async def test_client_uuid_is_kept_and_missing_ones_are_generated(env: Env) -> None:
    """A client's uuid is the stored uuid (lower-cased); events without one get distinct fresh uuids."""
    mine = uuid.uuid4()
    await capture_ok(env, [event("mine", uuid=str(mine).upper()), event("fresh"), event("fresh")])
    rows = await hogql(env, "SELECT event, uuid FROM events ORDER BY event")
    assert rows[2] == ["mine", str(mine)]
    fresh = {rows[0][1], rows[1][1]}
    assert len(fresh) == 2 and str(mine) not in fresh
    response = await env.client.get(f"/api/projects/{env.project.id}/events/{mine}/", headers=env.auth())
    assert response.status_code == 200, response.text
    assert response.json()["event"] == "mine"


async def test_sdk_retry_of_an_identical_batch_is_stored_once(env: Env) -> None:
    """The same batch (same uuids) sent again — before and after the first is stored — is stored once."""
    batch = [event("retry", f"user-{i}", uuid=str(uuid.uuid4())) for i in range(3)]
    for _ in range(2):  # both queued before the writer inserts
        assert (await capture(env, batch)).status_code == 200
    drain(env)
    assert (await capture(env, batch)).status_code == 200  # after the first insert
    drain(env)
    rows = await hogql(env, "SELECT uuid FROM events")
    assert sorted(r[0] for r in rows) == sorted(e["uuid"] for e in batch)


# ---------------------------------------------------------------------------------------------------------
# refusals: exact error, nothing of the request stored, the next good request stored
# ---------------------------------------------------------------------------------------------------------


def _bad_requests(env: Env) -> dict[str, tuple[str, bytes, dict[str, str]]]:
    """(path, body, headers) of a refused request, each holding an otherwise good 'bad' event."""
    token = env.project.api_token
    good = {"event": "bad", "distinct_id": "bad-user"}

    def body(payload: Any) -> bytes:
        return json.dumps(payload).encode()

    return {
        "bad gzip": ("/batch/", b"\x1f\x8b\x08\x00" + b"not really gzip" * 5, {}),
        "gzip declared without gzip data": (
            "/batch/",
            body({"api_key": token, "batch": [good]}),
            {"Content-Encoding": "gzip"},
        ),
        "bad base64": ("/batch/?compression=base64", b"!!!not*base64$$$", {}),
        "base64 of not json": ("/batch/?compression=base64", base64.b64encode(b"{'event': 1"), {}),
        "bad lz64": ("/batch/?compression=lz64", b"@@@", {}),
        "invalid json": ("/batch/", b'{"api_key": "' + token.encode() + b'", "batch": [{"event": "bad"', {}),
        "missing event name": ("/batch/", body({"api_key": token, "batch": [good, {"distinct_id": "bad-2"}]}), {}),
        "missing distinct_id": ("/batch/", body({"api_key": token, "batch": [good, good, {"event": "bad"}]}), {}),
        "blank distinct_id": ("/batch/", body({"api_key": token, "batch": [{**good, "distinct_id": "  "}]}), {}),
        "mixed tokens": (
            "/batch/",
            body([{**good, "api_key": token}, {**good, "api_key": "phc_someone_else"}]),
            {},
        ),
        "no token": ("/batch/", body({"batch": [good]}), {}),
        "unknown token": ("/batch/", body({"api_key": "phc_nobody_has_this_token", "batch": [good]}), {}),
        "personal api key": ("/batch/", body({"api_key": env.key, "batch": [good]}), {}),
        "empty batch": ("/batch/", body({"api_key": token, "batch": []}), {}),
        "empty array": ("/e/", body([]), {}),
        "bad uuid": ("/batch/", body({"api_key": token, "batch": [good, {**good, "uuid": "nope"}]}), {}),
        "bad timestamp": ("/batch/", body({"api_key": token, "batch": [{**good, "timestamp": "yesterday"}]}), {}),
    }


# status, type, code, attr
REFUSALS: dict[str, tuple[int, str, str, str | None]] = {
    "bad gzip": (400, "validation_error", "invalid_payload", None),
    "gzip declared without gzip data": (400, "validation_error", "invalid_payload", None),
    "bad base64": (400, "validation_error", "invalid_payload", None),
    "base64 of not json": (400, "validation_error", "invalid_payload", None),
    "bad lz64": (400, "validation_error", "invalid_payload", None),
    "invalid json": (400, "validation_error", "invalid_payload", None),
    "missing event name": (400, "validation_error", "invalid_payload", "batch[1].event"),
    "missing distinct_id": (400, "validation_error", "invalid_payload", "batch[2].distinct_id"),
    "blank distinct_id": (400, "validation_error", "invalid_payload", "batch[0].distinct_id"),
    "mixed tokens": (401, "authentication_error", "invalid_api_key", None),
    "no token": (401, "authentication_error", "missing_api_key", None),
    "unknown token": (401, "authentication_error", "invalid_api_key", None),
    "personal api key": (401, "authentication_error", "invalid_api_key", None),
    "empty batch": (400, "validation_error", "invalid_payload", None),
    "empty array": (400, "validation_error", "invalid_payload", None),
    "bad uuid": (400, "validation_error", "invalid_payload", "batch[1].uuid"),
    "bad timestamp": (400, "validation_error", "invalid_payload", "batch[0].timestamp"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_refused_request_stores_nothing(env: Env, case: str) -> None:
    """Each malformed or unauthorised request gets its exact error, stores nothing, and the next good one is stored."""
    path, body, headers = _bad_requests(env)[case]
    response = await env.client.post(path, content=body, headers=headers)
    status, type_, code, attr = REFUSALS[case]
    assert_error(response, status, type=type_, code=code, attr=attr)
    await capture_ok(env, [event("good", "good-user")])
    assert await stored_events(env) == [("good", "good-user")]
    assert await stored_distinct_ids(env) == ["good-user"]


# ---------------------------------------------------------------------------------------------------------
# size limits and backpressure: apps with small settings
# ---------------------------------------------------------------------------------------------------------

SMALL = {"capture_max_event_bytes": 4_000, "capture_max_batch_bytes": 16_000, "max_decompressed_bytes": 64_000}


@pytest.fixture
async def small_env(tmp_path: Path, store: ChDBStore) -> AsyncIterator[Env]:
    async with running_env(make_settings(tmp_path, **SMALL), store) as e:
        yield e


def _padded_batch(token: str, name: str, size: int) -> bytes:
    padded = event(name, properties={"pad": ""})
    payload = {"api_key": token, "batch": [padded]}
    base = len(json.dumps(payload))
    padded["properties"]["pad"] = "x" * (size - base)
    body = json.dumps(payload).encode()
    assert len(body) == size
    return body


async def test_body_over_the_event_limit_is_413(small_env: Env) -> None:
    """/e/ refuses a body over capture_max_event_bytes with 413; /batch/ takes the same body (its limit is larger)."""
    env = small_env
    body = _padded_batch(env.project.api_token, "big", 5_000)
    for path in ("/e/", "/capture", "/i/v0/e/", "/track/"):
        response = await env.client.post(path, content=body)
        assert_error(response, 413, type="invalid_request", code="payload_too_large")
    assert (
        await env.client.post("/e/", content=_padded_batch(env.project.api_token, "fits", 4_000))
    ).status_code == 200
    assert (await env.client.post("/batch/", content=body)).status_code == 200
    drain(env)
    assert await stored_events(env) == [("big", "user-1"), ("fits", "user-1")]


async def test_body_over_the_batch_limit_is_413(small_env: Env) -> None:
    """/batch/ refuses a body over capture_max_batch_bytes with 413, storing nothing of it; the next batch is stored."""
    env = small_env
    response = await env.client.post("/batch/", content=_padded_batch(env.project.api_token, "too big", 16_001))
    assert_error(response, 413, type="invalid_request", code="payload_too_large")
    await capture_ok(env, [event("good", "good-user")])
    assert await stored_events(env) == [("good", "good-user")]


@pytest.mark.parametrize("how", ["gzip", "base64 gzip", "lz64"])
async def test_decompression_bomb_is_413(small_env: Env, how: str) -> None:
    """A small body that decompresses past max_decompressed_bytes is refused with 413 and stores nothing."""
    env = small_env
    payload = {"api_key": env.project.api_token, "batch": [event("bomb", properties={"pad": " " * 200_000})]}
    text = json.dumps(payload)
    if how == "gzip":
        query, body = "", gzip.compress(text.encode())
    elif how == "base64 gzip":
        query, body = "?compression=base64", base64.b64encode(gzip.compress(text.encode()))
    else:
        query, body = "?compression=lz64", lz_compress_to_base64(text).encode()
    assert len(body) < SMALL["capture_max_batch_bytes"]
    response = await env.client.post("/batch/" + query, content=body)
    assert_error(response, 413, type="invalid_request", code="payload_too_large")
    await capture_ok(env, [event("good", "good-user")])
    assert await stored_events(env) == [("good", "good-user")]


async def test_full_writer_queue_is_503_with_retry_after(tmp_path: Path, store: ChDBStore) -> None:
    """With a one-event queue the writer has not drained yet, a second request gets 503 + Retry-After, stores
    nothing, and succeeds when retried after the queue drained."""
    settings = make_settings(tmp_path, events_writer_queue_max_rows=1, writer_flush_interval_ms=600_000)
    async with running_env(settings, store) as env:
        writer = env.services.events_writer
        assert writer is not None
        first = await capture(env, [event("first")])
        assert first.status_code == 200, first.text
        second = await capture(env, [event("second")], headers={"Origin": ORIGIN})
        assert_error(second, 503, type="server_error", code="unavailable")
        assert int(second.headers["retry-after"]) >= 1
        assert second.headers["access-control-allow-origin"] == ORIGIN
        writer.flush_interval = 0.0  # let the insert thread take the queued request now
        drain(env)
        assert await stored_events(env) == [("first", "user-1")]
        retried = await capture(env, [event("second")])
        assert retried.status_code == 200, retried.text
        drain(env)
        assert await stored_events(env) == [("first", "user-1"), ("second", "user-1")]


async def test_single_request_larger_than_the_queue_is_accepted_when_empty(tmp_path: Path, store: ChDBStore) -> None:
    """A batch bigger than the whole queue is taken when the queue is empty, so it can never be stuck retrying."""
    settings = make_settings(tmp_path, events_writer_queue_max_rows=2)
    async with running_env(settings, store) as env:
        await capture_ok(env, [event("big", f"u{i}") for i in range(5)])
        assert len(await stored_events(env)) == 5


# ---------------------------------------------------------------------------------------------------------
# elements
# ---------------------------------------------------------------------------------------------------------

ELEMENTS = [
    {"tag_name": "button", "$el_text": "Buy", "attr__class": "btn primary", "nth_child": 2, "nth_of_type": 1},
    {"tag_name": "div", "attr__id": "cart", "nth_child": 1, "nth_of_type": 1},
]
CHAIN = (
    'button.btn.primary:attr__class="btn primary"nth-child="2"nth-of-type="1"text="Buy";'
    'div:attr__id="cart"attr_id="cart"nth-child="1"nth-of-type="1"'
)


async def test_elements_list_is_stored_as_elements_chain(env: Env) -> None:
    """An autocapture's $elements become the elements_chain column and leave the stored properties."""
    await capture_ok(env, [event("$autocapture", properties={"$elements": ELEMENTS, "$event_type": "click"})])
    rows = await hogql(env, "SELECT elements_chain, properties FROM events")
    assert rows[0][0] == CHAIN
    properties = json.loads(rows[0][1])
    assert "$elements" not in properties and properties["$event_type"] == "click"
    listed = (await env.client.get(f"/api/projects/{env.project.id}/events/", headers=env.auth())).json()
    (item,) = listed["results"]
    assert item["elements_chain"] == CHAIN
    assert [(e["tag_name"], e["text"], e["attr_class"], e["attr_id"]) for e in item["elements"]] == [
        ("button", "Buy", ["btn", "primary"], None),
        ("div", None, None, "cart"),
    ]
    assert "$elements" not in item["properties"]


async def test_elements_chain_property_is_kept_as_elements_chain(env: Env) -> None:
    """A ready-made $elements_chain (posthog-js's newer form) is stored as the elements_chain column as sent."""
    chain = 'a.nav:href="/pricing"nth-child="3"nth-of-type="1"text="Pricing"'
    await capture_ok(env, [event("$autocapture", properties={"$elements_chain": chain})])
    rows = await hogql(env, "SELECT elements_chain FROM events")
    assert rows == [[chain]]
    listed = (await env.client.get(f"/api/projects/{env.project.id}/events/", headers=env.auth())).json()
    assert listed["results"][0]["elements"][0]["href"] == "/pricing"


# ---------------------------------------------------------------------------------------------------------
# projects
# ---------------------------------------------------------------------------------------------------------


async def test_events_of_one_project_are_invisible_to_another(env: Env) -> None:
    """Events captured with project A's token show in A only: B's HogQL, events API and persons see none of them."""
    a = env.project
    b = env.services.meta.create_project("B")
    await capture_ok(env, [event("a-only", "shared-id", properties={"$set": {"email": "a@x.test"}})], token=a.api_token)
    await capture_ok(env, [event("b-only", "shared-id")], token=b.api_token)
    assert await stored_events(env, a.id) == [("a-only", "shared-id")]
    assert await stored_events(env, b.id) == [("b-only", "shared-id")]
    assert await hogql(env, "SELECT count() FROM events WHERE event = 'a-only'", b.id) == [[0]]
    b_persons = await hogql(env, "SELECT properties.email FROM persons", b.id)
    assert b_persons == [[None]]
    listed = await env.client.get(f"/api/projects/{b.id}/events/", headers=env.auth())
    assert [e["event"] for e in listed.json()["results"]] == ["b-only"]
    a_uuid = (await hogql(env, "SELECT uuid FROM events", a.id))[0][0]
    one = await env.client.get(f"/api/projects/{b.id}/events/{a_uuid}/", headers=env.auth())
    assert one.status_code == 404
    # the same distinct id is a different person in each project
    a_person = (await hogql(env, "SELECT person_id FROM events", a.id))[0][0]
    b_person = (await hogql(env, "SELECT person_id FROM events", b.id))[0][0]
    assert a_person != b_person
    # an event uuid seen in one project is no duplicate in another
    await capture_ok(env, [event("same uuid", uuid=a_uuid)], token=b.api_token)
    assert await stored_events(env, b.id) == [("b-only", "shared-id"), ("same uuid", "user-1")]
