"""OTLP decoding in worker processes behaves exactly like decoding in the server process."""

from __future__ import annotations

import gzip
from pathlib import Path

from logpond.store.chdb_store import ChDBStore
from tests.api._otlp import encode
from tests.conftest import make_settings, running_env


async def test_worker_process_decoding_round_trip_and_errors(tmp_path: Path, store: ChDBStore) -> None:
    """With a decode pool, good requests land, and bad or oversized ones get the same 400/413 answers."""
    settings = make_settings(tmp_path, ingest_decode_processes=1, max_decompressed_bytes=100_000)
    async with running_env(settings, store) as env:
        assert env.services.decode_pool is not None
        body = encode([{"body": f"pooled {i}", "attributes": {"n": i}} for i in range(50)])
        assert (await env.send_otlp(body)).status_code == 200
        bad = await env.send_otlp(b"\x0a\xff\xff")
        assert bad.status_code == 400
        assert "Failed to decode" in bad.json()["error"]
        bomb = await env.send_otlp(gzip.compress(b"\0" * 1_000_000))
        assert bomb.status_code == 413
        env.flush()
        response = await env.query({"dateRange": {"date_from": "-1h"}, "searchTerm": "pooled"})
        rows = response.json()["results"]
        assert len(rows) == 50
        assert {r["attributes"]["n"] for r in rows} == {str(i) for i in range(50)}
