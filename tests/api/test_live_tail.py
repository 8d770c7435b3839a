"""Live tail: polls of ``POST logs/query/`` with ``liveLogsCheckpoint`` return each new log exactly once.

A client takes the ``live_logs_checkpoint`` of a first search, then polls with the checkpoint of the last
response. A poll returns the logs observed in ``[checkpoint sent, checkpoint returned)`` that match its
filters, so consecutive polls tile observed time. These tests ingest over OTLP/HTTP into the real writer
and chDB, name every log by its ``id`` attribute (UUIDs are the server's) and count how often each comes
back: late, future-stamped and reversed logs, pages cut by ``limit``, requests still being decoded or
waiting in the writer, and ingestion running while clients poll.

The tests share one running logpond (``module_env``); each gets a project of its own, so each starts with
no logs. The test of the writer's queue runs its own logpond with a long flush interval.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import pytest_asyncio

from logpond.api import ingest_logs
from logpond.ingest import watermark as watermark_module
from logpond.store.chdb_store import ChDBStore
from tests.api._otlp import encode
from tests.api._support import assert_error, iso_z, parse_iso
from tests.conftest import Env, make_settings, running_env

pytestmark = pytest.mark.asyncio(loop_scope="module")

WINDOW = {"date_from": "-2h"}
US = dt.timedelta(microseconds=1)
MS = dt.timedelta(milliseconds=1)
SECOND = dt.timedelta(seconds=1)
HOUR = dt.timedelta(hours=1)


@pytest_asyncio.fixture(loop_scope="module")
async def env(module_env: Env) -> Env:
    """The module's running logpond, seen through a new project: each test starts with no logs."""
    project = module_env.services.meta.create_project(f"live tail {uuid.uuid4().hex[:8]}")
    return replace(module_env, project=project)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def record(log_id: str, at: dt.datetime, *, severity_number: int = 9, body: str | None = None) -> dict[str, Any]:
    """One OTLP log record, named by its ``id`` attribute."""
    return {
        "body": body if body is not None else f"event {log_id}",
        "severity_number": severity_number,
        "time_unix_nano": at,
        "attributes": {"id": log_id},
    }


async def send(env: Env, records: Sequence[dict[str, Any]], service: str = "api", token: str | None = None) -> None:
    response = await env.send_otlp(encode(records, {"service.name": service}), token=token)
    assert response.status_code == 200, response.text


