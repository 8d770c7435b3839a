"""Log exports: ``POST .../logs/export/``, then ``GET .../exports/<id>/`` and ``.../content/``.

One module-wide app with the clock frozen at ``NOW`` and three data sets in project 1:

- ``SMALL`` (about ``NOW - 2h``): six records over OTLP on two services, with bodies that CSV must quote
  or neutralise (commas, quotes, a newline, leading ``=``, ``@``, ``-``);
- ``CAP`` (about ``NOW - 5h``): 10,500 rows inserted as Arrow, one millisecond apart, ``attributes.i`` = n;
- ``BIG`` (about ``NOW - 8h``): 10,000 rows of about 4 KB each, for the memory bound.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import datetime as dt
import io
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pytest
import pytest_asyncio
from sqlalchemy import text

from logpond.ingest.uuid7 import uuid7_batch
from logpond.meta import MembershipLevel
from logpond.store.base import StoreError
from logpond.store.schema import LOG_ARROW_SCHEMA
from tests.api._otlp import add_resource_logs
from tests.api._support import assert_error, iso_z
from tests.conftest import Env

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)

T1 = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
S1 = bytes.fromhex("00f067aa0ba902b7")

S0 = NOW - dt.timedelta(hours=2)
SMALL_RANGE = {"date_from": iso_z(S0 - dt.timedelta(minutes=1)), "date_to": iso_z(S0 + dt.timedelta(hours=1))}
API_RESOURCE = {"service.name": "api", "region": "eu-west"}
API_RECORDS: list[dict[str, Any]] = [
    dict(body="GET /users 200", severity_number=9, trace_id=T1, span_id=S1, event_name="http.request",
         attributes={"id": "s1", "http.status_code": 200}),
    dict(body='=HYPERLINK("http://evil.example")', severity_number=17, attributes={"id": "s2"}),
    dict(body='two\nlines, with "quotes"', severity_number=13, attributes={"id": "s3", "note": "-5"}),
    dict(body="@here +1", severity_number=9, attributes={"id": "s4"}),
]
WORKER_RECORDS: list[dict[str, Any]] = [
    dict(body="job done", severity_number=9, attributes={"id": "s5", "job": "abc"}),
    dict(body="job failed", severity_number=17, attributes={"id": "s6"}),
]
NEWEST_FIRST = ["s6", "s5", "s4", "s3", "s2", "s1"]

C0 = NOW - dt.timedelta(hours=5)
CAP_RANGE = {"date_from": iso_z(C0 - dt.timedelta(minutes=1)), "date_to": iso_z(C0 + dt.timedelta(hours=1))}
CAP_ROWS = 10_500

B0 = NOW - dt.timedelta(hours=8)
BIG_RANGE = {"date_from": iso_z(B0 - dt.timedelta(minutes=1)), "date_to": iso_z(B0 + dt.timedelta(hours=1))}
BIG_ROWS = 10_000
BIG_BODY_BYTES = 4000

DEFAULT_COLUMNS = [
    "uuid", "timestamp", "observed_timestamp", "severity_text", "severity_number", "service_name", "body",
    "trace_id", "span_id", "attributes", "resource_attributes", "resource_fingerprint", "instrumentation_scope",
    "event_name",
]
JSONL = "application/x-ndjson"


def arrow_logs(team_id: int, start: dt.datetime, count: int, service: str, body: Any) -> pa.Table:
    """``count`` rows one millisecond apart from ``start``; row n has ``body(n)`` and attribute ``i`` = n."""
    stamps = [start + dt.timedelta(milliseconds=n) for n in range(count)]
    return pa.table(
        {
            "team_id": [team_id] * count,
            "uuid": uuid7_batch(count),
            "trace_id": [b""] * count,
            "span_id": [b""] * count,
            "trace_flags": [0] * count,
            "timestamp": stamps,
            "observed_timestamp": stamps,
            "body": [body(n) for n in range(count)],
            "severity_text": ["info"] * count,
            "severity_number": [9] * count,
            "service_name": [service] * count,
            "resource_attributes": [[("service.name", service)]] * count,
            "instrumentation_scope": [""] * count,
            "event_name": [""] * count,
            "attributes": [[("i", str(n))] for n in range(count)],
        },
        schema=LOG_ARROW_SCHEMA,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(module_env: Env) -> Env:
    """The module's app with the clock frozen at ``NOW`` and the three data sets stored."""
    module_env.services.clock = lambda: NOW
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    for offset, record in enumerate(API_RECORDS + WORKER_RECORDS):
        record["time_unix_nano"] = S0 + dt.timedelta(seconds=offset)
    add_resource_logs(request, API_RECORDS, API_RESOURCE, ("checkout", "2.1.0"))
    add_resource_logs(request, WORKER_RECORDS, {"service.name": "worker"}, ("jobs", ""))
    response = await module_env.send_otlp(request.SerializeToString())
    assert response.status_code == 200, response.text
    module_env.flush()
    team = module_env.project.id
    store = module_env.services.store
    store.insert_logs(arrow_logs(team, C0, CAP_ROWS, "bulk", lambda n: f"bulk {n}"))
    filler = "x" * BIG_BODY_BYTES
    store.insert_logs(arrow_logs(team, B0, BIG_ROWS, "big", lambda n: f"big {n} {filler}"))
    return module_env


