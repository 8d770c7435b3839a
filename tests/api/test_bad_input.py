"""Bad input on purpose: broken OTLP bodies, bombs, wrong tokens and credentials, malformed queries.

Each bad request must get a clear error and lose nothing else: after it, a good request still lands and
the project holds exactly the rows of the good requests.
"""

from __future__ import annotations

import gzip
import random
import time
import zlib
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from logpond.store.chdb_store import ChDBStore
from tests.api._otlp import encode, encode_gzip, json_request
from tests.api._support import assert_error
from tests.conftest import Env, make_settings, running_env

pytestmark = pytest.mark.asyncio(loop_scope="module")

LAST_HOUR = {"date_from": "-1h"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(module_env: Env) -> Env:
    return module_env


async def total(env: Env) -> int:
    response = await env.client.post(f"/api/projects/{env.project.id}/logs/count/",
                                     json={"query": {"dateRange": LAST_HOUR}}, headers=env.auth())
    assert response.status_code == 200, response.text
    return response.json()["count"]  # type: ignore[no-any-return]


def good_body(n: int = 2, tag: str = "good") -> bytes:
    return encode([dict(body=f"{tag} {i}", severity_number=9, attributes={"tag": tag}) for i in range(n)],
                  {"service.name": "bad-input"})


async def assert_nothing_lost(env: Env, before: int) -> None:
    """A good request after the bad one lands, and the project holds exactly ``before`` + its rows."""
    response = await env.send_otlp(good_body(2))
    assert response.status_code == 200, response.text
    env.flush()
    assert await total(env) == before + 2


# --- OTLP bodies -------------------------------------------------------------------------------------------


def _truncated() -> bytes:
    body = encode([dict(body="x" * 200, attributes={"k": "v" * 50})], {"service.name": "cut"})
    return body[: len(body) // 2]


BAD_BODIES = {
    "truncated-protobuf": _truncated(),
    "random-bytes": random.Random(7).randbytes(512),
    "invalid-json": b'{"resourceLogs": [{"scopeLogs": ',
    "json-array-of-numbers": b"[1, 2, 3]",
    "json-wrong-type": orjson.dumps(
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}),
    "corrupt-gzip": b"\x1f\x8b\x08\x00" + bytes(range(64)),
    "gzip-of-garbage": gzip.compress(b"this is not OTLP at all \x00\x01\x02"),
    "truncated-gzip": encode_gzip([dict(body="x" * 300)])[:-12],
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_undecodable_body_is_400_and_loses_nothing(env: Env, body: bytes) -> None:
    """A body that is neither OTLP protobuf nor OTLP/JSON (plain or gzip) is a 400 with an error message."""
    before = await total(env)
    response = await env.send_otlp(body)
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["error"], str) and response.json()["error"]
    await assert_nothing_lost(env, before)


async def test_json_error_names_the_field(env: Env) -> None:
    """An OTLP/JSON field of the wrong type is named in the error."""
    response = await env.send_otlp(BAD_BODIES["json-wrong-type"])
    assert "timeUnixNano" in response.json()["error"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/octet-stream", ""])
async def test_content_type_is_ignored(env: Env, content_type: str) -> None:
    """A valid protobuf body lands whatever Content-Type says."""
    before = await total(env)
    response = await env.send_otlp(good_body(3, "ct"), **{"Content-Type": content_type})
    assert response.status_code == 200, response.text
    env.flush()
    assert await total(env) == before + 3


@pytest.mark.parametrize("content_encoding", [{"Content-Encoding": "gzip"}, {}], ids=["declared", "sniffed"])
async def test_gzip_body_lands(env: Env, content_encoding: dict[str, str]) -> None:
    """A gzip-compressed protobuf body is decompressed (detected by its magic bytes) and lands."""
    before = await total(env)
    response = await env.send_otlp(gzip.compress(good_body(4, "gz")), **content_encoding)
    assert response.status_code == 200, response.text
    env.flush()
    assert await total(env) == before + 4


@cache
def gzip_bomb(uncompressed_bytes: int) -> bytes:
    """``uncompressed_bytes`` zero bytes, gzip-compressed to about a thousandth of that."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(uncompressed_bytes >> 20)]
    parts.append(compressor.flush())
    return b"".join(parts)


async def test_gzip_bomb_is_413_and_server_still_works(env: Env) -> None:
    """A small gzip body inflating past the decompression limit is refused with 413, and nothing is lost."""
    before = await total(env)
    bomb = gzip_bomb(env.services.settings.max_decompressed_bytes + (50 << 20))
    assert len(bomb) < env.services.settings.max_request_bytes
    started = time.monotonic()
    response = await env.send_otlp(bomb, **{"Content-Encoding": "gzip"})
    elapsed = time.monotonic() - started
    assert response.status_code == 413, response.text
    assert response.json()["error"]
    assert elapsed < 20, "a hang guard, not a benchmark: decompression must stop at the limit"
    await assert_nothing_lost(env, before)


async def test_empty_body_is_an_empty_export(env: Env) -> None:
    """An empty body is an empty export: 200 and no rows."""
    before = await total(env)
    response = await env.send_otlp(b"")
    assert (response.status_code, response.json()) == (200, {})
    env.flush()
    assert await total(env) == before


async def test_otlp_json_is_accepted(env: Env) -> None:
    """An OTLP/JSON body lands with its body, severity, attributes and resource."""
    doc = json_request([dict(body="from json", severity_text="ERROR", severity_number=17,
                             attributes={"tag": "json-doc"})], {"service.name": "json-svc"})
    response = await env.send_otlp(orjson.dumps(doc), **{"Content-Type": "application/json"})
    assert (response.status_code, response.json()) == (200, {})
    env.flush()
    found = (await env.query({"dateRange": LAST_HOUR, "serviceNames": ["json-svc"]})).json()["results"]
    assert [(r["body"], r["level"], r["severity_number"], r["attributes"], r["instrumentation_scope"])
            for r in found] == [("from json", "error", 17, {"tag": "json-doc"}, "json@2")]


async def test_json_lines_are_merged(env: Env) -> None:
    """Several OTLP/JSON documents, one per line, all land."""
    docs = [json_request([dict(body=f"line {i}")], {"service.name": "jsonl"}) for i in range(3)]
    lines = [orjson.dumps(doc) for doc in docs]
    response = await env.send_otlp(b"\n".join(lines) + b"\n", **{"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    env.flush()
    found = (await env.query({"dateRange": LAST_HOUR, "serviceNames": ["jsonl"]})).json()["results"]
    assert sorted(r["body"] for r in found) == ["line 0", "line 1", "line 2"]


# --- OTLP tokens -------------------------------------------------------------------------------------------


def headers_for(env: Env, case: str) -> tuple[str, dict[str, str]]:
    """(query string, headers) of a request whose token is ``case``."""
    base = {"Content-Type": "application/x-protobuf"}
    if case == "missing":
        return "", base
    if case == "unknown":
        return "", {**base, "Authorization": "Bearer phc_" + "u" * 43}
    if case == "personal-key":
        return "", {**base, "Authorization": f"Bearer {env.key}"}
    if case == "malformed":
        return "", {**base, "Authorization": "Bearer not a token!"}
    if case == "basic-auth":
        return "", {**base, "Authorization": f"Basic {env.project.api_token}"}
    if case == "unknown-in-query":
        return "?token=phc_" + "q" * 43, base
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["missing", "unknown", "personal-key", "malformed", "basic-auth", "unknown-in-query"]
)
async def test_bad_ingestion_token_is_401_and_loses_nothing(env: Env, case: str) -> None:
    """Without a valid project token ingestion answers 401 and stores nothing."""
    before = await total(env)
    query, headers = headers_for(env, case)
    response = await env.client.post(f"/i/v1/logs{query}", content=good_body(5, "bad-token"), headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"]
    if case == "missing":
        assert response.json()["error"] == "No token provided"
    await assert_nothing_lost(env, before)


@pytest.mark.parametrize("path", ["/i/v1/logs", "/v1/logs"])
async def test_token_in_query_string(env: Env, path: str) -> None:
    """?token= authenticates ingestion as well as the Authorization header."""
    before = await total(env)
    response = await env.client.post(f"{path}?token={env.project.api_token}", content=good_body(2, "qs"),
                                     headers={"Content-Type": "application/x-protobuf"})
    assert response.status_code == 200, response.text
    env.flush()
    assert await total(env) == before + 2


async def test_body_over_max_request_bytes_is_413(tmp_path: Path, store: ChDBStore) -> None:
    """A body over max_request_bytes is refused whether or not it declares its length; small ones land."""
    async with running_env(make_settings(tmp_path, max_request_bytes=1000), store) as small:
        big = encode([dict(body="x" * 1500)])
        assert len(big) > 1000
        declared = await small.send_otlp(big)
        assert declared.status_code == 413, declared.text

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 100):
                yield big[start : start + 100]

        streamed = await small.client.post(
            "/i/v1/logs", content=chunks(),
            headers={"Authorization": f"Bearer {small.project.api_token}",
                     "Content-Type": "application/x-protobuf"},
        )
        assert streamed.status_code == 413, streamed.text
        fits = good_body(2)
        assert len(fits) <= 1000
        assert (await small.send_otlp(fits)).status_code == 200
        small.flush()
        assert await total(small) == 2


# --- private API: credentials ------------------------------------------------------------------------------


def api_routes(env: Env) -> list[tuple[str, str]]:
    pid = env.project.id
    return [
        ("POST", f"/api/projects/{pid}/logs/query/"),
        ("POST", f"/api/projects/{pid}/logs/count/"),
        ("GET", f"/api/projects/{pid}/logs/has_logs/"),
        ("POST", f"/api/environments/{pid}/logs/query/"),
        ("GET", "/api/projects/"),
        ("GET", f"/api/projects/{pid}/"),
        ("GET", "/api/organizations/"),
        ("GET", "/api/users/@me/"),
        ("GET", "/api/personal_api_keys/@current/"),
    ]


async def send(env: Env, method: str, url: str, headers: dict[str, str] | None = None,
               body: Any = None) -> Any:
    if method == "POST" and body is None:
        body = {"query": {"dateRange": LAST_HOUR}}
    json = body if method == "POST" else None
    return await env.client.request(method, url, json=json, headers=headers or {})


async def test_no_credentials_is_401_with_the_exact_envelope(env: Env) -> None:
    """Every private route without credentials answers PostHog's not_authenticated body."""
    for method, url in api_routes(env):
        response = await send(env, method, url)
        assert response.status_code == 401, url
        assert response.json() == {"type": "authentication_error", "code": "not_authenticated",
                                   "detail": "Authentication credentials were not provided.", "attr": None}
        assert response.headers.get("WWW-Authenticate")


async def test_invalid_key_is_401_naming_where_it_was_found(env: Env) -> None:
    """An unknown personal key answers authentication_failed naming the header, body or query string."""
    bad = "phx_" + "z" * 47
    where = {
        "Authorization header": ({"Authorization": f"Bearer {bad}"}, "", None),
        "body": ({}, "", {"query": {"dateRange": LAST_HOUR}, "personal_api_key": bad}),
        "query string": ({}, f"?personal_api_key={bad}", None),
    }
    for source, (headers, query, body) in where.items():
        url = f"/api/projects/{env.project.id}/logs/query/{query}"
        response = await send(env, "POST", url, headers, body)
        assert response.json() == {"type": "authentication_error", "code": "authentication_failed",
                                   "detail": f"Personal API key found in request {source} is invalid.",
                                   "attr": None}
        assert response.status_code == 401


async def test_key_in_body_and_query_string_work(env: Env) -> None:
    """A personal key sent as body personal_api_key or ?personal_api_key= authenticates."""
    url = f"/api/projects/{env.project.id}/logs/"
    in_body = await send(env, "POST", url + "query/", body={"query": {"dateRange": LAST_HOUR},
                                                          "personal_api_key": env.key})
    assert in_body.status_code == 200, in_body.text
    in_query = await send(env, "POST", url + f"count/?personal_api_key={env.key}")
    assert in_query.status_code == 200, in_query.text
    get = await send(env, "GET", url + f"has_logs/?personal_api_key={env.key}")
    assert (get.status_code, get.json()) == (200, {"hasLogs": True})


async def test_header_key_is_the_only_one_tried(env: Env) -> None:
    """When the header holds a bad key, a good key in the query string does not rescue the request."""
    url = f"/api/projects/{env.project.id}/logs/has_logs/?personal_api_key={env.key}"
    response = await send(env, "GET", url, {"Authorization": "Bearer phx_" + "n" * 47})
    assert_error(response, 401, type="authentication_error", code="authentication_failed")


# --- private API: malformed queries ------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["query", "count"])
async def test_malformed_json_body_is_400(env: Env, route: str) -> None:
    """A body that is not JSON is a 400 parse error."""
    response = await env.client.post(f"/api/projects/{env.project.id}/logs/{route}/", content=b'{"query": {',
                                     headers={**env.auth(), "Content-Type": "application/json"})
    assert_error(response, 400, type="invalid_request", code="parse_error")


@pytest.mark.parametrize("body", [{"query": []}, {"query": "latest"}, {"query": 5}, [], "query", 3],
                         ids=["list", "string", "number", "body-list", "body-string", "body-number"])
@pytest.mark.parametrize("route", ["query", "count"])
async def test_non_object_query_is_400(env: Env, route: str, body: Any) -> None:
    """A query (or body) that is not a JSON object is a 400 naming 'query'."""
    response = await env.client.post(f"/api/projects/{env.project.id}/logs/{route}/", json=body,
                                     headers=env.auth())
    assert_error(response, 400, type="validation_error", code="invalid_input", attr="query")


def _leaf(**overrides: Any) -> dict[str, Any]:
    leaf = {"key": "user", "value": "x", "operator": "exact", "type": "log_attribute", **overrides}
    return {"type": "AND", "values": [{"type": "AND", "values": [leaf]}]}


LEAF = "filterGroup__values__0__values__0"
BAD_QUERIES = [
    ({"severityLevels": ["error", "loud"]}, "severityLevels", "loud"),
    ({"severityLevels": "error"}, "severityLevels", None),
    ({"serviceNames": "api"}, "serviceNames", None),
    ({"searchTerm": 5}, "searchTerm", None),
    ({"filterGroup": _leaf(operator="resembles")}, f"{LEAF}__operator", "resembles"),
    ({"filterGroup": _leaf(type="event")}, f"{LEAF}__type", "event"),
    ({"filterGroup": _leaf(key="")}, f"{LEAF}__key", None),
    ({"filterGroup": _leaf(value={"nested": 1})}, f"{LEAF}__value", None),
    ({"filterGroup": {"type": "XOR", "values": []}}, "filterGroup__type", None),
    ({"filterGroup": "user=x"}, "filterGroup", None),
    ({"dateRange": {"date_from": "yesterday"}}, "dateRange__date_from", "yesterday"),
    ({"dateRange": {"date_from": "-1x"}}, "dateRange__date_from", None),
    ({"dateRange": {"date_from": 1700000000}}, "dateRange__date_from", None),
    ({"dateRange": {"date_from": "-1h", "date_to": "2026-13-45"}}, "dateRange__date_to", None),
    ({"dateRange": {"date_from": "-1h", "date_to": "-2h"}}, "dateRange", None),
    ({"dateRange": "-1h"}, "dateRange", None),
    ({"resourceFingerprint": "²"}, "resourceFingerprint", None),
    ({"resourceFingerprint": "12ab"}, "resourceFingerprint", None),
]


@pytest.mark.parametrize(("query", "attr", "mentioned"), BAD_QUERIES, ids=[a for _, a, _ in BAD_QUERIES])
@pytest.mark.parametrize("route", ["query", "count"])
async def test_bad_filter_is_400_naming_the_field(
    env: Env, route: str, query: dict[str, Any], attr: str, mentioned: str | None
) -> None:
    """Each malformed filter is a validation_error whose attr names the field (and detail the bad value)."""
    response = await env.client.post(f"/api/projects/{env.project.id}/logs/{route}/", json={"query": query},
                                     headers=env.auth())
    body = assert_error(response, 400, type="validation_error", code="invalid_input", attr=attr)
    if mentioned is not None:
        assert mentioned in body["detail"]


async def test_invalid_regex_is_400_and_the_next_query_still_works(env: Env) -> None:
    """A regex the engine cannot compile is the caller's error (400), and queries after it answer normally."""
    assert (await env.send_otlp(good_body(1, "regex"))).status_code == 200
    env.flush()  # the engine only compiles the pattern when there are rows to match
    pattern = _leaf(key="message", type="log", operator="regex", value="([unclosed")
    bad = await env.query({"dateRange": LAST_HOUR, "filterGroup": pattern})
    # The app error, if any, surfaces here through ASGITransport; keep it so the follow-up queries still run
    # (a failed store query must not leave anything behind for the next one, in any project).
    outcomes: list[Any] = []
    for _ in range(2):
        try:
            outcomes.append((await env.query({"dateRange": LAST_HOUR, "limit": 1})).status_code)
        except Exception as exc:  # the failure is what this test reports
            outcomes.append(repr(exc)[:200])
    assert outcomes == [200, 200]
    assert bad.status_code == 400 and bad.json()["type"] == "validation_error", bad.text


@pytest.mark.parametrize("limit", [0, -5, "ten", 1.5, True])
async def test_bad_limit_is_400(env: Env, limit: Any) -> None:
    """A limit that is not a positive integer is a 400 naming 'limit'."""
    response = await env.query({"dateRange": LAST_HOUR, "limit": limit})
    assert_error(response, 400, type="validation_error", code="invalid_input", attr="limit")


# --- routes with and without a trailing slash --------------------------------------------------------------


def all_routes(env: Env) -> list[tuple[str, str, int]]:
    pid = env.project.id
    org = env.services.meta.list_organizations()[0].id
    routes = [(method, url.rstrip("/"), 200) for method, url in api_routes(env)]
    return routes + [
        ("POST", f"/api/environments/{pid}/logs/count", 200),
        ("GET", f"/api/environments/{pid}/logs/has_logs", 200),
        ("GET", f"/api/environments/{pid}", 200),
        ("GET", "/api/projects/@current", 200),
        ("GET", "/api/organizations/@current", 200),
        ("GET", f"/api/organizations/{org}", 200),
        ("GET", f"/api/organizations/{org}/projects", 200),
        ("POST", "/i/v1/logs", 200),
        ("POST", "/v1/logs", 200),
        ("OPTIONS", "/i/v1/logs", 204),
        ("OPTIONS", "/v1/logs", 204),
    ]


async def test_every_route_answers_with_and_without_trailing_slash(env: Env) -> None:
    """Every route serves both spellings directly (no redirect) with the same status."""
    for method, url, status in all_routes(env):
        for spelling in (url, url + "/"):
            if spelling.startswith(("/i/", "/v1/")):
                content = good_body(1, "slash") if method == "POST" else None
                token = {"Authorization": f"Bearer {env.project.api_token}"}
                response = await env.client.request(method, spelling, content=content, headers=token)
            else:
                response = await send(env, method, spelling, env.auth())
            assert response.status_code == status, (method, spelling, response.text)
        if method == "GET":
            bare = (await send(env, method, url, env.auth())).json()
            slashed = (await send(env, method, url + "/", env.auth())).json()
            assert bare == slashed, url
