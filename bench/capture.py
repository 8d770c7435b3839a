"""Event capture and events-API benchmark.

    .venv/bin/python -m bench.capture                           # both parts, defaults below
    .venv/bin/python -m bench.capture --only capture --events 500000 --batch 100
    .venv/bin/python -m bench.capture --only page --dataset 10000000

Part 1, capture: PostHog-style ``/batch/`` posts (``{"api_key", "batch": [...], "sent_at"}``, as
posthog-python sends them) of realistic events with 20 properties each, from ``--senders`` processes at full
speed, against a fresh ``logpond serve`` (fsync on). Prints accepted events/s (first request to last
acknowledgement; every 200 is durable), acknowledgement latency, 503 retries, peak RSS, and how long after
the last acknowledgement every event was queryable.

Part 2, page: a project holding ``--dataset`` events over 30 days (written straight into the store with
ClickHouse's own generator, since capturing 10 million through HTTP would only re-measure part 1), then
``GET /api/projects/1/events/?limit=1000`` in the shapes connectors use, timed over HTTP: p50 and p95.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from bench._server import Server, cli_json, send_in_parallel

_BROWSERS = ["Chrome", "Firefox", "Safari", "Edge"]
_OSES = ["Mac OS X", "Windows", "Linux", "iOS", "Android"]
_PATHS = ["/", "/pricing", "/docs", "/signup", "/app/dashboard", "/app/settings", "/blog/post-1"]
_EVENTS = ["$pageview", "$pageview", "$pageview", "$autocapture", "signed_up", "purchase", "$pageleave"]


def _event(rng: random.Random, now: float) -> dict[str, Any]:
    path = rng.choice(_PATHS)
    user = rng.randrange(20_000)
    return {
        "event": rng.choice(_EVENTS),
        "distinct_id": f"user-{user}",
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - rng.random() * 60)) + "+00:00",
        "properties": {
            "$lib": "posthog-python",
            "$lib_version": "7.91.1",
            "$browser": rng.choice(_BROWSERS),
            "$browser_version": rng.randrange(100, 130),
            "$os": rng.choice(_OSES),
            "$device_type": rng.choice(["Desktop", "Mobile"]),
            "$current_url": f"https://example.com{path}?ref={rng.randrange(1000)}",
            "$pathname": path,
            "$host": "example.com",
            "$referrer": rng.choice(["$direct", "https://google.com/", "https://news.ycombinator.com/"]),
            "$session_id": f"0190{rng.getrandbits(96):024x}",
            "$window_id": f"0190{rng.getrandbits(96):024x}",
            "$screen_width": rng.choice([1440, 1920, 390]),
            "$screen_height": rng.choice([900, 1080, 844]),
            "plan": rng.choice(["free", "pro", "enterprise"]),
            "amount": round(rng.random() * 200, 2),
            "team_size": rng.randrange(1, 500),
            "feature_flag_variant": rng.choice(["control", "test"]),
            "utm_source": rng.choice(["google", "newsletter", "twitter", None]),
            "$geoip_disable": True,
        },
    }


def _bodies(token: str, events: int, batch: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    now = time.time()
    out = []
    for start in range(0, events, batch):
        n = min(batch, events - start)
        doc = {
            "api_key": token,
            "batch": [_event(rng, now) for _ in range(n)],
            "historical_migration": False,
            "sent_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now)),
        }
        out.append(orjson.dumps(doc))
    return out


def _count(client: httpx.Client) -> int:
    body = {"query": {"kind": "HogQLQuery", "query": "SELECT count() FROM events"}}
    response = client.post("/api/projects/1/query/", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"count query: {response.status_code} {response.text[:300]}")
    return int(response.json()["results"][0][0])


def capture(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="logpond-bench-capture-"))
    data_dir = workdir / "data"
    server = Server(data_dir)
    server.start()
    try:
        token = str(cli_json(data_dir, "projects", "list")[0]["api_token"])  # type: ignore[index]
        key = cli_json(data_dir, "keys", "create", "--scopes", "query:read")["key"]  # type: ignore[index]
        t0 = time.perf_counter()
        bodies = _bodies(token, args.events, args.batch, seed=1)
        size = sum(map(len, bodies)) / args.events
        print(f"prepared {len(bodies)} requests ({size:.0f} JSON bytes/event) in {time.perf_counter() - t0:.1f} s")
        headers = {"Content-Type": "application/json", "User-Agent": "posthog-python/7.91.1"}
        sent = send_in_parallel(server.port, "/batch/", headers, bodies, args.senders)
        wall, last_ack, latencies, retries = sent.wall, sent.last_ack, sent.latencies, sent.retries
        count = 0
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                count = _count(client)
                if count >= args.events:
                    break
                time.sleep(0.5)
        visible_delay = time.time() - last_ack
        rss = server.peak_rss_bytes()
    finally:
        server.stop()
    print()
    print(
        f"events accepted        {args.events:,} in {wall:.2f} s  ->  {args.events / wall:,.0f} events/s "
        f"({args.senders} senders, {args.batch} events/request, fsync on)"
    )
    print(
        f"ack latency            p50 {statistics.median(latencies) * 1000:.1f} ms   "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms   ({retries} retries after 503)"
    )
    print(f"server peak RSS        {rss / 1024 / 1024:,.0f} MiB")
    print(f"all queryable          {count:,} events, {visible_delay:.2f} s after the last acknowledgement")
    shutil.rmtree(workdir, ignore_errors=True)


# A project of events over 30 days, written with ClickHouse's generator (numbers()): 100,000 users, their
# persons, 20 properties per event. Runs in a child process, since chDB holds its data path per process.
_LOAD = """
import sys
from pathlib import Path
from logpond.store.chdb_store import ChDBStore
store = ChDBStore(Path(sys.argv[1]))
n, users = int(sys.argv[2]), 100000
db = store.database
person = "toUUID(concat('00000000-0000-4000-8000-', leftPad(toString({x}), 12, '0')))"
store.command(f'''INSERT INTO {db}.persons (id, team_id, created_at, last_seen_at, properties, is_identified,
    is_deleted, version)
SELECT {person.format(x='number')}, 1, now64(3) - INTERVAL 40 DAY, now64(3),
    toJSONString(map('email', concat('user', toString(number), '@example.com'), 'plan', 'pro')), 1, 0, 1
FROM numbers({users})''')
store.command(f'''INSERT INTO {db}.person_distinct_ids (team_id, distinct_id, person_id, is_deleted, version)
SELECT 1, concat('user-', toString(number)), {person.format(x='number')}, 0, 1 FROM numbers({users})''')
step = 30 * 86400 * 1000000 // n
for start in range(0, n, 1000000):
    count = min(1000000, n - start)
    store.command(f'''INSERT INTO {db}.events (uuid, team_id, event, distinct_id, properties, timestamp, created_at,
        elements_chain, person_id, person_properties, person_created_at, person_mode)
SELECT generateUUIDv4(number), 1,
    ['$pageview', '$pageview', '$autocapture', 'signed_up', 'purchase'][number % 5 + 1],
    concat('user-', toString(number % {users})),
    toJSONString(map('$lib', 'posthog-python', '$lib_version', '7.91.1',
        '$browser', ['Chrome', 'Firefox', 'Safari'][number % 3 + 1], '$browser_version', toString(100 + number % 30),
        '$os', ['Mac OS X', 'Windows', 'Linux'][number % 3 + 1], '$device_type', 'Desktop',
        '$current_url', concat('https://example.com/p/', toString(number % 997)),
        '$pathname', concat('/p/', toString(number % 997)), '$host', 'example.com', '$referrer', '$direct',
        '$session_id', toString(generateUUIDv4(number)), '$window_id', toString(generateUUIDv4(number + 1)),
        '$screen_width', '1440', '$screen_height', '900', 'plan', ['free', 'pro'][number % 2 + 1],
        'amount', toString(number % 200), 'team_size', toString(number % 50), 'feature_flag_variant', 'control',
        'utm_source', 'google', '$geoip_disable', 'true')),
    now64(6) - toIntervalMicrosecond((number + {start}) * {step}),
    now64(6), '', {person.format(x=f'(number % {users})')},
    toJSONString(map('email', concat('user', toString(number % {users}), '@example.com'))),
    now64(3) - INTERVAL 40 DAY, 'full'
FROM numbers({count})''')
store.command(f"OPTIMIZE TABLE {db}.events FINAL")
print(store.execute(f"SELECT count() FROM {db}.events").rows[0][0])
"""


def _timed(client: httpx.Client, url: str, repeat: int) -> tuple[float, float, int]:
    times = []
    rows = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
        rows = len(response.json()["results"])
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], rows


def page(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="logpond-bench-events-"))
    data_dir = workdir / "data"
    server = Server(data_dir)
    server.start()  # creates the project, the key store and the tables
    key = cli_json(data_dir, "keys", "create", "--scopes", "query:read")["key"]  # type: ignore[index]
    server.stop()
    t0 = time.perf_counter()
    loaded = subprocess.run(
        [sys.executable, "-c", _LOAD, str(data_dir / "chdb"), str(args.dataset)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"loaded {int(loaded):,} events (30 days, 100,000 persons) in {time.perf_counter() - t0:.0f} s")
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
            base = "/api/projects/1/events/"
            first = client.get(base + "?" + urlencode({"limit": 1000, "orderBy": '["timestamp","uuid"]'})).json()
            mid = first["results"][-1]
            hogql = (
                f"timestamp > toDateTime('{mid['timestamp']}') OR "
                f"(timestamp = toDateTime('{mid['timestamp']}') AND uuid > toUUID('{mid['id']}'))"
            )
            shapes: dict[str, dict[str, Any] | None] = {
                "newest 1000 (default)": {"limit": 1000},
                "newest 1000, event=purchase": {"limit": 1000, "event": "purchase"},
                "newest 1000, include_person": {"limit": 1000, "include_person": "true"},
                "next page (before + before_uuid)": None,
                "oldest 1000 in a 1-day slice (Airbyte classic)": {
                    "limit": 1000,
                    "orderBy": '["timestamp"]',
                    "after": "-15d",
                    "before": "-14d",
                },
                "keyset page (Airbyte 2026: hogql filter)": {
                    "limit": 1000,
                    "orderBy": '["timestamp","uuid"]',
                    "after": "-31d",
                    "properties": orjson.dumps([{"type": "hogql", "key": hogql}]).decode(),
                },
                "1000 of one user (distinct_id)": {"limit": 1000, "distinct_id": "user-42"},
            }
            print(f"\n{'events API page':<52} {'p50 ms':>8} {'p95 ms':>8} {'rows':>6}")
            for name, params in shapes.items():
                if params is None:
                    url = client.get(base + "?limit=1000").json()["next"].removeprefix(server.url)
                else:
                    url = base + "?" + urlencode(params)
                client.get(url)  # warm
                p50, p95, rows = _timed(client, url, args.repeat)
                print(f"{name:<52} {p50:8.1f} {p95:8.1f} {rows:6d}")
    finally:
        server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["capture", "page"])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to capture")
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000, help="events per /batch/ request")
    parser.add_argument("--dataset", type=int, default=10_000_000, help="events in the project for page timings")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    if args.only in (None, "capture"):
        capture(args)
    if args.only in (None, "page"):
        page(args)


if __name__ == "__main__":
    main()