# --- helpers -------------------------------------------------------------------------------------------------


async def post_export(env: Env, query: Any, key: str | None = None, project_id: int | None = None,
                      **extra: Any) -> httpx.Response:
    pid = project_id or env.project.id
    body = {"query": query, **extra}
    return await env.client.post(f"/api/projects/{pid}/logs/export/", json=body, headers=env.auth(key))


async def created(env: Env, query: Any, **extra: Any) -> dict[str, Any]:
    response = await post_export(env, query, **extra)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def content(env: Env, asset_id: int, key: str | None = None, project_id: int | None = None) -> httpx.Response:
    pid = project_id or env.project.id
    return await env.client.get(f"/api/projects/{pid}/exports/{asset_id}/content/", headers=env.auth(key))


async def metadata(env: Env, asset_id: Any, key: str | None = None, project_id: int | None = None) -> httpx.Response:
    pid = project_id or env.project.id
    return await env.client.get(f"/api/projects/{pid}/exports/{asset_id}/", headers=env.auth(key))


async def csv_rows(env: Env, query: Any, **extra: Any) -> list[dict[str, str]]:
    """The exported CSV as dicts, after checking its header is the requested columns (or the default)."""
    asset = await created(env, query, **extra)
    response = await content(env, asset["id"])
    assert response.status_code == 200, response.text
    reader = csv.reader(io.StringIO(response.content.decode("utf-8"), newline=""))
    header, *rows = list(reader)
    assert header == (extra.get("columns") or DEFAULT_COLUMNS)
    return [dict(zip(header, row, strict=True)) for row in rows]


async def jsonl_rows(env: Env, query: Any, **extra: Any) -> list[dict[str, Any]]:
    asset = await created(env, query, export_format=JSONL, **extra)
    response = await content(env, asset["id"])
    assert response.status_code == 200, response.text
    assert response.content == b"" or response.content.endswith(b"\n")
    return [orjson.loads(line) for line in response.content.splitlines()]


async def searched(env: Env, query: dict[str, Any]) -> list[dict[str, Any]]:
    """What ``logs/query`` returns for ``query`` (one page of up to 2000 rows)."""
    response = await env.query({"limit": 2000, **query})
    assert response.status_code == 200, response.text
    assert response.json()["hasMore"] is False
    return response.json()["results"]  # type: ignore[no-any-return]


def as_export_row(row: dict[str, Any]) -> dict[str, Any]:
    """A LogRow from ``logs/query`` as the default export columns carry it."""
    picked = {name: row[name] for name in DEFAULT_COLUMNS if name != "service_name"}
    picked["service_name"] = row["resource_attributes"]["service.name"]
    return {name: picked[name] for name in DEFAULT_COLUMNS}


def asset_count(env: Env) -> int:
    with env.services.meta.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM exported_assets")).scalar_one())


def export_files(env: Env) -> set[str]:
    directory: Path = env.services.settings.exports_dir
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


# --- the created asset -----------------------------------------------------------------------------------------