def ids(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [row["attributes"]["id"] for row in rows]


def id_set(records: Sequence[dict[str, Any]]) -> set[str]:
    return {r["attributes"]["id"] for r in records}


def assert_each_once(returned: Sequence[str], expected: set[str]) -> None:
    counts = Counter(returned)
    repeated = {log_id: n for log_id, n in counts.items() if n > 1}
    assert not repeated, f"returned more than once: {repeated}"
    missing, unexpected = expected - counts.keys(), counts.keys() - expected
    assert not missing and not unexpected, f"missing {sorted(missing)}, unexpected {sorted(unexpected)}"


@dataclass
class Poll:
    rows: list[dict[str, Any]]
    has_more: bool
    checkpoint: str  # what the client sends next: the rows' checkpoint, or the one it sent if none came back


async def poll(env: Env, since: str, project_id: int | None = None, **query: Any) -> Poll:
    """One live poll; checks the envelope and that every row was observed in ``[since, its checkpoint)``."""
    response = await env.query({"dateRange": WINDOW, **query, "liveLogsCheckpoint": since}, project_id=project_id)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["nextCursor"] is None
    rows: list[dict[str, Any]] = doc["results"]
    assert doc["hasMore"] is False or rows, "hasMore on an empty page"
    checkpoints = {row["live_logs_checkpoint"] for row in rows}
    assert len(checkpoints) <= 1, checkpoints
    checkpoint = checkpoints.pop() if checkpoints else since
    lower = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
    lower = lower if lower.tzinfo else lower.replace(tzinfo=dt.UTC)
    upper = parse_iso(checkpoint) if rows else lower
    for row in rows:
        observed = parse_iso(row["observed_timestamp"])
        assert lower <= observed < upper, (since, row["observed_timestamp"], checkpoint)
    return Poll(rows, doc["hasMore"], checkpoint)


async def drain(env: Env, since: str, *, max_polls: int = 50, **query: Any) -> tuple[list[Poll], str]:
    """Poll until a poll returns nothing and ``hasMore`` is false; the polls and the last checkpoint."""
    polls: list[Poll] = []
    for _ in range(max_polls):
        result = await poll(env, since, **query)
        polls.append(result)
        since = result.checkpoint
        if not result.rows and not result.has_more:
            return polls, since
    raise AssertionError(f"still returning logs after {max_polls} polls")


def polled_ids(polls: Sequence[Poll]) -> list[str]:
    return [log_id for p in polls for log_id in ids(p.rows)]


async def first_search(env: Env) -> tuple[list[dict[str, Any]], str]:
    """The search a client runs before tailing: its rows and their (shared) checkpoint."""
    response = await env.query({"dateRange": WINDOW})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["results"]
    assert rows, "the first search needs a row to carry a checkpoint"
    checkpoints = {row["live_logs_checkpoint"] for row in rows}
    assert len(checkpoints) == 1, checkpoints
    checkpoint = checkpoints.pop()
    # the search holds only logs observed before its checkpoint: the later ones belong to the first poll
    assert all(parse_iso(row["observed_timestamp"]) < parse_iso(checkpoint) for row in rows)
    return rows, checkpoint


async def start_tail(env: Env) -> str:
    """Ingest one ``seed`` log, run the first search and return the checkpoint a client starts from."""
    await send(env, [record("seed", utc_now() - SECOND)])
    env.flush()
    rows, checkpoint = await first_search(env)
    assert ids(rows) == ["seed"]
    return checkpoint


# --- the basics ------------------------------------------------------------------------------------------


async def test_every_row_of_a_search_carries_one_checkpoint_after_what_it_returns(env: Env) -> None:
    """A search's rows share one checkpoint (ISO, microseconds, Z), later than each row's observed time."""
    started = utc_now()
    await send(env, [record(f"r{i}", started - i * SECOND) for i in range(3)])
    env.flush()
    rows, checkpoint = await first_search(env)
    assert sorted(ids(rows)) == ["r0", "r1", "r2"]
    assert checkpoint.endswith("Z")
    moment = parse_iso(checkpoint)
    assert all(parse_iso(row["observed_timestamp"]) < moment for row in rows)
    assert started < moment <= utc_now()


async def test_a_poll_returns_exactly_the_logs_ingested_since_the_checkpoint(env: Env) -> None:
    """After the first search, the next poll returns each newly ingested log once, and the one after none."""
    c0 = await start_tail(env)
    batches = [[record(f"b{b}-{i}", utc_now() - i * MS) for i in range(size)] for b, size in enumerate((5, 1, 19))]
    for batch in batches:
        await send(env, batch)
    env.flush()
    expected = set().union(*(id_set(batch) for batch in batches))

    first = await poll(env, c0)
    assert_each_once(ids(first.rows), expected)
    assert first.has_more is False
    assert len({row["uuid"] for row in first.rows}) == 25
    assert parse_iso(first.checkpoint) > parse_iso(c0)

    second = await poll(env, first.checkpoint)
    assert (second.rows, second.has_more) == ([], False)
    # a poll changes nothing on the server: asking again from the first checkpoint gives the same logs
    assert_each_once(ids((await poll(env, c0)).rows), expected)


async def test_a_checkpoint_in_another_time_zone_means_the_same_instant(env: Env) -> None:
    """A checkpoint written with an offset (or without one, meaning UTC) is the same instant in UTC."""
    c0 = await start_tail(env)
    await send(env, [record("after", utc_now())])
    env.flush()
    moment = parse_iso(c0)
    plus_two = moment.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    naive = moment.replace(tzinfo=None).isoformat()
    for since in (c0, plus_two, naive):
        assert ids((await poll(env, since)).rows) == ["after"], since
    assert ids((await poll(env, iso_z(moment + 2 * SECOND))).rows) == []


FILTER_LOGS = [  # (service, id, severity number, body)
    ("api", "api-info", 9, "user signed in"),
    ("api", "api-error", 17, "upstream TIMEOUT"),
    ("worker", "worker-info", 9, "job done"),
    ("worker", "worker-error", 17, "job timeout"),
    ("worker", "worker-warn", 13, "slow job"),
]


ATTRIBUTE_ID_IS_WORKER_WARN = {
    "type": "AND",
    "values": [
        {
            "type": "AND",
            "values": [{"type": "log_attribute", "key": "id", "operator": "exact", "value": ["worker-warn"]}],
        }
    ],
}
FILTERED_POLLS: list[tuple[dict[str, Any], set[str]]] = [
    ({}, {"api-info", "api-error", "worker-info", "worker-error", "worker-warn"}),
    ({"severityLevels": ["error"]}, {"api-error", "worker-error"}),
    ({"severityLevels": ["warn", "info"]}, {"api-info", "worker-info", "worker-warn"}),
    ({"serviceNames": ["worker"]}, {"worker-info", "worker-error", "worker-warn"}),
    ({"searchTerm": "timeout"}, {"api-error", "worker-error"}),
    ({"searchTerm": "Timeout", "serviceNames": ["api"]}, {"api-error"}),
    ({"severityLevels": ["error"], "serviceNames": ["nobody"]}, set()),
    ({"filterGroup": ATTRIBUTE_ID_IS_WORKER_WARN}, {"worker-warn"}),
]


async def test_a_poll_applies_the_filters(env: Env) -> None:
    """severityLevels, serviceNames, searchTerm and filterGroup narrow a poll as they narrow a search."""
    c0 = await start_tail(env)
    for service, log_id, severity, body in FILTER_LOGS:
        await send(env, [record(log_id, utc_now(), severity_number=severity, body=body)], service=service)
    env.flush()
    for query, expected in FILTERED_POLLS:
        polls, _ = await drain(env, c0, **query)
        assert len(polls) == (2 if expected else 1), query
        assert_each_once(polled_ids(polls), expected)


async def test_a_poll_orders_its_rows_by_timestamp_for_display(env: Env) -> None:
    """Within a poll, rows are in timestamp order (newest first unless earliest), not in order of arrival."""
    c0 = await start_tail(env)
    base = utc_now()
    offsets = [-HOUR, 30 * SECOND, -5 * SECOND, 0 * SECOND, -20 * MS, 2 * SECOND, -40 * dt.timedelta(minutes=1)]
    records = [record(f"o{i}", base + offset) for i, offset in enumerate(offsets)]
    random.Random(3).shuffle(records)
    await send(env, records[:4])
    await send(env, records[4:])
    env.flush()
    for order in ("latest", "earliest", None):
        result = await poll(env, c0, **({"orderBy": order} if order else {}))
        stamps = [parse_iso(row["timestamp"]) for row in result.rows]
        assert_each_once(ids(result.rows), id_set(records))
        assert stamps == sorted(stamps, reverse=order != "earliest"), order
        assert len(set(stamps)) == len(stamps)


# --- late, future and out-of-order logs ------------------------------------------------------------------


async def test_late_future_and_reversed_logs_each_come_back_in_the_poll_after_they_arrive(env: Env) -> None:
    """A log's arrival, not its timestamp, decides its poll: hour-old, future and reversed logs each come once."""
    since = await start_tail(env)
    now = utc_now()
    arrivals: dict[str, list[dict[str, Any]]] = {
        "late": [record(f"late-{i}", now - HOUR + i * SECOND) for i in range(4)],
        "future": [record(f"future-{i}", now + 30 * SECOND + i * MS) for i in range(3)],
        "reversed": [record(f"reversed-{i}", now - i * MS) for i in range(10)],
        "too-old": [record("too-old", now - 3 * HOUR)],  # before the poll's date_from (-2h): never shown
        "mixed": [
            record("mixed-late", now - 90 * dt.timedelta(minutes=1)),
            record("mixed-now", utc_now()),
            record("mixed-future", now + 5 * SECOND),
            record("mixed-earlier", now - 30 * SECOND),
        ],
    }
    for name, records in arrivals.items():
        await send(env, records)
        env.flush()
        result = await poll(env, since)
        expected = set() if name == "too-old" else id_set(records)
        assert_each_once(ids(result.rows), expected)
        assert result.has_more is False
        since = result.checkpoint
    final, _ = await drain(env, since)
    assert polled_ids(final) == []


async def test_a_given_date_to_still_bounds_a_poll(env: Env) -> None:
    """Only an open-ended range lets future-stamped logs through; a given date_to keeps them out."""
    c0 = await start_tail(env)
    now = utc_now()
    await send(env, [record("now", now), record("in-ten-minutes", now + 10 * dt.timedelta(minutes=1))])
    env.flush()
    bounded = {"date_from": "-2h", "date_to": iso_z(now + dt.timedelta(minutes=1))}
    assert ids((await poll(env, c0, dateRange=bounded)).rows) == ["now"]
    assert sorted(ids((await poll(env, c0)).rows)) == ["in-ten-minutes", "now"]


# --- more logs than the limit ----------------------------------------------------------------------------


async def test_more_logs_than_the_limit_come_back_over_several_polls(env: Env) -> None:
    """With limit 50, 250 new logs (requests of 40, 40, 40 and 130) take five full polls, each log once."""
    c0 = await start_tail(env)
    rng = random.Random(11)
    now = utc_now()
    sent: set[str] = set()
    for n, size in enumerate((40, 40, 40, 130)):
        # timestamps scattered over the last hour and a little ahead: arrival order is not timestamp order
        batch = [record(f"r{n}-{i}", now - rng.randint(-5_000, 3_600_000) * MS) for i in range(size)]
        await send(env, batch)
        sent |= id_set(batch)
    env.flush()
    for order in ("latest", "earliest"):
        polls, _ = await drain(env, c0, limit=50, orderBy=order)
        assert [len(p.rows) for p in polls] == [50, 50, 50, 50, 50, 0]
        assert [p.has_more for p in polls] == [True, True, True, True, False, False]
        assert_each_once(polled_ids(polls), sent)
        for p in polls:
            stamps = [(row["timestamp"], row["uuid"]) for row in p.rows]
            assert stamps == sorted(stamps, reverse=order == "latest")
        # pages follow arrival: a page may end between two records of one request (the 130 span polls 3-5)
        requests_per_poll = [sorted({log_id.split("-")[0] for log_id in ids(p.rows)}) for p in polls]
        assert requests_per_poll == [["r0", "r1"], ["r1", "r2"], ["r2", "r3"], ["r3"], ["r3"], []]


async def test_the_limit_counts_only_logs_matching_the_filters(env: Env) -> None:
    """A filtered poll pages over matching logs only: 30 errors among 90 logs, limit 10, three full polls."""
    c0 = await start_tail(env)
    now = utc_now()
    errors: set[str] = set()
    for n in range(3):
        batch = [record(f"f{n}-{i}", now - i * MS, severity_number=17 if i % 3 == 0 else 9) for i in range(30)]
        await send(env, batch)
        errors |= {r["attributes"]["id"] for r in batch if r["severity_number"] == 17}
    env.flush()
    polls, _ = await drain(env, c0, limit=10, severityLevels=["error"])
    assert [len(p.rows) for p in polls] == [10, 10, 10, 0]
    assert [p.has_more for p in polls] == [True, True, False, False]
    assert_each_once(polled_ids(polls), errors)


class WatermarkClock:
    """Stands in for ``time`` in the watermark module: frozen at one instant on demand, else the real clock."""

    def __init__(self) -> None:
        self.frozen_ns: int | None = None

    def time_ns(self) -> int:
        return self.frozen_ns if self.frozen_ns is not None else time.time_ns()


async def test_a_page_never_splits_one_microsecond(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two requests received in the same instant share observed times; a page takes a shared time whole."""
    c0 = await start_tail(env)
    clock = WatermarkClock()
    monkeypatch.setattr(watermark_module, "time", clock)
    clock.frozen_ns = time.time_ns()
    now = utc_now()
    await send(env, [record(f"a{i}", now - i * SECOND) for i in range(3)])
    await send(env, [record(f"b{i}", now - i * SECOND) for i in range(3)])
    clock.frozen_ns = None
    env.flush()
    for limit, has_more in ((1, [True, True, True, False]), (3, [True, True, False, False])):
        polls, _ = await drain(env, c0, limit=limit)
        assert [sorted(ids(p.rows)) for p in polls] == [["a0", "b0"], ["a1", "b1"], ["a2", "b2"], []], limit
        assert [p.has_more for p in polls] == has_more, limit
        for p in polls[:3]:
            assert len({row["observed_timestamp"] for row in p.rows}) == 1


async def test_a_log_observed_exactly_at_the_checkpoint_comes_with_a_later_poll(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint is an exclusive bound: a stored log observed at that very microsecond waits a poll."""
    c0 = await start_tail(env)
    clock = WatermarkClock()
    monkeypatch.setattr(watermark_module, "time", clock)
    clock.frozen_ns = time.time_ns() // 1000 * 1000
    await send(env, [record("at-0", utc_now()), record("at-1", utc_now())])  # observed at T and T + 1 µs
    watermark = env.services.ingest_watermark
    held = watermark.begin()  # another request received at T, still decoding: the checkpoint is T
    clock.frozen_ns = None
    env.flush()
    try:
        assert (await poll(env, c0)).rows == []
        rows, checkpoint = await first_search(env)
        assert ids(rows) == ["seed"]
        assert parse_iso(checkpoint) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=held // 1000)
    finally:
        watermark.end(held)
    polls, _ = await drain(env, checkpoint)
    assert_each_once(polled_ids(polls), {"at-0", "at-1"})


# --- what holds the checkpoint back ---------------------------------------------------------------------


async def test_a_registered_receipt_holds_the_checkpoint_until_it_ends(env: Env) -> None:
    """While a request received at R is being decoded, checkpoints stay at or before R; after it, they move on."""
    c0 = await start_tail(env)
    watermark = env.services.ingest_watermark
    received_ns = watermark.begin()
    held_at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=received_ns // 1000)
    try:
        await send(env, [record(f"x{i}", utc_now()) for i in range(3)])
        env.flush()
        for _ in range(3):
            _, checkpoint = await first_search(env)
            assert parse_iso(checkpoint) <= held_at
        assert (await poll(env, c0)).rows == []  # x0..x2 are stored, but after the held checkpoint
    finally:
        watermark.end(received_ns)
    result = await poll(env, c0)
    assert_each_once(ids(result.rows), {"x0", "x1", "x2"})
    assert parse_iso(result.checkpoint) > held_at


async def test_a_tail_started_while_a_request_decodes_gets_that_request_later(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow request and faster ones after it: a tail started meanwhile gets every one of them exactly once."""
    await send(env, [record("seed", utc_now() - SECOND)])
    env.flush()
    decoding, release = asyncio.Event(), asyncio.Event()
    real_decode = ingest_logs.decode_request

    async def slow_decode(services: Any, body: bytes, team_id: int, received_ns: int) -> pa.Table:
        if b"slow-" in body:
            decoding.set()
            await release.wait()
        return await real_decode(services, body, team_id, received_ns)

    monkeypatch.setattr(ingest_logs, "decode_request", slow_decode)
    slow = asyncio.create_task(send(env, [record(f"slow-{i}", utc_now() - i * MS) for i in range(3)]))
    try:
        await asyncio.wait_for(decoding.wait(), 10)
        await send(env, [record(f"fast-{i}", utc_now()) for i in range(4)])
        env.flush()
        rows, c0 = await first_search(env)
        shown = ids(rows)
    finally:
        release.set()
        await slow
    env.flush()
    polls, _ = await drain(env, c0)
    slow_rows = [row for p in polls for row in p.rows if row["attributes"]["id"].startswith("slow-")]
    assert len(slow_rows) == 3
    assert all(parse_iso(c0) <= parse_iso(row["observed_timestamp"]) for row in slow_rows)
    # the first search and the polls after it split the logs between them: none is in both
    assert_each_once(
        shown + polled_ids(polls), {"seed", "slow-0", "slow-1", "slow-2"} | {f"fast-{i}" for i in range(4)}
    )


async def test_a_request_handing_its_rows_to_the_writer_holds_the_checkpoint_back(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoded but not yet queued (the write-ahead log append and fsync): the request still holds the checkpoint."""
    await send(env, [record("seed", utc_now() - SECOND)])
    env.flush()
    writer = env.services.writer
    assert writer is not None
    real_submit = writer.submit
    submitting, proceed = threading.Event(), threading.Event()

    def slow_submit(kind: int, team_id: int, received_ns: int, payload: bytes, table: pa.Table) -> None:
        if b"handoff-" in payload:
            submitting.set()
            assert proceed.wait(20)
        real_submit(kind, team_id, received_ns, payload, table)

    monkeypatch.setattr(writer, "submit", slow_submit)
    handoff = asyncio.create_task(send(env, [record(f"handoff-{i}", utc_now()) for i in range(3)]))
    try:
        assert await asyncio.to_thread(submitting.wait, 10)
        await send(env, [record("later", utc_now())])
        env.flush()
        rows, c0 = await first_search(env)
        assert ids(rows) == ["seed"]
    finally:
        proceed.set()
        await handoff
    env.flush()
    polls, _ = await drain(env, c0)
    assert_each_once(polled_ids(polls), {"handoff-0", "handoff-1", "handoff-2", "later"})


async def test_rows_queued_in_the_writer_hold_the_checkpoint_back(tmp_path: Path, store: ChDBStore) -> None:
    """Acknowledged rows the writer has not inserted yet keep checkpoints before them, so no poll skips them."""
    hold = 600.0
    settings = make_settings(tmp_path, writer_flush_interval_ms=int(hold * 1000))
    async with running_env(settings, store) as env:
        writer = env.services.writer
        assert writer is not None

        def insert_queued() -> None:
            writer.flush_interval = 0.0
            assert writer.flush(timeout=10)
            writer.flush_interval = hold

        await send(env, [record("seed", utc_now() - SECOND)])
        insert_queued()
        await send(env, [record(f"q{i}", utc_now()) for i in range(5)])
        assert writer.queued_rows == 5
        rows, c0 = await first_search(env)
        assert ids(rows) == ["seed"]
        assert (await poll(env, c0)).rows == []
        insert_queued()
        result = await poll(env, c0)
        assert_each_once(ids(result.rows), {f"q{i}" for i in range(5)})
        assert writer.oldest_queued_received_ns() is None


async def test_rows_being_inserted_hold_the_checkpoint_back(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch the writer has taken but not finished inserting keeps checkpoints before its rows."""
    await send(env, [record("seed", utc_now() - SECOND)])
    env.flush()
    store = env.services.store
    real_insert = store.insert_logs
    inserting, proceed = threading.Event(), threading.Event()

    def slow_insert(table: pa.Table, *, dedup_token: str | None = None) -> None:
        inserting.set()
        assert proceed.wait(20)
        real_insert(table, dedup_token=dedup_token)

    monkeypatch.setattr(store, "insert_logs", slow_insert)
    try:
        await send(env, [record(f"i{i}", utc_now()) for i in range(4)])
        assert await asyncio.to_thread(inserting.wait, 10)
        writer = env.services.writer
        assert writer is not None and writer.queued_rows == 4 and writer.oldest_queued_received_ns() is not None
        rows, c0 = await first_search(env)
        assert ids(rows) == ["seed"]
    finally:
        proceed.set()
    env.flush()
    result = await poll(env, c0)
    assert_each_once(ids(result.rows), {f"i{i}" for i in range(4)})


# --- ingestion while clients poll -----------------------------------------------------------------------


def mixed_batch(sender: int, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """A request of 1-40 records: in order, reversed, an hour late, or up to a minute ahead; every third an error."""
    now = utc_now()
    shape = n % 4
    batch = []
    for i in range(rng.randint(1, 40)):
        if shape == 0:
            at = now + i * US
        elif shape == 1:
            at = now - i * MS
        elif shape == 2:
            at = now - HOUR + rng.randint(0, 600_000) * MS
        else:
            at = now + rng.randint(1_000, 60_000) * MS
        batch.append(record(f"s{sender}-{n}-{i}", at, severity_number=17 if i % 3 == 0 else 9))
    return batch


async def test_logs_sent_while_clients_poll_each_come_back_exactly_once(env: Env) -> None:
    """Four senders and two tailing clients at once: each client gets each of its logs exactly once."""
    c0 = await start_tail(env)
    sent: dict[str, int] = {}
    sending_done = asyncio.Event()

    async def sender(number: int) -> None:
        rng = random.Random(number)
        for n in range(12):
            batch = mixed_batch(number, n, rng)
            await send(env, batch)
            sent.update((r["attributes"]["id"], r["severity_number"]) for r in batch)
            await asyncio.sleep(rng.random() * 0.004)

    async def tail(seen: list[str], checkpoints: list[str], **query: Any) -> str:
        since = c0
        for _ in range(300):
            result = await poll(env, since, **query)
            seen.extend(ids(result.rows))
            checkpoints.append(result.checkpoint)
            since = result.checkpoint
            if sending_done.is_set() and not result.has_more:
                break
            if not result.has_more:
                await asyncio.sleep(0.003)
        return since

    everything: list[str] = []
    errors: list[str] = []
    checkpoints_all: list[str] = []
    checkpoints_errors: list[str] = []
    tails = [
        asyncio.create_task(tail(everything, checkpoints_all, limit=25)),
        asyncio.create_task(tail(errors, checkpoints_errors, limit=7, severityLevels=["error"])),
    ]
    await asyncio.gather(*(sender(number) for number in range(4)))
    sending_done.set()
    since_all, since_errors = await asyncio.gather(*tails)
    seen_while_sending = len(everything)
    env.flush()
    for seen, since, query in (
        (everything, since_all, {"limit": 25}),
        (errors, since_errors, {"limit": 7, "severityLevels": ["error"]}),
    ):
        polls, _ = await drain(env, since, max_polls=200, **query)
        seen.extend(polled_ids(polls))

    assert seen_while_sending > 0, "the tail saw nothing while logs were arriving"
    assert len(sent) > 200
    assert_each_once(everything, set(sent))
    assert_each_once(errors, {log_id for log_id, severity in sent.items() if severity == 17})
    for checkpoints in (checkpoints_all, checkpoints_errors):
        moments = [parse_iso(c) for c in checkpoints]
        assert moments == sorted(moments), "a checkpoint went backwards"


# --- isolation and bad input ----------------------------------------------------------------------------


async def test_a_poll_returns_only_its_own_projects_logs(env: Env) -> None:
    """Logs ingested into another project never come back in this project's poll, and vice versa."""
    c0 = await start_tail(env)
    other = env.services.meta.create_project("Other")
    await send(env, [record("mine", utc_now())])
    await send(env, [record("theirs", utc_now())], token=other.api_token)
    env.flush()
    assert ids((await poll(env, c0)).rows) == ["mine"]
    assert ids((await poll(env, c0, project_id=other.id)).rows) == ["theirs"]


MALFORMED_CHECKPOINTS: list[Any] = [
    "yesterday",
    "2026-13-01T00:00:00Z",
    "2026-01-01T25:00:00Z",
    "2026-01-01 10:00:00 UTC",
    20260101,
    1.5,
    0,
    True,
    False,
    ["2026-01-01T00:00:00Z"],
    {"at": "2026-01-01T00:00:00Z"},
]


async def test_a_malformed_checkpoint_is_a_400_naming_it(env: Env) -> None:
    """Anything but an ISO 8601 string as liveLogsCheckpoint is refused, naming the field; polls still work."""
    c0 = await start_tail(env)
    for checkpoint in MALFORMED_CHECKPOINTS:
        response = await env.query({"dateRange": WINDOW, "liveLogsCheckpoint": checkpoint})
        assert_error(response, 400, type="validation_error", code="invalid_input", attr="liveLogsCheckpoint")
    await send(env, [record("after", utc_now())])
    env.flush()
    assert ids((await poll(env, c0)).rows) == ["after"]
    # null and "" mean no checkpoint: an ordinary search
    for absent in (None, ""):
        response = await env.query({"dateRange": WINDOW, "liveLogsCheckpoint": absent})
        assert response.status_code == 200, response.text
        assert sorted(ids(response.json()["results"])) == ["after", "seed"]
