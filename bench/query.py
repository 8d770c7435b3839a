"""Query benchmark: the Logs API over 10 million demo logs spread over 24 hours.

Searches, counts, the explorer's aggregates (sparkline, count-ranges, services, attribute keys and values,
facets, group-by), patterns over the last hour and the first page of a 30-day search.

    .venv/bin/python -m bench.query                  # 10,000,000 logs (generated once into .bench/query-data)
    .venv/bin/python -m bench.query --logs 1000000 --runs 10

The data is written straight into the store by ``logpond demo`` (once; later runs reuse it), then a real
``logpond serve`` answers the queries over HTTP. Each query runs ``--runs`` times after one warm-up; the
script prints p50 and p95 per query.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from bench._server import LOGPOND, Server, cli_json


def ensure_data(data_dir: Path, logs: int) -> dt.datetime:
    marker = data_dir / "bench-query.json"
    if marker.exists():
        doc = json.loads(marker.read_text())
        if doc["logs"] == logs:
            return dt.datetime.fromisoformat(doc["end"])
    if data_dir.exists():
        subprocess.run(["rm", "-rf", str(data_dir)], check=True)
    data_dir.mkdir(parents=True)
    end = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    subprocess.run([*LOGPOND, "demo", "--logs", str(logs), "--days", "1", "--data-dir", str(data_dir)], check=True)
    print(f"generated {logs:,} demo logs in {time.perf_counter() - t0:.0f} s")
    marker.write_text(json.dumps({"logs": logs, "end": end.isoformat()}))
    return end


def _rows(doc: Any) -> int:
    """How many items a response holds, whatever its shape."""
    if isinstance(doc, list):
        return len(doc)
    for key in ("results", "ranges", "services", "groups", "patterns"):
        if key in doc:
            return len(doc[key])
    return int(doc["count"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--data-dir", type=Path, default=Path(".bench/query-data"))
    args = parser.parse_args()

    end = ensure_data(args.data_dir, args.logs)
    date_range = {
        "date_from": (end - dt.timedelta(hours=24, minutes=5)).isoformat(),
        "date_to": (end + dt.timedelta(minutes=5)).isoformat(),
    }
    last_hour = {
        "date_from": (end - dt.timedelta(hours=1)).isoformat(),
        "date_to": end.isoformat(),
    }
    thirty_days = {"date_from": (end - dt.timedelta(days=30)).isoformat(), "date_to": end.isoformat()}
    queries: list[tuple[str, str, dict[str, Any]]] = [
        (
            "newest page, one service (100 rows)",
            "query",
            {"dateRange": date_range, "serviceNames": ["checkout"], "limit": 100},
        ),
        ("newest page, all services (100 rows)", "query", {"dateRange": date_range, "limit": 100}),
        (
            "searchTerm 'timeout' over 24 h (100 rows)",
            "query",
            {"dateRange": date_range, "searchTerm": "timeout", "limit": 100},
        ),
        (
            "attribute filter http.status_code=503 (100 rows)",
            "query",
            {
                "dateRange": date_range,
                "limit": 100,
                "filterGroup": [
                    {"key": "http.status_code", "value": "503", "operator": "exact", "type": "log_attribute"}
                ],
            },
        ),
        (
            "errors of one service (100 rows)",
            "query",
            {"dateRange": date_range, "severityLevels": ["error"], "serviceNames": ["payments"], "limit": 100},
        ),
        ("count, 24 h", "count", {"dateRange": date_range}),
        (
            "count, errors with search, 24 h",
            "count",
            {"dateRange": date_range, "severityLevels": ["error", "fatal"], "searchTerm": "timeout"},
        ),
        ("sparkline by severity, 24 h", "sparkline", {"dateRange": date_range}),
        (
            "sparkline by service, ranked by bytes, 24 h",
            "sparkline",
            {"dateRange": date_range, "sparklineBreakdownBy": "service", "sparklineRankBy": "bytes"},
        ),
        ("count-ranges, 24 h", "count-ranges", {"dateRange": date_range}),
        ("services, 24 h", "services", {"dateRange": date_range}),
        ("facet values: service_name, 24 h", "facet_values", {"dateRange": date_range, "facetField": "service_name"}),
        ("group-by http.route, 1 h", "group-by", {"dateRange": last_hour, "groupBy": "http.route"}),
        ("attributes (log keys), 1 h", "GET attributes", {"dateRange": json.dumps(last_hour)}),
        ("attributes (log keys), 24 h", "GET attributes", {"dateRange": json.dumps(date_range)}),
        (
            "values of request.id (high cardinality), 1 h",
            "GET values",
            {"key": "request.id", "dateRange": json.dumps(last_hour)},
        ),
        ("values of http.route, 24 h", "GET values", {"key": "http.route", "dateRange": json.dumps(date_range)}),
        ("patterns, 1 h", "patterns", {"dateRange": last_hour}),
        (
            "first page of a 30-day searchTerm query (100 rows)",
            "query",
            {"dateRange": thirty_days, "searchTerm": "timeout", "limit": 100},
        ),
        (
            "first page of a 30-day searchTerm query (1000 rows)",
            "query",
            {"dateRange": thirty_days, "searchTerm": "timeout"},
        ),
    ]

    server = Server(args.data_dir)
    server.start()
    try:
        key = cli_json(args.data_dir, "keys", "create", "--scopes", "logs:read")["key"]  # type: ignore[index]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
            total = client.post("/api/projects/1/logs/count/", json={"query": {"dateRange": date_range}}).json()[
                "count"
            ]
            print(f"{total:,} logs in range; {args.runs} runs per query after a warm-up\n")
            print(f"{'query':<52} {'p50 ms':>8} {'p95 ms':>8} {'rows':>7}")
            for name, endpoint, query in queries:
                timings = []
                rows = 0
                for i in range(args.runs + 1):
                    t0 = time.perf_counter()
                    if endpoint.startswith("GET "):
                        response = client.get(f"/api/projects/1/logs/{endpoint[4:]}/", params=query)
                    else:
                        response = client.post(f"/api/projects/1/logs/{endpoint}/", json={"query": query})
                    elapsed = time.perf_counter() - t0
                    response.raise_for_status()
                    rows = _rows(response.json())
                    if i:
                        timings.append(elapsed * 1000)
                print(f"{name:<52} {statistics.median(timings):>8.1f} {percentile(timings, 0.95):>8.1f} {rows:>7}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