async def test_created_asset_has_posthogs_shape(env: Env) -> None:
    """The 201 is PostHog's ExportedAsset: CSV by default, content ready, a dated filename, a week's expiry."""
    query = {"dateRange": SMALL_RANGE, "serviceNames": ["api"]}
    response = await post_export(env, query)
    assert response.status_code == 201, response.text
    asset = response.json()
    assert set(asset) == {
        "id", "dashboard", "insight", "export_format", "created_at", "has_content", "export_context", "filename",
        "expires_after", "exception",
    }
    assert isinstance(asset["id"], int)
    assert (asset["export_format"], asset["has_content"], asset["exception"]) == ("text/csv", True, None)
    assert (asset["dashboard"], asset["insight"]) == (None, None)
    created_at = dt.datetime.fromisoformat(asset["created_at"].replace("Z", "+00:00"))
    assert abs(created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    day_from, day_to = SMALL_RANGE["date_from"][:10], SMALL_RANGE["date_to"][:10]
    assert asset["filename"] == f"logs-api-{day_from}-to-{day_to}-{created_at:%Y-%m-%d-%H%M%S}.csv"
    midnight = (NOW + dt.timedelta(days=7)).replace(hour=0, minute=0, second=0)
    assert asset["expires_after"] == iso_z(midnight)
    assert asset["export_context"] == {
        "source": {**query, "kind": "LogsQuery", "limit": 10000},
        "columns": DEFAULT_COLUMNS,
        "filename": f"logs-api-{day_from}-to-{day_to}",
        "row_limit": 10000,
    }
    detail = await metadata(env, asset["id"])
    assert detail.status_code == 200
    assert detail.json() == asset


@pytest.mark.parametrize(
    ("query", "stem"),
    [
        ({"serviceNames": ["api", "worker"], "dateRange": {"date_from": "2026-01-02T00:00:00Z"}},
         "logs-2-services-from-2026-01-02"),
        ({"serviceNames": ["a b/c"], "dateRange": {"date_from": "-1h"}}, "logs-a-b-c-from-1h"),
        ({}, f"logs-all-services-{NOW:%Y-%m-%d}"),
    ],
)
async def test_filename_names_services_and_dates(env: Env, query: dict[str, Any], stem: str) -> None:
    """The file is named after the services and the date range, as PostHog names it."""
    asset = await created(env, query, export_format=JSONL)
    assert asset["filename"].startswith(stem + "-")
    assert asset["filename"].endswith(".jsonl")


# --- content ------------------------------------------------------------------------------------------------


async def test_csv_has_every_row_in_order_with_exact_fields(env: Env) -> None:
    """The default CSV holds each matching row once, newest first, with the LogRow's values."""
    rows = await csv_rows(env, {"dateRange": SMALL_RANGE})
    assert [orjson.loads(row["attributes"])["id"] for row in rows] == NEWEST_FIRST
    s1 = rows[-1]
    assert {k: v for k, v in s1.items() if k not in ("uuid", "timestamp", "observed_timestamp",
                                                      "resource_fingerprint")} == {
        "severity_text": "info",
        "severity_number": "9",
        "service_name": "api",
        "body": "GET /users 200",
        "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736",
        "span_id": "00F067AA0BA902B7",
        "attributes": '{"http.status_code":"200","id":"s1"}',
        "resource_attributes": '{"region":"eu-west","service.name":"api"}',
        "instrumentation_scope": "checkout@2.1.0",
        "event_name": "http.request",
    }
    assert s1["timestamp"] == iso_z(S0)
    searched_rows = await searched(env, {"dateRange": SMALL_RANGE})
    assert [row["uuid"] for row in rows] == [row["uuid"] for row in searched_rows]
    assert [row["resource_fingerprint"] for row in rows] == [row["resource_fingerprint"] for row in searched_rows]


async def test_csv_neutralises_formulas_and_quotes_the_rest(env: Env) -> None:
    """Cells starting with = + - @ get a leading quote (PostHog's rule); commas, quotes, newlines survive."""
    columns = ["body", "attributes.note", "level"]
    rows = await csv_rows(env, {"dateRange": SMALL_RANGE, "serviceNames": ["api"]}, columns=columns)
    assert rows == [
        {"body": "'@here +1", "attributes.note": "", "level": "info"},
        {"body": 'two\nlines, with "quotes"', "attributes.note": "'-5", "level": "warn"},
        {"body": "'=HYPERLINK(\"http://evil.example\")", "attributes.note": "", "level": "error"},
        {"body": "GET /users 200", "attributes.note": "", "level": "info"},
    ]


async def test_jsonl_rows_equal_the_search_rows(env: Env) -> None:
    """Each JSON line is the LogRow the search returns (plus service_name), in the same order, unaltered."""
    lines = await jsonl_rows(env, {"dateRange": SMALL_RANGE})
    assert lines == [as_export_row(row) for row in await searched(env, {"dateRange": SMALL_RANGE})]
    assert lines[4]["body"] == '=HYPERLINK("http://evil.example")'
    assert lines[-1]["attributes"] == {"id": "s1", "http.status_code": "200"}


async def test_columns_pick_fields_and_single_attributes(env: Env) -> None:
    """Given columns, only those are written, in that order; a missing attribute is null (empty in CSV)."""
    columns = ["attributes.id", "resource_attributes.region", "service_name", "severity_number", "attributes.job"]
    lines = await jsonl_rows(env, {"dateRange": SMALL_RANGE, "orderBy": "earliest"}, columns=columns)
    assert [list(line) for line in lines] == [columns] * 6
    assert [tuple(line.values()) for line in lines] == [
        ("s1", "eu-west", "api", 9, None),
        ("s2", "eu-west", "api", 17, None),
        ("s3", "eu-west", "api", 13, None),
        ("s4", "eu-west", "api", 9, None),
        ("s5", None, "worker", 9, "abc"),
        ("s6", None, "worker", 17, None),
    ]
    rows = await csv_rows(env, {"dateRange": SMALL_RANGE, "orderBy": "earliest"}, columns=columns)
    assert rows[4] == {"attributes.id": "s5", "resource_attributes.region": "", "service_name": "worker",
                       "severity_number": "9", "attributes.job": "abc"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"severityLevels": ["error"]}, ["s6", "s2"]),
        ({"serviceNames": ["worker"]}, ["s6", "s5"]),
        ({"searchTerm": "JOB"}, ["s6", "s5"]),
        ({"filterGroup": {"type": "AND", "values": [{"type": "AND", "values": [
            {"key": "id", "value": ["s1", "s3", "s5"], "operator": "exact", "type": "log_attribute"}]}]}},
         ["s5", "s3", "s1"]),
        ({"filterGroup": [{"key": "region", "value": "eu-west", "operator": "exact",
                           "type": "log_resource_attribute"}], "orderBy": "earliest"}, ["s1", "s2", "s3", "s4"]),
        ({"dateRange": {"date_from": iso_z(S0 + dt.timedelta(seconds=2)),
                        "date_to": iso_z(S0 + dt.timedelta(seconds=4))}}, ["s4", "s3"]),
        ({"dateRange": CAP_RANGE, "serviceNames": ["api"]}, []),
    ],
)
async def test_filters_are_respected(env: Env, filters: dict[str, Any], expected: list[str]) -> None:
    """The export holds exactly the rows the same LogsQuery finds, in its order."""
    query = {"dateRange": SMALL_RANGE, **filters}
    lines = await jsonl_rows(env, query, columns=["attributes.id"])
    assert [line["attributes.id"] for line in lines] == expected
    assert expected == [row["attributes"]["id"] for row in await searched(env, query)]


