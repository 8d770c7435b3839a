"""Ingestion benchmark: OTLP protobuf batches of demo logs, posted by N processes, durable acknowledgements.

    .venv/bin/python -m bench.ingest                       # 2,000,000 logs, 3 senders, 1,000 logs per request
    .venv/bin/python -m bench.ingest --logs 500000 --senders 2

It starts its own ``logpond serve`` on a fresh data directory (default fsync on), pre-builds the requests,
then prints: accepted logs/s (wall time from the first request to the last acknowledgement), p50/p99
acknowledgement latency, 503 retries, the server's peak RSS, how long until every log was queryable, and
bytes on disk per log after the server stops and the table is merged (OPTIMIZE FINAL).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench._server import Server, cli_json, send_in_parallel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", type=int, default=2_000_000)
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000, help="log records per request")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    from logpond.demo import generate_otlp_requests

    workdir = Path(tempfile.mkdtemp(prefix="logpond-bench-ingest-"))
    data_dir = workdir / "data"
    t0 = time.perf_counter()
    bodies = list(generate_otlp_requests(args.logs, days=1.0, seed=1, batch_records=args.batch))
    print(
        f"prepared {len(bodies)} requests ({sum(map(len, bodies)) / args.logs:.0f} protobuf bytes/log) "
        f"in {time.perf_counter() - t0:.1f} s"
    )

    server = Server(data_dir)
    server.start()
    try:
        token = cli_json(data_dir, "projects", "list")[0]["api_token"]  # type: ignore[index]
        key = cli_json(data_dir, "keys", "create", "--scopes", "logs:read")["key"]  # type: ignore[index]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"}
        sent = send_in_parallel(server.port, "/i/v1/logs", headers, bodies, args.senders)
        wall, latencies, retries = sent.wall, sent.latencies, sent.retries
        rss = server.peak_rss_bytes()

        # time until every acknowledged log is queryable
        deadline = time.monotonic() + 300
        count = 0
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            while time.monotonic() < deadline:
                count = client.post(
                    "/api/projects/1/logs/count/", json={"query": {"dateRange": {"date_from": "-3d"}}}
                ).json()["count"]
                if count >= args.logs:
                    break
                time.sleep(0.2)
        visible_after = sent.last_ack
        visible_delay = time.time() - visible_after
        rss = max(rss, server.peak_rss_bytes())
    finally:
        server.stop()

    from logpond.store.chdb_store import ChDBStore

    store = ChDBStore(data_dir / "chdb")
    store.command(f"OPTIMIZE TABLE {store.database}.logs FINAL")
    usage = store.disk_usage()

    print()
    print(
        f"logs accepted          {args.logs:,} in {wall:.2f} s  ->  {args.logs / wall:,.0f} logs/s "
        f"({args.senders} senders, {args.batch} logs/request, fsync on)"
    )
    print(
        f"ack latency            p50 {statistics.median(latencies) * 1000:.1f} ms   "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms   ({retries} retries after 503)"
    )
    print(f"server peak RSS        {rss / 1024 / 1024:,.0f} MiB")
    print(f"all queryable          {count:,} rows, {visible_delay:.2f} s after the last acknowledgement")
    print(
        f"on disk after merge    {usage['bytes_on_disk'] / max(usage['rows'], 1):.1f} bytes/log "
        f"({usage['bytes_on_disk'] / 1024 / 1024:,.1f} MiB, {usage['parts']} parts; "
        f"{usage['uncompressed_bytes'] / max(usage['rows'], 1):.0f} bytes/log uncompressed)"
    )
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"data kept in {data_dir}")


if __name__ == "__main__":
    main()
