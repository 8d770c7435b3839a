"""Paging through thousands of logs with ``after`` cursors returns each log once, in order, with no gaps.

The data is built to be hard for a cursor: 1,500 logs share one exact timestamp (three pages' worth, so
page boundaries fall inside the tie), 1,000 more share another, and the rest come in threes over 40
minutes so the walk crosses the query's time slices (the newest 3 minutes are scanned first). Records are
shuffled over several requests, so tied rows carry UUIDs of different requests.
"""

from __future__ import annotations

import base64
import json
import math
import random
import time
from datetime import datetime
from typing import Any

import httpx

from tests.e2e._otlp import export_request
from tests.e2e._server import Credentials, LogpondClient, ServerProcess

PAGE = 500
MINUTE_NS = 60 * 1_000_000_000


def build_logs(now_ns: int) -> list[tuple[int, str, dict[str, str]]]:
    now_ns -= now_ns % 1000  # whole microseconds: what the store keeps
    tie_a = now_ns - 2 * MINUTE_NS + 123_456_000
    tie_b = now_ns - 10 * MINUTE_NS
    spread_start = now_ns - 45 * MINUTE_NS
    spread = [spread_start + (i // 3) * 7_000_000_000 for i in range(1100)]  # threes, 7 s apart
    timestamps = [tie_a] * 1500 + [tie_b] * 1000 + spread
    return [(ts, f"log {seq}", {"seq": str(seq)}) for seq, ts in enumerate(timestamps)]


def send_all(server: ServerProcess, token: str, logs: list[tuple[int, str, dict[str, str]]]) -> None:
    shuffled = logs[:]
    random.Random(7).shuffle(shuffled)
    with httpx.Client(base_url=server.base_url, timeout=30, trust_env=False) as http:
        for start in range(0, len(shuffled), 900):
            response = http.post("/i/v1/logs", content=export_request(shuffled[start:start + 900]),
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/x-protobuf"})
            assert response.status_code == 200, response.text
            time.sleep(0.002)  # the next request's UUIDs get another millisecond


def moment(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))


def check_walk(pages: list[list[dict[str, Any]]], total: int, order: str) -> list[dict[str, Any]]:
    assert len(pages) == math.ceil(total / PAGE)
    assert [len(page) for page in pages[:-1]] == [PAGE] * (len(pages) - 1)
    rows = [row for page in pages for row in page]
    seqs = [int(row["attributes"]["seq"]) for row in rows]
    assert len(seqs) == total, f"{len(seqs)} rows for {total} logs"
    duplicates = len(seqs) - len(set(seqs))
    assert duplicates == 0, f"{duplicates} logs were returned twice"
    missing = set(range(total)) - set(seqs)
    assert not missing, f"{len(missing)} logs were never returned, e.g. {sorted(missing)[:5]}"
    times = [moment(row) for row in rows]
    expected = sorted(times, reverse=order == "latest")
    assert times == expected, f"rows are not in {order} order"
    return rows


def test_cursor_walk_returns_every_log_once_in_order_across_ties(
    server: ServerProcess, credentials: Credentials, client: LogpondClient
) -> None:
    """Walking 3,600 logs (many with one timestamp) 500 at a time, both ways, sees each exactly once."""
    logs = build_logs(time.time_ns())
    send_all(server, credentials.token, logs)
    query: dict[str, Any] = {"dateRange": {"date_from": "-1h"}, "limit": PAGE}
    assert client.wait_for_count(query, len(logs)) == len(logs)

    newest_first = check_walk(client.walk({**query, "orderBy": "latest"}), len(logs), "latest")
    oldest_first = check_walk(client.walk({**query, "orderBy": "earliest"}), len(logs), "earliest")
    # ties are broken the same way in both directions: one total order, walked forwards and backwards
    assert [row["uuid"] for row in oldest_first] == [row["uuid"] for row in reversed(newest_first)]

    # the tie of 1,500 really was split across pages, and the cursor names the last row of its page
    first = client.query({**query, "orderBy": "latest"})
    assert first["hasMore"] is True
    cursor = json.loads(base64.b64decode(first["nextCursor"]))
    last = first["results"][-1]
    assert cursor["uuid"] == last["uuid"]
    assert datetime.fromisoformat(cursor["timestamp"].replace("Z", "+00:00")) == moment(last)
    tie_time = moment(newest_first[0])
    assert sum(1 for row in newest_first if moment(row) == tie_time) == 1500
    assert moment(newest_first[PAGE]) == tie_time  # page 2 starts inside the tie


    # a walk keeps its filters on every page: "log 1" matches seq 1, 10-19, 100-199 and 1000-1999,
    # which lie in both ties and in the spread
    wanted = {seq for seq in range(len(logs)) if str(seq).startswith("1")}
    pages = client.walk({**query, "searchTerm": "log 1", "orderBy": "latest"})
    seqs = [int(row["attributes"]["seq"]) for page in pages for row in page]
    assert len(pages) == math.ceil(len(wanted) / PAGE)
    assert len(seqs) == len(set(seqs)) == len(wanted)
    assert set(seqs) == wanted