async def test_an_empty_export_has_just_the_header(env: Env) -> None:
    """No matching rows: a CSV with only its header line, an empty JSON Lines file; both have content."""
    query = {"dateRange": SMALL_RANGE, "searchTerm": "no such text"}
    assert await csv_rows(env, query) == []
    assert await jsonl_rows(env, query) == []


async def test_exclude_attributes_empties_the_maps_but_keeps_service_name(env: Env) -> None:
    """excludeAttributes writes empty attribute maps, as the search returns them; service_name is still known."""
    lines = await jsonl_rows(env, {"dateRange": SMALL_RANGE, "excludeAttributes": True, "serviceNames": ["worker"]})
    assert [(line["attributes"], line["resource_attributes"], line["service_name"]) for line in lines] == [
        ({}, {}, "worker"), ({}, {}, "worker")
    ]


async def test_after_starts_the_export_past_the_cursor(env: Env) -> None:
    """A query carrying a cursor exports the rows after it, as the next search page would start."""
    first = (await env.query({"dateRange": SMALL_RANGE, "limit": 2})).json()
    lines = await jsonl_rows(env, {"dateRange": SMALL_RANGE, "after": first["nextCursor"]}, columns=["attributes.id"])
    assert [line["attributes.id"] for line in lines] == NEWEST_FIRST[2:]


# --- the 10,000 row cap and memory -------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["latest", "earliest"])
async def test_at_most_10000_rows_from_the_sort_edge(env: Env, order: str) -> None:
    """Of 10,500 matching rows, the export holds the first 10,000 in the query's order, each once, and a
    user's ``limit`` does not change that (PostHog replaces it with the cap)."""
    lines = await jsonl_rows(env, {"dateRange": CAP_RANGE, "orderBy": order, "limit": 5}, columns=["attributes.i"])
    numbers = [int(line["attributes.i"]) for line in lines]
    expected = list(range(CAP_ROWS - 1, CAP_ROWS - 10_001, -1)) if order == "latest" else list(range(10_000))
    assert numbers == expected


async def test_memory_stays_flat_while_writing_a_large_export(env: Env) -> None:
    """Exporting 10,000 rows of about 4 KB allocates at its peak a small fraction of the file's size."""
    tracemalloc.start()
    try:
        asset = await created(env, {"dateRange": BIG_RANGE})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    path = env.services.settings.exports_dir / f"{asset['id']}.csv"
    size = path.stat().st_size
    assert size > BIG_ROWS * BIG_BODY_BYTES
    assert peak < size / 3, (peak, size)
    with path.open(newline="") as file:
        assert sum(1 for _ in csv.reader(file)) == BIG_ROWS + 1


# --- download ----------------------------------------------------------------------------------------------------


async def test_content_is_an_attachment_with_the_assets_filename(env: Env) -> None:
    """The file comes with its MIME type, an attachment Content-Disposition naming it, and its length."""
    for export_format, content_type, extension in (
        ("text/csv", "text/csv; charset=utf-8", ".csv"),
        (JSONL, JSONL, ".jsonl"),
    ):
        asset = await created(env, {"dateRange": SMALL_RANGE}, export_format=export_format)
        assert asset["filename"].endswith(extension)
        response = await content(env, asset["id"])
        assert response.status_code == 200
        assert response.headers["content-type"] == content_type
        assert response.headers["content-disposition"] == f'attachment; filename="{asset["filename"]}"'
        assert int(response.headers["content-length"]) == len(response.content) > 0
        assert "max-age" in response.headers["cache-control"]


async def test_environments_alias_and_trailing_slashes(env: Env) -> None:
    """``/api/environments/<id>/...`` and slash-less paths reach the same export."""
    pid = env.project.id
    response = await env.client.post(
        f"/api/environments/{pid}/logs/export", json={"query": {"dateRange": SMALL_RANGE}}, headers=env.auth()
    )
    assert response.status_code == 201, response.text
    asset_id = response.json()["id"]
    detail = await env.client.get(f"/api/environments/{pid}/exports/{asset_id}", headers=env.auth())
    assert detail.json() == response.json()
    file = await env.client.get(f"/api/environments/{pid}/exports/{asset_id}/content", headers=env.auth())
    assert file.status_code == 200 and file.content.startswith(b"uuid,timestamp,")


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ([{"dateRange": SMALL_RANGE}], "query"),
        ({}, "query"),
        ({"query": "level:error"}, "query"),
        ({"query": [SMALL_RANGE]}, "query"),
        ({"query": {"after": "not a cursor"}}, "after"),
        ({"query": {"after": base64.b64encode(b'{"timestamp": "2026-01-01T00:00:00Z"}').decode()}}, "after"),
        ({"query": {"severityLevels": "error"}}, "severityLevels"),
        ({"query": {"liveLogsCheckpoint": iso_z(NOW)}}, "liveLogsCheckpoint"),
        ({"query": {}, "columns": ["timestamp", "nope"]}, "columns"),
        ({"query": {}, "columns": ["http.status_code"]}, "columns"),
        ({"query": {}, "columns": ["attributes."]}, "columns"),
        ({"query": {}, "columns": "body"}, "columns"),
        ({"query": {}, "columns": [1]}, "columns"),
        ({"query": {}, "columns": ["body"] * 201}, "columns"),
        ({"query": {}, "export_format": "text/xml"}, "export_format"),
        ({"query": {}, "export_format": "csv"}, "export_format"),
        ({"query": {}, "export_format": ["text/csv"]}, "export_format"),
        ({"query": {"searchTerm": "x" * 70_000}}, "query"),
    ],
    ids=[
        "body-not-object", "no-query", "query-string", "query-list", "cursor-garbage", "cursor-no-uuid",
        "bad-severity-levels", "live-tail", "unknown-column", "bare-attribute-key", "empty-attribute-key",
        "columns-string", "column-not-string", "too-many-columns", "unknown-format", "format-short-name",
        "format-not-string", "query-too-large",
    ],
)
async def test_bad_input_is_a_400_naming_the_field_and_creates_nothing(env: Env, body: Any, attr: str) -> None:
    """Each malformed request gets a validation error naming the field, and no export record or file."""
    before, files = asset_count(env), export_files(env)
    response = await env.client.post(
        f"/api/projects/{env.project.id}/logs/export/", content=orjson.dumps(body),
        headers={**env.auth(), "Content-Type": "application/json"},
    )
    error = assert_error(response, 400, type="validation_error", code="invalid_input", attr=attr)
    if attr == "columns" and body["columns"] == ["timestamp", "nope"]:
        assert "'nope'" in error["detail"]
    assert (asset_count(env), export_files(env)) == (before, files)


async def test_a_body_that_is_not_json_is_a_parse_error(env: Env) -> None:
    """A non-JSON body is PostHog's parse_error."""
    response = await env.client.post(
        f"/api/projects/{env.project.id}/logs/export/", content=b"{query:", headers=env.auth()
    )
    assert_error(response, 400, type="invalid_request", code="parse_error")


async def test_a_failing_query_leaves_no_record_and_no_file(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store failure half-way answers like the search (504 at a time limit) and removes the partial export."""
    services = env.services
    real = services.run_query
    calls = 0

    def second_page_times_out(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise StoreError("Timeout exceeded", code="TIMEOUT_EXCEEDED")
        return real(*args, **kwargs)

    before = await created(env, {"dateRange": SMALL_RANGE})
    count, files = asset_count(env), export_files(env)
    monkeypatch.setattr(services, "run_query", second_page_times_out)
    response = await post_export(env, {"dateRange": CAP_RANGE, "orderBy": "earliest"})
    monkeypatch.undo()
    assert_error(response, 504, type="server_error", code="error")
    assert calls > 1
    assert (asset_count(env), export_files(env)) == (count, files)
    after = await created(env, {"dateRange": SMALL_RANGE})
    assert after["id"] == before["id"] + 2  # the failed export's id is not reused
    assert (await metadata(env, before["id"] + 1)).status_code == 404


async def test_exports_beyond_the_concurrency_limit_get_429(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """With export_max_concurrent (2) exports running, another is refused with 429 and Retry-After."""
    services = env.services
    real = services.run_query
    release = threading.Event()
    waiting = threading.Semaphore(0)

    def held(*args: Any, **kwargs: Any) -> Any:
        waiting.release()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "run_query", held)
    assert services.settings.export_max_concurrent == 2
    try:
        running = [asyncio.ensure_future(post_export(env, {"dateRange": SMALL_RANGE})) for _ in range(2)]
        for _ in range(2):
            assert await asyncio.to_thread(waiting.acquire, True, 30)
        refused = await post_export(env, {"dateRange": SMALL_RANGE})
        assert_error(refused, 429, type="throttled_error", code="throttled")
        assert refused.headers["retry-after"] == "5"
    finally:
        release.set()
    assert [r.status_code for r in await asyncio.gather(*running)] == [201, 201]
    monkeypatch.undo()
    assert (await post_export(env, {"dateRange": SMALL_RANGE})).status_code == 201


# --- who may read what ---------------------------------------------------------------------------------------------


async def test_no_key_is_401_everywhere(env: Env) -> None:
    """Every export route needs a personal API key."""
    asset = await created(env, {"dateRange": SMALL_RANGE})
    pid = env.project.id
    for response in (
        await env.client.post(f"/api/projects/{pid}/logs/export/", json={"query": {}}),
        await env.client.get(f"/api/projects/{pid}/exports/{asset['id']}/"),
        await env.client.get(f"/api/projects/{pid}/exports/{asset['id']}/content/"),
    ):
        assert_error(response, 401, type="authentication_error", code="not_authenticated")


async def test_scopes(env: Env) -> None:
    """Exporting needs logs:read; reading an export needs export:read (write or * also do)."""
    asset = await created(env, {"dateRange": SMALL_RANGE})
    export_only, logs_only = env.new_key(["export:read"]), env.new_key(["logs:read"])
    refused = await post_export(env, {"dateRange": SMALL_RANGE}, key=export_only)
    assert_error(refused, 403, type="authentication_error", code="permission_denied",
                 detail="API key missing required scope 'logs:read'")
    assert (await post_export(env, {"dateRange": SMALL_RANGE}, key=logs_only)).status_code == 201
    for response in (await metadata(env, asset["id"], key=logs_only), await content(env, asset["id"], key=logs_only)):
        assert_error(response, 403, type="authentication_error", code="permission_denied",
                     detail="API key missing required scope 'export:read'")
    for key in (export_only, env.new_key(["export:write"]), env.new_key(["*"])):
        assert (await metadata(env, asset["id"], key=key)).status_code == 200
        assert (await content(env, asset["id"], key=key)).status_code == 200


async def test_another_projects_export_is_not_found(env: Env) -> None:
    """An export id asked for through another project is 404, even for a key that reaches both projects."""
    asset = await created(env, {"dateRange": SMALL_RANGE})
    other = env.services.meta.create_project("Other", env.project.organization_id)
    for response in (
        await metadata(env, asset["id"], project_id=other.id),
        await content(env, asset["id"], project_id=other.id),
    ):
        assert_error(response, 404, type="invalid_request", code="not_found")
    assert (await metadata(env, asset["id"])).status_code == 200


@pytest.mark.parametrize("export_id", ["abc", "1.0", "-1", "0x1", "\u0661", "99999999999999", "4294967297", "0"])
async def test_ids_that_are_not_exports_are_not_found(env: Env, export_id: str) -> None:
    """Non-numeric, out-of-range and unknown ids are a plain 404."""
    for response in (await metadata(env, export_id), await content(env, export_id)):
        assert_error(response, 404, type="invalid_request", code="not_found")


async def test_another_users_export_is_not_found(env: Env) -> None:
    """As in PostHog, only the user who made an export can read it; a teammate gets 404."""
    asset = await created(env, {"dateRange": SMALL_RANGE})
    meta = env.services.meta
    teammate = meta.create_user("teammate@example.com", None)
    meta.add_membership(teammate.id, env.project.organization_id, MembershipLevel.MEMBER)
    key, _ = meta.create_personal_api_key(teammate.id, "teammate", ["*"])
    for response in (await metadata(env, asset["id"], key=key), await content(env, asset["id"], key=key)):
        assert_error(response, 404, type="invalid_request", code="not_found")
    own = (await post_export(env, {"dateRange": SMALL_RANGE}, key=key)).json()
    assert (await content(env, own["id"], key=key)).status_code == 200
    assert (await metadata(env, own["id"])).status_code == 404


async def test_an_export_that_never_finished_says_so(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record left without content (the server stopped mid-export) has no file to give and, after an
    hour, an exception saying it did not finish."""
    meta = env.services.meta
    stuck = meta.create_exported_asset(
        env.project.id, export_format="text/csv", export_context={"filename": "logs-stuck"},
        created_by_id=meta.get_admin_user().id, expires_after=None,
    )
    detail = (await metadata(env, stuck.id)).json()
    assert (detail["has_content"], detail["exception"]) == (False, None)
    assert_error(await content(env, stuck.id), 404, type="invalid_request", code="not_found")
    monkeypatch.setattr(env.services, "clock", lambda: stuck.created_at + dt.timedelta(hours=1, seconds=1))
    detail = (await metadata(env, stuck.id)).json()
    assert (detail["has_content"], detail["exception"]) == (False, "The export did not finish. Start a new one.")


async def test_expired_exports_are_gone_and_their_files_deleted(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """After its expiry an export is 404, and the next export deletes its record and file."""
    asset = await created(env, {"dateRange": SMALL_RANGE})
    expires = dt.datetime.fromisoformat(asset["expires_after"].replace("Z", "+00:00"))
    path = env.services.settings.exports_dir / f"{asset['id']}.csv"
    monkeypatch.setattr(env.services, "clock", lambda: expires - dt.timedelta(microseconds=1))
    assert (await metadata(env, asset["id"])).status_code == 200
    monkeypatch.setattr(env.services, "clock", lambda: expires)
    assert_error(await metadata(env, asset["id"]), 404, type="invalid_request", code="not_found")
    assert_error(await content(env, asset["id"]), 404, type="invalid_request", code="not_found")
    assert path.exists()
    fresh = await created(env, {"dateRange": SMALL_RANGE})
    assert not path.exists()
    assert env.services.meta.get_exported_asset(env.project.id, asset["id"]) is None
    assert (await content(env, fresh["id"])).status_code == 200
